#!/usr/bin/env bash
# The search benchmark: the same queries over the same archive with connect-jobs
# ls/search, ugrep -z -r, rg -z and zgrep; wall time, peak RSS and matched lines of each.
# See bench/search/README.md.
#
#   bench/search/run.sh            # builds the archive first (make_archive.sh) when missing
#
# Environment: BENCH_WORK (default bench/work-search), RUNS (5; zgrep runs once), SEARCH
# (the connect-jobs binary; default build-rel/connect-jobs, built Release when missing).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
work=${BENCH_WORK:-$repo/bench/work-search}
runs=${RUNS:-5}
search=${SEARCH:-$repo/build-rel/connect-jobs}

"$here/make_archive.sh" "$work"
if [ ! -x "$search" ]; then
        cmake -S "$repo" -B "$repo/build-rel" -DCMAKE_BUILD_TYPE=Release -DCJA_TESTS=OFF >/dev/null
        cmake --build "$repo/build-rel" -j2 --target connect-jobs >/dev/null
fi
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
week_until=$(ls -d "$arch"/*/*/*/* | sed "s|$arch/[^/]*/||" | sort -u | tail -1 | tr / -)

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

printf 'load before: %s\n' "$(uptime)"
echo
echo "| query | tool | wall s (median of $runs) | CPU s | peak RSS MB | lines |"
echo "|---|---|--:|--:|--:|--:|"
q() { # LABEL PATTERN
        local label=$1 pat=$2
        run "$label | connect-jobs search" "$runs" "$search -c $cfg search --color=never -e '$pat'"
        run "$label | ugrep -z -r" "$runs" "ugrep -z -r --include='*.log.gz' -e '$pat' $arch"
        run "$label | rg -z" "$runs" "rg -z -g '*.log.gz' -e '$pat' $arch"
        run "$label | zgrep" 1 "find $arch -name '*.log.gz' -exec zgrep -E -H -e '$pat' {} +"
}
q "literal \`Error in mutate\`" 'Error in mutate'
q "regex \`object .[a-z_]+. not found\`" 'object .[a-z_]+. not found'
q "frequent \`GET /health\`" 'GET /health'
run "one item, one day ($item $day) | connect-jobs search" "$runs" \
        "$search -c $cfg search --content $item --since $day --until $day -e Error"
run "one item, one day ($item $day) | zgrep" 1 \
        "zgrep -H -e Error $arch/$item_guid/${day//-//}/*.log.gz"
run "--failed over a week (until $week_until) | connect-jobs search" "$runs" \
        "$search -c $cfg search --failed --since \$(date -d '$week_until -6 days' +%F) --until $week_until -e Error"
run "ls --failed, all | connect-jobs ls" "$runs" "$search -c $cfg ls --failed"
run "ls, all | connect-jobs ls" "$runs" "$search -c $cfg ls"
echo
printf 'load after: %s\n' "$(uptime)"
