#!/usr/bin/env bash
# The archive in S3 beside the archive on the local disk, in one run (issue 22): the bench's
# main set (40 items x 50 jobs = 2,000 jobs, from gen_tree.py, served by nginx) archived with
# --once into a fresh local folder and into a fresh bucket of a real Ceph RGW started here
# (tests/s3/rgw.sh), alternating, BENCH_RUNS times each; then connect-jobs' ls and search over
# each archive (when connect-jobs reads S3). See bench/README.md "The archive in S3".
#
#   bench/s3.sh                       # 2,000 jobs, 3 runs each (~5 min)
#   BENCH_ITEMS=4 BENCH_JOBS=5 BENCH_RUNS=1 bench/s3.sh    # a quick check of the script
#
# Columns: wall, user+sys CPU and peak RSS of the archiver (/usr/bin/time); the CPU the store
# used meanwhile (radosgw + ceph-osd + ceph-mon; for the disk: none measured); the requests the
# archiver's summary line counts; the bytes stored. Every archive is verified (verify.py; the
# bucket after a boto3 download of it). Writes bench/results-<date>-s3.md.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
items=${BENCH_ITEMS:-40}
jobs_per=${BENCH_JOBS:-50}
runs=${BENCH_RUNS:-3}
seed=${BENCH_SEED:-1}
work=${BENCH_WORK:-$here/work-s3}
out=${BENCH_OUT:-$here/results-$(date -u +%Y-%m-%d)-s3.md}
api_key=bench-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
pybin=/usr/bin/python3
timebin=/usr/bin/time
say() { printf '== %s\n' "$*" >&2; }

say "checking packages"
bash "$repo/scripts/deps.sh" nginx python3-requests python3-boto3 time gzip
build=$repo/build-bench
say "building (Release)"
cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$(nproc)" --target connect-job-archiver connect-jobs >/dev/null
archiver=$build/connect-job-archiver
jobs_bin=$build/connect-jobs
rev="$(git -C "$repo" rev-parse --short HEAD)$(git -C "$repo" diff --quiet HEAD -- src include 2>/dev/null || echo '+local')"

mkdir -p "$work"
tree=$work/tree
gen_args=(--items "$items" --jobs-per-item "$jobs_per" --idle-items 0 --seed "$seed")
if [ -f "$tree/manifest.json" ] && [ "$(cat "$work/tree.args" 2>/dev/null)" = "${gen_args[*]}" ]; then
        say "reusing $tree"
else
        say "generating $tree (${gen_args[*]})"
        rm -rf "$tree"
        "$pybin" "$here/gen_tree.py" "$tree" "${gen_args[@]}"
        echo "${gen_args[*]}" >"$work/tree.args"
fi

srv=$work/nginx
"$here/serve.sh" stop "$srv" 2>/dev/null || true
url=$("$here/serve.sh" start "$tree" "$srv" "$api_key")
rgw_env=$work/rgw.env
"$repo/tests/s3/rgw.sh" start >"$rgw_env"
# shellcheck disable=SC1090
. "$rgw_env"
cleanup() {
        "$here/serve.sh" stop "$srv" || true
        "$repo/tests/s3/rgw.sh" stop "$RGW_DIR" || true
}
trap cleanup EXIT
keyfile=$work/api-key
(umask 077; printf '%s\n' "$api_key" >"$keyfile")
find "$tree" -type f -exec cat {} + >/dev/null # warm the page cache
clk_tck=$(getconf CLK_TCK)

# CPU seconds the gateway's daemons have used so far.
store_cpu() {
        local t=0 name pid c
        while read -r name pid; do
                c=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null) || continue
                t=$((t + ${c:-0}))
        done <"$RGW_DIR/pids"
        awk -v t="$t" -v h="$clk_tck" 'BEGIN { printf "%.2f", t / h }'
}

