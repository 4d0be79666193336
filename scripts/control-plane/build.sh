#!/usr/bin/env bash
# Builds a real kube-apiserver and etcd from their public Go modules, for tests that need a real
# Kubernetes API server on loopback (no kubelet, no scheduler, no controller-manager).
#
#   scripts/control-plane/build.sh [K8S_VERSION]      # default 1.37.2; prints the bin dir on stdout
#
# Binaries go to ${VIGIL_CACHE:-$HOME/.cache/vigil}/control-plane/v$K8S_VERSION/bin/{kube-apiserver,etcd},
# outside the clone, so a fresh clone on the same machine does not rebuild them; Go's own module and
# build caches (GOMODCACHE, GOCACHE) are left where Go puts them (under $HOME). A stamp file in bin/
# makes a second run a no-op that exits 0 at once. Progress goes to stderr.
#
# How: k8s.io/kubernetes cannot be built as a dependency directly (its go.mod requires every staging
# module k8s.io/X at v0.0.0 and replaces it with ./staging/src/k8s.io/X, and a dependency's replaces
# are ignored). So the small module in apiserver/ (main = app.NewAPIServerCommand()) gets a go.mod,
# generated here into the cache, that requires k8s.io/kubernetes v$K8S_VERSION and repeats each of those
# replaces as k8s.io/X => k8s.io/X v0.<minor>.<patch>, read from k8s.io/kubernetes's own go.mod. etcd is
# the module in etcd/ (main = etcdmain.Main), at the go.etcd.io/etcd/server/v3 version equal to the
# go.etcd.io/etcd/client/v3 version that k8s.io/kubernetes requires. Both are static (CGO_ENABLED=0),
# -trimpath, -ldflags '-s -w'; kube-apiserver gets its version stamped (/version says v$K8S_VERSION,
# which helm's kubeVersion checks read). If a module needs a newer Go than the installed one, the
# build sets GOTOOLCHAIN=${VIGIL_GO_TOOLCHAIN:-go1.27.3} (the go command fetches it from the module proxy).
#
# Starting them on loopback (start.sh in this directory does exactly this; D is a temporary dir):
#   openssl genrsa -out D/sa.key 2048 && openssl rsa -in D/sa.key -pubout -out D/sa.pub
#   D/tokens.csv, one user a line, token,user,uid,"group1,group2":
#     <admin-token>,vigil-admin,vigil-admin,"system:masters"
#     <user-token>,vigil-user,vigil-user,
#   D/audit-policy.yaml:
#     apiVersion: audit.k8s.io/v1
#     kind: Policy
#     rules:
#     - level: Metadata
#   etcd --name=vigil --data-dir=D/etcd --unsafe-no-fsync --log-level=warn \
#     --listen-client-urls=http://127.0.0.1:EC --advertise-client-urls=http://127.0.0.1:EC \
#     --listen-peer-urls=http://127.0.0.1:EP --initial-advertise-peer-urls=http://127.0.0.1:EP \
#     --initial-cluster=vigil=http://127.0.0.1:EP
#   kube-apiserver --etcd-servers=http://127.0.0.1:EC \
#     --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port=AP --cert-dir=D/certs \
#     --endpoint-reconciler-type=none \
#     --service-cluster-ip-range=127.0.100.0/24 --allow-privileged=true \
#     --service-account-issuer=https://kubernetes.default.svc.cluster.local \
#     --service-account-key-file=D/sa.pub --service-account-signing-key-file=D/sa.key \
#     --authorization-mode=RBAC --token-auth-file=D/tokens.csv \
#     --audit-policy-file=D/audit-policy.yaml --audit-log-path=D/audit.log
#   ready when GET https://127.0.0.1:AP/readyz with "Authorization: Bearer <admin-token>" answers 200;
#   the serving certificate is self-signed into D/certs/apiserver.crt (use it as the CA, or skip verify).
#   --advertise-address=127.0.0.1 keeps the host's own address out of it; --endpoint-reconciler-type=none
#   because Endpoints refuse loopback addresses (the `kubernetes` Service then has no endpoints, which
#   nothing here needs). No controller-manager: create ServiceAccount `default` in a namespace before
#   creating pods there.
set -euo pipefail

K8S_VERSION="${1:-1.37.2}"
K8S_VERSION="${K8S_VERSION#v}"
# Bump when the way the binaries are built changes: older stamps then make the next run rebuild.
RECIPE=1

here="$(cd "$(dirname "$0")" && pwd)"
cache_root="${VIGIL_CACHE:-$HOME/.cache/vigil}/control-plane"
top="$cache_root/v$K8S_VERSION"
bin="$top/bin"
stamp="$bin/.stamp"
want="vigil control-plane recipe=$RECIPE kubernetes=v$K8S_VERSION"

