# A real Kubernetes control plane: etcd + kube-apiserver + kube-controller-manager, on 127.0.0.1 only.
# shellcheck shell=bash

K8S_RUN=$SETPOINT_RUN/kubernetes
K8S_BIN_DIR=$OPT/k8s-$K8S_VERSION/bin
ETCD_BIN_DIR=$OPT/etcd-$ETCD_VERSION/bin
KCM_CONTROLLERS=${SETPOINT_KCM_CONTROLLERS:-namespace-controller,garbage-collector-controller,serviceaccount-controller,deployment-controller,replicaset-controller}

k8s_built() { [[ -f $OPT/k8s-$K8S_VERSION/.done && -f $OPT/etcd-$ETCD_VERSION/.done ]]; }

k8s_install() {
  apt_install openssl curl
  if ! k8s_built; then
    mkdir -p "$LOGS"
    local logf=$LOGS/build-k8s-$K8S_VERSION-etcd-$ETCD_VERSION.log
    log "kubernetes: building kube-apiserver/kube-controller-manager $K8S_VERSION and etcd $ETCD_VERSION from the Go module proxy"
    log "kubernetes: this takes a long time on a cold machine (see docs/development.md); progress in $logf"
    go_env
    # A heartbeat while Go compiles (~15-30 min cold, silent otherwise): elapsed time and packages built so far.
    local t0 beat; t0=$(now)
    ( while sleep 60; do
        log "kubernetes: still building ($(( $(now) - t0 ))s, $(grep -c '^[a-z0-9.-]*/' "$logf" 2>/dev/null || echo 0) packages compiled; log $logf)"
      done ) &
    beat=$!
    if ! with_lock k8s-build env K8S_VERSION="$K8S_VERSION" ETCD_VERSION="$ETCD_VERSION" \
         "$SERVICES_D/build-k8s.sh" all >>"$logf" 2>&1; then
      kill "$beat" 2>/dev/null
      tail -30 "$logf" >&2
      die "building the Kubernetes control plane failed; full log: $logf (see docs/development.md, 'When a build fails')"
    fi
    kill "$beat" 2>/dev/null
    grep -E 'built in|cached in' "$logf" | tail -2 | sed 's/^/[services] kubernetes: /'
  fi
  link_bin "$K8S_BIN_DIR/kube-apiserver"
  link_bin "$K8S_BIN_DIR/kube-controller-manager"
  link_bin "$ETCD_BIN_DIR/etcd"
}

k8s_ready() { curl -fsS --max-time 2 --cacert "$K8S_RUN/pki/ca.crt" "https://127.0.0.1:$K8S_API_PORT/readyz" >/dev/null 2>&1; }