read -r main_jobs main_bytes < <("$pybin" -c 'import json,sys
m=json.load(open(sys.argv[1]))["sets"]["main"]
js=[j for it in m["items"] for j in it["jobs"]]
print(len(js), sum(j["log_bytes"] for j in js))' "$tree/manifest.json")

write_config() { # FILE DIR [BUCKET]
        {
                echo "server:"
                echo "  url: $url"
                echo "  api_key_file: $keyfile"
                echo "archive:"
                echo "  directory: $2"
                if [ -n "${3:-}" ]; then
                        echo "  s3:"
                        echo "    endpoint: $S3_ENDPOINT"
                        echo "    bucket: $3"
                        echo "    prefix: bench"
                fi
                echo "content:"
                sed 's/^/  - /' "$tree/sets/main.guids"
        } >"$1"
}

s3py() { "$pybin" - "$@" <<'EOF'
import os, sys, boto3, botocore.config
s3 = boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT"], region_name="us-east-1",
                  config=botocore.config.Config(s3={"addressing_style": "path"}))
cmd, bucket = sys.argv[1], sys.argv[2]
if cmd == "create":
    s3.create_bucket(Bucket=bucket)
elif cmd == "bytes":
    n = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="bench/"):
        n += sum(o["Size"] for o in page.get("Contents", [])
                 if not o["Key"].startswith("bench/.catalog/"))
    print(n)
elif cmd == "download":
    dest = sys.argv[3]
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="bench/"):
        for o in page.get("Contents", []):
            rel = o["Key"][len("bench/"):]
            if rel.startswith(".catalog/"):
                continue
            os.makedirs(os.path.dirname(os.path.join(dest, rel)), exist_ok=True)
            s3.download_file(bucket, o["Key"], os.path.join(dest, rel))
EOF
}

runs_dir=$work/runs
rm -rf "$runs_dir"
mkdir -p "$runs_dir"
results=$work/results.tsv
printf 'store\trun\twall\tcpu\trss_kb\tstore_cpu\trequests\tbytes\tverify\n' >"$results"
failures=0

archive_run() { # STORE RUN
        local store=$1 r=$2 dir=$runs_dir/$1-$2 bucket="" log tf
        mkdir -p "$dir/state"
        if [ "$store" = s3 ]; then
                bucket=bench-$r-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
                s3py create "$bucket"
        fi
        write_config "$dir/config.yaml" "$dir/state" "$bucket"
        log=$dir/stderr.log
        tf=$dir/time
        sync
        local c0 c1 rc=0
        c0=$(store_cpu)
        "$timebin" -f '%e %U %S %M' -o "$tf" "$archiver" -c "$dir/config.yaml" --once \
                >/dev/null 2>"$log" || rc=$?
        c1=$(store_cpu)
        read -r w u s m <<<"$(tail -1 "$tf")"
        local reqs=- bytes verdict archive=$dir/state
        if [ "$store" = s3 ]; then
                reqs=$(sed -n 's/.*s3: .*requests: \(.*\)$/\1/p' "$log" | tail -1)
                bytes=$(s3py bytes "$bucket")
                archive=$dir/downloaded
                s3py download "$bucket" "$archive"
        else
                bytes=$(find "$archive" -type f ! -path '*/.catalog/*' ! -name '.*' -printf '%s\n' |
                        awk '{s += $1} END {print s + 0}')
        fi
        if [ "$rc" -eq 0 ] && "$pybin" "$here/verify.py" "$tree" main "$archive" >>"$log" 2>&1; then
                verdict=ok
        else
                verdict=FAILED
                failures=$((failures + 1))
        fi
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$store" "$r" "$w" \
                "$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.2f", u + s }')" "$m" \
                "$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.2f", b - a }')" "$reqs" "$bytes" \
                "$verdict" >>"$results"
        say "$store run $r: wall ${w}s cpu $(awk -v u="$u" -v s="$s" 'BEGIN { print u + s }')s rss ${m} KiB $verdict"
        echo "$dir"
}

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
say "$main_jobs jobs, $main_bytes bytes of logs; $runs runs each, alternating"
for r in $(seq "$runs"); do
        archive_run disk "$r" >/dev/null
        archive_run s3 "$r" >"$work/last-s3"
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

