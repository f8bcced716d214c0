#!/usr/bin/env bash
# The real-pod end-to-end tier: validators run as real containers. A one-node cluster —
# the control plane e2e/setup.sh builds (through kwokctl, which only starts it here), a
# kubelet from the same Kubernetes module, Debian's containerd and runc, CNI bridge
# networking, CoreDNS as a process for the headless-service names and kube-proxy for
# Service VIPs (the loadgen Job reaches the API server through one) — lives in a new
# network, PID and mount namespace, and the Rust tests in e2e/tests/pods.rs run against it.
#
# 1. e2e/setup.sh builds the pinned Kubernetes binaries (kubelet and kube-proxy too) and
#    CoreDNS (cached outside the clone); scripts/setup.sh installs containerd, runc, the
#    CNI plugins, iptables and busybox.
# 2. cargo builds the test binaries (the same selection as `make test`, so nothing is
#    rebuilt); the validator image is written from target/debug/dualchain (and
#    dualchain-tools) plus the libraries they link, as a docker archive — no Docker, no
#    registry, no second build.
# 3. Inside the namespaces: a veth pair gives the node the address 10.255.0.1; pods get
#    10.244.0.0/24 on a bridge; /etc/resolv.conf is bind-mounted (in this mount namespace
#    only) to CoreDNS, so the tests and the operator resolve pod names as pods do.
# 4. Everything is bounded in time and torn down on exit, pass, fail or SIGTERM: the
#    processes die with the PID namespace, the mounts with the mount namespace; the
#    kubelet's kernel settings are restored, its cgroups and the run's files removed.
#
# Environment: DUALCHAIN_CACHE (default ~/.cache/dualchain), DUALCHAIN_E2E_FILTER selects
# tests by name, DUALCHAIN_PODS_KEEP_LOGS=1 copies every component's log to
# target/debug/e2e-pods-logs even when the tier passes.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${DUALCHAIN_CACHE:-$HOME/.cache/dualchain}
BIN=$CACHE/k8s/bin
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$CACHE/target}
CLUSTER=dualchain-pods
LOGS=$CARGO_TARGET_DIR/debug/e2e-pods-logs
NODE_IP=10.255.0.1
POD_CIDR=10.244.0.0/24
NODE_NAME=e2e-node
# Images the tests' manifests name; their pull policy is Never, so nothing is ever pulled.
VALIDATOR_IMAGE=dualchain:0.1.0
PAUSE_IMAGE=dualchain-e2e/pause:1
# The kernel settings the kubelet changes at start (restored on exit).
SYSCTLS=(vm.overcommit_memory kernel.panic kernel.panic_on_oops)

if [[ ${1:-} != --in-namespace ]]; then
  started=$(date +%s)
  [[ $(id -u) -eq 0 ]] || { echo "e2e pods: needs root (containerd, kubelet, namespaces)" >&2; exit 1; }
  "$ROOT/e2e/setup.sh"
  for tool in containerd containerd-shim-runc-v2 runc ctr busybox iptables /usr/lib/cni/bridge /usr/lib/cni/host-local; do
    command -v "$tool" >/dev/null ||
      { echo "e2e pods: $tool not found; run scripts/setup.sh" >&2; exit 1; }
  done
  rm -rf "$LOGS"
  built=$(cargo test --workspace --locked --no-run --message-format=json)
  # The tests find the chart and manifests from CARGO_MANIFEST_DIR, which cargo sets
  # only when it runs them: a binary built in another checkout sharing this cache holds
  # that checkout's path, so name this one.
  export CARGO_MANIFEST_DIR=$ROOT/e2e
  export E2E_PODS_TESTS
  E2E_PODS_TESTS=$(grep "\"name\":\"pods\",\"src_path\":\"$ROOT/e2e/tests/" <<<"$built" |
    grep -o '"executable":"[^"]*"' | cut -d'"' -f4)
  [[ -x $E2E_PODS_TESTS ]] || { echo "e2e pods: test executable not found" >&2; exit 1; }
  for b in dualchain dualchain-tools dualchain-operator; do
    [[ -x $CARGO_TARGET_DIR/debug/$b ]] || { echo "e2e pods: $CARGO_TARGET_DIR/debug/$b not built" >&2; exit 1; }
  done
  saved=()
  for s in "${SYSCTLS[@]}"; do saved+=("$s=$(sysctl -n "$s")"); done
  export E2E_PODS_WORK
  E2E_PODS_WORK=$(mktemp -d "${TMPDIR:-/tmp}/dualchain-pods.XXXXXX")
  # What outlives the namespaces: the kernel settings, the (empty) pod cgroups, the
  # run's directory, the kubelet's links to its logs and the shims' sockets.
  teardown() {
    for s in "${saved[@]}"; do sysctl -q -w "$s" || true; done
    find /sys/fs/cgroup/ -depth -type d -path '*/kubepods*' -exec rmdir {} + 2>/dev/null || true
    rm -rf "$E2E_PODS_WORK"
    # containerd 1.6 puts its shims' sockets there whatever its state directory is.
    pgrep -x containerd >/dev/null || rm -rf /run/containerd/s
    find /var/log/containers -xtype l -delete 2>/dev/null || true
  }
  trap teardown EXIT
  echo "e2e pods: built in $(($(date +%s) - started))s; entering private network, PID and mount namespaces"
  # SIGTERM (timeout, Ctrl-C) reaches the namespace's first process, which tears the
  # cluster down; its end kills everything else in the namespace.
  unshare --net --pid --fork --mount-proc --propagation private --kill-child=SIGTERM \
    -- "$0" --in-namespace &
  child=$!
  trap 'kill -TERM $child 2>/dev/null' TERM INT
  rc=0
  wait "$child" || rc=$?
  # A signal interrupts the first wait; the second waits for the teardown inside.
  kill -0 "$child" 2>/dev/null && { wait "$child" || rc=$?; }
  exit "$rc"
