#!/usr/bin/env bash
# Benchmarks connect-job-archiver against a sequential Python script, a curl+jq+gzip shell
# script and the gzip -6 floor, all archiving the same static tree served by nginx.
# See bench/README.md. Prints a Markdown table and writes it to bench/results-<date>.md.
#
#   bench/run.sh             # the default size: 40 items x 50 jobs, 3 runs each
#   SMOKE=1 bench/run.sh     # tiny and fast, to check the harness itself
#
# Environment: BENCH_ITEMS, BENCH_JOBS (per item), BENCH_RUNS, BENCH_CURL_RUNS,
# BENCH_IDLE_ITEMS, BENCH_BIG_GB (0 skips the big-log run), BENCH_BIG_RUNS (default
# BENCH_RUNS), BENCH_SEED, BENCH_WORK (work folder, default bench/work), BENCH_CONTENDERS
# (space-separated subset of: cja-l6 cja-l1 cja-l6-1cpu requests curl floor, plus base-l6
# with BENCH_BASELINE), BENCH_BASELINE (a git revision: also build the archiver as of that
# revision and run it beside this one, "before/after" in one run), BENCH_OUT (results file).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)

if [ "${SMOKE:-0}" = 1 ]; then
        : "${BENCH_ITEMS:=4}" "${BENCH_JOBS:=5}" "${BENCH_RUNS:=1}" "${BENCH_IDLE_ITEMS:=20}"
        : "${BENCH_BIG_GB:=0.01}"
        : "${BENCH_WORK:=$here/work-smoke}"
fi
items=${BENCH_ITEMS:-40}
jobs_per=${BENCH_JOBS:-50}
runs=${BENCH_RUNS:-3}
curl_runs=${BENCH_CURL_RUNS:-$runs}
idle_items=${BENCH_IDLE_ITEMS:-1000}
big_gb=${BENCH_BIG_GB:-1}
seed=${BENCH_SEED:-1}
work=${BENCH_WORK:-$here/work}
baseline=${BENCH_BASELINE:-}
big_runs=${BENCH_BIG_RUNS:-$runs}
contenders=${BENCH_CONTENDERS:-"cja-l6 ${baseline:+base-l6 }cja-l1 cja-l6-1cpu requests curl floor"}
out=${BENCH_OUT:-$here/results-$(date -u +%Y-%m-%d)$([ "${SMOKE:-0}" != 1 ] || echo -smoke).md}
api_key=bench-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')

say() { printf '== %s\n' "$*" >&2; }

# --- 1. Packages: the archiver's build dependencies plus what the contenders use. ----------
say "checking packages"
bash "$repo/scripts/deps.sh" nginx python3-requests jq curl time gzip coreutils util-linux
pybin=/usr/bin/python3           # Debian's, where python3-requests lives
timebin=/usr/bin/time
archiver=$repo/build-bench/connect-job-archiver

# --- 2. Build the archiver (Release). ------------------------------------------------------
say "building connect-job-archiver (Release)"
cmake -S "$repo" -B "$repo/build-bench" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$repo/build-bench" -j"$(nproc)" --target connect-job-archiver >/dev/null
built_rev="$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$repo" diff --quiet HEAD -- src include CMakeLists.txt 2>/dev/null || echo '+local changes')"
base_archiver=
if [ -n "$baseline" ]; then
        # The same build of the tree as it was at $baseline, from git (no checkout needed).
        base_rev=$(git -C "$repo" rev-parse --short "$baseline")
        say "building connect-job-archiver at $base_rev (Release), the baseline"
        # One source and build folder per revision: git archive gives the files the commit's
        # time, older than objects built from another revision, which make would then keep.
        base_src=$work/baseline-$base_rev/src
        if [ ! -x "$work/baseline-$base_rev/build/connect-job-archiver" ]; then
                rm -rf "$work/baseline-$base_rev"
                mkdir -p "$base_src"
                git -C "$repo" archive "$baseline" | tar -x -C "$base_src"
                cmake -S "$base_src" -B "$work/baseline-$base_rev/build" \
                        -DCMAKE_BUILD_TYPE=Release -DCJA_TESTS=OFF >/dev/null
                cmake --build "$work/baseline-$base_rev/build" -j"$(nproc)" \
                        --target connect-job-archiver >/dev/null
        fi
        base_archiver=$work/baseline-$base_rev/build/connect-job-archiver
