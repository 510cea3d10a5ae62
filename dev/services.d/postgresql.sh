# PostgreSQL (Debian's postgresql package) for the PostgreSQL state backend and the replica tests:
# its own cluster under $SETPOINT_RUN/postgresql, loopback only, own port, a password in a 0600 file.
# shellcheck shell=bash

PG_PORT=${SETPOINT_PG_PORT:-25432}
PG_RUN=$SETPOINT_RUN/postgresql
PG_DATA=$PG_RUN/data
PG_USER=setpoint
PG_DB=setpoint

pg_bindir() {
  local d; d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
  [[ -n $d && -x $d/initdb ]] || return 1
  echo "$d"
}

postgresql_install() {
  pg_bindir >/dev/null || apt_install postgresql
  pg_bindir >/dev/null || die "postgresql: no /usr/lib/postgresql/*/bin/initdb after apt-get install postgresql"
  # the server refuses to run as root: the Debian package creates the 'postgres' system user
  id postgres >/dev/null 2>&1 || die "postgresql: the 'postgres' system user is missing (reinstall Debian's postgresql)"
}

# as_postgres CMD...: the server and initdb refuse root
as_postgres() {
  if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

postgresql_ready() { "$(pg_bindir)/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" 2>/dev/null; }

postgresql_start() {
  local bin; bin=$(pg_bindir)
  mkdir -p "$PG_RUN"
  if [[ ! -s $PG_RUN/password ]]; then
    (umask 077; head -c 24 /dev/urandom | base64 | tr -d '/+=' > "$PG_RUN/password")
  fi
  if [[ ! -f $PG_DATA/PG_VERSION ]]; then
    log "postgresql: initdb $PG_DATA"
    rm -rf "$PG_DATA"; mkdir -p "$PG_DATA"
    [[ $(id -u) == 0 ]] && chown postgres: "$PG_DATA" "$PG_RUN"
    local pwfile; pwfile=$(mktemp "$PG_RUN/.pw.XXXXXX")
    cp "$PG_RUN/password" "$pwfile"; [[ $(id -u) == 0 ]] && chown postgres: "$pwfile"
    as_postgres "$bin/initdb" -D "$PG_DATA" -U "$PG_USER" --pwfile="$pwfile" -A scram-sha-256 -E UTF8 \
      --no-instructions >"$PG_RUN/initdb.log" 2>&1 || { rm -f "$pwfile"; die "postgresql: initdb failed (see $PG_RUN/initdb.log)"; }
    rm -f "$pwfile"
  fi
  if postgresql_ready; then log "postgresql: already running on 127.0.0.1:$PG_PORT"; return 0; fi
  [[ $(id -u) == 0 ]] && chown postgres: "$PG_RUN"
  # loopback only, own port, socket in our run dir; fsync stays on (the store tests rely on durability)
  as_postgres "$bin/pg_ctl" -D "$PG_DATA" -l "$PG_RUN/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_RUN -c max_connections=200" start 9>&- >/dev/null \
    || die "postgresql: pg_ctl start failed (see $PG_RUN/server.log)"
  wait_for "postgresql on 127.0.0.1:$PG_PORT" 60 postgresql_ready || die "postgresql did not become ready"
  if ! PGPASSFILE=/dev/null PGPASSWORD=$(cat "$PG_RUN/password") "$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" \
      -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'" | grep -q 1; then
    PGPASSFILE=/dev/null PGPASSWORD=$(cat "$PG_RUN/password") "$bin/createdb" -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" "$PG_DB" \
      || die "postgresql: createdb $PG_DB failed"
  fi
  log "postgresql: ready on 127.0.0.1:$PG_PORT (user $PG_USER, password file $PG_RUN/password)"
}

postgresql_stop() {
  local bin; bin=$(pg_bindir) || return 0
  [[ -f $PG_DATA/postmaster.pid ]] || return 0
  as_postgres "$bin/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null 2>&1 || true
}

postgresql_status() {
  if pg_bindir >/dev/null && postgresql_ready; then
    echo "postgresql: running (127.0.0.1:$PG_PORT, database $PG_DB)"; return 0
  fi
  echo "postgresql: stopped"; return 1
}

postgresql_env() {
  echo "export SETPOINT_PG_URL=$(printf %q "postgresql://$PG_USER@127.0.0.1:$PG_PORT/$PG_DB")"
  echo "export SETPOINT_PG_PASSWORD_FILE=$(printf %q "$PG_RUN/password")"
}
