#!/usr/bin/env bash
# tests/s3/rgw.sh: a throw-away S3 for the tests, Ceph's RADOS Gateway (Debian 12, Ceph
# 16.2.15) on 127.0.0.1: one mon, one memstore OSD, no mgr, one radosgw (beast), all under
# one directory, started in about 2 s.
#
#   eval "$(tests/s3/rgw.sh start [DIR])"   # prints shell assignments (below); exit 77: skipped
#   tests/s3/rgw.sh stop DIR                # kills exactly our PIDs, removes DIR
#
# Printed: RGW_DIR S3_ENDPOINT AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_DEFAULT_REGION.
# Exit 77 (and the reason on stderr) where it cannot run: not root and the packages
# missing, no apt, or the daemons will not start here. Logs stay in DIR/log on failure.
# The recipe (cephx keys in one keyring, paxos propose interval 0.1, pg num 8, tcp_nodelay)
# and its measurements are in the team's notes on RGW; this is the project's own copy.
set -euo pipefail
export LC_ALL=C
PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH # Debian's python3 for the ceph CLI
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

log() { printf 'rgw.sh: %s\n' "$*" >&2; }
skip() { log "skipped: $*"; exit 77; }
die() { log "error: $*"; exit 1; }

ensure_packages() {
        local c missing=0
        for c in ceph-mon ceph-osd radosgw radosgw-admin ceph ceph-authtool monmaptool uuidgen; do
                command -v "$c" >/dev/null 2>&1 || missing=1
        done
        /usr/bin/python3 -c 'import boto3' 2>/dev/null || missing=1
        [ $missing -eq 0 ] && return 0
        [ "$(id -u)" -eq 0 ] || skip "Ceph (ceph-mon ceph-osd radosgw) or python3-boto3 is missing and we are not root"
        command -v apt-get >/dev/null 2>&1 || skip "Ceph is missing and there is no apt-get"
        # Never let the packages start services of their own.
        local made_policy=0 rc=0
        if [ ! -e /usr/sbin/policy-rc.d ]; then
                printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
                chmod 755 /usr/sbin/policy-rc.d
                made_policy=1
        fi
        DEPS_NO_RECOMMENDS=1 "$root/scripts/deps.sh" ceph-mon ceph-osd radosgw ceph-common \
                ceph-base uuid-runtime python3-boto3 >&2 || rc=$?
        [ $made_policy -eq 1 ] && rm -f /usr/sbin/policy-rc.d
        [ $rc -eq 0 ] || skip "installing Ceph failed (apt-get exit $rc)"
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
        local p i
        for i in $(seq 1 200); do
                p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
                port_busy "$p" || { echo "$p"; return 0; }
        done
        die "no free port"
}

