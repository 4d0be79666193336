#!/usr/bin/env bash
# Instructions per review, counted by callgrind: a figure that does not move with the machine's load, for
# comparing two versions of the engine. Wall time is bench/run.sh's job.
#
#   bench/instructions.sh [REVIEW.json ...]   default: the benchmark's three reviews under bench/policy.yaml
#
# Each review is run 100 and 300 times by the example `review_loop`; the difference over 200 is the cost of
# one review, without start-up and one-time work (policy parsing, regex compilation). Knobs: POLICY.
set -euo pipefail

cd "$(dirname "$0")/.."

if ! command -v valgrind >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "instructions: installing valgrind from Debian" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends valgrind >/dev/null
fi

cargo build --release --quiet --example review_loop
loop_bin=target/release/examples/review_loop
policy=${POLICY:-bench/policy.yaml}
if [ $# -eq 0 ]; then
  set -- tests/data/reviews/deployment-create.kube-apiserver-1.36.json \
    benches/data/review-pod-10-containers.json \
    tests/data/reviews/pod-create-privileged.DERIVED.json
fi

count() { # REVIEW N -> instructions of the whole run
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$loop_bin" "$policy" "$1" "$2" 2>&1 |
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}

printf '%-60s %14s\n' "review (policy $policy)" "instr/review"
for review in "$@"; do
  few=$(count "$review" 100)
  many=$(count "$review" 300)
  if [ -z "$few" ] || [ -z "$many" ]; then
    echo "instructions: $review: callgrind gave no count; run $loop_bin $policy $review 1 to see why" >&2
    exit 1
  fi
  printf '%-60s %14d\n' "$review" $(((many - few) / 200))
done
