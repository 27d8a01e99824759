#!/usr/bin/env bash
# sanitized-ctest.sh BUILD_DIR [ctest arguments...]
# Runs ctest in a sanitizer build (-DIDP_SANITIZE=...) so that a report anywhere fails the
# run, including in processes no test looks at: the daemon (`idp serve`), the `idp __shim`
# supervisors it spawns, `idp` CLI runs. Every sanitized process writes its reports to
# BUILD_DIR/sanitizer-logs/<kind>.<pid> (log_path) instead of a stderr that may go to a
# daemon log nobody reads; after ctest, any such file fails the run and is printed.
#
# Options chosen (docs in README "Sanitizers"):
#   ASan: detect_leaks=1 everywhere: every idp process exits through main (the daemon on
#         SIGTERM, shims when their child ends), so LSan at exit sees real leaks only.
#         Processes ended by SIGKILL (crash tests) are never checked, which is fine.
#         Uninstrumented programs (git, caddy, postgres, node) ignore these variables.
#   UBSan: halt_on_error (builds also use -fno-sanitize-recover=undefined) with stacks.
#   TSan: halt_on_error=0 so one run lists every race; second_deadlock_stack for lock
#         inversions. Suppressions (third-party only) in tests/sanitizers/*.supp if present.
set -uo pipefail
build=$(cd "$1" && pwd)
shift
here=$(cd "$(dirname "$0")/.." && pwd)
logs=$build/sanitizer-logs
rm -rf "$logs"
mkdir -p "$logs"

supp() { [ -f "$here/tests/sanitizers/$1.supp" ] && echo ":suppressions=$here/tests/sanitizers/$1.supp"; }
export ASAN_OPTIONS="log_path=$logs/asan:detect_leaks=1:strict_init_order=1:detect_stack_use_after_return=0$(supp asan)"
export LSAN_OPTIONS="print_suppressions=0$(supp lsan)"
export UBSAN_OPTIONS="log_path=$logs/ubsan:print_stacktrace=1:halt_on_error=1$(supp ubsan)"
export TSAN_OPTIONS="log_path=$logs/tsan:halt_on_error=0:second_deadlock_stack=1:history_size=4$(supp tsan)"
for s in "$(command -v llvm-symbolizer || true)" /usr/lib/llvm-14/bin/llvm-symbolizer; do
  if [ -n "$s" ] && [ -x "$s" ]; then
    export ASAN_SYMBOLIZER_PATH=$s
    export PATH=$PATH:$(dirname "$s") # UBSan and TSan look it up in PATH
    break
  fi
done

ctest --test-dir "$build" "$@"
rc=$?

reports=$(find "$logs" -type f | sort)
if [ -n "$reports" ]; then
  echo "sanitized-ctest: sanitizer reports in $logs:"
  for f in $reports; do
    echo "===== $f"
    cat "$f"
  done
  echo "sanitized-ctest: FAILED: $(echo "$reports" | wc -l) sanitizer report file(s)"
  exit 1
fi
if [ $rc -ne 0 ]; then
  echo "sanitized-ctest: ctest failed (exit $rc); no sanitizer report"
  exit $rc
fi
echo "sanitized-ctest: ctest passed, no sanitizer report"
