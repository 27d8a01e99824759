#!/usr/bin/env bash
# format.sh [--check] [FILE...]
# clang-format (the repository's .clang-format) on the given files, or on every tracked
# C++ file of src/, tests/, bench/ and fuzz/ when none are given. --check changes nothing
# and fails listing the files that differ.
# `make check-format`, the CMake target check_format and the ctest check_format run
# --check on every file.
set -euo pipefail
cd "$(dirname "$0")/.."
check=0
if [ "${1:-}" = "--check" ]; then
  check=1
  shift
fi
clang_format=${CLANG_FORMAT:-$(command -v clang-format-14 || command -v clang-format || true)}
if [ -z "$clang_format" ]; then
  echo "format.sh: clang-format not found (apt-get install clang-format-14)" >&2
  exit 2
fi
if [ $# -gt 0 ]; then
  files=("$@")
else
  mapfile -t files < <(git ls-files 'src/*.cpp' 'src/*.hpp' 'tests/*.cpp' 'tests/*.hpp' 'bench/*.cpp' 'bench/*.hpp' \
                         'fuzz/*.cpp' 'fuzz/*.hpp' | grep -v '^tests/layering/fixtures/')
fi
if [ $check -eq 0 ]; then
  "$clang_format" -i "${files[@]}"
  echo "format.sh: formatted ${#files[@]} files"
  exit 0
fi
# One clang-format for every file: each difference is a warning "FILE:LINE:COL: error: code
# should be clang-formatted", which names the files (one process per file took minutes on a
# loaded machine, past the ctest's timeout).
if report=$("$clang_format" --dry-run --Werror "${files[@]}" 2>&1 >/dev/null); then
  echo "format.sh: ${#files[@]} files formatted"
  exit 0
fi
mapfile -t bad < <(printf '%s\n' "$report" | sed -n 's/^\(.*\):[0-9]*:[0-9]*: error: code should be clang-formatted.*/\1/p' | sort -u)
if [ ${#bad[@]} -eq 0 ]; then
  printf '%s\n' "$report" >&2 # clang-format failed for another reason: say so
  exit 2
fi
if [ ${#bad[@]} -gt 0 ]; then
  printf 'format.sh: not formatted (run scripts/format.sh FILE): %s\n' "${bad[@]}" >&2
  exit 1
fi
echo "format.sh: ${#files[@]} files formatted"
