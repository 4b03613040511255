#!/usr/bin/env bash
# The search benchmark: the same queries over the same archive with connect-jobs search and
# ls (with its catalog, and with CJA_CATALOG=0: a full scan), ugrep -z -r, rg -z and zgrep;
# wall time, CPU, peak RSS and output lines of each, side by side in one run; then the
# catalog's size. See bench/search/README.md.
#
#   bench/search/run.sh            # builds the archive first (make_archive.sh) when missing
#   BENCH_WORK=bench/work-search-200k BENCH_ITEMS=4000 \
#     BENCH_TREE_ARGS="--median-kb 8 --sigma 1.3 --max-mb 4" bench/search/run.sh
#
# Environment: BENCH_WORK (default bench/work-search), RUNS (5; zgrep runs once), SEARCH
# (the connect-jobs binary; default build-rel/connect-jobs, built Release when missing),
# ZGREP_TIMEOUT (seconds per zgrep run, 300; a run cut short prints "timeout"), OTHERS (the
# other tools run, "ugrep rg zgrep"; rg -z runs a gzip per file and zgrep is slower still, so
# on the 200,000-job archive "ugrep" alone).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
work=${BENCH_WORK:-$repo/bench/work-search}
runs=${RUNS:-5}
search=${SEARCH:-$repo/build-rel/connect-jobs}
zto=${ZGREP_TIMEOUT:-300}
others=${OTHERS-ugrep rg zgrep}

"$here/make_archive.sh" "$work"
if [ ! -x "$search" ]; then
        cmake -S "$repo" -B "$repo/build-rel" -DCMAKE_BUILD_TYPE=Release -DCJA_TESTS=OFF >/dev/null
        cmake --build "$repo/build-rel" -j2 --target connect-jobs >/dev/null
fi
work=$(cd "$work" && pwd)
cfg=$work/config.yaml
arch=$work/archive
cd "$work"
# Warm the page cache: every contender then reads from memory.
find "$arch" -type f -exec cat {} + >/dev/null

# One item, one day: the first named item's busiest day.
item=item-000
item_guid=$(awk '/name: item-000$/ {print prev} {prev=$3}' "$cfg")
day=$(ls -d "$arch/$item_guid"/*/*/* | while read -r d; do echo "$(ls "$d" | wc -l) $d"; done |
      sort -rn | head -1 | awk '{print $2}' | sed "s|$arch/$item_guid/||; s|/|-|g")
week_until=$(cd "$arch" && find . -mindepth 4 -maxdepth 4 -type d ! -path './.*' | cut -d/ -f3- |
             sort -u | tail -1 | tr / -)
