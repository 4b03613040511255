#!/usr/bin/env bash
# Compression alone, no HTTP and no files: zlib (the archiver before blocks) against
# libdeflate in gzblock members (the archiver now), per level and per block size, on the
# benchmark's logs. Prints the Markdown tables of bench/README.md ("Level mapping", "Block
# size"). CPU is one thread's time, best of 3 passes, so other work on the machine distorts
# it less than wall time.
#
#   bench/compress.sh            # uses (or makes) the tree of run.sh in bench/work
#
# Environment: BENCH_WORK, BENCH_ITEMS, BENCH_JOBS, BENCH_SEED as for run.sh.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
work=${BENCH_WORK:-$here/work}
items=${BENCH_ITEMS:-40}
jobs_per=${BENCH_JOBS:-50}
seed=${BENCH_SEED:-1}
tree=$work/tree-compress

bash "$repo/scripts/deps.sh" >/dev/null
mkdir -p "$work"
bin=$work/compress_levels
cc -O2 -std=c11 -D_GNU_SOURCE -I"$repo/include/core" -I"$repo/include/archive" -o "$bin" "$here/compress_levels.c" \
        "$repo/src/archive/gzblock.c" -lz -ldeflate

if [ -f "$work/tree/manifest.json" ]; then
        tree=$work/tree # run.sh's
elif [ ! -f "$tree/manifest.json" ]; then
        echo "== generating $tree" >&2
        python3 "$here/gen_tree.py" "$tree" --items "$items" --jobs-per-item "$jobs_per" \
                --idle-items 0 --big-log-gb 0 --seed "$seed" >&2
fi
python3 -c 'import json,sys
m=json.load(open(sys.argv[1]+"/manifest.json"))["sets"]["main"]
for it in m["items"]:
    for j in it["jobs"]:
        print(sys.argv[1]+"/"+j["log"])' "$tree" >"$work/compress-files.txt"
if [ ! -f "$work/compress-one.bin" ]; then
        xargs -d '\n' cat <"$work/compress-files.txt" >"$work/compress-one.bin"
fi
echo "$work/compress-one.bin" >"$work/compress-one.txt"
nfiles=$(wc -l <"$work/compress-files.txt")

pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.1f %%", 100 * (a / b - 1) }'; }
mbf() { awk -v a="$1" 'BEGIN { printf "%.2f", a / 1e6 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

echo "Load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "### Level mapping: $nfiles logs, each compressed on its own"
echo
echo "| compression_level | zlib MB | zlib CPU s | libdeflate level | blocked MB | blocked CPU s | size vs zlib | CPU vs zlib |"
echo "|--:|--:|--:|--:|--:|--:|--:|--:|"
for l in 1 2 3 4 5 6 7 8 9; do
        read -r _ zo zc < <("$bin" zlib "$l" "$work/compress-files.txt")
        read -r _ bo bc < <("$bin" blocked "$l" 262144 "$work/compress-files.txt")
        dl=$(grep -o "level_map\[10\] = {[^}]*}" "$repo/src/archive/gzblock.c" | tr -d '{}' |
                awk -v l="$l" -F', *' '{ split($0, a, "= "); split(a[2], m, ", *"); print m[l + 1] }')
        echo "| $l | $(mbf "$zo") | $zc | $dl | $(mbf "$bo") | $bc | $(pct "$bo" "$zo") | $(ratio "$bc" "$zc")× |"
done
echo
echo "### Block size, level 6 (libdeflate 5)"
echo
read -r in1 z1 zc1 < <("$bin" zlib 6 "$work/compress-files.txt")
read -r in2 z2 zc2 < <("$bin" zlib 6 "$work/compress-one.txt")
echo "zlib level 6 in one stream: the $nfiles logs $(mbf "$z1") MB ($zc1 s); all of them as one $(mbf "$in2") MB log $(mbf "$z2") MB ($zc2 s)."
echo
echo "| block | $nfiles logs MB | vs zlib | CPU s | one $(mbf "$in2") MB log MB | vs zlib | CPU s |"
echo "|--:|--:|--:|--:|--:|--:|--:|"
for b in 65536 131072 262144 524288 1048576; do
        read -r _ o1 c1 < <("$bin" blocked 6 "$b" "$work/compress-files.txt")
        read -r _ o2 c2 < <("$bin" blocked 6 "$b" "$work/compress-one.txt")
        echo "| $((b / 1024)) KiB | $(mbf "$o1") | $(pct "$o1" "$z1") | $c1 | $(mbf "$o2") | $(pct "$o2" "$z2") | $c2 |"
done
