# Helm CLI, built from the Go module proxy (helm.sh/helm/v4 has no replace directives, so a bare wrapper
# module pinning the version is enough). The Kubernetes plugin renders charts with it (`helm template`).
# shellcheck shell=bash

HELM_DIR=$OPT/helm-$HELM_VERSION

helm_built() { [[ -x $HELM_DIR/bin/helm ]]; }

helm_install() {
  helm_built || with_lock helm-build helm_build
  link_bin "$HELM_DIR/bin/helm"
}

helm_build() {
  helm_built && return 0
  go_env
  mkdir -p "$HELM_DIR/src" "$HELM_DIR/bin" "$LOGS"
  local logf=$LOGS/build-helm-$HELM_VERSION.log t0; t0=$(now)
  log "helm: building helm $HELM_VERSION from the Go module proxy (a few minutes on a cold machine; log: $logf)"
  (
    set -euo pipefail
    cd "$HELM_DIR/src"
    rm -f go.mod go.sum
    go mod init helm-test-bin
    go get -tool "helm.sh/helm/v4/cmd/helm@v$HELM_VERSION"
    # version stamping as in Helm's Makefile (else `helm version` says v4.x-dev)
    nice -n "${SETPOINT_BUILD_NICE:-10}" go build -p "${SETPOINT_GO_BUILD_P:-2}" \
      -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=v$HELM_VERSION" \
      -o "$HELM_DIR/bin/helm.tmp" helm.sh/helm/v4/cmd/helm
    mv "$HELM_DIR/bin/helm.tmp" "$HELM_DIR/bin/helm"
    "$HELM_DIR/bin/helm" version
  ) >"$logf" 2>&1 || { tail -30 "$logf" >&2; die "building helm $HELM_VERSION failed (log: $logf)"; }
  log "helm: built in $(( $(now) - t0 ))s"
}

# helm is a CLI, not a daemon: "start" only checks that it runs.
helm_start() {
  "$BIN/helm" version --short 2>/dev/null | sed 's/^/[services] helm: /' || die "helm at $BIN/helm does not run"
}

helm_stop() { :; }

helm_status() {
  if helm_built; then echo "helm: ready ($("$HELM_DIR/bin/helm" version --short 2>/dev/null) at $HELM_DIR/bin/helm)"; return 0; fi
  echo "helm: not built yet"; return 1
}

helm_env() {
  echo "export SETPOINT_HELM_BIN=$(printf %q "$HELM_DIR/bin/helm")"
}
