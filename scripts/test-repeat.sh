#!/usr/bin/env bash
# Runs the whole suite (vet + go test -race ./..., as `make test` and CI do)
# N times in a row with a CPU-bound process beside each run. Prints one line
# per run and stops at the first failure.
set -uo pipefail
n=${1:-10}
dir=${2:-/tmp/hotstandby-repeat}
mkdir -p "$dir"
cd "$(dirname "$0")/.."
pass=0
for i in $(seq 1 "$n"); do
  timeout 7200 sh -c 'while :; do :; done' &
  hog=$!
  start=$(date +%s)
  make test >"$dir/run-$i.log" 2>&1
  rc=$?
  kill "$hog" 2>/dev/null
  wait "$hog" 2>/dev/null
  secs=$(( $(date +%s) - start ))
  if [ "$rc" -ne 0 ]; then
    echo "run $i/$n: FAIL after ${secs}s (log: $dir/run-$i.log)"
    grep -E '^(--- FAIL|FAIL|panic:)' "$dir/run-$i.log" | head -20
    echo "passed $pass of $n before the failure"
    exit 1
  fi
  pass=$((pass + 1))
  echo "run $i/$n: ok in ${secs}s (load beside it: one CPU-bound process)"
done
echo "passed $pass of $n in a row"
