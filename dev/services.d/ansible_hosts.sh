# Three SSH hosts for the Ansible target's tests: containers on the shared Docker engine, from a small
# Debian bookworm image built here (mmdebstrap from the Debian mirror apt already uses, then `docker
# import`; no registry pull). Each host publishes its sshd on 127.0.0.1 only; login is by key only
# (users root and setpoint, the latter with passwordless sudo for `become`), and every host has its own
# host key, listed in a known_hosts file, so the tests run with strict host key checking.
# shellcheck shell=bash

# The image's content is fixed by this list and the hooks below; bump the version to rebuild it.
ANSIBLE_HOST_IMAGE_VERSION=1
ANSIBLE_HOST_IMAGE=setpoint-test/ansible-host:bookworm-$ANSIBLE_HOST_IMAGE_VERSION
ANSIBLE_HOST_PACKAGES=python3,python3-apt,openssh-server,sudo
ANSIBLE_HOSTS_COUNT=3
ANSIBLE_HOSTS_PORT_BASE=${SETPOINT_ANSIBLE_SSH_PORT_BASE:-22300}
ANSIBLE_HOSTS_RUN=$SETPOINT_RUN/ansible-hosts
ANSIBLE_HOSTS_PREFIX=setpoint-ansible-host
# Bump when `docker run` below changes, so running hosts are recreated.
ANSIBLE_HOSTS_SPEC=$ANSIBLE_HOST_IMAGE/run-2

ansible_host_name() { echo "$ANSIBLE_HOSTS_PREFIX-$1"; }
ansible_host_port() { echo $(( ANSIBLE_HOSTS_PORT_BASE + $1 )); }

# The Debian mirror apt uses here (deb822 or one-line sources), else deb.debian.org.
debian_mirror() {
  local m
  m=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -1)
  [[ -n $m ]] || m=$(grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | awk '{print $2}' | grep -v security | head -1)
  echo "${m:-http://deb.debian.org/debian}"
}

ansible_hosts_install() {
  apt_install openssh-client
  docker_ping || die "ansible-hosts needs the Docker engine: dev/services up docker"
  with_lock ansible-host-image ansible_host_image_build
}

ansible_host_image_build() {
  docker_cli image inspect "$ANSIBLE_HOST_IMAGE" >/dev/null 2>&1 && return 0
  local tarball=$OPT/ansible-host-bookworm-$ANSIBLE_HOST_IMAGE_VERSION.tar
  if [[ ! -s $tarball ]]; then
    apt_install mmdebstrap
    mkdir -p "$OPT" "$LOGS"
    local logf=$LOGS/build-ansible-host-image.log mirror; mirror=$(debian_mirror)
    log "ansible-hosts: building a Debian bookworm root filesystem with $ANSIBLE_HOST_PACKAGES from $mirror (log: $logf)"
    # Hooks run on the finished tree ($1): no baked-in host keys (each container gets its own),
    # key-only sshd, a `setpoint` user with passwordless sudo, and accounts that sshd does not treat
    # as locked ('*' instead of '!': with UsePAM no, a '!' password refuses even key logins).
    # The output name ends in .tar: mmdebstrap picks its output format (tarball) from it.
    nice -n 10 mmdebstrap --variant=minbase --include="$ANSIBLE_HOST_PACKAGES" \
      --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
      --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
      --customize-hook='rm -f "$1"/etc/ssh/ssh_host_*' \
      --customize-hook='chroot "$1" useradd --create-home --shell /bin/bash setpoint' \
      --customize-hook='chroot "$1" usermod -p "*" setpoint && chroot "$1" usermod -p "*" root' \
      --customize-hook='echo "setpoint ALL=(ALL) NOPASSWD:ALL" > "$1/etc/sudoers.d/setpoint" && chmod 440 "$1/etc/sudoers.d/setpoint"' \
      --customize-hook='printf "%s\n" "HostKey /etc/ssh/setpoint/ssh_host_ed25519_key" "AuthorizedKeysFile /etc/ssh/setpoint/authorized_keys" "PasswordAuthentication no" "KbdInteractiveAuthentication no" "PermitRootLogin prohibit-password" "UsePAM no" "UseDNS no" > "$1/etc/ssh/sshd_config.d/setpoint.conf"' \
      --customize-hook='mkdir -p "$1/run/sshd" "$1/etc/ssh/setpoint"' \
      bookworm "${tarball%.tar}.tmp.tar" "$mirror" >"$logf" 2>&1 \
      || { tail -30 "$logf" >&2; rm -f "${tarball%.tar}.tmp.tar"; die "mmdebstrap of the ansible-hosts image failed (log: $logf)"; }
    mv "${tarball%.tar}.tmp.tar" "$tarball"
  fi
  docker_cli import -m "setpoint ansible test host (Debian bookworm, $ANSIBLE_HOST_PACKAGES)" \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c "LABEL org.setpoint.test-image=ansible-host-$ANSIBLE_HOST_IMAGE_VERSION" \
    "$tarball" "$ANSIBLE_HOST_IMAGE" >/dev/null || die "docker import of $ANSIBLE_HOST_IMAGE failed"
  log "ansible-hosts: built $ANSIBLE_HOST_IMAGE"
}

