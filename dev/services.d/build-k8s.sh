#!/usr/bin/env bash
# Build kube-apiserver, kube-controller-manager (Kubernetes $K8S_VERSION) and etcd ($ETCD_VERSION) from the
# Go module proxy, with throw-away wrapper modules (see docs/development.md, "kubernetes"). Output:
#   $SETPOINT_CACHE/opt/k8s-$K8S_VERSION/bin/{kube-apiserver,kube-controller-manager}
#   $SETPOINT_CACHE/opt/etcd-$ETCD_VERSION/bin/etcd
# Idempotent: a finished build leaves a .done marker and is never redone. Nothing is written to the repository.
set -euo pipefail
: "${K8S_VERSION:?}" "${ETCD_VERSION:?}" "${SETPOINT_CACHE:?}"
K8S_DIR=$SETPOINT_CACHE/opt/k8s-$K8S_VERSION
ETCD_DIR=$SETPOINT_CACHE/opt/etcd-$ETCD_VERSION
export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="-trimpath -buildvcs=false"
# Go's own caches default to ~/go/pkg/mod and ~/.cache/go-build: outside the repository.
NICE=(nice -n "${SETPOINT_BUILD_NICE:-10}")
GOBUILD_P=${SETPOINT_GO_BUILD_P:-2}
ts() { date +%s; }

build_etcd() {
  [[ -f $ETCD_DIR/.done ]] && { echo "etcd $ETCD_VERSION: cached in $ETCD_DIR"; return 0; }
  local t0; t0=$(ts)
  rm -rf "$ETCD_DIR"; mkdir -p "$ETCD_DIR/src" "$ETCD_DIR/bin"; cd "$ETCD_DIR/src"
  # go.etcd.io/etcd/server/v3 has package main at its root, but its go.mod replaces ../api etc., so
  # `go install` is refused; every etcd sub-module is published at the same tag: a bare wrapper suffices.
  go mod init etcd-test-bin >/dev/null 2>&1
  go get -tool "go.etcd.io/etcd/server/v3@v$ETCD_VERSION"
  "${NICE[@]}" go build -v -p "$GOBUILD_P" -ldflags "-s -w" -o "$ETCD_DIR/bin/etcd" go.etcd.io/etcd/server/v3
  local v; v=$("$ETCD_DIR/bin/etcd" --version); echo "${v%%$'\n'*}"
  echo "etcd $ETCD_VERSION built in $(( $(ts) - t0 ))s"
  touch "$ETCD_DIR/.done"
}

build_k8s() {
  [[ -f $K8S_DIR/.done ]] && { echo "kubernetes $K8S_VERSION: cached in $K8S_DIR"; return 0; }
  local t0; t0=$(ts)
  rm -rf "$K8S_DIR"; mkdir -p "$K8S_DIR/src" "$K8S_DIR/bin"; cd "$K8S_DIR/src"
  local minor=${K8S_VERSION#1.}; minor=${minor%%.*}
  local staging_version=v0.${K8S_VERSION#1.}
  go mod init k8s-test-bins >/dev/null 2>&1
  go mod edit -go=1.26.0 -godebug=default=go1.26
  # k8s.io/kubernetes' go.mod requires its staging modules at v0.0.0 with `replace => ./staging/...`;
  # replace each with its published copy at v0.<minor>.<patch>.
  local gomod staging
  gomod=$(go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
  staging=$(sed -n 's#^[[:space:]]*\(k8s\.io/[A-Za-z0-9._-]*\)[[:space:]]*=>[[:space:]]*\./staging/.*#\1#p' "$gomod")
  [[ -n $staging ]] || { echo "no staging replaces found in $gomod" >&2; return 1; }
  echo "$staging" > staging-modules.txt
  echo "kubernetes $K8S_VERSION: $(wc -l < staging-modules.txt) staging modules replaced at $staging_version"
  local m; for m in $staging; do go mod edit -replace="$m=$m@$staging_version"; done
  go get -tool "k8s.io/kubernetes/cmd/kube-apiserver@v$K8S_VERSION" "k8s.io/kubernetes/cmd/kube-controller-manager@v$K8S_VERSION"
  echo "kubernetes $K8S_VERSION: modules resolved after $(( $(ts) - t0 ))s; compiling (go build -p $GOBUILD_P)"
  local V=k8s.io/component-base/version C=k8s.io/client-go/pkg/version
  local ldx="-X $V.gitVersion=v$K8S_VERSION -X $V.gitMajor=1 -X $V.gitMinor=$minor -X $V.gitTreeState=clean"
  ldx="$ldx -X $C.gitVersion=v$K8S_VERSION -X $C.gitMajor=1 -X $C.gitMinor=$minor"
  # -v names each package as it is compiled: dev/services prints the count as a heartbeat
  "${NICE[@]}" go build -v -p "$GOBUILD_P" -ldflags "-s -w $ldx" -o "$K8S_DIR/bin/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager
  "$K8S_DIR/bin/kube-apiserver" --version
  echo "kubernetes $K8S_VERSION built in $(( $(ts) - t0 ))s"
  touch "$K8S_DIR/.done"
}

case "${1:-all}" in
  etcd) build_etcd ;;
  k8s) build_k8s ;;
  all) build_etcd; build_k8s ;;
  *) echo "usage: $0 [etcd|k8s|all]" >&2; exit 2 ;;
esac
