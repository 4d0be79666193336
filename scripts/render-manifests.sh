#!/usr/bin/env bash
# Renders charts/vigil into manifests/ as numbered plain YAML files, in Helm's install order, for users
# without Helm. Default values, except that the certificate comes from an existing Secret (certs.mode=secret,
# made with certs/gen-certs.sh) and the caBundle is the placeholder ${CA_BUNDLE}: a chart-generated CA would
# put a private key into git, and one that every user shares. And without Helm the policy is edited in the
# cluster (policyConfigMap.source=cluster), so Vigil does not refuse kubectl edits of it as Helm's.
#
#   scripts/render-manifests.sh [OUT_DIR]     (default: manifests/)
#
# tests/helm.rs renders into a temporary directory and fails when manifests/ differs; run this script after
# changing the chart. It uses .cache/bin/helm (installed by scripts/test-deps.sh) or helm on PATH.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/manifests}"
helm="$root/.cache/bin/helm"
[ -x "$helm" ] || helm="$(command -v helm || true)"
[ -n "$helm" ] || { echo "render-manifests: no helm; run scripts/test-deps.sh (or make test) first" >&2; exit 1; }

rendered="$("$helm" template vigil "$root/charts/vigil" --namespace vigil \
  --set certs.mode=secret --set-string 'certs.secret.caBundle=${CA_BUNDLE}' \
  --set policyConfigMap.source=cluster)"

mkdir -p "$out"
rm -f "$out"/[0-9][0-9]-*.yaml
printf '%s\n' "$rendered" | awk -v out="$out" '
  /^---$/ { next }
  /^# Source: / {
    n++
    name = $3; sub(/^.*\//, "", name); sub(/\.yaml$/, "", name)
    if (file) close(file)
    file = sprintf("%s/%02d-%s.yaml", out, n, name)
    print "---" > file
    print "# Generated from charts/vigil by scripts/render-manifests.sh: edit the chart, not this file." > file
  }
  file { print > file }
'
echo "render-manifests: wrote $(ls "$out"/[0-9][0-9]-*.yaml | wc -l) files into $out" >&2
