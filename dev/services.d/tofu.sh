# OpenTofu built from the Go module proxy (tofu_build in terraform.sh), so that the terraform plugin
# tests run against both binaries. Optional: built and started only when named, because a cold build
# takes ~25 min on 2 cores; .ci/run builds it in the background while the other tests run.
# shellcheck shell=bash

tofu_built() { [[ -x $TOFU_DIR/tofu ]]; }

tofu_install() { with_lock tofu tofu_build; }

tofu_start() {
  tofu_built || die "tofu: not built ($TOFU_DIR/tofu; dev/services build tofu)"
  log "tofu: $("$TOFU_DIR/tofu" version 2>/dev/null | grep -m1 '^OpenTofu v') at $TOFU_DIR/tofu"
}

tofu_stop() { :; }

tofu_status() {
  if tofu_built; then
    echo "tofu: ready ($("$TOFU_DIR/tofu" version 2>/dev/null | grep -m1 '^OpenTofu v') at $TOFU_DIR/tofu)"; return 0
  fi
  echo "tofu: not built (optional; dev/services build tofu takes ~25 min cold)"; return 1
}

tofu_env() { echo "export SETPOINT_TOFU_BIN=$(printf %q "$TOFU_DIR/tofu")"; }
