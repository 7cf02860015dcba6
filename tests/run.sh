#!/usr/bin/env bash
# Runs the whole test suite and prints one closing line "N passed, N failed" summing every part:
#   1. the sample videos (fetched once) and the PyTorch reference fixtures (generated, never committed), also
#      with --unit-only;
#   2. the C unit tests (build/tests/test_*), each printing its own "N passed, N failed";
#   3. the Python tests (tests/py/test_*.py: h5py readback, Pillow resize, checkpoint conversion, the oracle's
#      self-checks), run by the virtual environment that sees Debian's PyTorch;
#   4. the end-to-end tests of the tools (tests/e2e/test_*.sh).
# A part that cannot run (no PyTorch, no sample data) counts as a failure, never as a skip.
# Usage: tests/run.sh [--unit-only [BUILD_DIR]]
set -u
cd "$(dirname "$0")/.."

unit_only=0
build=build
if [ "${1:-}" = "--unit-only" ]; then
  unit_only=1
  build=${2:-build}
fi
py=build/venv/bin/python
# Sleeping, not spinning, OpenMP threads between regions: see cli_prefer_passive_openmp in common/cli.h.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
passed=0
failed=0
log_dir=build/test-logs
mkdir -p "$log_dir" build/test-out

# Runs one test program, echoing its output, and adds its closing line to the totals.
run_part() {
  local name=$1; shift
  local log="$log_dir/$(basename "$name").log"
  local start=$SECONDS
  "$@" >"$log" 2>&1
  local rc=$?
  local line
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
  local p=0 f=0
  if [ -n "$line" ]; then
    p=$(echo "$line" | sed -E 's/^([0-9]+) passed, ([0-9]+) failed.*/\1/')
    f=$(echo "$line" | sed -E 's/^([0-9]+) passed, ([0-9]+) failed.*/\2/')
  fi
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  if [ -z "$line" ] && [ "$rc" -eq 0 ]; then p=1; fi
  passed=$((passed + p))
  failed=$((failed + f))
  printf '%-40s %4d passed, %d failed  (%ds)\n' "$name" "$p" "$f" "$((SECONDS - start))"
  if [ "$f" -ne 0 ]; then sed 's/^/    | /' "$log" | tail -n 40; fi
}

# Every part needs these, the unit tests under sanitizers included.
run_part "sample data" bash scripts/fetch-sample-data.sh
run_part "reference fixtures (PyTorch)" "$py" tests/reference/make_fixtures.py build/fixtures \
  --converted build/fixtures_converted

for t in "$build"/tests/test_*; do
  [ -x "$t" ] || continue
  run_part "$t" "$t"
done

if [ $unit_only -eq 0 ]; then
  for t in tests/py/test_*.py; do
    [ -f "$t" ] || continue
    run_part "$t" "$py" "$t"
  done
  for t in tests/e2e/test_*.sh; do
    [ -f "$t" ] || continue
    run_part "$t" bash "$t"
  done
fi

echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