# Keys: one client key (tests and the plugin use it), one host key per host, and a known_hosts
# that lists exactly those host keys under [127.0.0.1]:PORT.
ansible_hosts_keys() {
  local d=$ANSIBLE_HOSTS_RUN i port
  mkdir -p "$d"; chmod 700 "$d"
  [[ -s $d/id_ed25519 ]] || ssh-keygen -q -t ed25519 -N '' -C setpoint-ansible-tests -f "$d/id_ed25519"
  : > "$d/known_hosts.tmp"
  for ((i = 1; i <= ANSIBLE_HOSTS_COUNT; i++)); do
    mkdir -p "$d/host-$i"
    [[ -s $d/host-$i/ssh_host_ed25519_key ]] \
      || ssh-keygen -q -t ed25519 -N '' -C "$(ansible_host_name "$i")" -f "$d/host-$i/ssh_host_ed25519_key"
    cp "$d/id_ed25519.pub" "$d/host-$i/authorized_keys"
    chmod 600 "$d/host-$i/ssh_host_ed25519_key"; chmod 644 "$d/host-$i/authorized_keys"
    port=$(ansible_host_port "$i")
    echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$d/host-$i/ssh_host_ed25519_key.pub")" >> "$d/known_hosts.tmp"
  done
  mv "$d/known_hosts.tmp" "$d/known_hosts"
}

ansible_host_ssh() {
  local i=$1; shift
  ssh -o BatchMode=yes -o ConnectTimeout=2 -o StrictHostKeyChecking=yes \
    -o UserKnownHostsFile="$ANSIBLE_HOSTS_RUN/known_hosts" -o IdentitiesOnly=yes -i "$ANSIBLE_HOSTS_RUN/id_ed25519" \
    -p "$(ansible_host_port "$i")" setpoint@127.0.0.1 "$@"
}

ansible_hosts_start() {
  docker_ping || die "ansible-hosts needs the Docker engine: dev/services up docker"
  ansible_hosts_keys
  local i name port state
  for ((i = 1; i <= ANSIBLE_HOSTS_COUNT; i++)); do
    name=$(ansible_host_name "$i"); port=$(ansible_host_port "$i")
    state=$(docker_cli inspect -f '{{index .Config.Labels "org.setpoint.ansible-hosts-spec"}} {{.State.Running}}' "$name" 2>/dev/null || true)
    if [[ $state == "$ANSIBLE_HOSTS_SPEC true" ]]; then continue; fi
    if [[ $state == "$ANSIBLE_HOSTS_SPEC false" ]]; then docker_cli start "$name" >/dev/null; continue; fi
    [[ -z $state ]] || docker_cli rm -f "$name" >/dev/null
    # published on loopback only; the host key and authorized_keys are mounted read-only
    docker_cli run -d --name "$name" --hostname "$name" --label org.setpoint.service=ansible-hosts \
      --label "org.setpoint.ansible-hosts-spec=$ANSIBLE_HOSTS_SPEC" \
      -p "127.0.0.1:$port:22" \
      -v "$ANSIBLE_HOSTS_RUN/host-$i:/etc/ssh/setpoint:ro" \
      "$ANSIBLE_HOST_IMAGE" /bin/sh -c 'mkdir -p /run/sshd && exec /usr/sbin/sshd -D -e' >/dev/null \
      || die "starting $name failed"
  done
  for ((i = 1; i <= ANSIBLE_HOSTS_COUNT; i++)); do
    wait_for "ssh to $(ansible_host_name "$i")" 30 ansible_host_ssh "$i" true \
      || { docker_cli logs --tail 20 "$(ansible_host_name "$i")" >&2 || true; die "$(ansible_host_name "$i") does not accept SSH"; }
  done
  log "ansible-hosts: $ANSIBLE_HOSTS_COUNT hosts ready on 127.0.0.1:$(ansible_host_port 1)-$(ansible_host_port "$ANSIBLE_HOSTS_COUNT")"
}

ansible_hosts_stop() {
  local i
  for ((i = 1; i <= ANSIBLE_HOSTS_COUNT; i++)); do
    docker_ping && docker_cli rm -f "$(ansible_host_name "$i")" >/dev/null 2>&1 || true
  done
  log "ansible-hosts: removed"
}

ansible_hosts_status() {
  local i up=0
  if docker_ping; then
    for ((i = 1; i <= ANSIBLE_HOSTS_COUNT; i++)); do
      [[ $(docker_cli inspect -f '{{.State.Running}}' "$(ansible_host_name "$i")" 2>/dev/null) == true ]] && up=$((up + 1))
    done
  fi
  if (( up == ANSIBLE_HOSTS_COUNT )); then
    echo "ansible-hosts: running ($up hosts on 127.0.0.1:$(ansible_host_port 1)-$(ansible_host_port "$ANSIBLE_HOSTS_COUNT"))"; return 0
  fi
  echo "ansible-hosts: stopped ($up of $ANSIBLE_HOSTS_COUNT hosts running)"; return 1
}

ansible_hosts_env() {
  local i hosts=() names=()
  for ((i = 1; i <= ANSIBLE_HOSTS_COUNT; i++)); do
    hosts+=("127.0.0.1:$(ansible_host_port "$i")"); names+=("$(ansible_host_name "$i")")
  done
  echo "export SETPOINT_ANSIBLE_HOSTS=$(IFS=,; printf %q "${hosts[*]}")"
  echo "export SETPOINT_ANSIBLE_CONTAINERS=$(IFS=,; printf %q "${names[*]}")"
  echo "export SETPOINT_ANSIBLE_SSH_KEY=$(printf %q "$ANSIBLE_HOSTS_RUN/id_ed25519")"
  echo "export SETPOINT_ANSIBLE_KNOWN_HOSTS=$(printf %q "$ANSIBLE_HOSTS_RUN/known_hosts")"
  echo "export SETPOINT_ANSIBLE_USER=setpoint"
}
