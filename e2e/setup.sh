#!/usr/bin/env bash
# Builds the Kubernetes control plane the kwok end-to-end tests run against, from Go
# modules (pinned below), into ${DUALCHAIN_CACHE:-~/.cache/dualchain}/k8s/bin:
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubectl,
#   kubelet, kube-proxy (the real-pod tier, e2e/pods.sh)              (k8s.io/kubernetes)
#   etcd                                                              (go.etcd.io/etcd/server/v3)
#   kwok, kwokctl                                                     (sigs.k8s.io/kwok)
#   helm                                                              (helm.sh/helm/v3)
#   promtool                                                          (github.com/prometheus/prometheus)
#   coredns (cluster DNS of the real-pod tier)                        (github.com/coredns/coredns)
# Idempotent: a tool is rebuilt only when its pin (or its wrapper module under
# e2e/toolchain) changes. The Go module and build caches live beside the binaries,
# outside the clone. Needs Go and the Go module proxy; nothing else is downloaded.
set -euo pipefail

KUBE_VERSION=v1.36.1 # kwok v0.8.0's default; the staging pins live in toolchain/kube/go.mod
ETCD_VERSION=v3.6.8  # the etcd release Kubernetes v1.36.1 itself requires
KWOK_VERSION=v0.8.0
HELM_VERSION=v3.22.0
PROMETHEUS_VERSION=v0.316.0 # the Go module of Prometheus v3.16; promtool tests the chart's alerts
COREDNS_VERSION=v1.14.7

E2E_DIR=$(cd "$(dirname "$0")" && pwd)
CACHE=${DUALCHAIN_CACHE:-$HOME/.cache/dualchain}/k8s
BIN=$CACHE/bin
mkdir -p "$BIN"

if ! command -v go >/dev/null 2>&1; then
  echo "e2e setup: go not found; install Go (https://go.dev/dl) first" >&2
  exit 1
fi
# -modcacherw keeps the module cache deletable with a plain rm -rf.
export GOMODCACHE=$CACHE/go/mod GOCACHE=$CACHE/go/build GOFLAGS="-buildvcs=false -modcacherw"
# An older local Go fetches the toolchain the modules ask for through the module proxy.
export GOTOOLCHAIN=${GOTOOLCHAIN_OVERRIDE:-auto}
# Static binaries: the control plane must not depend on this machine's libc.
export CGO_ENABLED=0

started=$(date +%s)
built=()

# Runs "$@" unless $BIN/.stamp-$1 already holds the pin $2 and the listed binaries exist.
build_if_stale() {
  local name=$1 pin=$2 binaries=$3
  shift 3
  local stamp=$BIN/.stamp-$name
  local missing=0
  for b in $binaries; do [[ -x $BIN/$b ]] || missing=1; done
  if ((missing == 0)) && [[ -f $stamp && $(cat "$stamp") == "$pin" ]]; then
    return 0
  fi
  local t0
  t0=$(date +%s)
  echo "e2e setup: building $name ($binaries) ..."
  "$@"
  echo "$pin" >"$stamp"
  built+=("$name $(($(date +%s) - t0))s")
}

# The pin of a wrapper module is its go.mod and go.sum: editing either rebuilds.
module_pin() { cat "$1/go.mod" "$1/go.sum" "$1"/*.go | sha256sum | cut -c1-16; }

kube_ldflags() {
  local v=${KUBE_VERSION#v} pkg=k8s.io/component-base/version
  echo "-s -w -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=${v%%.*} \
-X $pkg.gitMinor=$(echo "$v" | cut -d. -f2) -X $pkg.gitTreeState=clean \
-X $pkg.buildDate=1970-01-01T00:00:00Z"
}

build_kube() {
  (cd "$E2E_DIR/toolchain/kube" &&
    go build -mod=readonly -trimpath -ldflags "$(kube_ldflags)" -o "$BIN/" \
      k8s.io/kubernetes/cmd/kube-apiserver \
      k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kube-scheduler \
      k8s.io/kubernetes/cmd/kubectl \
      k8s.io/kubernetes/cmd/kubelet \
      k8s.io/kubernetes/cmd/kube-proxy)
}

build_etcd() {
  (cd "$E2E_DIR/toolchain/etcd" &&
    go build -mod=readonly -trimpath -ldflags "-s -w" -o "$BIN/etcd" .)
}

build_kwok() {
  GOBIN=$BIN go install -trimpath -ldflags "-s -w" \
    "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" "sigs.k8s.io/kwok/cmd/kwokctl@$KWOK_VERSION"
}

build_helm() {
  GOBIN=$BIN go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
}

build_promtool() {
  GOBIN=$BIN go install -trimpath -ldflags "-s -w" \
    "github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_VERSION"
}

build_coredns() {
  GOBIN=$BIN go install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION"
}

build_if_stale kube "$KUBE_VERSION $(module_pin "$E2E_DIR/toolchain/kube")" \
  "kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy" build_kube
build_if_stale etcd "$ETCD_VERSION $(module_pin "$E2E_DIR/toolchain/etcd")" "etcd" build_etcd
build_if_stale kwok "$KWOK_VERSION" "kwok kwokctl" build_kwok
build_if_stale helm "$HELM_VERSION" "helm" build_helm
build_if_stale promtool "$PROMETHEUS_VERSION" "promtool" build_promtool
build_if_stale coredns "$COREDNS_VERSION" "coredns" build_coredns

# e2e/run.sh reads kwok's stage definitions from the module's source.
[[ -d $GOMODCACHE/sigs.k8s.io/kwok@$KWOK_VERSION/kustomize/stage ]] ||
  go mod download "sigs.k8s.io/kwok@$KWOK_VERSION"

if ((${#built[@]})); then
  echo "e2e setup: built ${built[*]}; total $(($(date +%s) - started))s"
else
  echo "e2e setup: control plane up to date in $BIN"
fi
echo "e2e setup: kubernetes $KUBE_VERSION, etcd $ETCD_VERSION, kwok $KWOK_VERSION, helm $HELM_VERSION, promtool $PROMETHEUS_VERSION, coredns $COREDNS_VERSION"
