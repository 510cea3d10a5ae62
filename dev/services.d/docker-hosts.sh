# Remote Docker hosts for the docker_compose target (issue 16), on loopback only, beside the shared engine
# (which is never restarted or reconfigured here):
#   ssh engine  a second dockerd on a unix socket, reachable only through an OpenSSH server (Debian
#               openssh-server) on 127.0.0.1:$DHOSTS_SSH_PORT: key-only, its own host key, a dedicated user
#               whose key can run nothing but `docker system dial-stdio` (forced command); the client's
#               known_hosts file holds that host key, so StrictHostKeyChecking stays on.
#   tls engine  a third dockerd on tcp://127.0.0.1:$DHOSTS_TLS_PORT with mutual TLS (a CA, a server and a
#               client certificate made here with openssl).
# Both engines get the local test images (docker save | docker load from the shared engine) and run
# with a bridge of their own (made here) and --iptables=false, so they touch neither docker0 nor the
# shared engine's iptables rules. Never --bridge=none nor --default-address-pool: with either, dockerd
# deletes the docker0 interface (see dhosts_engine), cutting off the shared engine's default-bridge
# containers.
# shellcheck shell=bash

DHOSTS_RUN=$SETPOINT_RUN/docker-hosts
DHOSTS_SSH_PORT=${SETPOINT_DHOSTS_SSH_PORT:-22022}
DHOSTS_TLS_PORT=${SETPOINT_DHOSTS_TLS_PORT:-23761}
DHOSTS_USER=${SETPOINT_DHOSTS_USER:-sp-deploy}

