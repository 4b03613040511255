#!/usr/bin/env bash
# Builds connect-job-archiver and runs every test: installs what is missing on Debian 12,
# builds with -Werror under AddressSanitizer + UndefinedBehaviorSanitizer, runs ctest (unit
# and integration tests), runs the tests that exercise the compression threads under
# ThreadSanitizer, runs the unit tests once more under valgrind on an optimized build, and
# gives each libFuzzer target a short bounded run (scripts/fuzz.sh), builds the Debian package
# (scripts/package.sh) and runs the service under a real systemd in systemd-nspawn
# (tests/systemd/test_systemd.py, from a copy of this tree under /tmp: the checkout's path
# must not matter; reported as skipped where it cannot run).
#
# After the format check and the ASan build, the stages run in four lanes at once, so that
# the two cores stay busy while the integration tests wait on sockets, timers and kill loops:
#
#   asan:     ctest (ASan + UBSan, every test)
#   tsan:     build TSan -> ctest (TSan subset)
#   release:  build Release -> the unit tests under valgrind (two at a time)
#   package:  scripts/package.sh -> the real systemd, and beside it: build fuzz -> fuzzing
#
# Each stage's output goes to build-logs/<stage>.log; the script prints a line when a stage
# starts and one when it ends (its time and its last word), and a table of the times at the
# end. A stage that fails shows its log, the other lanes are stopped, and the script fails.
# Builds go through ccache (in ~/.cache/ccache, outside the checkout, so a fresh clone
# reuses it); the ctest schedules reuse the last run's test times (~/.cache/connect-job-archiver).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
t0=$EPOCHREALTIME

scripts/deps.sh valgrind clang-format systemd systemd-container ccache clang libclang-rt-14-dev \
        debhelper dpkg-dev lintian fakeroot git
jobs=$(nproc)
logs=$root/build-logs
rm -rf "$logs"
mkdir -p "$logs"
cache=${XDG_CACHE_HOME:-$HOME/.cache}
mkdir -p "$cache/connect-job-archiver"

# ccache keyed on paths relative to the checkout and not on the build folder's path, so a
# clone elsewhere hits the same entries (the debug info of a hit then names the folder of
# the build that filled the cache: only the paths in a backtrace can differ).
export CCACHE_DIR=${CCACHE_DIR:-$cache/ccache}
export CCACHE_BASEDIR=$root CCACHE_NOHASHDIR=1
launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache)

since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
say() { printf '[%6ss] %s\n' "$(since "$t0")" "$*"; }

# stage NAME CMD...: runs CMD with its output in build-logs/NAME.log; says when it starts
# and ends, records its time (NAME.time) and exit status (NAME.rc, which await reads). On
# failure it prints the log and returns non-zero. CMD runs as a job of its own so that
# set -e holds in it (in "CMD || rc=$?" bash would ignore it in every function CMD calls).
stage() {
        local name=$1 start=$EPOCHREALTIME rc=0
        shift
        say "-> $name"
        "$@" >"$logs/$name.log" 2>&1 </dev/null &
        wait "$!" || rc=$?
        since "$start" >"$logs/$name.time"
        if [ "$rc" -ne 0 ]; then
                say "FAILED $name (exit $rc, $(cat "$logs/$name.time") s); its log, build-logs/$name.log:"
                sed 's/^/    /' "$logs/$name.log"
                echo "$rc" >"$logs/$name.rc" # after the log: a lane awaiting it stops only then
                return "$rc"
        fi
        echo 0 >"$logs/$name.rc"
        say "ok $name ($(cat "$logs/$name.time") s): $(grep -v '^[[:space:]]*$' "$logs/$name.log" |
                grep -E "${summary:-.}" | tail -n 1)"
}

# nice_ stage ...: a stage that only needs CPU, not time (builds, valgrind), at a lower
# priority, so that the tests with timeouts beside it get a core whenever they want one.
nice_() {
        (
                renice -n 10 -p "$BASHPID" >/dev/null
                "$@"
        )
}

# await NAME: waits until stage NAME (in another lane) has ended; fails if it failed.
await() {
        while [ ! -e "$logs/$1.rc" ]; do sleep 0.5; done
        [ "$(cat "$logs/$1.rc")" = 0 ]
}

# ---- the stages

format_check() {
        local bad
        bad=$(git ls-files '*.c' '*.h' | xargs clang-format --dry-run -Werror 2>&1 | grep -c 'error:' || true)
        if [ "$bad" != "0" ]; then
                git ls-files '*.c' '*.h' | xargs clang-format --dry-run -Werror
                return 1
        fi
        echo "format: clean"
}

build() { # build DIR CMAKE_OPTION...
        local dir=$1
        shift
        cmake -S . -B "$dir" -DCJA_WERROR=ON "${launcher[@]}" "$@" >/dev/null
        cmake --build "$dir" -j"$jobs"
}

# run_ctest TREE COSTS CTEST_OPTION...: ctest in TREE, longest tests first from the last
# run's times (kept in the cache as COSTS; ctest keeps them in Testing/Temporary).
run_ctest() {
        local tree=$1 costs=$cache/connect-job-archiver/$2 rc=0
        shift 2
        mkdir -p "$tree/Testing/Temporary"
        [ -s "$tree/Testing/Temporary/CTestCostData.txt" ] || [ ! -s "$costs" ] ||
                cp "$costs" "$tree/Testing/Temporary/CTestCostData.txt"
        (cd "$tree" && ctest --output-on-failure --timeout 600 "$@") || rc=$?
        if [ "$rc" -eq 0 ]; then
                cp "$tree/Testing/Temporary/CTestCostData.txt" "$costs.$$"
                mv "$costs.$$" "$costs"
        fi
        return "$rc"
}