fi

# --- 3. The tree (reused when made with the same options). ---------------------------------
mkdir -p "$work"
tree=$work/tree
gen_args=(--items "$items" --jobs-per-item "$jobs_per" --idle-items "$idle_items"
          --big-log-gb "$big_gb" --seed "$seed")
if [ -f "$tree/manifest.json" ] && [ "$(cat "$work/tree.args" 2>/dev/null)" = "${gen_args[*]}" ]; then
        say "reusing $tree"
else
        say "generating $tree (${gen_args[*]})"
        rm -f "$work/tree.args" "$work/floor.bin"
        "$pybin" "$here/gen_tree.py" "$tree" "${gen_args[@]}"
        echo "${gen_args[*]}" >"$work/tree.args"
fi

# --- 4. nginx. ------------------------------------------------------------------------------
srv=$work/nginx
"$here/serve.sh" stop "$srv" 2>/dev/null || true
url=$("$here/serve.sh" start "$tree" "$srv" "$api_key")
trap '"$here/serve.sh" stop "$srv"' EXIT
say "nginx at $url"
keyfile=$work/api-key
(umask 077; printf '%s\n' "$api_key" >"$keyfile")
chmod 600 "$keyfile"
clk_tck=$(getconf CLK_TCK)

# Seconds of CPU the nginx workers have used so far. The workers are looked up each time: a
# worker that died or was replaced (a stray reload signal) must not stop the benchmark; the
# run it happened in then shows too little nginx CPU.
nginx_cpu() {
        local t=0 p c
        for p in $(pgrep -P "$(cat "$srv/nginx.pid")"); do
                c=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null) || continue
                t=$((t + ${c:-0}))
        done
        awk -v t="$t" -v h="$clk_tck" 'BEGIN { printf "%.3f", t / h }'
}

write_config() { # NAME SET LEVEL ARCHIVE_DIR
        local f=$work/$1.yaml
        {
                echo "server:"
                echo "  url: $url"
                echo "  api_key_file: $keyfile"
                echo "archive:"
                echo "  directory: $4"
                echo "  compression_level: $3"
                echo "content:"
                sed 's/^/  - /' "$tree/sets/$2.guids"
        } >"$f"
}

# Bytes and jobs of a set, from the manifest.
set_stats() { # SET -> "jobs bytes"
        "$pybin" -c 'import json,sys
m=json.load(open(sys.argv[1]))["sets"][sys.argv[2]]
js=[j for it in m["items"] for j in it["jobs"]]
print(len(js), sum(j["log_bytes"] for j in js))' "$tree/manifest.json" "$1"
}
read -r main_jobs main_bytes < <(set_stats main)

# The floor's input: every log of the main set as one stream.
if [ ! -f "$work/floor.bin" ]; then
        "$pybin" -c 'import json,sys,shutil
m=json.load(open(sys.argv[1]+"/manifest.json"))["sets"]["main"]
with open(sys.argv[2],"wb") as out:
    for it in m["items"]:
        for j in it["jobs"]:
            with open(sys.argv[1]+"/"+j["log"],"rb") as f: shutil.copyfileobj(f,out)' \
                "$tree" "$work/floor.bin"