# Reading back: ls and search with connect-jobs over the last run of each store, when this
# connect-jobs reads S3 (the config's archive.s3), else said and skipped.
search_rows=""
disk_cfg=$runs_dir/disk-$runs/config.yaml
s3_cfg=$(cat "$work/last-s3")/config.yaml
# One run of connect-jobs: "wall rss lines" (time's last line: a non-zero exit adds one before).
run_cmd() { # CONFIG ARGS...
        local cfg=$1 tf=$work/cmd.time
        shift
        "$timebin" -f '%e %M' -o "$tf" "$jobs_bin" -c "$cfg" "$@" >"$work/cmd.out" 2>/dev/null || true
        echo "$(tail -1 "$tf") $(wc -l <"$work/cmd.out")"
}
best_of_3() { # CONFIG ARGS... -> the fastest of three runs
        local best="" line
        for i in 1 2 3; do
                line=$(run_cmd "$@")
                if [ -z "$best" ] || awk -v a="${line%% *}" -v b="${best%% *}" 'BEGIN { exit !(a < b) }'; then
                        best=$line
                fi
        done
        echo "$best"
}
export XDG_CACHE_HOME=$work/cache
if "$jobs_bin" -c "$s3_cfg" ls >"$work/probe.out" 2>"$work/probe.err" &&
   [ "$(wc -l <"$work/probe.out")" -gt 1 ]; then
        for q in "ls" "ls --failed" "search Traceback" "search -i 'connection refused'" "search zzqxjv-absent"; do
                read -r dw dm dl <<<"$(eval best_of_3 "$disk_cfg" "$q")"
                rm -rf "$XDG_CACHE_HOME"
                read -r cw cm cl <<<"$(eval run_cmd "$s3_cfg" "$q")"
                read -r sw sm sl <<<"$(eval best_of_3 "$s3_cfg" "$q")"
                search_rows+="| \`$q\` | $dw s | $((dm / 1024)) MB | $cw s | $sw s | $((sm / 1024)) MB | $dl / $cl / $sl |"$'\n'
        done
else
        say "connect-jobs does not read this archive in S3: reading back skipped ($(head -1 "$work/probe.err"))"
fi

"$pybin" - "$results" "$out" "$main_jobs" "$main_bytes" "$rev" "$load_start" "$load_end" "$search_rows" <<'EOF'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])][1:]
out, jobs, nbytes, rev, l0, l1, search = sys.argv[2:9]
lines = ["# The archive in S3 beside the local disk (bench/s3.sh, %s)" % rev, "",
         "%s jobs, %.0f MB of logs; load average %s at the start, %s at the end; medians of %d runs, alternating." %
         (jobs, int(nbytes) / 1e6, l0, l1, len(rows) // 2), "",
         "| store | wall | archiver CPU | peak RSS | store CPU | requests (last run) | bytes stored | verified |",
         "|---|---|---|---|---|---|---|---|"]
for store in ("disk", "s3"):
    rs = [r for r in rows if r[0] == store]
    med = lambda i: statistics.median(float(r[i]) for r in rs)
    lines.append("| %s | %.2f s | %.2f s | %.1f MB | %s | %s | %.1f MB | %s |" % (
        "local disk" if store == "disk" else "Ceph RGW (loopback)", med(2), med(3), med(4) / 1024,
        "%.2f s" % med(5) if store == "s3" else "-", rs[-1][6], int(rs[-1][7]) / 1e6,
        ", ".join(r[8] for r in rs)))
if search:
    lines += ["", "Reading back (connect-jobs over the last run's archives: the disk and the warm S3 cache the best of 3, the cold S3 cache one run after removing it; lines printed disk / S3 cold / S3 warm):", "",
              "| command | disk wall | disk RSS | S3 cold cache | S3 warm cache | S3 RSS | lines |", "|---|---|---|---|---|---|---|"]
    lines += [l for l in search.splitlines() if l]
open(out, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
say "wrote $out"
[ "$failures" -eq 0 ] || { say "$failures runs failed verification"; exit 1; }
