#!/usr/bin/env bash
# Runs fuzz targets one after another, each for SECONDS in one process (one core), with its dictionary.
#   fuzz/run.sh SECONDS [TARGET...]     (default: every target; SECONDS default 300)
# FUZZ_ARGS adds libFuzzer flags; FUZZ_ARGS="-fork=1 -ignore_crashes=1" keeps going past a known crash (one
# child process at a time), recording every crash in fuzz/artifacts/TARGET/.
# Needs cargo-fuzz (`cargo install cargo-fuzz`). cargo-fuzz passes nightly-only flags (-Z, sanitizers) to
# rustc; on a stable toolchain RUSTC_BOOTSTRAP=1 lets it, so no nightly toolchain is needed. Findings go to
# fuzz/artifacts/TARGET/; turn each into a regression test (see CONTRIBUTING.md).
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-300}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(review workload policy image manifest)
[ -d corpus ] || python3 seed-corpus.py
mkdir -p logs
export RUSTC_BOOTSTRAP=1
for t in "${targets[@]}"; do
  case "$t" in
    review|workload|manifest) opts=(-dict=dict/review.dict -max_len=65536) ;;
    policy) opts=(-dict=dict/policy.dict -max_len=4096) ;;
    image) opts=(-dict=dict/image.dict -max_len=1024) ;;
    *) echo "unknown target $t" >&2; exit 2 ;;
  esac
  echo "== $t for ${seconds}s (log: fuzz/logs/$t.log)"
  cargo fuzz run "$t" -- -max_total_time="$seconds" -timeout=5 \
    -print_final_stats=1 "${opts[@]}" ${FUZZ_ARGS:-} > "logs/$t.log" 2>&1 || { echo "$t: FAILED, see fuzz/logs/$t.log"; tail -30 "logs/$t.log"; }
  # In-process runs end with stat:: lines; fork mode (FUZZ_ARGS=-fork=1) prints "#EXECS: ... crash: N".
  grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb|Done [0-9]+ runs' "logs/$t.log" || true
  grep -E '^#[0-9]+: cov' "logs/$t.log" | tail -1 || true
  ls "artifacts/$t" 2>/dev/null | sed "s|^|$t finding: fuzz/artifacts/$t/|" || true
done
