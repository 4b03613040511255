#!/usr/bin/env bash
# The quick start: installs what is missing, builds, starts the bundled fake Connect server
# on a free loopback port, runs the archiver once against it, and shows the archive.
#   scripts/demo.sh [ITEMS] [JOBS_PER_ITEM]
set -euo pipefail
cd "$(dirname "$0")/.."
items=${1:-4}
jobs=${2:-12}

scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target connect-job-archiver connect-jobs >/dev/null

work=$(mktemp -d /tmp/cja-demo.XXXXXX)
server_pid=""
cleanup() {
        [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
        true
}
trap cleanup EXIT

python3 tests/make_scenario.py --items "$items" --jobs "$jobs" --out "$work/scenario.json"
python3 tests/fake_connect.py --scenario "$work/scenario.json" --port 0 \
        --port-file "$work/port" --quiet >/dev/null &
server_pid=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.1; done
[ -s "$work/port" ] || { echo "the fake Connect server did not start" >&2; exit 1; }
port=$(cat "$work/port")

# The API key lives in a file only its owner can read, as the archiver insists.
(umask 077 && python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["api_key"])' \
        "$work/scenario.json" >"$work/api-key")
{
        echo "server:"
        echo "  url: http://127.0.0.1:$port"
        echo "  api_key_file: $work/api-key"
        echo "archive:"
        echo "  directory: $work/archive"
        echo "content:"
        python3 - "$work/scenario.json" <<'PY'
import json, sys
for guid, c in json.load(open(sys.argv[1]))["content"].items():
    print(f"  - guid: {guid}\n    name: {c['name']}")
PY
} >"$work/config.yaml"

echo "== connect-job-archiver --check-config"
build/connect-job-archiver -c "$work/config.yaml" --check-config
echo
echo "== connect-job-archiver --once"
status=0
build/connect-job-archiver -c "$work/config.yaml" --once 2>&1 | tail -n 8 || status=$?
echo
echo "== the archive ($work/archive)"
find "$work/archive" -type f | sed "s|$work/archive/||" | sort | head -n 20
echo "... $(find "$work/archive" -name '*.json' ! -name '*.error.json' | wc -l) jobs archived," \
        "$(du -sh "$work/archive" | cut -f1) on disk"
echo
echo "== connect-jobs ls --failed (first 5) and search 'Listening on' (first 3 hits)"
build/connect-jobs -c "$work/config.yaml" ls --failed | head -n 6 || true
build/connect-jobs -c "$work/config.yaml" search -m 1 'Listening on' | head -n 3 || true
echo
echo "== the same with zgrep, no tools needed (first 3 hits)"
find "$work/archive" -name '*.log.gz' -print0 | xargs -0 zgrep -H -m 1 'Listening on' 2>/dev/null |
        sed "s|$work/archive/||" | head -n 3 || true
echo
echo "== one job record"
record=$(find "$work/archive" -name '*.json' ! -name '*.error.json' | sort | head -n 1)
head -c 1200 "$record"
echo
echo "Everything is in $work (config.yaml, scenario.json, archive/)."
exit "$status"