log() { echo "control-plane: $*" >&2; }
die() { echo "control-plane: ERROR: $*" >&2; exit 1; }

is_built() {
  [ -x "$bin/kube-apiserver" ] && [ -x "$bin/etcd" ] && [ -f "$stamp" ] &&
    [ "$(head -n1 "$stamp")" = "$want" ]
}

if is_built; then
  echo "$bin"
  exit 0
fi

case "$K8S_VERSION" in
  1.[0-9]*.[0-9]*) ;;
  *) die "K8S_VERSION must look like 1.37.2, got '$K8S_VERSION'" ;;
esac

mkdir -p "$top"
# One build per version at a time: a second caller waits, then finds the stamp.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$top/.lock"
  if ! flock -n 9; then
    log "another build of v$K8S_VERSION is running; waiting for it"
    flock 9
  fi
  if is_built; then
    echo "$bin"
    exit 0
  fi
fi

command -v go >/dev/null 2>&1 ||
  die "no 'go' command on PATH; install Go (>= the version k8s.io/kubernetes v$K8S_VERSION's go.mod names) and retry"

export CGO_ENABLED=0 GOWORK=off GOFLAGS="${GOFLAGS:-} -buildvcs=false"
started=$SECONDS

local_go="$(go env GOVERSION)"
log "building kube-apiserver v$K8S_VERSION and etcd into $bin (go: $local_go)"

# version_gt A B: true when Go version A (like 1.26 or 1.26.0 or go1.26.8) is newer than B.
version_gt() {
  local a="${1#go}" b="${2#go}"
  [ "$a" != "$b" ] && [ "$(printf '%s\n%s\n' "$a" "$b" | sort -V | tail -n1)" = "$a" ]
}

# mod_download MODULE@VERSION: prints the path of its go.mod, after downloading the module.
mod_download() {
  local out gomod
  if ! out="$(cd "$top" && go mod download -json "$1" 2>&1)"; then
    printf '%s\n' "$out" >&2
    die "could not download $1 from the Go module proxy (GOPROXY=$(go env GOPROXY)); is the version served?"
  fi
  gomod="$(printf '%s\n' "$out" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
  [ -n "$gomod" ] && [ -f "$gomod" ] || { printf '%s\n' "$out" >&2; die "no go.mod found for $1"; }
  echo "$gomod"
}

log "reading k8s.io/kubernetes@v$K8S_VERSION's go.mod (downloads the module the first time)"
k8s_mod="$(mod_download "k8s.io/kubernetes@v$K8S_VERSION")"

k8s_go="$(awk '$1 == "go" { print $2; exit }' "$k8s_mod")"
# godebug settings apply only in the main module: copy them, one-line or block form.
k8s_godebug="$(awk '
  /^godebug[[:space:]]*\(/ { inblock = 1; print; next }
  inblock { print; if ($0 ~ /^\)/) inblock = 0; next }
  /^godebug[[:space:]]/ { print }' "$k8s_mod")"
staging="$(sed -n 's#^[[:space:]]*\(replace[[:space:]]\{1,\}\)\{0,1\}\(k8s\.io/[A-Za-z0-9._-]\{1,\}\)[[:space:]]\{1,\}=>[[:space:]]\{1,\}\./staging/src/.*#\2#p' "$k8s_mod")"
etcd_version="$(awk '$1 == "go.etcd.io/etcd/client/v3" { print $2; exit }' "$k8s_mod")"
[ -n "$k8s_go" ] || die "no 'go' line in $k8s_mod"
[ -n "$staging" ] || die "no './staging/src' replaces in $k8s_mod"
[ -n "$etcd_version" ] || die "k8s.io/kubernetes v$K8S_VERSION does not require go.etcd.io/etcd/client/v3"
staging_version="v0.${K8S_VERSION#1.}"
log "k8s.io/kubernetes v$K8S_VERSION: go $k8s_go, $(echo "$staging" | wc -l) staging modules at $staging_version, etcd client $etcd_version"

log "reading go.etcd.io/etcd/server/v3@$etcd_version's go.mod"
etcd_mod="$(mod_download "go.etcd.io/etcd/server/v3@$etcd_version")"
etcd_go="$(awk '$1 == "go" { print $2; exit }' "$etcd_mod")"

