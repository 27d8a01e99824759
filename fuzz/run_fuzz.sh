#!/usr/bin/env bash
# run_fuzz.sh BUILD_DIR NAME [libFuzzer flags...]
# Fuzzes BUILD_DIR/fuzz/NAME_fuzz from the committed seeds (fuzz/corpus/NAME, read only)
# plus a working corpus in BUILD_DIR/fuzz-work/NAME/corpus (where new inputs go), with
# crash artifacts in BUILD_DIR/fuzz-work/NAME/. Exits non-zero on a crash, a leak, a
# sanitizer report or a timeout. Examples:
#   run_fuzz.sh build-asan ttl -max_total_time=600     (make fuzz)
#   run_fuzz.sh build-asan ttl -runs=1000000           (make fuzz-runs)
set -euo pipefail
build=$(cd "$1" && pwd)
name=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
bin=$build/fuzz/${name}_fuzz
work=$build/fuzz-work/$name
mkdir -p "$work/corpus"
# halt_on_error etc. are libFuzzer's defaults under ASan; leaks are reported (a fuzz
# target runs in one process, so LSan at exit is meaningful here).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
if ! command -v llvm-symbolizer >/dev/null 2>&1 && [ -x /usr/lib/llvm-14/bin/llvm-symbolizer ]; then
  export PATH=$PATH:/usr/lib/llvm-14/bin # stack traces of crashes
fi
echo "run_fuzz: $bin $* (seeds $here/corpus/$name)"
# -timeout: one input taking over 10 s is a hang; -rss_limit_mb: a leak or blow-up.
exec "$bin" -artifact_prefix="$work/" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "$@" \
  "$work/corpus" "$here/corpus/$name"
