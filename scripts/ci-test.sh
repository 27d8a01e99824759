#!/usr/bin/env bash
# ci-test.sh: what `make test` (and so CI, .ci/run) runs, each stage timed:
#   1. the plain build (-Werror);
#   2. the plain build's tests, all but the integration suites (unit, contract, CLI,
#      kubernetes, the Terraform module tests, the soak, the browser tests). Meanwhile the
#      ASan+UBSan build compiles at low priority: these suites mostly wait on child
#      processes, so the two cores have room for it;
#   3. the ASan+UBSan build's unit, contract, CLI, kubernetes and integration suites
#      (ASAN_LABELS_EXCLUDE: all but the fuzz runs, the soak, whose RSS figures are the
#      plain build's, and the browser tests) through scripts/sanitized-ctest.sh: a report
#      from any idp process (tests, `idp serve`, its shims, the CLI) fails the run;
#   4. each fuzz target for FUZZ_CI_SECONDS.
# Every test runs at least once; the integration suites run once, sanitized, which finds
# what the plain run would and memory errors besides, and keeps CI within its time.
# `make test-plain` runs every test of the plain build.
# Environment (set by the Makefile): MAKE, BUILD, ASAN_BUILD, JOBS, TEST_JOBS,
# ASAN_LABELS_EXCLUDE, PLAIN_LABELS_EXCLUDE.
set -uo pipefail
cd "$(dirname "$0")/.."
mk=("${MAKE:-make}" --no-print-directory)
build=${BUILD:-build}
asan_build=${ASAN_BUILD:-build-asan}
test_jobs=${TEST_JOBS:-4}

now() { date +%s; }
t0=$(now)
"${mk[@]}" build WERROR=ON || exit 1
t1=$(now)

mkdir -p "$build"
asan_log=$build/asan-build.log
echo "ci-test: building $asan_build (ASan+UBSan) in the background, log in $asan_log"
# Its own process group, so that a failure of the plain suite stops the whole build.
setsid nice -n 10 "${mk[@]}" asan WERROR=ON >"$asan_log" 2>&1 &
asan_pid=$!
stop_asan() { kill -TERM -- -"$asan_pid" 2>/dev/null; wait "$asan_pid" 2>/dev/null; }
trap stop_asan INT TERM

# The browser tests carry the integration label (a real idp serve) but are not run
# sanitized: a second ctest selects them.
plain_exclude=${PLAIN_LABELS_EXCLUDE:-integration}
ctest --test-dir "$build" -LE "$plain_exclude" -j "$test_jobs" --output-on-failure --timeout 1200
plain_rc=$?
if [ "$plain_rc" -eq 0 ] && [ "$plain_exclude" = integration ]; then
  ctest --test-dir "$build" -L browser -j "$test_jobs" --output-on-failure --timeout 1200
  plain_rc=$?
fi
t2=$(now)
if [ "$plain_rc" -ne 0 ]; then
  echo "ci-test: the plain suite failed" >&2
  stop_asan
  exit 1
fi
wait "$asan_pid"
asan_rc=$?
trap - INT TERM
t3=$(now)
if [ "$asan_rc" -ne 0 ]; then
  echo "ci-test: the ASan+UBSan build failed; the end of $asan_log:" >&2
  tail -n 200 "$asan_log" >&2
  exit 1
fi

./scripts/sanitized-ctest.sh "$asan_build" -LE "${ASAN_LABELS_EXCLUDE:-fuzz|soak|browser}" \
  -E '^terraform_modules$' -j "$test_jobs" \
  --output-on-failure --timeout 1800 || exit 1
t4=$(now)
ctest --test-dir "$asan_build" -L fuzz -j "${JOBS:-2}" --output-on-failure || exit 1
t5=$(now)
echo "ci-test: passed: plain build $((t1 - t0))s, plain suite $((t2 - t1))s," \
  "ASan build finished $((t3 - t2))s after it, ASan suites $((t4 - t3))s, fuzz $((t5 - t4))s," \
  "total $((t5 - t0))s"
