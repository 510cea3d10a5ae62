# Terraform-compatible CLI (terraform on PATH, else tofu on PATH, else OpenTofu built from the Go module
# proxy) plus the repository's test provider, installed through a filesystem mirror.
# shellcheck shell=bash

TF_PROVIDER_SRC=$SETPOINT_ROOT/dev/terraform-provider-setpointtest
TOFU_DIR=$OPT/tofu-$TOFU_VERSION

# The provider build is keyed by a hash of its source, so an edit rebuilds it and a warm cache does not.
tf_provider_key() {
  (cd "$TF_PROVIDER_SRC" && cat go.mod go.sum ./*.go | sha256sum | cut -c1-16)
}
tf_provider_dir() { echo "$OPT/tfprovider-setpointtest-$(tf_provider_key)"; }
tf_cli_config() { echo "$(tf_provider_dir)/cli.tfrc"; }

# terraform_bin: the CLI the tests use (SETPOINT_TERRAFORM_BIN overrides).
terraform_bin() {
  if [[ -n ${SETPOINT_TERRAFORM_BIN:-} ]]; then echo "$SETPOINT_TERRAFORM_BIN"; return; fi
  local b
  for b in terraform tofu; do
    # skip our own cache bin dir so that `env` gives the same answer with or without PATH set up
    local p; p=$(PATH=$(tr ':' '\n' <<<"$PATH" | grep -vxF "$BIN" | paste -sd:) command -v "$b" 2>/dev/null) && { echo "$p"; return; }
  done
  echo "$TOFU_DIR/tofu"
}

terraform_install() {
  local tf; tf=$(terraform_bin)
  if [[ $tf == "$TOFU_DIR/tofu" && ! -x $tf ]]; then with_lock tofu tofu_build; fi
  [[ -x $tf ]] || die "terraform CLI $tf is not executable"
  with_lock tfprovider tf_provider_build
}

tofu_build() {
  [[ -x $TOFU_DIR/tofu ]] && return 0
  go_env
  mkdir -p "$TOFU_DIR/src" "$LOGS"
  local logf=$LOGS/build-tofu-$TOFU_VERSION.log
  log "building OpenTofu $TOFU_VERSION from the Go module proxy (log: $logf; ~25 min on 2 cores when cold)"
  (
    set -euo pipefail
    cd "$TOFU_DIR/src"
    rm -f go.mod go.sum
    go mod init tofu-test-bin
    # OpenTofu's go.mod has one replace (hashicorp/hcl/v2 => opentofu/hcl/v2): a wrapper module repeats it.
    gomod=$(go mod download -json "github.com/opentofu/opentofu@v$TOFU_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
    repl=$(sed -n 's#^replace github\.com/hashicorp/hcl/v2[^=]*=>[[:space:]]*\(github\.com/opentofu/hcl/v2\)[[:space:]]\{1,\}\(v[^[:space:]]*\).*#\1@\2#p' "$gomod")
    [[ -n $repl ]] || { echo "no hcl/v2 replace found in $gomod" >&2; exit 1; }
    go mod edit -replace="github.com/hashicorp/hcl/v2=$repl"
    go mod edit -godebug=tlsmlkem=0     # as in OpenTofu's own go.mod (godebug applies only to the main module)
    go get "github.com/opentofu/opentofu/cmd/tofu@v$TOFU_VERSION"
    nice -n 10 go build -ldflags "-s -w -X github.com/opentofu/opentofu/version.dev=no" -o "$TOFU_DIR/tofu.tmp" github.com/opentofu/opentofu/cmd/tofu
    mv "$TOFU_DIR/tofu.tmp" "$TOFU_DIR/tofu"
    "$TOFU_DIR/tofu" version
  ) >"$logf" 2>&1 || { tail -30 "$logf" >&2; die "building OpenTofu $TOFU_VERSION failed (log: $logf)"; }
  link_bin "$TOFU_DIR/tofu"
}

tf_provider_build() {
  local dir; dir=$(tf_provider_dir)
  local pdir=$dir/mirror/${TF_PROVIDER_SOURCE}/$TF_PROVIDER_VERSION/linux_amd64
  local exe=$pdir/terraform-provider-setpointtest_v$TF_PROVIDER_VERSION
  if [[ ! -x $exe ]]; then
    go_env
    mkdir -p "$pdir" "$LOGS"
    log "terraform: building the test provider $TF_PROVIDER_SOURCE $TF_PROVIDER_VERSION (Go, terraform-plugin-framework)"
    (cd "$TF_PROVIDER_SRC" && nice -n 10 go build -ldflags "-s -w" -o "$exe.tmp" .) >"$LOGS/build-tfprovider.log" 2>&1 \
      || { cat "$LOGS/build-tfprovider.log" >&2; die "building the terraform test provider failed (log: $LOGS/build-tfprovider.log)"; }
    mv "$exe.tmp" "$exe"
  fi
  # filesystem mirror for local.test/*; everything else would go to the registry (not reachable here).
  cat > "$dir/cli.tfrc.tmp" <<TFRC
# Written by dev/services: installs $TF_PROVIDER_SOURCE from a local filesystem mirror.
provider_installation {
  filesystem_mirror {
    path    = "$dir/mirror"
    include = ["local.test/*/*"]
  }
  direct {
    exclude = ["local.test/*/*"]
  }
}
TFRC
  mv "$dir/cli.tfrc.tmp" "$dir/cli.tfrc"
  # Alternative without `init`: dev_overrides (Terraform warns that overrides are in effect).
  cat > "$dir/cli-dev-overrides.tfrc" <<TFRC
provider_installation {
  dev_overrides {
    "$TF_PROVIDER_SOURCE" = "$pdir"
  }
  direct {}
}
TFRC
  ln -sfn "$exe" "$pdir/terraform-provider-setpointtest"
}

terraform_start() {
  local tf; tf=$(terraform_bin)
  [[ -f $(tf_cli_config) ]] || die "terraform: provider not installed (dev/services up terraform)"
  log "terraform: $("$tf" version 2>/dev/null | sed -n 1p) at $tf; provider $TF_PROVIDER_SOURCE $TF_PROVIDER_VERSION; TF_CLI_CONFIG_FILE=$(tf_cli_config)"
}

terraform_stop() { :; }

terraform_status() {
  local tf; tf=$(terraform_bin)
  if [[ -x $tf && -f $(tf_cli_config) ]]; then
    echo "terraform: ready ($("$tf" version 2>/dev/null | sed -n 1p) at $tf; TF_CLI_CONFIG_FILE=$(tf_cli_config))"; return 0
  fi
  echo "terraform: not installed (binary $tf, provider config $(tf_cli_config))"; return 1
}

terraform_env() {
  local cfg; cfg=$(tf_cli_config)
  echo "export SETPOINT_TERRAFORM_BIN=$(printf %q "$(terraform_bin)")"
  echo "export SETPOINT_TF_CLI_CONFIG=$(printf %q "$cfg")"
  echo "export SETPOINT_TF_CLI_CONFIG_DEV_OVERRIDES=$(printf %q "$(tf_provider_dir)/cli-dev-overrides.tfrc")"
  echo "export TF_CLI_CONFIG_FILE=$(printf %q "$cfg")"
  echo "export SETPOINT_TF_PROVIDER_SOURCE=$TF_PROVIDER_SOURCE"
  echo "export SETPOINT_TF_PROVIDER_VERSION=$TF_PROVIDER_VERSION"
  echo "export CHECKPOINT_DISABLE=1"
  echo "export TF_IN_AUTOMATION=1"
}
