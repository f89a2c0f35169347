#!/usr/bin/env bash
# Whole-process timings of the offline commands (`validate`, `synth`): each
# command runs RUNS times after a warm-up; the median and the 95th percentile
# are printed. Target: `validate` of the example stack under 50 ms.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${BIN:-target/debug/streamstack}"
runs="${RUNS:-50}"

time_cmd() {
  # Prints one wall time in microseconds a run.
  local i start end
  "$@" >/dev/null 2>&1 || true
  for ((i = 0; i < runs; i++)); do
    start=$(date +%s%N)
    "$@" >/dev/null 2>&1 || true
    end=$(date +%s%N)
    echo $(((end - start) / 1000))
  done
}

summary() {
  python3 -c '
import statistics, sys
xs = sorted(int(x) for x in sys.stdin.read().split())
p95 = xs[int(len(xs) * 0.95) - 1]
print(f"{statistics.median(xs) / 1000:8.1f} {p95 / 1000:8.1f}")'
}

printf '%-44s %8s %8s\n' "command ($runs runs, $(basename "$bin"))" "median" "p95 ms"
for args in "validate stacks/tweets.yaml" "validate stacks/minimal.yaml" "synth stacks/tweets.yaml --env prod" \
  "validate tests/fixtures/invalid/several-mistakes.yaml"; do
  # shellcheck disable=SC2086
  printf '%-44s %s\n' "$args" "$(time_cmd "$bin" $args | summary)"
done