ctest_asan() {
        export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
        export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
        # Most of the integration tests wait (sockets, timeouts, kill loops): more at once
        # than there are cores.
        run_ctest build-asan ctest-cost-asan.txt -j"$((jobs + 1))"
}

ctest_tsan() {
        export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
        run_ctest build-tsan ctest-cost-tsan.txt -j"$jobs" \
                -R 'unit.test_(archive|gzpool|gzblock|logreader)|integration.test_(once|daemon|faults|search)'
}

# valgrind_one TEST: one unit test under valgrind, its output shown only when it fails.
valgrind_one() {
        local t=$1 start=$EPOCHREALTIME out
        out=$(mktemp)
        # PCRE2's JIT code reads past its subject on purpose (SIMD), which valgrind flags. A
        # test's forked child leaves with _exit(), its parent's heap unfreed: not a leak.
        # (valgrind 3.19 does not know openat2 and answers ENOSYS, so under it the archive
        # takes its one-folder-at-a-time walk: that path is checked here.)
        if CJA_GREP_NO_JIT=1 valgrind -q --child-silent-after-fork=yes --leak-check=full \
                --errors-for-leak-kinds=definite,indirect --error-exitcode=1 "$t" >/dev/null 2>"$out"; then
                printf '%s: clean in %s s\n' "${t##*/}" "$(since "$start")"
                rm -f "$out"
        else
                echo "${t##*/}: FAILED under valgrind:"
                cat "$out"
                rm -f "$out"
                return 1
        fi
}

# The unit tests under valgrind, two at a time, the slowest (by the last runs) first so that
# none is left alone at the end; tests not listed come after them.
valgrind_all() {
        local slow="test_gzblock test_archive test_gzpool test_grep test_logreader test_tail" t
        export -f valgrind_one since
        # shellcheck disable=SC2016 # "$1" is the inner bash's
        {
                for t in $slow; do [ -x "build/tests/$t" ] && echo "build/tests/$t"; done
                for t in build/tests/test_*; do
                        [ -x "$t" ] && [[ " $slow " != *" ${t##*/} "* ]] && echo "$t"
                done
        } | xargs -P"$jobs" -n1 bash -c 'valgrind_one "$1"' _ || {
                echo "valgrind: FAILED (above)"
                return 1
        }
        echo "valgrind: clean"
}

# The real-systemd test from a copy of this tree (tracked and untracked-but-not-ignored
# files, as scripts/package.sh copies it) and its .deb under /tmp: the container's /tmp is
# its own, so this checks that the test finds its checkout wherever it is.
systemd_test() {
        local dir rc=0
        dir=$(mktemp -d /tmp/cja-systemd.XXXXXX)
        mkdir -p "$dir/src/build-pkg"
        git ls-files -z --cached --others --exclude-standard |
                (while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done) |
                tar -cf - --null -T - | tar -xf - -C "$dir/src"
        cp build-pkg/connect-job-archiver_*.deb "$dir/src/build-pkg/"
        echo "from a copy of the checkout in $dir/src"
        (cd "$dir/src" && CJA_DEB_BUILT=1 exec python3 tests/systemd/test_systemd.py) || rc=$?
        rm -rf "$dir"
        if [ "$rc" -eq 77 ]; then
                echo "real-systemd test: SKIPPED (the reason is above)"
        elif [ "$rc" -ne 0 ]; then
                return "$rc"
        fi
}

# ---- the lanes

lane_asan() {
        set +m # the stages' jobs stay in the lane's process group
        summary='tests passed' stage ctest-asan ctest_asan
}

lane_tsan() {
        set +m
        nice_ stage build-tsan build build-tsan -DCJA_TSAN=ON -DCMAKE_BUILD_TYPE=Debug
        summary='tests passed' stage ctest-tsan ctest_tsan
}

lane_release() {
        set +m
        # -O3 finds -Wmaybe-uninitialized cases that -O2 does not; -g keeps valgrind's
        # traces useful.
        nice_ stage build-release build build -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS=-g
        nice_ stage valgrind valgrind_all
}

# The package, then the real systemd (mostly waiting on the container) beside the fuzzers.
lane_package() {
        local systemd
        set +m
        stage package scripts/package.sh
        summary='passed in|SKIPPED' stage systemd systemd_test &
        systemd=$!
        nice_ stage build-fuzz scripts/fuzz.sh --build-only
        stage fuzz scripts/fuzz.sh 20
        wait "$systemd"
}

stage format format_check
stage build-asan build build-asan -DCJA_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug

# Each lane in its own process group (set -m), so that a failure stops the others whole.
lanes=()
stop_lanes() {
        local p
        for p in "${lanes[@]}"; do kill -TERM -- "-$p" 2>/dev/null || true; done
        for p in "${lanes[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap 'stop_lanes' EXIT
trap 'exit 130' INT TERM
set -m
for lane in lane_asan lane_tsan lane_release lane_package; do
        "$lane" &
        lanes+=($!)
done
set +m

for _ in "${lanes[@]}"; do
        if ! wait -n; then
                say "a stage failed (its log is above); stopping the others"
                exit 1
        fi
done
lanes=()

say "all stages passed; times (s; the lanes ran at once, each lane's stages in turn):"
for s in format build-asan ctest-asan build-tsan ctest-tsan build-release valgrind package \
        systemd build-fuzz fuzz; do
        printf '    %-14s %6s\n' "$s" "$(cat "$logs/$s.time")"
done
say "suite: passed in $(since "$t0") s"
