#!/usr/bin/env bash
# format.sh [--check] [FILE...]
# clang-format (the repository's .clang-format) on the given files, or on every tracked
# C++ file of src/, tests/, bench/ and fuzz/ when none are given. --check changes nothing
# and fails listing the files that differ.
#
# The tree predates .clang-format and is not reformatted yet (a mass reformat would
# conflict with work in flight): until it is, `check_format` (CMake) and `make
# check-format` check only the files listed in cmake/formatted-files.txt. To finish the
# move: `scripts/format.sh` (everything), commit, delete cmake/formatted-files.txt.
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
elif [ $check -eq 1 ] && [ -f cmake/formatted-files.txt ]; then
  mapfile -t files < <(grep -v '^\s*#' cmake/formatted-files.txt | grep -v '^\s*$')
else
  mapfile -t files < <(git ls-files 'src/*.cpp' 'src/*.hpp' 'tests/*.cpp' 'tests/*.hpp' 'bench/*.cpp' 'bench/*.hpp' \
                         'fuzz/*.cpp' 'fuzz/*.hpp' | grep -v '^tests/layering/fixtures/')
fi
if [ $check -eq 0 ]; then
  "$clang_format" -i "${files[@]}"
  echo "format.sh: formatted ${#files[@]} files"
  exit 0
fi
bad=()
for f in "${files[@]}"; do
  if ! "$clang_format" --dry-run --Werror "$f" >/dev/null 2>&1; then
    bad+=("$f")
  fi
done
if [ ${#bad[@]} -gt 0 ]; then
  printf 'format.sh: not formatted (run scripts/format.sh FILE): %s\n' "${bad[@]}" >&2
  exit 1
fi
echo "format.sh: ${#files[@]} files formatted"
