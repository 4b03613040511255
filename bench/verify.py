#!/usr/bin/env python3
"""Checks that an archive holds every due job of one gen_tree.py set, exactly once.

  verify.py TREE SET ARCHIVE_DIR [--sample N] [--seed S]

Checks: one <key>.json record per due job and no other record; <key>.error.json exactly for
the jobs with an error record; a .log.gz for every job. For a sample of jobs (N at random
plus the three largest logs): `zcat` of the .log.gz is byte-for-byte the source log, and the
record's log_bytes and log_sha256 match it. Prints one line; exit 0 when all is well.
"""
import argparse
import hashlib
import json
import os
import random
import subprocess
import sys


def zcat_equals(gz, src):
    """Streams `zcat gz` against the source file; returns (equal, sha256 of source, size)."""
    h = hashlib.sha256()
    n = 0
    p = subprocess.Popen(["zcat", gz], stdout=subprocess.PIPE)
    equal = True
    with open(src, "rb") as f:
        while True:
            a = f.read(1 << 20)
            b = p.stdout.read(len(a)) if a else p.stdout.read(1)
            if a != b:
                equal = False
                break
            if not a:
                break
            h.update(a)
            n += len(a)
    p.stdout.close()
    if p.wait() != 0:
        equal = False
    return equal, h.hexdigest(), n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tree")
    ap.add_argument("set")
    ap.add_argument("archive")
    ap.add_argument("--sample", type=int, default=20)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()

    with open(os.path.join(a.tree, "manifest.json")) as f:
        items = json.load(f)["sets"][a.set]["items"]
    problems = []
    due = []
    for it in items:
        for j in it["jobs"]:
            base = os.path.join(a.archive, it["guid"], j["folder"], j["key"])
            due.append((it, j, base))
            if not os.path.isfile(base + ".json"):
                problems.append("missing record %s" % base)
                continue
            if not os.path.isfile(base + ".log.gz"):
                problems.append("missing log %s.log.gz" % base)
            if os.path.isfile(base + ".error.json") != j["error"]:
                problems.append("error record %s for %s" % (
                    "missing" if j["error"] else "unexpected", base))

    records = 0
    for dirpath, _, files in os.walk(a.archive):
        records += sum(1 for n in files if n.endswith(".json") and not n.endswith(".error.json"))
    if records != len(due):
        problems.append("%d records for %d due jobs" % (records, len(due)))

    rng = random.Random(a.seed)
    sample = rng.sample(due, min(a.sample, len(due)))
    sample += sorted(due, key=lambda d: d[1]["log_bytes"], reverse=True)[:3]
    checked = 0
    for it, j, base in sample:
        if not os.path.isfile(base + ".log.gz") or not os.path.isfile(base + ".json"):
            continue
        equal, sha, n = zcat_equals(base + ".log.gz", os.path.join(a.tree, j["log"]))
        if not equal:
            problems.append("zcat %s.log.gz differs from %s" % (base, j["log"]))
            continue
        with open(base + ".json") as f:
            rec = json.load(f)
        if rec.get("log_bytes") != n or rec.get("log_sha256") != sha:
            problems.append("record %s.json: log_bytes/log_sha256 do not match the log" % base)
        if rec.get("job", {}).get("key") != j["key"] or rec.get("content_guid") != it["guid"]:
            problems.append("record %s.json: wrong job or content_guid" % base)
        checked += 1

    if problems:
        for p in problems[:10]:
            print("verify: " + p, file=sys.stderr)
        print("verify %s: FAILED (%d problems; %d records for %d due jobs)" % (
            a.set, len(problems), records, len(due)))
        return 1
    print("verify %s: ok (%d records = %d due jobs; %d logs byte-exact via zcat)" % (
        a.set, records, len(due), checked))
    return 0


if __name__ == "__main__":
    sys.exit(main())
