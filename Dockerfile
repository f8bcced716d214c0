# syntax=docker/dockerfile:1
# Multi-stage image holding the three binaries: `dualchain` (validator, keygen, genesis,
# snapshot), `dualchain-tools` (devnet, loadgen, status, bench, sim; `dualchain` forwards
# those commands to it, found next to itself in /usr/local/bin, so the operator's loadgen
# Job still runs `dualchain loadgen`) and `dualchain-operator`. Cannot be built on the
# development machine (no Docker); the kind e2e (`e2e/kind.sh`) builds it with
# `docker build -t dualchain:0.1.0 .` and loads it with
# `kind load docker-image dualchain:0.1.0`.
#
# Build stage: RocksDB is compiled from source by the `rocksdb` crate (needs clang/cmake).
FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends clang libclang-dev cmake fonts-dejavu-core \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p dualchain-node -p dualchain-tools -p dualchain-operator \
 && install -D -m 0755 target/release/dualchain /out/dualchain \
 && install -D -m 0755 target/release/dualchain-tools /out/dualchain-tools \
 && install -D -m 0755 target/release/dualchain-operator /out/dualchain-operator

# Runtime stage: distroless (glibc + CA certificates, no shell), non-root user 10001 —
# the UID the operator's pod security contexts expect.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/dualchain /usr/local/bin/dualchain
COPY --from=build /out/dualchain-tools /usr/local/bin/dualchain-tools
COPY --from=build /out/dualchain-operator /usr/local/bin/dualchain-operator
# The one font the loadgen's plots use for their text (`--plot-font`).
COPY --from=build /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
USER 10001:10001
# Validator ports: Alpha p2p (UDP) / API, Delta p2p (UDP) / API, metrics.
EXPOSE 4130/udp 3030 4131/udp 4030 9100 9101 8080
ENTRYPOINT ["/usr/local/bin/dualchain"]