k8s_pki() {
  local P=$K8S_RUN/pki
  [[ -s $P/admin.crt && -s $P/tokens.csv && -s $P/sa.pub ]] && return 0
  mkdir -p "$P"; chmod 700 "$P"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=setpoint-test-ca" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" -keyout "$P/ca.key" -out "$P/ca.crt" 2>/dev/null
  printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc" \
    "extendedKeyUsage=serverAuth" "keyUsage=critical,digitalSignature,keyEncipherment" \
    "subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid,issuer" > "$P/serving.ext"
  printf '%s\n' "extendedKeyUsage=clientAuth" "keyUsage=critical,digitalSignature,keyEncipherment" \
    "subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid,issuer" > "$P/client.ext"
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" -keyout "$P/apiserver.key" -out "$P/apiserver.csr" 2>/dev/null
  openssl x509 -req -in "$P/apiserver.csr" -CA "$P/ca.crt" -CAkey "$P/ca.key" -CAcreateserial -days 3650 \
    -extfile "$P/serving.ext" -out "$P/apiserver.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=setpoint-admin" -keyout "$P/admin.key" -out "$P/admin.csr" 2>/dev/null
  openssl x509 -req -in "$P/admin.csr" -CA "$P/ca.crt" -CAkey "$P/ca.key" -CAcreateserial -days 3650 \
    -extfile "$P/client.ext" -out "$P/admin.crt" 2>/dev/null
  openssl genrsa -out "$P/sa.key" 2048 2>/dev/null
  openssl rsa -in "$P/sa.key" -pubout -out "$P/sa.pub" 2>/dev/null
  # static tokens: token,user,uid,"groups"
  echo "$(openssl rand -hex 16),setpoint-admin-token,uid-setpoint-admin-token,\"system:masters\"" > "$P/tokens.csv"
  chmod 600 "$P"/*.key "$P/tokens.csv"
  [[ -s $P/admin.crt && -s $P/apiserver.crt && -s $P/sa.pub ]] || die "kubernetes: generating certificates with openssl failed"
}

k8s_kubeconfig() {
  local P=$K8S_RUN/pki token
  token=$(cut -d, -f1 "$P/tokens.csv")
  b64() { base64 -w0 "$1"; }
  umask 077
  cat > "$K8S_RUN/kubeconfig.tmp" <<KCFG
apiVersion: v1
kind: Config
clusters:
- name: setpoint-test
  cluster:
    server: https://127.0.0.1:$K8S_API_PORT
    certificate-authority-data: $(b64 "$P/ca.crt")
users:
- name: setpoint-admin
  user:
    client-certificate-data: $(b64 "$P/admin.crt")
    client-key-data: $(b64 "$P/admin.key")
- name: setpoint-admin-token
  user:
    token: $token
contexts:
- name: setpoint-test
  context: {cluster: setpoint-test, user: setpoint-admin}
- name: setpoint-test-token
  context: {cluster: setpoint-test, user: setpoint-admin-token}
current-context: setpoint-test
KCFG
  mv "$K8S_RUN/kubeconfig.tmp" "$K8S_RUN/kubeconfig"
}

k8s_start() {
  mkdir -p "$K8S_RUN/logs"
  if pid_alive "$K8S_RUN/kube-apiserver.pid" && k8s_ready; then
    log "kubernetes: already running (kube-apiserver pid $(cat "$K8S_RUN/kube-apiserver.pid"), https://127.0.0.1:$K8S_API_PORT)"
    if ! pid_alive "$K8S_RUN/kube-controller-manager.pid"; then k8s_start_kcm; fi
    return 0
  fi
  # partial or stale state: stop whatever is left and start clean (fresh etcd data)
  k8s_stop_processes
  k8s_pki
  rm -rf "$K8S_RUN/etcd"; install -d -m 700 "$K8S_RUN/etcd"
  local P=$K8S_RUN/pki
  log "kubernetes: starting etcd $ETCD_VERSION on 127.0.0.1:$ETCD_PORT"
  setsid "$ETCD_BIN_DIR/etcd" --name setpoint-test --data-dir "$K8S_RUN/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "setpoint-test=http://127.0.0.1:$ETCD_PEER_PORT" \
    --unsafe-no-fsync --log-level warn </dev/null >"$K8S_RUN/logs/etcd.log" 2>&1 9>&- &
  echo $! > "$K8S_RUN/etcd.pid"
  wait_for "etcd /health" 30 curl -fsS --max-time 2 "http://127.0.0.1:$ETCD_PORT/health" \
    || { tail -20 "$K8S_RUN/logs/etcd.log" >&2; die "etcd did not become healthy (log: $K8S_RUN/logs/etcd.log)"; }

  log "kubernetes: starting kube-apiserver $K8S_VERSION on https://127.0.0.1:$K8S_API_PORT"
  setsid "$K8S_BIN_DIR/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$K8S_API_PORT" \
    --endpoint-reconciler-type=none \
    --tls-cert-file="$P/apiserver.crt" --tls-private-key-file="$P/apiserver.key" \
    --client-ca-file="$P/ca.crt" --token-auth-file="$P/tokens.csv" \
    --authorization-mode=RBAC \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$P/sa.pub" --service-account-signing-key-file="$P/sa.key" \
    --service-cluster-ip-range=10.0.0.0/24 \
    --disable-admission-plugins=ServiceAccount \
    --allow-privileged=true --profiling=false \
    </dev/null >"$K8S_RUN/logs/kube-apiserver.log" 2>&1 9>&- &
  echo $! > "$K8S_RUN/kube-apiserver.pid"
  local deadline=$(( $(now) + ${SETPOINT_K8S_TIMEOUT:-180} ))
  until k8s_ready; do
    pid_alive "$K8S_RUN/kube-apiserver.pid" || { tail -30 "$K8S_RUN/logs/kube-apiserver.log" >&2; die "kube-apiserver exited (log: $K8S_RUN/logs/kube-apiserver.log)"; }
    (( $(now) < deadline )) || { tail -30 "$K8S_RUN/logs/kube-apiserver.log" >&2; die "kube-apiserver not ready on /readyz (log: $K8S_RUN/logs/kube-apiserver.log)"; }
    sleep 0.3
  done
  k8s_kubeconfig
  log "kubernetes: kube-apiserver ready; kubeconfig $K8S_RUN/kubeconfig"
  k8s_start_kcm
}

k8s_start_kcm() {
  [[ ${SETPOINT_K8S_KCM:-1} == 1 ]] || return 0
  install -d -m 700 "$K8S_RUN/kcm"
  setsid "$K8S_BIN_DIR/kube-controller-manager" \
    --kubeconfig="$K8S_RUN/kubeconfig" --leader-elect=false \
    --controllers="$KCM_CONTROLLERS" \
    --bind-address=127.0.0.1 --secure-port="$KCM_PORT" --cert-dir="$K8S_RUN/kcm" \
    </dev/null >"$K8S_RUN/logs/kube-controller-manager.log" 2>&1 9>&- &
  echo $! > "$K8S_RUN/kube-controller-manager.pid"
  wait_for "kube-controller-manager /healthz" 60 curl -fsSk --max-time 2 "https://127.0.0.1:$KCM_PORT/healthz" \
    || { tail -20 "$K8S_RUN/logs/kube-controller-manager.log" >&2; die "kube-controller-manager not healthy (log: $K8S_RUN/logs/kube-controller-manager.log)"; }
  log "kubernetes: kube-controller-manager ready ($KCM_CONTROLLERS)"
}

k8s_stop_processes() {
  local c
  for c in kube-controller-manager kube-apiserver etcd; do   # reverse start order, by recorded PID only
    stop_pid "$c" "$K8S_RUN/$c.pid" 20
  done
}

k8s_stop() {
  k8s_stop_processes
  rm -rf "$K8S_RUN/etcd"
}

k8s_status() {
  if pid_alive "$K8S_RUN/kube-apiserver.pid" && k8s_ready; then
    echo "kubernetes: running (v$K8S_VERSION, https://127.0.0.1:$K8S_API_PORT, KUBECONFIG=$K8S_RUN/kubeconfig; kcm $(pid_alive "$K8S_RUN/kube-controller-manager.pid" && echo running || echo stopped))"
    return 0
  fi
  echo "kubernetes: stopped$(k8s_built && echo " (binaries cached)" || echo " (not built yet)")"; return 1
}

k8s_env() {
  echo "export KUBECONFIG=$(printf %q "$K8S_RUN/kubeconfig")"
  echo "export SETPOINT_KUBECONFIG=$(printf %q "$K8S_RUN/kubeconfig")"
  echo "export SETPOINT_K8S_VERSION=$K8S_VERSION"
}
