#!/usr/bin/env bash
# Runs every fuzz target for a while (default 60s each): a longer run than
# the seed corpora that `make test` executes. Usage: scripts/fuzz.sh [TIME]
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime="${1:-60s}"
status=0
while read -r pkg target; do
  echo "== $pkg $target ($fuzztime)"
  go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -fuzzminimizetime 20x "$pkg" || status=1
done < <(grep -rl --include='*_test.go' '^func Fuzz' . | while read -r f; do
  for t in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | sed 's/^func //'); do
    echo "./$(dirname "${f#./}") $t"
  done
done)
exit $status
