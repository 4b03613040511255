#!/usr/bin/env bash
# Builds connect-job-archiver and runs every test: installs what is missing on Debian 12,
# builds with -Werror under AddressSanitizer + UndefinedBehaviorSanitizer, runs ctest (unit
# and integration tests), runs the unit tests once more under valgrind on a plain build, and
# gives each libFuzzer target a short bounded run (scripts/fuzz.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh valgrind clang-format systemd
jobs=$(nproc)

echo "== format check"
bad=$(git ls-files '*.c' '*.h' | xargs clang-format --dry-run -Werror 2>&1 | grep -c 'error:' || true)
if [ "$bad" != "0" ]; then
        git ls-files '*.c' '*.h' | xargs clang-format --dry-run -Werror
        exit 1
fi

echo "== build (ASan + UBSan, -Werror)"
cmake -S . -B build-asan -DCJA_WERROR=ON -DCJA_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-asan -j"$jobs"

echo "== ctest (ASan + UBSan)"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
(cd build-asan && ctest --output-on-failure -j"$jobs" --timeout 600)

echo "== build (plain, for valgrind)"
cmake -S . -B build -DCJA_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"

echo "== unit tests under valgrind"
unset ASAN_OPTIONS UBSAN_OPTIONS
for t in build/tests/test_*; do
        [ -x "$t" ] || continue
        valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect \
                --error-exitcode=1 "$t" >/dev/null
done
echo "valgrind: clean"

echo "== fuzzing (bounded: 20 s per target)"
scripts/fuzz.sh 20
