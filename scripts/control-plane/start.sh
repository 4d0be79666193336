#!/usr/bin/env bash
# Starts etcd and kube-apiserver (built by build.sh, which this runs first) on loopback, in the
# foreground, until interrupted; then stops both and removes the temporary dir.
#
#   scripts/control-plane/start.sh [K8S_VERSION]       # default 1.37.2
#
# Once /readyz answers 200 it writes $dir/ready and prints, on stdout, shell lines to use it:
#   export KUBECONFIG=$dir/kubeconfig        (user vigil-admin, group system:masters)
#   VIGIL_CP_DIR=... VIGIL_CP_URL=https://127.0.0.1:PORT VIGIL_CP_ADMIN_TOKEN=... VIGIL_CP_USER_TOKEN=...
# The dir also holds tokens.csv, audit.log (level Metadata), certs/apiserver.crt (the self-signed
# serving certificate, also the kubeconfig's CA), etcd.log and kube-apiserver.log.
# Environment: VIGIL_CP_DIR (default: a new mktemp dir, removed at exit; a given dir is kept),
# VIGIL_CP_PORT (kube-apiserver, default a free port), VIGIL_CP_ETCD_PORT (default a free port; the
# peer port is the next one). Everything listens on 127.0.0.1 only. The exact flags are those listed
# at the top of build.sh.
set -euo pipefail

K8S_VERSION="${1:-1.37.2}"
here="$(cd "$(dirname "$0")" && pwd)"
bin="$("$here/build.sh" "$K8S_VERSION")"

log() { echo "control-plane: $*" >&2; }
die() { echo "control-plane: ERROR: $*" >&2; exit 1; }

command -v openssl >/dev/null 2>&1 || die "openssl is needed for the service-account key"
command -v curl >/dev/null 2>&1 || die "curl is needed to wait for /readyz"

keep_dir=1
if [ -z "${VIGIL_CP_DIR:-}" ]; then
  VIGIL_CP_DIR="$(mktemp -d "${TMPDIR:-/tmp}/vigil-control-plane.XXXXXX")"
  keep_dir=0
fi
d="$VIGIL_CP_DIR"
mkdir -p "$d/certs"

etcd_pid=""
api_pid=""
# stop PID: SIGTERM, up to 10 s to exit, then SIGKILL.
stop() {
  local i
  kill "$1" 2>/dev/null || return 0
  for i in $(seq 1 100); do
    kill -0 "$1" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
# kube-apiserver first: without etcd its graceful shutdown hangs (it deletes its lease on exit).
cleanup() {
  trap - EXIT INT TERM
  [ -z "$api_pid" ] || stop "$api_pid"
  [ -z "$etcd_pid" ] || stop "$etcd_pid"
  [ "$keep_dir" = 1 ] || rm -rf "$d"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A port on 127.0.0.1 that nothing listens on (two consecutive ones with "pair").
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
  local p i
  for i in $(seq 1 200); do
    p=$((20000 + RANDOM % 40000))
    if port_free "$p" && { [ "${1:-}" != pair ] || port_free $((p + 1)); }; then
      echo "$p"
      return
    fi
  done
  die "no free loopback port found"
}
etcd_port="${VIGIL_CP_ETCD_PORT:-$(free_port pair)}"
peer_port=$((etcd_port + 1))
api_port="${VIGIL_CP_PORT:-$(free_port)}"

openssl genrsa -out "$d/sa.key" 2048 2>/dev/null
openssl rsa -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
admin_token="$(openssl rand -hex 24)"
user_token="$(openssl rand -hex 24)"
cat >"$d/tokens.csv" <<EOF
$admin_token,vigil-admin,vigil-admin,"system:masters"
$user_token,vigil-user,vigil-user,
EOF
cat >"$d/audit-policy.yaml" <<'EOF'
apiVersion: audit.k8s.io/v1
kind: Policy
rules:
- level: Metadata
EOF

start=$(date +%s%N)
"$bin/etcd" --name=vigil --data-dir="$d/etcd" --unsafe-no-fsync --log-level=warn \
  --listen-client-urls="http://127.0.0.1:$etcd_port" --advertise-client-urls="http://127.0.0.1:$etcd_port" \
  --listen-peer-urls="http://127.0.0.1:$peer_port" --initial-advertise-peer-urls="http://127.0.0.1:$peer_port" \
  --initial-cluster="vigil=http://127.0.0.1:$peer_port" >"$d/etcd.log" 2>&1 &
etcd_pid=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$etcd_port/health" >/dev/null 2>&1 && break
  kill -0 "$etcd_pid" 2>/dev/null || { cat "$d/etcd.log" >&2; die "etcd exited"; }
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$etcd_port/health" >/dev/null 2>&1 || die "etcd not healthy after 10 s; see $d/etcd.log"
log "etcd ready on 127.0.0.1:$etcd_port in $((($(date +%s%N) - start) / 1000000)) ms"

start=$(date +%s%N)
"$bin/kube-apiserver" --etcd-servers="http://127.0.0.1:$etcd_port" \
  --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$api_port" --cert-dir="$d/certs" \
  --endpoint-reconciler-type=none \
  --service-cluster-ip-range=127.0.100.0/24 --allow-privileged=true \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$d/sa.pub" --service-account-signing-key-file="$d/sa.key" \
  --authorization-mode=RBAC --token-auth-file="$d/tokens.csv" \
  --audit-policy-file="$d/audit-policy.yaml" --audit-log-path="$d/audit.log" \
  >"$d/kube-apiserver.log" 2>&1 &
api_pid=$!
url="https://127.0.0.1:$api_port"
ready=0
for _ in $(seq 1 600); do
  if [ "$(curl -sk -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $admin_token" "$url/readyz")" = 200 ]; then
    ready=1
    break
  fi
  kill -0 "$api_pid" 2>/dev/null || { tail -n 30 "$d/kube-apiserver.log" >&2; die "kube-apiserver exited"; }
  sleep 0.1
done
[ "$ready" = 1 ] || die "kube-apiserver not ready after 60 s; see $d/kube-apiserver.log"
log "kube-apiserver ready at $url in $((($(date +%s%N) - start) / 1000000)) ms"

cat >"$d/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: vigil
  cluster:
    server: $url
    certificate-authority: $d/certs/apiserver.crt
users:
- name: vigil-admin
  user:
    token: $admin_token
- name: vigil-user
  user:
    token: $user_token
contexts:
- name: vigil
  context: {cluster: vigil, user: vigil-admin}
- name: vigil-user
  context: {cluster: vigil, user: vigil-user}
current-context: vigil
EOF
cat <<EOF | tee "$d/env"
export KUBECONFIG=$d/kubeconfig
export VIGIL_CP_DIR=$d VIGIL_CP_URL=$url VIGIL_CP_ADMIN_TOKEN=$admin_token VIGIL_CP_USER_TOKEN=$user_token
EOF
touch "$d/ready"
log "running (etcd pid $etcd_pid, kube-apiserver pid $api_pid); Ctrl-C or SIGTERM stops both"
wait -n "$etcd_pid" "$api_pid" || true
die "a control-plane process exited; see $d/etcd.log and $d/kube-apiserver.log"
