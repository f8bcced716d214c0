# dualchain — see README.md. Build caches live outside the clone.
DUALCHAIN_CACHE ?= $(HOME)/.cache/dualchain
export CARGO_TARGET_DIR ?= $(DUALCHAIN_CACHE)/target
# RocksDB's C++ build uses every core it is given; keep the machine responsive.
export CARGO_BUILD_JOBS ?= $(shell nproc)

.PHONY: setup test lint fmt bench build devnet

setup:
	@scripts/setup.sh

## The main job: N validators over QUIC on 127.0.0.1 under load with live progress,
## then a report (report.md, report.json, PNG plots) in ./devnet-report.
DEVNET_ARGS ?= --validators 4 --duration 60s
devnet: setup
	cargo build --release --locked -p dualchain-node
	$(CARGO_TARGET_DIR)/release/dualchain devnet $(DEVNET_ARGS)

## The test suite: formatting, lints, then every test of the workspace.
test: setup
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --locked -- -D warnings
	cargo test --workspace --locked

lint: setup
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

fmt:
	cargo fmt --all

build: setup
	cargo build --workspace --release --locked

## criterion micro-benchmarks (crypto, merkle, storage); reports under $(CARGO_TARGET_DIR)/criterion.
bench: setup
	cargo bench -p dualchain-benches