fi
say "warming the page cache"
find "$tree" -type f ! -path "*/logs/*" -exec cat {} + >/dev/null
cat "$work/floor.bin" >/dev/null
for g in $(cat "$tree/sets/main.guids" "$tree/sets/idle.guids" 2>/dev/null); do
        cat "$tree/logs/$g"/*.log >/dev/null
done

results=$work/results.tsv
printf 'group\tcontender\trun\trc\twall\tuser\tsys\trss_kb\tnginx_cpu\tarchive_bytes\tjobs\tlog_bytes\tverify\n' >"$results"
logs=$work/logs
rm -rf "$logs"
mkdir -p "$logs"
failures=0

# measure GROUP CONTENDER RUN JOBS BYTES VERIFY_SET -- command...
# Runs the command under /usr/bin/time into a fresh empty archive, then verifies it.
measure() {
        local group=$1 name=$2 run=$3 njobs=$4 nbytes=$5 vset=$6
        shift 7
        local log=$logs/$group-$name-$run.log tf=$logs/$group-$name-$run.time
        local rc=0 n0 n1 abytes=0 verdict=-
        sync
        n0=$(nginx_cpu)
        "$timebin" -f '%e %U %S %M' -o "$tf" "$@" >"$log" 2>&1 || rc=$?
        n1=$(nginx_cpu)
        local t
        t=$(tail -1 "$tf")
        if [ -d "$archive" ]; then
                abytes=$(find "$archive" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')
        fi
        if [ "$vset" != - ]; then
                if verdict=$("$pybin" "$here/verify.py" "$tree" "$vset" "$archive" 2>>"$log"); then
                        verdict=ok
                else
                        verdict=FAILED
                        failures=$((failures + 1))
                fi
        fi
        [ "$rc" -eq 0 ] || { failures=$((failures + 1)); say "$name run $run exited $rc; see $log"; }
        read -r w u s m <<<"$t"
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$group" "$name" "$run" "$rc" \
                "$w" "$u" "$s" "$m" "$(awk -v a="$n0" -v b="$n1" 'BEGIN { printf "%.2f", b - a }')" \
                "$abytes" "$njobs" "$nbytes" "$verdict" >>"$results"
        say "$(printf '%-12s run %s: wall %6ss  cpu %6.2fs  rss %6s KiB  %s' "$name" "$run" "$w" \
                "$(awk -v u="$u" -v s="$s" 'BEGIN { print u + s }')" "$m" "$verdict")"
}

# Every run writes into a new empty folder, and all of them are removed only at the end.
# Removing the previous run's archive right before the next run would make that run pay for
# it: ext4 without a journal skips inodes deleted in the last 60-300 s when it allocates new
# ones, and with thousands of such inodes every file creation gets much slower (measured on
# such a VM: +1.2 s of system time for the archiver's 2,000 jobs), for every contender alike.
archives=$work/archives
rm -rf "$archives"
mkdir -p "$archives"
fresh_archive() { # NAME
        archive=$archives/$1
        rm -rf "$archive"
        mkdir -p "$archive"
}
archive=$archives/none

run_contender() { # NAME RUN
        local name=$1 r=$2
        case $name in
        cja-l6) fresh_archive "$name-$r"
                write_config main main 6 "$archive"
                measure main "$name" "$r" "$main_jobs" "$main_bytes" main -- \
                        "$archiver" -c "$work/main.yaml" --once ;;
        base-l6) [ -n "$base_archiver" ] || { echo "base-l6 needs BENCH_BASELINE" >&2; exit 2; }
                fresh_archive "$name-$r"
                write_config main main 6 "$archive"
                measure main "$name" "$r" "$main_jobs" "$main_bytes" main -- \
                        "$base_archiver" -c "$work/main.yaml" --once ;;
        cja-l1) fresh_archive "$name-$r"
                write_config main main 1 "$archive"
                measure main "$name" "$r" "$main_jobs" "$main_bytes" main -- \
                        "$archiver" -c "$work/main.yaml" --once ;;
        cja-l6-1cpu) fresh_archive "$name-$r"
                write_config main main 6 "$archive"
                measure main "$name" "$r" "$main_jobs" "$main_bytes" main -- \
                        taskset -c 0 "$archiver" -c "$work/main.yaml" --once ;;
        requests) fresh_archive "$name-$r"
                measure main "$name" "$r" "$main_jobs" "$main_bytes" main -- \
                        "$pybin" "$here/contenders/archive_requests.py" --server "$url" \
                        --api-key-file "$keyfile" --dir "$archive" --level 6 \
                        "$tree/sets/main.guids" ;;
        curl)   [ "$r" -le "$curl_runs" ] || return 0
                fresh_archive "$name-$r"
                measure main "$name" "$r" "$main_jobs" "$main_bytes" main -- \
                        "$here/contenders/archive_curl.sh" "$url" "$keyfile" "$archive" 6 \
                        "$tree/sets/main.guids" ;;
        floor)  archive=$archives/none
                measure main "$name" "$r" "$main_jobs" "$main_bytes" - -- \
                        sh -c 'exec gzip -6 -c "$1" >/dev/null' sh "$work/floor.bin" ;;
        *)      echo "unknown contender $name" >&2; exit 2 ;;
        esac
}

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
# --- 5. The contenders, alternating: run 1 of each, then run 2 of each, ... -----------------
say "main set: $main_jobs jobs, $main_bytes bytes of logs; $runs runs each"
for r in $(seq "$runs"); do
        for c in $contenders; do
                run_contender "$c" "$r"
        done
done

# --- 6. Idle cycle: 1,000 items whose jobs are all archived already. -----------------------
if [ -f "$tree/sets/idle.guids" ]; then
        read -r idle_jobs idle_bytes < <(set_stats idle)
        fresh_archive idle
        write_config idle idle 6 "$archive"
        say "idle set: first pass archives $idle_jobs jobs"
        measure idle first-pass 1 "$idle_jobs" "$idle_bytes" idle -- \
                "$archiver" -c "$work/idle.yaml" --once
        for r in $(seq "$runs"); do
                measure idle idle-cycle "$r" 0 0 - -- "$archiver" -c "$work/idle.yaml" --once
                grep -q ' 0 jobs archived, 0 failed' "$logs/idle-idle-cycle-$r.log" || {
                        say "idle cycle $r archived or failed something; see $logs/idle-idle-cycle-$r.log"
                        failures=$((failures + 1)); }
        done
fi

# --- 7. One 1 GB log: wall on every core, and the archiver's peak RSS. ----------------------
# Alternating as above: the archiver, the baseline (with BENCH_BASELINE), and gzip -6 over the
# same file (the single-core floor for this log).
if [ -f "$tree/sets/big.guids" ] && [ "$big_runs" -gt 0 ]; then
        read -r big_jobs big_bytes < <(set_stats big)
        big_log=$(ls "$tree/logs/$(cat "$tree/sets/big.guids")"/*.log)
        cat "$big_log" >/dev/null
        say "big set: one log of $big_bytes bytes; $big_runs runs each"
        for r in $(seq "$big_runs"); do
                fresh_archive "big-$r"
                write_config big big 6 "$archive"
                measure big cja-l6 "$r" "$big_jobs" "$big_bytes" big -- \
                        "$archiver" -c "$work/big.yaml" --once
                if [ -n "$base_archiver" ]; then
                        fresh_archive "big-base-$r"
                        write_config big big 6 "$archive"
                        measure big base-l6 "$r" "$big_jobs" "$big_bytes" big -- \
                                "$base_archiver" -c "$work/big.yaml" --once
                fi
                archive=$archives/none
                measure big floor "$r" "$big_jobs" "$big_bytes" - -- \
                        sh -c 'exec gzip -6 -c "$1" >/dev/null' sh "$big_log"
        done
fi

# --- 8. The report. -------------------------------------------------------------------------
dev=$(df --output=source "$work" | tail -1)
blk=$(basename "$(readlink -f "$dev")")
rota=$(cat "/sys/block/$blk/queue/rotational" 2>/dev/null || echo "?")
machine=$work/machine.txt
{
        echo "nproc=$(nproc)"
        echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
        echo "mem=$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
        echo "kernel=$(uname -r)"
        echo "os=$(. /etc/os-release && echo "$PRETTY_NAME")"
        echo "disk=$dev ($(findmnt -no FSTYPE -T "$work" 2>/dev/null || stat -f -c %T "$work"), rotational=$rota, journal: $(cat "/sys/fs/ext4/$blk/journal_task" 2>/dev/null || echo '?'), $(df -h --output=size "$work" | tail -1 | tr -d ' '))"
        echo "archiver=$("$archiver" -V 2>&1 | head -1) (git $built_rev)"
        [ -z "$base_archiver" ] || echo "baseline=git $base_rev"
        echo "load=$load_start at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end (other work on the machine distorts wall times)"
        echo "nginx=$(nginx -v 2>&1 | sed 's/.*\///')"
        echo "python=$("$pybin" -c 'import sys, requests, zlib; print(sys.version.split()[0], "requests", requests.__version__, "zlib", zlib.ZLIB_RUNTIME_VERSION)')"
        echo "tools=curl $(curl --version | head -1 | cut -d' ' -f2), $(jq --version), gzip $(gzip --version | head -1 | awk '{print $2}'), $(taskset -V 2>/dev/null | head -1 || true)"
        echo "params=runs=$runs curl_runs=$curl_runs big_runs=$big_runs items=$items jobs_per_item=$jobs_per idle_items=$idle_items big_gb=$big_gb seed=$seed"
} >"$machine"
"$pybin" "$here/report.py" "$results" "$machine" >"$out"
cat "$out"
say "wrote $out"
rm -rf "$archives"
if [ "$failures" -gt 0 ]; then
        say "$failures run(s) failed or did not verify"
        exit 1
fi