# Selective literals from the archive itself: a session id of a request line (a request id)
# and a job key (as the log's preamble names it), both of item-000's busiest day.
daydir=$arch/$item_guid/${day//-//}
sid=$(zcat "$arch/$item_guid"/*/*/*/*.log.gz 2>/dev/null | grep -o '/session/[a-z0-9]\{32\}' |
      head -1 | cut -d/ -f3) || true
[ -n "$sid" ] || { echo "no request line in $item's logs" >&2; exit 1; }
jobkey=$(ls "$daydir" | grep -v error | grep json | head -1 | sed 's/\.json$//')

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# run NAME N CMD...: prints "| NAME | wall median | CPU median | RSS MB max | lines |". The
# output goes through wc -l: ugrep stops early when its output is /dev/null. CPU (user +
# system of the whole pipeline) says more than wall while the machine is shared.
run() {
        local name=$1 n=$2; shift 2
        local walls=() cpus=() rss=0 lines=0 i out r
        for i in $(seq "$n"); do
                out=$( { /usr/bin/time -f '%e %U %S %M' -o "$work/time.txt" bash -c "$* | wc -l" ; } 2>/dev/null)
                lines=$out
                walls+=("$(cut -d' ' -f1 "$work/time.txt")")
                cpus+=("$(awk '{print $2 + $3}' "$work/time.txt")")
                r=$(cut -d' ' -f4 "$work/time.txt")
                [ "$r" -gt "$rss" ] && rss=$r
        done
        printf '| %s | %s | %s | %.1f | %s |\n' "$name" "$(printf '%s\n' "${walls[@]}" | median)" \
                "$(printf '%s\n' "${cpus[@]}" | median)" "$(echo "$rss / 1024" | bc -l)" "$lines"
}
# zgrep: once, cut at ZGREP_TIMEOUT seconds.
run_zgrep() {
        local name=$1 cmd=$2 s e
        s=$(date +%s.%N)
        if out=$(timeout "$zto" bash -c "$cmd | wc -l"); then
                e=$(date +%s.%N)
                printf '| %s | %.2f | - | - | %s |\n' "$name" "$(echo "$e - $s" | bc)" "$out"
        else
                printf '| %s | timeout (%s s) | - | - | - |\n' "$name" "$zto"
        fi
}

printf 'archive: %s jobs, %s of logs in gzip (%s files), catalog %s\n' \
        "$(find "$arch" -name '*.json' ! -name '*.error.json' | wc -l)" \
        "$(find "$arch" -name '*.log.gz' -printf '%s\n' | awk '{s+=$1} END {printf "%.1f MB", s/1e6}')" \
        "$(find "$arch" -name '*.log.gz' | wc -l)" \
        "$(du -sb "$arch/.catalog" | awk '{printf "%.1f MB", $1/1e6}')"
printf 'load before: %s\n' "$(uptime)"
echo
echo "| query | tool | wall s (median of $runs) | CPU s | peak RSS MB | lines |"
echo "|---|---|--:|--:|--:|--:|"
q() { # LABEL PATTERN
        local label=$1 pat=$2
        run "$label | connect-jobs search (catalog)" "$runs" "$search -c $cfg search --color=never -e '$pat'"
        run "$label | connect-jobs search (CJA_CATALOG=0)" "$runs" "CJA_CATALOG=0 $search -c $cfg search --color=never -e '$pat'"
        case " $others " in *" ugrep "*)
                run "$label | ugrep -z -r" "$runs" "ugrep -z -r --include='*.log.gz' -e '$pat' $arch" ;;
        esac
        case " $others " in *" rg "*)
                run "$label | rg -z" "$runs" "rg -z -g '*.log.gz' -e '$pat' $arch" ;;
        esac
        case " $others " in *" zgrep "*)
                run_zgrep "$label | zgrep" "find $arch -name '*.log.gz' -exec zgrep -E -H -e '$pat' {} +" ;;
        esac
}
q "request id \`$sid\`" "$sid"
q "absent \`zqxjkvbwpf\`" 'zqxjkvbwpf'
q "job key \`$jobkey\`" "$jobkey"
q "literal \`Error in mutate\`" 'Error in mutate'
q "regex \`object .[a-z_]+. not found\`" 'object .[a-z_]+. not found'
q "frequent \`GET /health\`" 'GET /health'
q "broad \`Running on host\` (every log)" 'Running on host'
run "one item, one day ($item $day) | connect-jobs search" "$runs" \
        "$search -c $cfg search --content $item --since $day --until $day -e Error"
run "--failed over a week (until $week_until) | connect-jobs search" "$runs" \
        "$search -c $cfg search --failed --since \$(date -d '$week_until -6 days' +%F) --until $week_until -e Error"
run "ls --failed, all | connect-jobs ls (catalog)" "$runs" "$search -c $cfg ls --failed"
run "ls --failed, all | connect-jobs ls (CJA_CATALOG=0)" "$runs" "CJA_CATALOG=0 $search -c $cfg ls --failed"
run "ls, all | connect-jobs ls (catalog)" "$runs" "$search -c $cfg ls"
echo
printf 'load after: %s\n' "$(uptime)"
