#!/usr/bin/env bash
# Static checks that keep the tree as docs/architecture.md wants it: cppcheck finds nothing (warnings and
# portability), and every C file is formatted with the project's .clang-format.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
cppcheck --quiet --error-exitcode=1 --enable=warning,portability --inline-suppr \
  --suppress=missingIncludeSystem -I. -I"$BUILD/gen" -j2 common gateway sim reports headend tests/unit
echo "cppcheck: clean"
files=$(git ls-files '*.c' '*.h' 2>/dev/null || find common gateway sim reports headend tests -name '*.[ch]')
clang-format --dry-run --Werror $files
echo "clang-format: clean ($(echo "$files" | wc -w) files)"
