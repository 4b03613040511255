#!/usr/bin/env bash
# Peak RSS of `connect-job-archiver --once` over big job lists (issue 14): 1,000 and 100,000
# jobs per list, 1 and 8 items, the first run (everything to archive) and the second
# (everything archived already). Logs are a few hundred bytes, so the figures measure the
# lists, not the logs. Served by a private nginx (rss-nginx.conf) on a free loopback port.
#
#   bench/rss.sh [[LABEL=]BINARY...]   # default: this tree, built Release in build-rss/
#
# Give several binaries (e.g. before=/path/to/an/older/build) to compare them on the same
# lists. Environment: RSS_SIZES (default "1000 100000"), RSS_ITEMS (default "1 8"),
# RSS_WORK (default bench/work-rss; lists are reused, archives removed after each case).
# Prints a Markdown table: binary, items, jobs per item, list size, run, seconds, peak RSS.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
work=${RSS_WORK:-$here/work-rss}
sizes=${RSS_SIZES:-"1000 100000"}
item_counts=${RSS_ITEMS:-"1 8"}
timebin=/usr/bin/time
api_key=rss-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')

bash "$repo/scripts/deps.sh" nginx time python3 >&2
if [ $# -eq 0 ]; then
        cmake -S "$repo" -B "$repo/build-rss" -DCMAKE_BUILD_TYPE=Release -DCJA_TESTS=OFF >/dev/null
        cmake --build "$repo/build-rss" -j2 --target connect-job-archiver >/dev/null
        set -- "after=$repo/build-rss/connect-job-archiver"
fi

mkdir -p "$work/nginx-tmp"
max_items=0
for n in $item_counts; do [ "$n" -gt "$max_items" ] && max_items=$n; done

# One tree per list size, with max_items items; a case with fewer items watches the first.
for jobs in $sizes; do
        tree=$work/tree-$jobs
        if [ ! -f "$tree/guids" ] || [ "$(wc -l <"$tree/guids")" -lt "$max_items" ]; then
                rm -rf "$tree"
                mkdir -p "$tree"
                python3 "$here/gen_lists.py" "$tree" "$max_items" "$jobs" 1 >"$tree/guids.tmp"
                mv "$tree/guids.tmp" "$tree/guids"
        fi
done

serve() { # ROOT -> prints the URL
        local root=$1 port user_line=""
        [ "$(id -u)" -ne 0 ] || user_line="user root;"
        port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        sed -e "s|@USER_LINE@|$user_line|" -e "s|@WORK@|$work|g" -e "s|@ROOT@|$root|g" \
            -e "s|@PORT@|$port|g" -e "s|@API_KEY@|$api_key|g" "$here/rss-nginx.conf" >"$work/nginx.conf"
        nginx -p "$work" -e "$work/nginx-error.log" -c "$work/nginx.conf"
        for _ in $(seq 50); do
                curl -s -o /dev/null "http://127.0.0.1:$port/" && break
                sleep 0.1
        done
        echo "http://127.0.0.1:$port"
}
unserve() {
        if [ -f "$work/nginx.pid" ]; then
                local pid
                pid=$(cat "$work/nginx.pid")
                kill -QUIT "$pid" 2>/dev/null || true
                for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
                rm -f "$work/nginx.pid"
        fi
}
trap unserve EXIT

printf '| binary | items | jobs per item | list | run | seconds | peak RSS |\n'
printf '|---|---:|---:|---:|---|---:|---:|\n'
for jobs in $sizes; do
        tree=$work/tree-$jobs
        url=$(serve "$tree")
        list_mb=$(python3 -c "import os,sys; print('%.1f MB' % (os.path.getsize(sys.argv[1]) / 1e6))" \
                "$tree/lists/$(head -1 "$tree/guids").json")
        for items in $item_counts; do
                for arg in "$@"; do
                        label=${arg%%=*} bin=${arg#*=}
                        [ "$label" != "$arg" ] || label=$bin
                        case_dir=$work/case
                        rm -rf "$case_dir"
                        mkdir -p "$case_dir/spool"
                        printf '%s\n' "$api_key" >"$case_dir/api-key"
                        chmod 600 "$case_dir/api-key"
                        {
                                printf 'server:\n  url: %s\n  api_key_file: %s\n' "$url" "$case_dir/api-key"
                                printf 'archive:\n  directory: %s\n  min_free_mb: 0\n' "$case_dir/archive"
                                printf 'content:\n'
                                head -n "$items" "$tree/guids" | sed 's/^/  - /'
                        } >"$case_dir/config.yaml"
                        for run in first second; do
                                sync
                                TMPDIR=$case_dir/spool $timebin -f '%e %M' -o "$case_dir/time" \
                                        "$bin" -c "$case_dir/config.yaml" --once 2>"$case_dir/stderr" || {
                                        echo "rss.sh: $bin failed; see $case_dir/stderr" >&2
                                        tail -3 "$case_dir/stderr" >&2
                                        exit 1
                                }
                                read -r secs kb <"$case_dir/time"
                                summary=$(grep -o 'once: .*' "$case_dir/stderr" | tail -1)
                                echo "rss.sh: $label $items x $jobs $run: $summary" >&2
                                printf '| %s | %d | %d | %s | %s | %.1f | %s MB |\n' \
                                        "$label" "$items" "$jobs" "$list_mb" "$run" "$secs" \
                                        "$(awk -v k="$kb" 'BEGIN { printf "%.1f", k / 1024 }')"
                        done
                        rm -rf "$case_dir"
                done
        done
        unserve
done