fi

# --- inside the namespaces: pid 1, loopback only until the veth pair -----------------
export PATH=$BIN:$PATH
WORK=$E2E_PODS_WORK
export KWOK_WORKDIR=$WORK/kwok KUBECONFIG=$WORK/kubeconfig KWOK_KUBECTL_BINARY=$BIN/kubectl
mkdir -p "$WORK/logs"
cleanup() {
  local rc=$?
  if ((rc != 0)) || [[ ${DUALCHAIN_PODS_KEEP_LOGS:-0} == 1 ]]; then
    mkdir -p "$LOGS"
    cp -r "$WORK/logs/." "$LOGS/" 2>/dev/null || true
    cp -r "$WORK/pod-logs/." "$WORK/kept-pod-logs/" 2>/dev/null || true
    cp -r "$WORK/kept-pod-logs" "$LOGS/pods" 2>/dev/null || true
    cp -r "$KWOK_WORKDIR/clusters/$CLUSTER/logs/." "$LOGS/" 2>/dev/null || true
    ((rc == 0)) || echo "e2e pods: failed (rc $rc); component logs are in $LOGS"
  fi
  timeout 60 kwokctl delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
  # Everything else dies with this PID namespace; the outer script removes what outlives
  # it (files, cgroups, kernel settings).
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

ip link set lo up
ip link add e2e-node type veth peer name e2e-peer
ip link set e2e-node up
ip link set e2e-peer up
ip addr add "$NODE_IP/24" dev e2e-node
# One resolver for everything started here, pods' ClusterFirst included: CoreDNS.
printf 'nameserver %s\nsearch cluster.local\noptions ndots:5 timeout:1 attempts:2\n' "$NODE_IP" >"$WORK/resolv.conf"
mount --bind "$WORK/resolv.conf" /etc/resolv.conf
# Pods with dnsPolicy Default must not inherit the host's resolver either.
printf 'nameserver %s\n' "$NODE_IP" >"$WORK/resolv-pods.conf"

# --- containerd, and the images it will never pull ----------------------------------
C=$WORK/containerd
mkdir -p "$C" "$WORK/cni" "$WORK/cni-ipam"
sed -e "s|@C@|$C|g" -e "s|@WORK@|$WORK|g" -e "s|@PAUSE@|$PAUSE_IMAGE|g" \
  "$ROOT/e2e/pods/containerd.toml" >"$C/config.toml"
sed -e "s|@POD_CIDR@|$POD_CIDR|g" -e "s|@WORK@|$WORK|g" \
  "$ROOT/e2e/pods/cni.conflist" >"$WORK/cni/10-e2e.conflist"
containerd --config "$C/config.toml" >"$WORK/logs/containerd.log" 2>&1 &
for _ in $(seq 1 100); do [[ -S $C/containerd.sock ]] && break; sleep 0.1; done
CTR=(ctr --address "$C/containerd.sock" -n k8s.io)
t0=$(date +%s)
T=$CARGO_TARGET_DIR/debug
"$ROOT/e2e/pods/image.sh" "$WORK/validator.tar" "$VALIDATOR_IMAGE" '["/usr/local/bin/dualchain"]' \
  "$T/dualchain=/usr/local/bin/dualchain" "$T/dualchain-tools=/usr/local/bin/dualchain-tools" \
  "$T/dualchain-operator=/usr/local/bin/dualchain-operator" \
  /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf=/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf \
  "$(command -v busybox)=/bin/busybox" # for the tests' `kubectl exec` (no shell otherwise)
"$ROOT/e2e/pods/image.sh" "$WORK/pause.tar" "$PAUSE_IMAGE" '["/bin/busybox","sleep","inf"]' \
  "$(command -v busybox)=/bin/busybox"
timeout 120 "${CTR[@]}" images import "$WORK/validator.tar" >/dev/null
timeout 60 "${CTR[@]}" images import "$WORK/pause.tar" >/dev/null
# A second tag of the same image, for the rolling-upgrade test.
"${CTR[@]}" images tag "docker.io/library/$VALIDATOR_IMAGE" "docker.io/library/$VALIDATOR_IMAGE-next" >/dev/null
rm -f "$WORK/validator.tar" "$WORK/pause.tar"
echo "e2e pods: images imported in $(($(date +%s) - t0))s"

# --- control plane (kwokctl only starts it; no kwok node is created) -----------------
t0=$(date +%s)
sed -e "s|@NODE_IP@|$NODE_IP|g" "$ROOT/e2e/pods/kwokctl.yaml" >"$WORK/kwokctl.yaml"
timeout 180 kwokctl create cluster --name "$CLUSTER" --runtime binary \
  --kube-apiserver-binary "$BIN/kube-apiserver" \
  --kube-controller-manager-binary "$BIN/kube-controller-manager" \
  --kube-scheduler-binary "$BIN/kube-scheduler" \
  --kwok-controller-binary "$BIN/kwok" \
  --etcd-binary "$BIN/etcd" \
  --config "$WORK/kwokctl.yaml" \
  --wait 2m >"$WORK/logs/kwokctl.log" 2>&1 ||
  { cat "$WORK/logs/kwokctl.log"; exit 1; }
kwokctl get kubeconfig --name "$CLUSTER" >"$KUBECONFIG"

# --- cluster DNS: CoreDNS as a process, on the node's address ------------------------
sed -e "s|@KUBECONFIG@|$KUBECONFIG|g" -e "s|@NODE_IP@|$NODE_IP|g" \
  "$ROOT/e2e/pods/Corefile" >"$WORK/Corefile"
coredns -conf "$WORK/Corefile" >"$WORK/logs/coredns.log" 2>&1 &

# --- the kubelet ----------------------------------------------------------------------
sed -e "s|@NODE_IP@|$NODE_IP|g" -e "s|@WORK@|$WORK|g" -e "s|@C@|$C|g" -e "s|@POD_CIDR@|$POD_CIDR|g" \
  "$ROOT/e2e/pods/kubelet.yaml" >"$WORK/kubelet.yaml"
kubelet --config "$WORK/kubelet.yaml" --kubeconfig "$KUBECONFIG" --root-dir "$WORK/kubelet" \
  --hostname-override "$NODE_NAME" --node-ip "$NODE_IP" >"$WORK/logs/kubelet.log" 2>&1 &
# --- Service VIPs: kube-proxy (iptables, inside this network namespace) ---------------
kube-proxy --kubeconfig "$KUBECONFIG" --hostname-override "$NODE_NAME" --proxy-mode iptables \
  --cluster-cidr "$POD_CIDR" --conntrack-max-per-core 0 --metrics-bind-address 127.0.0.1:10249 \
  --healthz-bind-address 127.0.0.1:10256 >"$WORK/logs/kube-proxy.log" 2>&1 &
timeout 120 bash -c "until kubectl get node $NODE_NAME >/dev/null 2>&1; do sleep 1; done"
kubectl wait --for=condition=Ready "node/$NODE_NAME" --timeout=120s >/dev/null
# Volumes: static hostPath PersistentVolumes of one StorageClass the tests name.
# Volumes are not reused (Retain): enough for every test's validators, with room.
"$ROOT/e2e/pods/volumes.sh" "$WORK/volumes" 40 | kubectl apply -f - >/dev/null
echo "e2e pods: cluster up in $(($(date +%s) - t0))s ($(kubectl version -o json | sed -n 's/.*"gitVersion": "\(v[^"]*\)".*/\1/p' | tail -1), node $NODE_NAME Ready)"

t0=$(date +%s)
export DUALCHAIN_E2E_POD_LOGS=$WORK/logs
# The kubelet deletes a pod's logs with the pod (a test's namespace goes at its end):
# keep copies, so a failure's validator logs are still there to read.
mkdir -p "$WORK/kept-pod-logs"
(while sleep 3; do cp -ru "$WORK/pod-logs/." "$WORK/kept-pod-logs/" 2>/dev/null; done) &
# shellcheck disable=SC2086 # the filter is a list of test-name words
# In the background, so that a SIGTERM is handled (the teardown runs) at once.
timeout 1200 "$E2E_PODS_TESTS" --ignored --test-threads 1 --nocapture ${DUALCHAIN_E2E_FILTER:-} &
wait $!
echo "e2e pods: suite passed in $(($(date +%s) - t0))s"
