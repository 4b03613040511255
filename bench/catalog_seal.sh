#!/usr/bin/env bash
# The daemon's peak RSS while it seals a 4,096-job open segment: gen_tree.py lays out 84 x 50
# finalized jobs (the search benchmark's kind of logs), nginx serves them, and each archiver
# given archives them all with --once (a seal at job 4,096), catalog off and on, alternating,
# RUNS times each; wall, CPU (user + system) and peak RSS (GNU time) per run. MODES (default
# "0 1"): 0 catalog off, 1 on, noseal on but never sealed (what the catalog costs before
# sealing).
#
#   bench/catalog_seal.sh ARCHIVER...      # e.g. an old and a new Release build
#
# Environment: BENCH_WORK (default bench/work-seal), RUNS (3).
set -euo pipefail

bench=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$bench/.." && pwd)
work=${BENCH_WORK:-$repo/bench/work-seal}
runs=${RUNS:-3}
[ $# -gt 0 ] || { echo "usage: catalog_seal.sh ARCHIVER..." >&2; exit 2; }

mkdir -p "$work"
work=$(cd "$work" && pwd)
if [ ! -f "$work/tree/params.json" ]; then
        python3 "$bench/gen_tree.py" "$work/tree" --items 84 --jobs-per-item 50 --idle-items 0 \
                --big-log-gb 0 --seed 3 >&2
fi
key=bench-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
"$bench/serve.sh" stop "$work/nginx" 2>/dev/null || true
url=$("$bench/serve.sh" start "$work/tree" "$work/nginx" "$key")
trap '"$bench/serve.sh" stop "$work/nginx"' EXIT
(umask 077; printf '%s\n' "$key" >"$work/api-key")

printf 'load before: %s\n' "$(uptime)"
echo "| archiver | catalog | wall s | CPU s | peak RSS MB |"
echo "|---|---|--:|--:|--:|"
for run in $(seq "$runs"); do
        for bin in "$@"; do
                for mode in ${MODES:-0 1}; do
                        cat=1 seal=
                        [ "$mode" = 0 ] && cat=0
                        [ "$mode" = noseal ] && seal=1000000
                        rm -rf "$work/archive"
                        {
                                echo "server:"
                                echo "  url: $url"
                                echo "  api_key_file: $work/api-key"
                                echo "archive:"
                                echo "  directory: $work/archive"
                                echo "content:"
                                sed 's/^/  - /' "$work/tree/sets/main.guids"
                        } >"$work/config.yaml"
                        CJA_CATALOG=$cat CJA_CATALOG_SEAL_JOBS=$seal /usr/bin/time -f '%e %U %S %M' -o "$work/time.txt" \
                                "$bin" -c "$work/config.yaml" --once 2>"$work/archiver.log" || {
                                tail -3 "$work/archiver.log" >&2
                                exit 1
                        }
                        if [ "$mode" = 1 ] && ! ls "$work/archive/.catalog/"L0-*.cat >/dev/null 2>&1; then
                                echo "no segment was sealed" >&2
                                exit 1
                        fi
                        read -r w u s m <"$work/time.txt"
                        printf '| %s | %s | %s | %s | %.1f |\n' "$bin" "$mode" "$w" \
                                "$(echo "$u + $s" | bc)" "$(echo "$m / 1024" | bc -l)"
                done
        done
done
printf 'load after: %s\n' "$(uptime)"
