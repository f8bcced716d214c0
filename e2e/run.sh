#!/usr/bin/env bash
# The kwok end-to-end suite: a real control plane (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler) with kwok's simulated nodes, pods and volumes,
# and the Rust tests in e2e/tests against it.
#
# 1. e2e/setup.sh builds the pinned control-plane binaries (cached outside the clone).
# 2. cargo builds the operator and the test binaries (network allowed for crates).
# 3. Everything else runs in a new network and PID namespace: only loopback exists, so
#    nothing can reach another address (the operator's probes of cluster DNS names fail
#    at once), and every process left behind dies with the namespace.
# 4. kwokctl creates the cluster from the local binaries (no downloads), the tests run
#    (helm first, so the chart is what creates the CRDs), and the cluster is deleted,
#    pass or fail. Each step is bounded in time.
#
# Environment: DUALCHAIN_CACHE (default ~/.cache/dualchain), DUALCHAIN_E2E_KEEP=1 keeps
# the test namespaces, DUALCHAIN_E2E_FILTER selects operator tests by name.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${DUALCHAIN_CACHE:-$HOME/.cache/dualchain}
BIN=$CACHE/k8s/bin
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$CACHE/target}
CLUSTER=dualchain-e2e
# Operator logs (one per test operator) and, after a failure, the control plane's.
LOGS=$CARGO_TARGET_DIR/debug/e2e-logs
KWOK_VERSION=$(sed -n 's/^KWOK_VERSION=\([^ ]*\).*/\1/p' "$ROOT/e2e/setup.sh")
KWOK_STAGES=$CACHE/k8s/go/mod/sigs.k8s.io/kwok@$KWOK_VERSION/kustomize/stage

if [[ ${1:-} != --in-namespace ]]; then
  started=$(date +%s)
  "$ROOT/e2e/setup.sh"
  rm -rf "$LOGS"
  # The same selection as `make test`'s `cargo test --workspace`, so after the unit tests
  # nothing is rebuilt; it also builds target/debug/dualchain-operator (the operator
  # package's integration test runs the binary), which the tests start.
  built=$(cargo test --workspace --locked --no-run --message-format=json)
  test_binary() {
    grep "\"name\":\"$1\",\"src_path\":\"$ROOT/e2e/tests/" <<<"$built" |
      grep -o '"executable":"[^"]*"' | cut -d'"' -f4
  }
  # Run the test executables directly: `cargo test --test X` would resolve features
  # for a smaller selection and rebuild crates in a second variant.
  # The tests find the chart and manifests from CARGO_MANIFEST_DIR, which cargo sets
  # only when it runs them: a binary built in another checkout sharing this cache holds
  # that checkout's path, so name this one.
  export CARGO_MANIFEST_DIR=$ROOT/e2e
  export E2E_HELM_TESTS=$(test_binary helm) E2E_OPERATOR_TESTS=$(test_binary operator)
  export E2E_MONITORING_TESTS=$(test_binary monitoring)
  [[ -x $E2E_HELM_TESTS && -x $E2E_OPERATOR_TESTS && -x $E2E_MONITORING_TESTS ]] ||
    { echo "e2e: test executables not found" >&2; exit 1; }
  echo "e2e: built in $(($(date +%s) - started))s; entering a private network namespace"
  userns=()
  [[ $(id -u) -ne 0 ]] && userns=(--map-root-user)
  exec unshare "${userns[@]}" --net --pid --fork --mount-proc -- "$0" --in-namespace
fi

# --- inside the namespace: pid 1, loopback only ---------------------------------------
ip link set lo up
export PATH=$BIN:$PATH
WORK=$(mktemp -d "${TMPDIR:-/tmp}/dualchain-e2e.XXXXXX")
export KWOK_WORKDIR=$WORK/kwok
export KUBECONFIG=$WORK/kubeconfig
# kwokctl has no flag for kubectl; without this it would download one when it needs it.
export KWOK_KUBECTL_BINARY=$BIN/kubectl
cleanup() {
  local rc=$?
  timeout 60 kwokctl delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
  if ((rc != 0)) && [[ -d $KWOK_WORKDIR/clusters/$CLUSTER/logs ]]; then
    echo "e2e: failed (rc $rc); operator and control-plane logs are in $LOGS"
    mkdir -p "$LOGS/control-plane"
    cp -r "$KWOK_WORKDIR/clusters/$CLUSTER/logs/." "$LOGS/control-plane/" || true
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT

# Every component binds to loopback; kube-apiserver needs an explicit advertise address
# because the namespace has no default route to pick one from.
config=$WORK/kwokctl.yaml
cat >"$config" <<'YAML'
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  bindAddress: 127.0.0.1
componentsPatches:
  - name: kube-apiserver
    extraArgs:
      - key: advertise-address
        value: 127.0.0.1
YAML
# kwok's own stage definitions from the module cache: nodes become Ready and keep a
# lease, pods run and become Ready (Job pods complete), and claims of the kwok-volume
# StorageClass get a bound volume.
for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
  pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml \
  volume/fast/pvc-provision.yaml volume/fast/pv-bind.yaml volume/fast/pv-delete.yaml \
  volume/fast/pvc-delete.yaml; do
  echo "---" >>"$config"
  cat "$KWOK_STAGES/$f" >>"$config"
done

t0=$(date +%s)
timeout 180 kwokctl create cluster --name "$CLUSTER" --runtime binary \
  --kube-apiserver-binary "$BIN/kube-apiserver" \
  --kube-controller-manager-binary "$BIN/kube-controller-manager" \
  --kube-scheduler-binary "$BIN/kube-scheduler" \
  --kwok-controller-binary "$BIN/kwok" \
  --etcd-binary "$BIN/etcd" \
  --config "$config" \
  --wait 2m
kwokctl get kubeconfig --name "$CLUSTER" >"$KUBECONFIG"
timeout 60 kwokctl scale node --name "$CLUSTER" --replicas 3
kubectl apply -f "$KWOK_STAGES/volume/fast/storage-class.yaml" >/dev/null
echo "e2e: control plane up in $(($(date +%s) - t0))s ($(kubectl version -o json | sed -n 's/.*"gitVersion": "\(v[^"]*\)".*/\1/p' | tail -1))"

export DUALCHAIN_E2E_SIMULATED_PODS=1
t0=$(date +%s)
# No cluster needed: promtool on the chart's alerts, helm template of its monitoring.
timeout 120 "$E2E_MONITORING_TESTS" --ignored --test-threads 2
# One at a time: both install the chart, whose crds/ the first install creates.
timeout 300 "$E2E_HELM_TESTS" --ignored --test-threads 1
# shellcheck disable=SC2086 # the filter is a list of test-name words
timeout 900 "$E2E_OPERATOR_TESTS" --ignored --test-threads 8 ${DUALCHAIN_E2E_FILTER:-}
echo "e2e: suite passed in $(($(date +%s) - t0))s"
