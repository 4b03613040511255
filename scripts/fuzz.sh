#!/usr/bin/env bash
# Builds the libFuzzer targets in tests/fuzz with clang and runs each for a bounded time.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [LIBFUZZER_OPTION...]     (default 20 s per target)
#   scripts/fuzz.sh --build-only                       (builds build-fuzz/; scripts/test.sh)
#
# Each target starts from a copy of its seed corpus (tests/fuzz/corpus/<target>) in a
# temporary folder, so the committed corpus is never changed. Crashing inputs are kept in
# build-fuzz/artifacts/ and the script exits non-zero.
#
# A long run, keeping what the fuzzer learns in a folder of your choice between runs:
#
#   CJA_FUZZ_WORKDIR=$HOME/cja-fuzz scripts/fuzz.sh 3600
#
# tests/fuzz/README.md says how to fold new inputs or a crash back into the seed corpus.
set -euo pipefail
cd "$(dirname "$0")/.."

build_only=0
if [ "${1:-}" = --build-only ]; then
        build_only=1
        shift
fi
seconds=${1:-20}
[ $# -gt 0 ] && shift
case "$seconds" in
'' | *[!0-9]*)
        echo "usage: $0 [SECONDS_PER_TARGET] [LIBFUZZER_OPTION...]" >&2
        exit 2
        ;;
esac

scripts/deps.sh clang libclang-rt-14-dev
jobs=$(nproc)

if ! grep -q 'add_subdirectory(tests/fuzz)' CMakeLists.txt; then
        echo "the top CMakeLists.txt does not add tests/fuzz (option CJA_FUZZ)" >&2
        exit 1
fi

# ccache, when it is there, as in scripts/test.sh.
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache)

echo "== build (clang, libFuzzer + ASan + UBSan)"
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCJA_FUZZ=ON -DCJA_TESTS=OFF \
        -DCMAKE_BUILD_TYPE=Debug "${launcher[@]}" >/dev/null
cmake --build build-fuzz -j"$jobs" --target fuzz_config fuzz_connect fuzz_gzblock
[ "$build_only" -eq 0 ] || exit 0

work=${CJA_FUZZ_WORKDIR:-}
tmp=$(mktemp -d /tmp/cja-fuzz.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
[ -n "$work" ] || work=$tmp
artifacts=$PWD/build-fuzz/artifacts
mkdir -p "$artifacts"

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

# target  seed corpus  dictionary
targets=(
        "fuzz_config config config.dict"
        "fuzz_connect connect json.dict"
        "fuzz_gzblock gzblock gzblock.dict"
)
failed=()
for t in "${targets[@]}"; do
        read -r name corpus dict <<<"$t"
        dir=$work/$corpus
        mkdir -p "$dir"
        cp -n tests/fuzz/corpus/"$corpus"/* "$dir"/
        echo "== $name: ${seconds} s from $(find "$dir" -type f | wc -l) inputs in $dir"
        log=$tmp/$name.log
        fuzz=(build-fuzz/tests/fuzz/"$name" -max_total_time="$seconds" -timeout=10
                -rss_limit_mb=2048 -print_final_stats=1 -dict=tests/fuzz/"$dict"
                -artifact_prefix="$artifacts/$name-" "$@" "$dir")
        rc=0
        if [ "$seconds" -gt 60 ]; then
                "${fuzz[@]}" 2>&1 | tee "$log" || rc=${PIPESTATUS[0]}
        else
                "${fuzz[@]}" >"$log" 2>&1 || rc=$?
        fi
        if [ "$rc" -eq 0 ]; then
                grep -E '^#[0-9]+[[:space:]]+DONE|^stat::(average_exec_per_sec|new_units_added)' \
                        "$log" || true
        else
                tail -n 60 "$log"
                echo "$name FAILED (exit $rc); the input is in $artifacts/" >&2
                failed+=("$name")
        fi
done

if [ ${#failed[@]} -gt 0 ]; then
        echo "fuzz: crashes in ${failed[*]}" >&2
        exit 1
fi
echo "fuzz: clean"
