#!/usr/bin/env python3
"""The load the archiver puts on Connect, before and after issue 18, in one run.

    bench/discovery.py [--items 1000] [--busy 50] [--seconds 240] [--scale 6]

1,000 content items of which 50 are busy: a busy item starts a job every 10 minutes, which
runs 3 minutes and is finalized. Time runs --scale times faster than life (poll interval
60 s -> 10 s of the run, the 600 s ceiling -> 100 s), so --seconds 240 is 24 minutes of a
server's life; the figures are given per real hour.

  before  poll.max_interval_seconds = poll.interval_seconds (no back-off), and a server
          that does not compress (what the archiver got before: it did not ask)
  after   the defaults (the ceiling 10x the interval), discover: all, gzip on the server

Measured from the fake server's request log: requests and body bytes sent, split into job
lists, downloads/error records and the content API; and the delay between a job's
finalization and its <key>.json record (the file's mtime), median and worst.
"""

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
os.environ.setdefault("CJA_TESTS_DIR", os.path.join(HERE, "..", "tests"))
from harness import (FakeConnect, make_jobspec, new_guid, start_archiver,  # noqa: E402
                     stop_process, wait_for, write_config)

KEY = "bench-discovery-key"


def run(label, items, busy, seconds, scale, after):
    tmp = tempfile.mkdtemp(prefix="cja-bench-disc-")
    archive = os.path.join(tmp, "archive")
    guids = [new_guid() for _ in range(items)]
    busy_set = guids[:busy]
    content = {g: {"title": "item %d" % i, "owner": "u%d" % (i % 40),
                   "jobs": [make_jobspec("old%013d" % i, log="an old job\n")]}
               for i, g in enumerate(guids)}
    interval = 60 / scale
    extra = {"poll__interval_seconds": max(1, round(interval))}
    if after:
        extra["discover"] = {"refresh_seconds": max(1, round(600 / scale)),
                             "rules": [{"all": True}]}
        cfg_content = None
    else:
        extra["poll__max_interval_seconds"] = max(1, round(interval))
        cfg_content = guids
    finalized = {}  # key -> time the job was finalized
    with FakeConnect(scenario={"api_key": KEY, "content": content, "gzip": after}) as fc:
        cfg = write_config(tmp, fc.url, archive, content=cfg_content, api_key=KEY, **extra)
        p = start_archiver(["-c", cfg])
        try:
            wait_for(lambda: os.path.isdir(archive) and sum(
                len(f) for _, _, f in os.walk(archive)) >= 2 * items, 120,
                message="the old jobs archived")
            fc.clear_requests()
            t0 = time.monotonic()
            rnd = random.Random(7)
            # Each busy item starts a job every 600/scale s (phase random), running 180/scale.
            period, runtime = 600 / scale, 180 / scale
            starts = sorted((rnd.uniform(0, period) + k * period, g)
                            for g in busy_set for k in range(int(seconds / period) + 1))
            pending = []  # (finalize at, guid, key)
            n = 0
            while time.monotonic() - t0 < seconds:
                now = time.monotonic() - t0
                while starts and starts[0][0] <= now:
                    _, g = starts.pop(0)
                    key = "busy%012d" % n
                    n += 1
                    fc.add_job(g, make_jobspec(key, status=0, log="running\n"))
                    pending.append((now + runtime, g, key))
                for item in [x for x in pending if x[0] <= now]:
                    pending.remove(item)
                    fc.update_job(item[1], item[2], status=2)
                    finalized[item[2]] = time.time()
                time.sleep(0.05)
            # Let the last finalized jobs arrive (at most the ceiling) for the delays.
            def archived():
                return sum(f[:-5] in finalized for _, _, fs in os.walk(archive) for f in fs
                           if f.endswith(".json") and not f.endswith(".error.json"))
            wait_for(lambda: archived() == len(finalized), 600 / scale * 1.5 + 10,
                     message="every finalized job archived")
            # Rates over the whole window, the wait included (its downloads belong to it).
            elapsed = time.monotonic() - t0
            reqs = fc.requests(everything=True)
        finally:
            stop_process(p)
    delays = []
    for root, _, files in os.walk(archive):
        for f in files:
            k = f[:-5]
            if f.endswith(".json") and not f.endswith(".error.json") and k in finalized:
                delays.append(os.stat(os.path.join(root, f)).st_mtime - finalized[k])
    shutil.rmtree(tmp, ignore_errors=True)

    def per_hour(x):
        return x * 3600 / elapsed

    lists = [r for r in reqs if r["path"].endswith("/jobs")]
    jobs = [r for r in reqs if "/jobs/" in r["path"]]
    meta = [r for r in reqs if "/jobs" not in r["path"]]
    row = {
        "label": label,
        "requests": per_hour(len(reqs)),
        "lists": per_hour(len(lists)),
        "jobs": per_hour(len(jobs)),
        "content": per_hour(len(meta)),
        "bytes": per_hour(sum(r["body_bytes"] for r in reqs)),
        "list_bytes": per_hour(sum(r["body_bytes"] for r in lists)),
        "finalized": len(finalized),
        "archived": len(delays),
        # in the model's time (x scale): the delay a real server would see
        "median_delay": statistics.median(delays) * scale if delays else float("nan"),
        "worst_delay": max(delays) * scale if delays else float("nan"),
    }
    return row


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=1000)
    ap.add_argument("--busy", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=240)
    ap.add_argument("--scale", type=float, default=6)
    a = ap.parse_args()
    rows = [run("before (no back-off, no gzip)", a.items, a.busy, a.seconds, a.scale, False),
            run("after (back-off to 600 s, gzip, discover)", a.items, a.busy, a.seconds,
                a.scale, True)]
    print("%d items, %d busy; %.0f s run at %gx = %.0f min of a server's life; per hour of "
          "that life:\n" % (a.items, a.busy, a.seconds, a.scale, a.seconds * a.scale / 60))
    print("| | requests/h | job lists/h | downloads+errors/h | content API/h | bytes/h | "
          "list bytes/h | jobs finalized | archived | median delay | worst delay |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        # Per hour of the server's life: the run's rate divided by the time scale.
        s = a.scale
        print("| %s | %.0f | %.0f | %.0f | %.0f | %.1f MB | %.1f MB | %d | %d | %.0f s | %.0f s |"
              % (r["label"], r["requests"] / s, r["lists"] / s, r["jobs"] / s,
                 r["content"] / s, r["bytes"] / s / 1e6, r["list_bytes"] / s / 1e6,
                 r["finalized"], r["archived"], r["median_delay"], r["worst_delay"]))


if __name__ == "__main__":
    main()
