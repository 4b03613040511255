#!/usr/bin/env bash
# Builds the search benchmark's archive with the archiver itself: gen_tree.py lays out
# ITEMS x JOBS finalized jobs, nginx serves them (bench/serve.sh), connect-job-archiver
# --once archives them. Reused when made with the same options.
#
#   bench/search/make_archive.sh WORK      # WORK/archive, WORK/config.yaml
#
# Environment: BENCH_ITEMS (160), BENCH_JOBS (50 per item), BENCH_SEED (1), BENCH_TREE_ARGS
# (more gen_tree.py options, e.g. "--median-kb 8 --sigma 1.2 --max-mb 4"), ARCHIVER (the
# binary; default build-bench/connect-job-archiver, built Release when missing).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
bench=$(cd "$here/.." && pwd)
repo=$(cd "$bench/.." && pwd)
work=${1:?usage: make_archive.sh WORK}
items=${BENCH_ITEMS:-160}
jobs_per=${BENCH_JOBS:-50}
seed=${BENCH_SEED:-1}
say() { printf '== %s\n' "$*" >&2; }

bash "$repo/scripts/deps.sh" nginx python3
archiver=${ARCHIVER:-$repo/build-bench/connect-job-archiver}
if [ ! -x "$archiver" ]; then
        say "building connect-job-archiver (Release)"
        cmake -S "$repo" -B "$repo/build-bench" -DCMAKE_BUILD_TYPE=Release -DCJA_TESTS=OFF >/dev/null
        cmake --build "$repo/build-bench" -j2 --target connect-job-archiver >/dev/null
fi

mkdir -p "$work"
work=$(cd "$work" && pwd)
args="--items $items --jobs-per-item $jobs_per --idle-items 0 --big-log-gb 0 --seed $seed"
args="$args${BENCH_TREE_ARGS:+ $BENCH_TREE_ARGS}"
if [ -f "$work/archive.args" ] && [ "$(cat "$work/archive.args")" = "$args" ]; then
        say "reusing $work/archive"
        exit 0
fi
rm -rf "$work/tree" "$work/archive" "$work/archive.args"
say "generating the tree ($args)"
# shellcheck disable=SC2086
python3 "$bench/gen_tree.py" "$work/tree" $args

key=bench-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
"$bench/serve.sh" stop "$work/nginx" 2>/dev/null || true
url=$("$bench/serve.sh" start "$work/tree" "$work/nginx" "$key")
trap '"$bench/serve.sh" stop "$work/nginx"' EXIT
(umask 077; printf '%s\n' "$key" >"$work/api-key")
{
        echo "server:"
        echo "  url: $url"
        echo "  api_key_file: $work/api-key"
        echo "archive:"
        echo "  directory: $work/archive"
        echo "content:"
        i=0
        while read -r g; do
                # Every other item gets a name, so both spellings of --content are exercised.
                if [ $((i % 2)) -eq 0 ]; then
                        printf '  - guid: %s\n    name: item-%03d\n' "$g" "$i"
                else
                        printf '  - %s\n' "$g"
                fi
                i=$((i + 1))
        done <"$work/tree/sets/main.guids"
} >"$work/config.yaml"
say "archiving"
"$archiver" -c "$work/config.yaml" --once 2>"$work/archiver.log" || {
        tail -5 "$work/archiver.log" >&2
        exit 1
}
rm -rf "$work/tree/logs" "$work/tree/errors"
echo "$args" >"$work/archive.args"
say "archive: $(find "$work/archive" -name '*.json' ! -name '*.error.json' | wc -l) jobs, $(du -sh "$work/archive" | cut -f1)"
