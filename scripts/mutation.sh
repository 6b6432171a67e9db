#!/usr/bin/env bash
# Mutation testing of the pure, fast packages with gremlins: each mutant is
# one small change to the code (a condition negated, a < made <=, a + made
# -), and a test must fail for it. Prints the surviving (LIVED) and
# untested (NOT COVERED) mutants, then the test efficacy per package, and
# fails when a package is below the threshold.
# Usage: scripts/mutation.sh [package dir ...]   (MUTATION_THRESHOLD=95)
set -euo pipefail
cd "$(dirname "$0")/.."
gremlins=(go run github.com/go-gremlins/gremlins/cmd/gremlins@v0.6.0)
threshold=${MUTATION_THRESHOLD:-95}
pkgs=("$@")
[ ${#pkgs[@]} -gt 0 ] || pkgs=(./caddymodule/placement ./caddymodule/pin)
status=0
summary=()
for pkg in "${pkgs[@]}"; do
  echo "== $pkg"
  log=$(mktemp)
  # The tests run once per mutant without -race: the race detector would
  # multiply the time, and mutants change no concurrency. gremlins times a
  # mutant out at a multiple of the coverage run's time: -count=1 keeps
  # that run from coming out of the test cache in no time, and a generous
  # multiple keeps a busy machine from timing out mutants the tests kill.
  if ! GOFLAGS=-count=1 "${gremlins[@]}" unleash -S lc --timeout-coefficient 10 \
      "$pkg" 2>&1 | tee "$log"; then
    status=1
  fi
  # The threshold is checked here: gremlins v0.6.0 reads its
  # --threshold-efficacy flag back as a string and silently ignores it.
  efficacy=$(sed -n 's/.*Test efficacy: \([0-9.]*\)%.*/\1/p' "$log" | tail -1)
  if [ -z "$efficacy" ]; then
    summary+=("$pkg: no result")
    status=1
  elif awk -v e="$efficacy" -v t="$threshold" 'BEGIN { exit !(e < t) }'; then
    summary+=("$pkg: test efficacy ${efficacy}%, below ${threshold}%")
    status=1
  else
    summary+=("$pkg: test efficacy ${efficacy}%")
  fi
  rm -f "$log"
done
echo "== mutation summary (threshold ${threshold}%)"
printf '%s\n' "${summary[@]}"
exit $status
