#!/usr/bin/env bash
# Vigil's benchmark in one command: builds the release binaries, installs h2load when it is missing, then
# runs Vigil and the constant-response reference server under the same load and prints a table.
#
#   bench/run.sh          the benchmark (about 6 minutes; QUICK=1 for a one-run smoke test)
#   bench/run.sh soak     Vigil alone at a fixed rate for SOAK_SECONDS (default 600): RSS, fds, p99 over time
#
# Knobs (environment): QUICK, RUNS, TPUT_SECONDS, LAT_SECONDS, WARMUP_SECONDS, START_RUNS, PIN=0,
# BENCH_PORT, BENCH_METRICS_PORT, BENCH_WORK, H2LOAD, SOAK_SECONDS, SOAK_RATE, SOAK_INTERVAL, and
# BENCH_VIGIL_BIN / BENCH_CONSTANT_BIN to run given binaries instead of building this tree.
# See bench/README.md.
set -euo pipefail

cd "$(dirname "$0")/.."

case "${1:-}" in
  "" | soak) ;;
  -h | --help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "bench: unknown mode '$1'; use no argument or 'soak'" >&2; exit 2 ;;
esac

need_apt=()
command -v "${H2LOAD:-h2load}" >/dev/null 2>&1 || need_apt+=(nghttp2-client)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v taskset >/dev/null 2>&1 || need_apt+=(util-linux)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
if [ ${#need_apt[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "bench: installing ${need_apt[*]} from Debian" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
command -v "${H2LOAD:-h2load}" >/dev/null 2>&1 || { echo "bench: h2load is still missing" >&2; exit 1; }

if [ -n "${BENCH_VIGIL_BIN:-}${BENCH_CONSTANT_BIN:-}" ]; then
  echo "bench: using the given binaries; nothing built" >&2
else
  echo "bench: building release binaries" >&2
  cargo build --release --quiet --bin vigil --example constant_server
fi

exec python3 bench/bench.py "$@"