# A PID is ours only while its command line names our ceph.conf.
ours() { [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF -- "$2/ceph.conf"; }

stop_one() {
        local pid=$1 dir=$2 i
        ours "$pid" "$dir" || return 0
        kill -TERM "$pid" 2>/dev/null || true
        for i in $(seq 1 50); do ours "$pid" "$dir" || return 0; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        for i in $(seq 1 50); do ours "$pid" "$dir" || return 0; sleep 0.1; done
}

do_stop() {
        local dir=$1 name pid
        [ -n "$dir" ] && [ -d "$dir" ] || return 0
        [ -f "$dir/.cja-rgw" ] || die "$dir was not made by rgw.sh; not removing it"
        if [ -f "$dir/pids" ]; then
                tac "$dir/pids" | while read -r name pid; do stop_one "$pid" "$dir"; done
        fi
        rm -rf -- "$dir"
}

DIR=
on_fail() {
        local rc=$?
        [ $rc -eq 0 ] && return 0
        if [ -n "$DIR" ] && [ -f "$DIR/pids" ]; then
                tac "$DIR/pids" | while read -r name pid; do stop_one "$pid" "$DIR"; done
                log "start failed; logs in $DIR/log"
        fi
        return $rc
}

wait_for() { # WHAT DEADLINE CMD...
        local what=$1 deadline=$2 name pid
        shift 2
        until "$@" >/dev/null 2>&1; do
                [ "$(date +%s)" -lt "$deadline" ] || skip "timed out waiting for $what (logs: $DIR/log)"
                while read -r name pid; do ours "$pid" "$DIR" || skip "$name died at start (logs: $DIR/log)"; done <"$DIR/pids"
                sleep 0.1
        done
}

spawn() {
        local name=$1
        shift
        "$@" </dev/null >>"$DIR/log/$name.stdout" 2>&1 &
        echo "$name $!" >>"$DIR/pids"
}

do_start() {
        ensure_packages
        DIR=${1:-$(mktemp -d "${TMPDIR:-/tmp}/cja-rgw.XXXXXX")}
        mkdir -p "$DIR"
        DIR=$(cd "$DIR" && pwd)
        [ ${#DIR} -le 80 ] || die "$DIR is too long for the daemons' unix sockets"
        : >"$DIR/.cja-rgw"
        mkdir -p "$DIR"/{log,run,mon.a,osd.0,crash}
        : >"$DIR/pids"
        trap on_fail EXIT
        local t0 deadline fsid osd_uuid mon_port rgw_port ak sk
        t0=$(date +%s%N)
        deadline=$(($(date +%s) + ${RGW_START_TIMEOUT:-60}))
        fsid=$(uuidgen)
        osd_uuid=$(uuidgen)
        mon_port=$(free_port)
        rgw_port=$(free_port)
        [ "$rgw_port" != "$mon_port" ] || rgw_port=$(free_port)
        ak=$(tr -dc 'A-Z0-9' </dev/urandom | head -c 20 || true)
        sk=$(tr -dc 'A-Za-z0-9' </dev/urandom | head -c 40 || true)
        cat >"$DIR/ceph.conf" <<EOF
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:$mon_port]
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr1 = false
ms bind ipv6 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = $DIR/keyring
run dir = $DIR/run
crash dir = $DIR/crash
log file = $DIR/log/\$name.log
mon cluster log file = $DIR/log/cluster.log
log to stderr = false
err to stderr = false
mon data = $DIR/mon.\$id
osd data = $DIR/osd.\$id
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon max pg per osd = 1000
mon warn on pool no redundancy = false
mon data avail warn = 2
mon data avail crit = 1
osd memory target = 536870912
osd op num shards = 2
osd op num threads per shard = 1
osd objectstore = memstore
memstore device bytes = ${RGW_STORE_BYTES:-2147483648}
[mon]
admin socket = $DIR/run/\$name.asok
paxos propose interval = 0.1
[osd]
admin socket = $DIR/run/\$name.asok
[client.rgw.gw]
admin socket = $DIR/run/\$name.asok
rgw frontends = beast endpoint=127.0.0.1:$rgw_port tcp_nodelay=1
rgw thread pool size = 32
rgw gc obj min wait = 60
rgw gc processor period = 60
EOF
        local C=(-c "$DIR/ceph.conf")
        ceph-authtool -C "$DIR/keyring" -n mon. --gen-key --cap mon 'allow *' >/dev/null
        ceph-authtool "$DIR/keyring" -n client.admin --gen-key --cap mon 'allow *' \
                --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
        ceph-authtool "$DIR/keyring" -n osd.0 --gen-key --cap mon 'allow profile osd' \
                --cap mgr 'allow profile osd' --cap osd 'allow *' >/dev/null
        ceph-authtool "$DIR/keyring" -n client.rgw.gw --gen-key --cap mon 'allow rw' \
                --cap osd 'allow rwx' --cap mgr 'allow rw' >/dev/null
        monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon_port]" "$DIR/monmap" >/dev/null
        ceph-mon "${C[@]}" --mkfs -i a --monmap "$DIR/monmap" --keyring "$DIR/keyring" \
                >>"$DIR/log/mkfs.log" 2>&1 || skip "ceph-mon --mkfs failed (logs: $DIR/log)"
        spawn mon.a ceph-mon "${C[@]}" -f -i a
        wait_for "the mon" "$deadline" ceph "${C[@]}" --connect-timeout 5 mon stat
        [ "$(ceph "${C[@]}" osd new "$osd_uuid" 0)" = 0 ] || die "ceph osd new failed"
        ceph-osd "${C[@]}" -i 0 --mkfs --osd-uuid "$osd_uuid" >>"$DIR/log/mkfs.log" 2>&1 ||
                skip "ceph-osd --mkfs failed (logs: $DIR/log)"
        spawn osd.0 ceph-osd "${C[@]}" -f -i 0
        wait_for "osd.0" "$deadline" bash -c "ceph -c '$DIR/ceph.conf' osd dump 2>/dev/null | grep -q '^osd.0 up'"
        radosgw-admin "${C[@]}" user create --uid=test --display-name=test --access-key="$ak" \
                --secret-key="$sk" >"$DIR/log/user.json" 2>>"$DIR/log/radosgw-admin.log" ||
                die "radosgw-admin user create failed (logs: $DIR/log)"
        spawn rgw.gw radosgw "${C[@]}" -f -n client.rgw.gw
        wait_for "radosgw" "$deadline" bash -c \
                "curl -fsS --max-time 2 http://127.0.0.1:$rgw_port/ | grep -q ListAllMyBucketsResult"
        trap - EXIT
        log "ready in $((($(date +%s%N) - t0) / 1000000)) ms at http://127.0.0.1:$rgw_port"
        printf 'RGW_DIR=%q\nS3_ENDPOINT=%q\nAWS_ACCESS_KEY_ID=%q\nAWS_SECRET_ACCESS_KEY=%q\n' \
                "$DIR" "http://127.0.0.1:$rgw_port" "$ak" "$sk"
        printf 'AWS_DEFAULT_REGION=us-east-1\nexport RGW_DIR S3_ENDPOINT AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_DEFAULT_REGION\n'
}

case ${1:-} in
start) do_start "${2:-}" ;;
stop) do_stop "${2:-${RGW_DIR:-}}" ;;
*) sed -n '2,12p' "$0" >&2; exit 2 ;;
esac
