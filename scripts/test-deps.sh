#!/usr/bin/env bash
# Installs the tools the test suite runs for real, when they are missing: promtool (Debian's prometheus).
# Idempotent and quiet when everything is present; `make test` calls it first.
set -euo pipefail

need_apt=()
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)

if [ ${#need_apt[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "test-deps: installing ${need_apt[*]} from Debian" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
