#!/usr/bin/env bash
# Makes a CA and a serving certificate for Vigil's webhook Service with openssl, for the plain manifests
# (`kubectl apply -f manifests/`) and for local development. Prints the caBundle (base64 of the CA's PEM,
# on one line) on stdout; everything else goes to stderr.
#
#   certs/gen-certs.sh [--service vigil] [--namespace vigil] [--cluster-domain cluster.local] [--days 365]
#                      [--san NAME]... [--out DIR] [--force]
#
# Writes ca.crt, ca.key, tls.crt and tls.key into DIR: by default a new directory under $TMPDIR, never the
# repository (certs/.gitignore keeps any output out of git all the same). Keep ca.key offline, or delete it:
# only ca.crt (the caBundle) and the tls.* pair are needed to run.
set -euo pipefail

service=vigil
namespace=vigil
cluster_domain=cluster.local
days=365
out=""
force=false
extra_sans=()

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2; exit "${1:-2}"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --service) service="${2:?--service needs a name}"; shift 2 ;;
    --namespace) namespace="${2:?--namespace needs a name}"; shift 2 ;;
    --cluster-domain) cluster_domain="${2:?--cluster-domain needs a domain}"; shift 2 ;;
    --days) days="${2:?--days needs a number}"; shift 2 ;;
    --san) extra_sans+=("${2:?--san needs a DNS name or an IP address}"); shift 2 ;;
    --out) out="${2:?--out needs a directory}"; shift 2 ;;
    --force) force=true; shift ;;
    -h|--help) usage 0 ;;
    *) echo "gen-certs: unknown argument $1" >&2; usage ;;
  esac
done

label='^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'
[[ "$service" =~ $label ]] || { echo "gen-certs: --service $service is not a DNS label" >&2; exit 2; }
[[ "$namespace" =~ $label ]] || { echo "gen-certs: --namespace $namespace is not a DNS label" >&2; exit 2; }
[[ "$days" =~ ^[1-9][0-9]*$ ]] || { echo "gen-certs: --days $days is not a positive number" >&2; exit 2; }
command -v openssl >/dev/null || { echo "gen-certs: openssl is not installed" >&2; exit 1; }

if [ -z "$out" ]; then
  out="$(mktemp -d "${TMPDIR:-/tmp}/vigil-certs.XXXXXX")"
else
  mkdir -p "$out"
fi
if ! $force; then
  for f in ca.crt ca.key tls.crt tls.key; do
    if [ -e "$out/$f" ]; then
      echo "gen-certs: $out/$f exists; pass --force to replace it" >&2
      exit 1
    fi
  done
fi

# The names the API server may use for the Service: <svc>, <svc>.<ns>, <svc>.<ns>.svc (what it uses) and
# the fully qualified <svc>.<ns>.svc.<cluster-domain>.
sans="DNS:$service,DNS:$service.$namespace,DNS:$service.$namespace.svc,DNS:$service.$namespace.svc.$cluster_domain"
for san in "${extra_sans[@]}"; do
  if [[ "$san" =~ ^[0-9.]+$ || "$san" == *:* ]]; then sans="$sans,IP:$san"; else sans="$sans,DNS:$san"; fi
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
umask 077

openssl req -x509 -new -nodes -sha256 -days "$days" \
  -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
  -keyout "$work/ca.key" -out "$work/ca.crt" \
  -subj "/CN=$service.$namespace webhook CA" \
  -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -addext "subjectKeyIdentifier=hash" 2>"$work/log" || { cat "$work/log" >&2; exit 1; }

openssl req -new -nodes -sha256 \
  -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
  -keyout "$work/tls.key" -out "$work/tls.csr" \
  -subj "/CN=$service.$namespace.svc" 2>"$work/log" || { cat "$work/log" >&2; exit 1; }

cat >"$work/ext.cnf" <<EXT
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = $sans
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EXT
openssl x509 -req -sha256 -days "$days" \
  -in "$work/tls.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" \
  -set_serial "0x$(openssl rand -hex 16)" -extfile "$work/ext.cnf" \
  -out "$work/tls.crt" 2>"$work/log" || { cat "$work/log" >&2; exit 1; }

openssl verify -CAfile "$work/ca.crt" "$work/tls.crt" >/dev/null

umask 022
install -m 0644 "$work/ca.crt" "$out/ca.crt"
install -m 0644 "$work/tls.crt" "$out/tls.crt"
install -m 0600 "$work/ca.key" "$out/ca.key"
install -m 0600 "$work/tls.key" "$out/tls.key"

ca_bundle="$(base64 <"$out/ca.crt" | tr -d '\n')"
cat >&2 <<MSG
gen-certs: wrote $out/{ca.crt,ca.key,tls.crt,tls.key} for $service.$namespace.svc, valid $days days.
The caBundle is printed below. With the plain manifests:
  CA_BUNDLE=\$(base64 <$out/ca.crt | tr -d '\\n')
  kubectl -n $namespace create secret tls $service-tls --cert=$out/tls.crt --key=$out/tls.key
  sed "s|\\\${CA_BUNDLE}|\$CA_BUNDLE|" manifests/*.yaml | kubectl apply -f -
MSG
printf '%s\n' "$ca_bundle"
