#!/usr/bin/env bash
# Archives Posit Connect job logs with curl, jq and gzip: the cron job an admin would write.
# Same archive layout as connect-job-archiver; a job counts as archived when its .json exists.
#
#   archive_curl.sh SERVER_URL API_KEY_FILE ARCHIVE_DIR LEVEL GUIDS_FILE
set -u

server=${1%/}
apikey=$(cat "$2")
dir=$3
level=$4
guids=$5
api="$server/__api__/v1"
auth="Authorization: Key $apikey"
archived=0
failed=0
items=0

while read -r guid; do
        [ -n "$guid" ] || continue
        items=$((items + 1))
        if ! list=$(curl -sSf -H "$auth" "$api/content/$guid/jobs"); then
                echo "$guid: cannot list jobs" >&2
                failed=$((failed + 1))
                continue
        fi
        while IFS= read -r job; do
                { read -r key; read -r start; } < <(jq -r '.key, .start_time' <<<"$job")
                out="$dir/$guid/$(date -u -d "$start" +%Y/%m/%d)"
                [ -e "$out/$key.json" ] && continue
                mkdir -p "$out"

                code=$(curl -sS -H "$auth" -o "$out/$key.error.tmp" -w '%{http_code}' \
                        "$api/content/$guid/jobs/$key/error")
                case $code in
                200)    mv "$out/$key.error.tmp" "$out/$key.error.json"
                        error=$(cat "$out/$key.error.json") ;;
                204)    rm -f "$out/$key.error.tmp"
                        error=null ;;
                *)      echo "$guid $key: error record: HTTP $code" >&2
                        rm -f "$out/$key.error.tmp"
                        failed=$((failed + 1))
                        continue ;;
                esac

                code=$(curl -sS -H "$auth" -o "$out/$key.log" -w '%{http_code}' \
                        "$api/content/$guid/jobs/$key/download")
                case $code in
                200)    bytes=$(stat -c %s "$out/$key.log")
                        sha=$(sha256sum "$out/$key.log" | cut -d' ' -f1)
                        gzip -"$level" -f "$out/$key.log" ;;
                404)    rm -f "$out/$key.log"
                        bytes=null
                        sha= ;;
                *)      echo "$guid $key: log: HTTP $code" >&2
                        rm -f "$out/$key.log"
                        failed=$((failed + 1))
                        continue ;;
                esac

                jq -n --argjson job "$job" --argjson error "$error" --arg guid "$guid" \
                        --arg at "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --argjson bytes "$bytes" \
                        --arg sha "$sha" \
                        '{job: $job, error: $error, content_guid: $guid, content_name: null,
                          archived_at: $at, log_bytes: $bytes,
                          log_sha256: (if $sha == "" then null else $sha end)}' \
                        >"$out/$key.json"
                archived=$((archived + 1))
        done < <(jq -c '.[] | select(.status == 2 or .status == 3)' <<<"$list")
done <"$guids"

echo "archive_curl: $items content items, $archived jobs archived, $failed failed" >&2
[ "$failed" -eq 0 ]