need_go="$k8s_go"
version_gt "$etcd_go" "$need_go" && need_go="$etcd_go"
if version_gt "$need_go" "$local_go"; then
  if [ -n "${GOTOOLCHAIN:-}" ] && [ "$GOTOOLCHAIN" != local ] && [ "$GOTOOLCHAIN" != auto ]; then
    log "the modules need go $need_go; using GOTOOLCHAIN=$GOTOOLCHAIN from the environment"
  else
    export GOTOOLCHAIN="${VIGIL_GO_TOOLCHAIN:-go1.27.3}"
    log "the modules need go $need_go, newer than $local_go: using GOTOOLCHAIN=$GOTOOLCHAIN"
  fi
fi

work="$top/work"
mkdir -p "$work/apiserver" "$work/etcd" "$bin"

# --- kube-apiserver ---
cp "$here/apiserver/main.go" "$work/apiserver/main.go"
{
  echo "// Generated by scripts/control-plane/build.sh for Kubernetes v$K8S_VERSION; do not edit."
  echo "module vigil.local/control-plane/kube-apiserver"
  echo
  echo "go $k8s_go"
  [ -z "$k8s_godebug" ] || { echo; echo "$k8s_godebug"; }
  echo
  echo "require k8s.io/kubernetes v$K8S_VERSION"
  echo
  echo "replace ("
  for m in $staging; do echo "	$m => $m $staging_version"; done
  echo ")"
} >"$work/apiserver/go.mod"

t=$SECONDS
log "kube-apiserver: resolving dependencies (go mod tidy)"
(cd "$work/apiserver" && go mod tidy) ||
  die "go mod tidy failed for kube-apiserver v$K8S_VERSION (module download failure, or a staging module not served at $staging_version?); see above"
toolchain="$(cd "$work/apiserver" && go env GOVERSION)"
build_date="$(sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' "${k8s_mod%.mod}.info" 2>/dev/null || true)"
[ -n "$build_date" ] || build_date="1970-01-01T00:00:00Z"
minor="${K8S_VERSION#1.}"
minor="${minor%%.*}"
ldflags="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags="$ldflags -X $p.gitVersion=v$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
  ldflags="$ldflags -X $p.gitTreeState=clean -X $p.buildDate=$build_date -X $p.gitCommit="
done
log "kube-apiserver: compiling with $toolchain (several minutes on 2 cores the first time)"
(cd "$work/apiserver" && go build -trimpath -ldflags "$ldflags" -o "$bin/kube-apiserver.tmp" .) ||
  die "go build failed for kube-apiserver v$K8S_VERSION; see above"
mv -f "$bin/kube-apiserver.tmp" "$bin/kube-apiserver"
log "kube-apiserver: built in $((SECONDS - t)) s, $(du -m "$bin/kube-apiserver" | cut -f1) MB"

# --- etcd ---
cp "$here/etcd/main.go" "$work/etcd/main.go"
{
  echo "// Generated by scripts/control-plane/build.sh for Kubernetes v$K8S_VERSION; do not edit."
  echo "module vigil.local/control-plane/etcd"
  echo
  echo "go $etcd_go"
  echo
  echo "require go.etcd.io/etcd/server/v3 $etcd_version"
} >"$work/etcd/go.mod"
t=$SECONDS
log "etcd $etcd_version: resolving dependencies (go mod tidy)"
(cd "$work/etcd" && go mod tidy) || die "go mod tidy failed for go.etcd.io/etcd/server/v3 $etcd_version; see above"
log "etcd $etcd_version: compiling"
(cd "$work/etcd" && go build -trimpath -ldflags "-s -w" -o "$bin/etcd.tmp" .) ||
  die "go build failed for etcd $etcd_version; see above"
mv -f "$bin/etcd.tmp" "$bin/etcd"
log "etcd: built in $((SECONDS - t)) s, $(du -m "$bin/etcd" | cut -f1) MB"

# --- check and stamp ---
api_v="$("$bin/kube-apiserver" --version 2>&1)" || die "the built kube-apiserver does not run: $api_v"
etcd_v="$("$bin/etcd" --version 2>&1)" || die "the built etcd does not run: $etcd_v"
case "$api_v" in *"v$K8S_VERSION"*) ;; *) die "kube-apiserver --version says '$api_v', expected v$K8S_VERSION" ;; esac
case "$etcd_v" in *"${etcd_version#v}"*) ;; *) die "etcd --version says '$etcd_v', expected $etcd_version" ;; esac
{
  echo "$want"
  echo "kube-apiserver=v$K8S_VERSION"
  echo "etcd=$etcd_version"
  echo "go=$toolchain"
  echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ) in $((SECONDS - started))s"
} >"$stamp"
log "done in $((SECONDS - started)) s: $api_v; etcd $etcd_version; $toolchain"
echo "$bin"
