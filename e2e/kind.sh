#!/usr/bin/env bash
# The operator e2e on a kind cluster, with real validator pods, for machines that have
# Docker, kind, kubectl and helm. It CANNOT run on the development machine (no Docker
# there); `make test` runs the same Rust suite on kwok instead (e2e/run.sh).
#
#   1. creates the kind cluster `dualchain-e2e` (unless it exists),
#   2. builds the image dualchain:0.1.0 (both binaries) and loads it into kind,
#   3. installs the chart (CRDs included) into dualchain-system,
#   4. applies examples/devnet.yaml and waits until both chains have finalized blocks,
#   5. scales the in-cluster operator to 0 (each test runs its own operator, scoped to
#      its namespace) and runs the e2e suite with this cluster's KUBECONFIG,
#   6. deletes the cluster, unless KEEP_CLUSTER=1.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CLUSTER=${KIND_CLUSTER:-dualchain-e2e}
IMAGE=dualchain:0.1.0
for tool in docker kind kubectl helm cargo; do
  command -v "$tool" >/dev/null || { echo "kind.sh: $tool not found" >&2; exit 1; }
done

export KUBECONFIG=${KUBECONFIG_OUT:-$(mktemp)}
kind get clusters | grep -qx "$CLUSTER" || kind create cluster --name "$CLUSTER" --wait 2m
kind get kubeconfig --name "$CLUSTER" >"$KUBECONFIG"
[[ ${KEEP_CLUSTER:-0} == 1 ]] || trap 'kind delete cluster --name "$CLUSTER"' EXIT

docker build -t "$IMAGE" "$ROOT"
kind load docker-image "$IMAGE" --name "$CLUSTER"

helm upgrade --install dualchain "$ROOT/helm/dualchain" \
  --namespace dualchain-system --create-namespace --wait --timeout 5m

kubectl create namespace devnet --dry-run=client -o yaml | kubectl apply -f -
kubectl apply -n devnet -f "$ROOT/helm/dualchain/examples/devnet.yaml"
echo "kind.sh: waiting for finalized blocks on both chains"
for _ in $(seq 1 120); do
  alpha=$(kubectl get dcn devnet -n devnet -o jsonpath='{.status.alpha.finalizedHeight}')
  delta=$(kubectl get dcn devnet -n devnet -o jsonpath='{.status.delta.finalizedHeight}')
  if ((${alpha:-0} > 0 && ${delta:-0} > 0)); then
    echo "kind.sh: finalized alpha $alpha, delta $delta"
    break
  fi
  sleep 5
done
((${alpha:-0} > 0 && ${delta:-0} > 0)) || { kubectl get dcn,pods -n devnet; exit 1; }

kubectl scale deployment dualchain-operator -n dualchain-system --replicas 0
cd "$ROOT"
cargo test --locked -p dualchain-e2e --test helm -- --ignored
cargo test --locked -p dualchain-e2e --test operator -- --ignored --test-threads 4
