#!/usr/bin/env bash
# ci-test.sh: what `make test` (and so CI, .ci/run) runs, each stage timed:
#   1. the plain build (-Werror) of target ci_plain: idp, the benchmarks (kept compiling)
#      and the soak's executable;
#   2. the tests labelled `plain`: the soak (its RSS and fd figures are the plain
#      binary's), the Terraform module tests, the browser tests and the subprocess tests
#      (util_subprocess_unsanitized: sanitized builds start children by fork). Meanwhile
#      the ASan+UBSan build compiles at low priority: these tests mostly wait on child processes, so the
#      two cores have room for it;
#   3. every other suite in the ASan+UBSan build (unit, contract, CLI, kubernetes,
#      integration, docs, layering and format checks; ASAN_LABELS_EXCLUDE) through
#      scripts/sanitized-ctest.sh: a report from any idp process (tests, `idp serve`, its
#      shims, the CLI) fails the run;
#   4. each fuzz target for FUZZ_CI_SECONDS.
# Every test runs once: sanitized, which finds what a plain run would and memory errors
# besides, or plain for the three above. Building the unit and integration tests a second
# time with g++ and running them twice would take CI past its time; the ASan build
# compiles them with -Werror as well. `make test-plain` builds and runs every test of the
# plain build.
# Environment (set by the Makefile): MAKE, BUILD, ASAN_BUILD, JOBS, TEST_JOBS,
# ASAN_LABELS_EXCLUDE.
set -uo pipefail
cd "$(dirname "$0")/.."
mk=("${MAKE:-make}" --no-print-directory)
build=${BUILD:-build}
asan_build=${ASAN_BUILD:-build-asan}
test_jobs=${TEST_JOBS:-4}

now() { date +%s; }
t0=$(now)
"${mk[@]}" build WERROR=ON TARGET=ci_plain || exit 1
t1=$(now)

mkdir -p "$build"
asan_log=$build/asan-build.log
echo "ci-test: building $asan_build (ASan+UBSan) in the background, log in $asan_log"
# Its own process group, so that a failure of the plain suite stops the whole build.
setsid nice -n 10 "${mk[@]}" asan WERROR=ON >"$asan_log" 2>&1 &
asan_pid=$!
stop_asan() { kill -TERM -- -"$asan_pid" 2>/dev/null; wait "$asan_pid" 2>/dev/null; }
trap stop_asan INT TERM

ctest --test-dir "$build" -L plain -j "$test_jobs" --output-on-failure --timeout 1200
plain_rc=$?
t2=$(now)
if [ "$plain_rc" -ne 0 ]; then
  echo "ci-test: the plain tests failed" >&2
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

./scripts/sanitized-ctest.sh "$asan_build" -LE "${ASAN_LABELS_EXCLUDE:-fuzz|plain}" \
  -j "$test_jobs" --output-on-failure --timeout 1800 || exit 1
t4=$(now)
ctest --test-dir "$asan_build" -L fuzz -j "${JOBS:-2}" --output-on-failure || exit 1
t5=$(now)
echo "ci-test: passed: plain build $((t1 - t0))s, plain tests $((t2 - t1))s," \
  "ASan build finished $((t3 - t2))s after it, ASan suites $((t4 - t3))s, fuzz $((t5 - t4))s," \
  "total $((t5 - t0))s"
