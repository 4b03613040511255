#!/usr/bin/env bash
# Starts or stops the benchmark's nginx: a private instance on a free 127.0.0.1 port, run as
# the invoking user, with its pid file, error log and temp folders in WORKDIR.
#
#   bench/serve.sh start ROOT WORKDIR API_KEY   # prints the base URL (http://127.0.0.1:PORT)
#   bench/serve.sh stop WORKDIR
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

case "${1:-}" in
start)
        [ $# -eq 4 ] || { echo "usage: $0 start ROOT WORKDIR API_KEY" >&2; exit 2; }
        root=$(cd "$2" && pwd)
        mkdir -p "$3"
        work=$(cd "$3" && pwd)
        key=$4
        case "$key" in *[!A-Za-z0-9_-]*) echo "serve.sh: the API key must be [A-Za-z0-9_-]" >&2; exit 2;; esac
        if [ -f "$work/nginx.pid" ] && kill -0 "$(cat "$work/nginx.pid")" 2>/dev/null; then
                echo "serve.sh: nginx already running (pid $(cat "$work/nginx.pid"))" >&2
                exit 1
        fi
        mkdir -p "$work/nginx-tmp"
        # A root master switches its workers to "nobody" unless told otherwise.
        user_line=""
        [ "$(id -u)" -ne 0 ] || user_line="user root;"
        for attempt in 1 2 3 4 5; do
                port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
                sed -e "s|@USER_LINE@|$user_line|" -e "s|@WORK@|$work|g" -e "s|@ROOT@|$root|g" \
                    -e "s|@PORT@|$port|g" -e "s|@API_KEY@|$key|g" "$here/nginx.conf" >"$work/nginx.conf"
                if "$nginx_bin" -p "$work" -e "$work/nginx-error.log" -c "$work/nginx.conf" 2>>"$work/nginx-error.log"; then
                        for _ in $(seq 50); do
                                if curl -s -o /dev/null "http://127.0.0.1:$port/"; then
                                        echo "http://127.0.0.1:$port"
                                        exit 0
                                fi
                                sleep 0.1
                        done
                fi
                [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
        done
        echo "serve.sh: nginx did not start; see $work/nginx-error.log" >&2
        tail -5 "$work/nginx-error.log" >&2 || true
        exit 1
        ;;
stop)
        [ $# -eq 2 ] || { echo "usage: $0 stop WORKDIR" >&2; exit 2; }
        pidf="$2/nginx.pid"
        if [ -f "$pidf" ]; then
                pid=$(cat "$pidf")
                kill -QUIT "$pid" 2>/dev/null || true
                for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
                kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
                rm -f "$pidf"
        fi
        ;;
*)
        echo "usage: $0 start ROOT WORKDIR API_KEY | stop WORKDIR" >&2
        exit 2
        ;;
esac