dhosts_sock() { echo "$DHOSTS_RUN/$1/docker.sock"; }
dhosts_ping() { [[ $(curl -fsS --max-time 2 --unix-socket "$(dhosts_sock "$1")" http://docker/_ping 2>/dev/null) == OK ]]; }
dhosts_sshd_pidfile() { echo "$DHOSTS_RUN/sshd/sshd.pid"; }

dhosts_install() {
  command -v dockerd >/dev/null 2>&1 || die "dockerd is missing: dev/services up docker first"
  apt_install openssh-server openssh-client openssl iproute2
}

dhosts_start() {
  [[ $(id -u) == 0 ]] || die "starting the remote Docker hosts needs root (dockerd, sshd)"
  docker_ping || die "the shared Docker engine is not running (its test images are copied): dev/services up docker"
  mkdir -p "$DHOSTS_RUN"
  chmod 755 "$DHOSTS_RUN"
  id -u "$DHOSTS_USER" >/dev/null 2>&1 \
    || useradd --system --no-create-home --home-dir "$DHOSTS_RUN/home" --shell /bin/sh "$DHOSTS_USER"
  # no password at all ('*'), rather than a locked account ('!'), which sshd refuses even for keys
  usermod -p '*' "$DHOSTS_USER"
  mkdir -p "$DHOSTS_RUN/home"
  dhosts_tls_certs
  dhosts_engine ssh 10.213 --group "$DHOSTS_USER"
  dhosts_engine tls 10.214 --host "tcp://127.0.0.1:$DHOSTS_TLS_PORT" --tlsverify \
    --tlscacert "$DHOSTS_RUN/tls-server/ca.pem" --tlscert "$DHOSTS_RUN/tls-server/cert.pem" \
    --tlskey "$DHOSTS_RUN/tls-server/key.pem"
  dhosts_images ssh
  dhosts_images tls
  dhosts_sshd
}

# dhosts_engine NAME NET [DOCKERD ARGS...]: a dockerd with its own data, exec root, socket, pid file and
# default bridge (spdh-NAME, NET.255.1/24). No --default-address-pool: a dockerd started with one
# (and without live-restore) deletes the interface named docker0 whenever it replaces its stored
# default network, i.e. on every restart, whatever its own bridge is called (moby 20.10
# initNetworkController); its Compose networks come from Docker's default pools, which skip
# subnets already routed on this machine (the shared engine's).
dhosts_engine() {
  local name=$1 net=$2; shift 2
  local dir=$DHOSTS_RUN/$name bridge=spdh-$name
  mkdir -p "$dir"
  chmod 755 "$dir"
  if dhosts_ping "$name"; then log "docker-hosts: $name engine already running"; return 0; fi
  if ! ip link show "$bridge" >/dev/null 2>&1; then
    ip link add "$bridge" type bridge
    ip addr add "$net.255.1/24" dev "$bridge"
  fi
  ip link set "$bridge" up
  local driver; driver=$(docker_storage_driver)
  rm -f "$dir/docker.sock"
  setsid dockerd --host "unix://$dir/docker.sock" "$@" \
    --data-root "$dir/data-$driver" --exec-root "$dir/exec" --pidfile "$dir/dockerd.pid" \
    --storage-driver "$driver" --bridge "$bridge" --iptables=false --ip-masq=false --log-level warn \
    </dev/null >"$dir/dockerd.log" 2>&1 9>&- &
  local pid=$!
  local deadline=$(( $(now) + ${SETPOINT_DOCKER_TIMEOUT:-60} ))
  while (( $(now) < deadline )); do
    dhosts_ping "$name" && { log "docker-hosts: $name engine ready (pid $pid)"; return 0; }
    kill -0 "$pid" 2>/dev/null || { tail -5 "$dir/dockerd.log" >&2; die "the $name engine did not start"; }
    sleep 0.2
  done
  tail -5 "$dir/dockerd.log" >&2
  die "the $name engine did not answer within ${SETPOINT_DOCKER_TIMEOUT:-60}s"
}

dhosts_images() {
  local sock; sock=$(dhosts_sock "$1")
  if DOCKER_HOST="unix://$sock" docker image inspect "$TEST_IMAGE" "$TEST_IMAGE_2" >/dev/null 2>&1; then return 0; fi
  docker_cli save "$TEST_IMAGE" "$TEST_IMAGE_2" | DOCKER_HOST="unix://$sock" docker load -q >/dev/null \
    || die "loading the test images into the $1 engine failed"
  log "docker-hosts: test images loaded into the $1 engine"
}

# A CA, a server certificate for 127.0.0.1/localhost and a client certificate (Docker's file names).
dhosts_tls_certs() {
  local ca=$DHOSTS_RUN/tls-ca server=$DHOSTS_RUN/tls-server client=$DHOSTS_RUN/tls-client
  [[ -s $client/key.pem && -s $server/key.pem ]] && return 0
  mkdir -p "$ca" "$server" "$client"
  chmod 700 "$ca" "$server" "$client"
  local sslq=(openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256)
  "${sslq[@]}" -x509 -days 3650 -subj "/CN=setpoint test docker CA" -keyout "$ca/ca-key.pem" -out "$ca/ca.pem" 2>/dev/null
  "${sslq[@]}" -subj "/CN=127.0.0.1" -keyout "$server/key.pem" -out "$server/req.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' > "$server/ext.cnf"
  openssl x509 -req -days 3650 -in "$server/req.csr" -CA "$ca/ca.pem" -CAkey "$ca/ca-key.pem" -CAcreateserial \
    -extfile "$server/ext.cnf" -out "$server/cert.pem" 2>/dev/null
  "${sslq[@]}" -subj "/CN=setpoint" -keyout "$client/key.pem" -out "$client/req.csr" 2>/dev/null
  printf 'extendedKeyUsage=clientAuth\n' > "$client/ext.cnf"
  openssl x509 -req -days 3650 -in "$client/req.csr" -CA "$ca/ca.pem" -CAkey "$ca/ca-key.pem" -CAcreateserial \
    -extfile "$client/ext.cnf" -out "$client/cert.pem" 2>/dev/null
  cp "$ca/ca.pem" "$server/ca.pem"
  cp "$ca/ca.pem" "$client/ca.pem"
  rm -f "$server/req.csr" "$server/ext.cnf" "$client/req.csr" "$client/ext.cnf"
  chmod 600 "$server/key.pem" "$client/key.pem" "$ca/ca-key.pem"
  log "docker-hosts: TLS CA, server and client certificates made in $DHOSTS_RUN/tls-*"
}

# sshd on loopback: its own host key, key-only login for one user, whose key may only reach the ssh engine.
dhosts_sshd() {
  local dir=$DHOSTS_RUN/sshd client=$DHOSTS_RUN/ssh-client
  mkdir -p "$dir" "$client" /run/sshd
  chmod 700 "$client"
  [[ -s $dir/host_ed25519 ]] || ssh-keygen -q -t ed25519 -N '' -C "setpoint docker-hosts" -f "$dir/host_ed25519"
  [[ -s $client/id_ed25519 ]] || ssh-keygen -q -t ed25519 -N '' -C "setpoint" -f "$client/id_ed25519"
  local docker_bin; docker_bin=$(command -v docker)
  printf 'restrict,command="%s --host unix://%s system dial-stdio" %s\n' \
    "$docker_bin" "$(dhosts_sock ssh)" "$(cat "$client/id_ed25519.pub")" > "$dir/authorized_keys"
  chmod 644 "$dir/authorized_keys"
  printf '[127.0.0.1]:%s %s\n' "$DHOSTS_SSH_PORT" "$(cut -d' ' -f1,2 "$dir/host_ed25519.pub")" > "$client/known_hosts"
  cat > "$dir/sshd_config" <<EOF
# written by dev/services (docker-hosts); loopback only, key-only
ListenAddress 127.0.0.1
Port $DHOSTS_SSH_PORT
HostKey $dir/host_ed25519
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
AllowUsers $DHOSTS_USER
PermitRootLogin no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
UsePAM no
# the runtime directory lives under /tmp (world-writable), which StrictModes refuses
StrictModes no
X11Forwarding no
AllowTcpForwarding no
MaxStartups 100:30:200
MaxSessions 100
EOF
  if pid_alive "$dir/sshd.pid"; then log "docker-hosts: sshd already running (pid $(cat "$dir/sshd.pid"))"; return 0; fi
  /usr/sbin/sshd -t -f "$dir/sshd_config" || die "sshd rejected $dir/sshd_config"
  /usr/sbin/sshd -f "$dir/sshd_config" -E "$dir/sshd.log" 9>&- || die "sshd did not start (see $dir/sshd.log)"
  wait_for "sshd on 127.0.0.1:$DHOSTS_SSH_PORT" 20 dhosts_ssh_ping || die "sshd does not answer (see $dir/sshd.log)"
  log "docker-hosts: sshd on 127.0.0.1:$DHOSTS_SSH_PORT (user $DHOSTS_USER)"
}

dhosts_ssh_ping() {
  local client=$DHOSTS_RUN/ssh-client
  ssh -F none -i "$client/id_ed25519" -o IdentitiesOnly=yes -o BatchMode=yes \
    -o UserKnownHostsFile="$client/known_hosts" -o StrictHostKeyChecking=yes -p "$DHOSTS_SSH_PORT" \
    "$DHOSTS_USER@127.0.0.1" true </dev/null >/dev/null 2>&1
}

dhosts_stop() {
  local sshd_pid=$DHOSTS_RUN/sshd/sshd.pid
  if pid_alive "$sshd_pid"; then
    pkill -TERM -P "$(cat "$sshd_pid")" 2>/dev/null || true  # its sessions (children of this very sshd)
    stop_pid sshd "$sshd_pid" 10
  fi
  local name; for name in tls ssh; do
    pid_alive "$DHOSTS_RUN/$name/dockerd.pid" && stop_pid "docker-hosts $name engine" "$DHOSTS_RUN/$name/dockerd.pid" 30
  done
  return 0
}

dhosts_status() {
  local ssh=stopped tls=stopped sshd=stopped
  dhosts_ping ssh && ssh=running
  dhosts_ping tls && tls=running
  pid_alive "$DHOSTS_RUN/sshd/sshd.pid" && sshd=running
  if [[ $ssh == running && $tls == running && $sshd == running ]]; then
    echo "docker-hosts: running (ssh://$DHOSTS_USER@127.0.0.1:$DHOSTS_SSH_PORT, tcp://127.0.0.1:$DHOSTS_TLS_PORT with TLS)"
    return 0
  fi
  echo "docker-hosts: stopped (ssh engine $ssh, sshd $sshd, tls engine $tls)"; return 1
}

dhosts_env() {
  echo "export SETPOINT_DHOSTS_SSH_HOST=$(printf %q "ssh://$DHOSTS_USER@127.0.0.1:$DHOSTS_SSH_PORT")"
  echo "export SETPOINT_DHOSTS_SSH_KEY=$(printf %q "$DHOSTS_RUN/ssh-client/id_ed25519")"
  echo "export SETPOINT_DHOSTS_SSH_KNOWN_HOSTS=$(printf %q "$DHOSTS_RUN/ssh-client/known_hosts")"
  echo "export SETPOINT_DHOSTS_SSH_SOCK=$(printf %q "unix://$(dhosts_sock ssh)")"
  echo "export SETPOINT_DHOSTS_SSHD_CONFIG=$(printf %q "$DHOSTS_RUN/sshd/sshd_config")"
  echo "export SETPOINT_DHOSTS_TLS_HOST=$(printf %q "tcp://127.0.0.1:$DHOSTS_TLS_PORT")"
  echo "export SETPOINT_DHOSTS_TLS_CERTS=$(printf %q "$DHOSTS_RUN/tls-client")"
  echo "export SETPOINT_DHOSTS_TLS_SOCK=$(printf %q "unix://$(dhosts_sock tls)")"
}
