# dualchain — see README.md. Build caches live outside the clone.
DUALCHAIN_CACHE ?= $(HOME)/.cache/dualchain
export CARGO_TARGET_DIR ?= $(DUALCHAIN_CACHE)/target
# The shared target directory outlives clones (CI builds a fresh clone every time), and
# incremental caches are kept per source path: without this they grow by gigabytes per
# clone until the disk is full. Dependencies are cached either way.
export CARGO_INCREMENTAL ?= 0
# RocksDB's C++ build uses every core it is given; keep the machine responsive.
export CARGO_BUILD_JOBS ?= $(shell nproc)

.PHONY: setup test e2e e2e-pods lint fmt bench build devnet

setup:
	@scripts/setup.sh

## The main job: N validators over QUIC on 127.0.0.1 under load with live progress,
## then a report (report.md, report.json, PNG plots) in ./devnet-report.
DEVNET_ARGS ?= --validators 4 --duration 60s
## `dualchain devnet` runs dualchain-tools (built next to dualchain), which starts
## `dualchain run` validators.
devnet: setup
	cargo build --release --locked -p dualchain-node -p dualchain-tools
	$(CARGO_TARGET_DIR)/release/dualchain devnet $(DEVNET_ARGS)

## The test suite: formatting, every test of the workspace, then the operator's
## end-to-end tests on a kwok control plane built from source (e2e/run.sh; the first run
## builds Kubernetes, later runs reuse ~/.cache/dualchain/k8s), then the real-pod tier
## (e2e/pods.sh: a kubelet with containerd runs the validators). `make test E2E=0` skips
## both e2e tiers for quick local runs; CI runs all of it. Lints are `make lint`, run
## before every commit: on a fresh machine clippy's check-mode build of every dependency
## (RocksDB's C++ compiled a second time) would cost CI about 23 of its 90 minutes.
E2E ?= 1
test: setup
	cargo fmt --all --check
	cargo test --workspace --locked
ifeq ($(E2E),0)
	@echo "make test: e2e tiers skipped (E2E=0)"
else
	e2e/run.sh
	e2e/pods.sh
endif

## Only the kwok e2e suite (builds the control plane on first use).
e2e: setup
	e2e/run.sh

## Only the real-pod e2e tier (root; builds the kubelet and CoreDNS on first use).
e2e-pods: setup
	cargo test --workspace --locked --no-run
	e2e/pods.sh

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
