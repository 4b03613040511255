#!/usr/bin/env python3
"""Writes a fake-Connect scenario: N content items x M jobs with realistic variety.

Used by scripts/demo.sh and by the larger integration runs. Deterministic for a given seed.
Job mix per item: mostly finalized (status 2), some active (0) or finished-not-finalized (1),
a few skipped (3, no log); about one in seven with an error record; log sizes drawn from a
heavy-tailed distribution (median about 10 KB, a few of several MB).
"""
import argparse
import json
import random
import string
import uuid
from datetime import datetime, timedelta, timezone

TAGS = ["run_app", "render_shiny", "build_report", "run_api", "run_python_api",
        "python_restore", "packrat_restore", "run_pyshiny_app", "run_fastapi_app"]


def job_key(rng):
    return "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(16))


def log_size(rng):
    # Log-normal: median e^9.2 ~ 10 KB; sigma 1.6 gives a tail into the megabytes.
    return max(0, min(int(rng.lognormvariate(9.2, 1.6)), 8 * 1024 * 1024))


def make(n_items, n_jobs, seed, api_key):
    rng = random.Random(seed)
    base = datetime(2026, 10, 1, tzinfo=timezone.utc)
    content = {}
    for i in range(n_items):
        guid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        jobs = []
        for j in range(n_jobs):
            r = rng.random()
            status = 0 if r < 0.03 else 1 if r < 0.05 else 3 if r < 0.07 else 2
            start = base + timedelta(seconds=rng.randrange(0, 55 * 86400))
            # Some servers send offsets instead of Z: the archive date must still be UTC.
            if rng.random() < 0.2:
                tz = timezone(timedelta(hours=-7))
                start_s = start.astimezone(tz).isoformat(timespec="seconds")
            else:
                start_s = start.strftime("%Y-%m-%dT%H:%M:%SZ")
            key = job_key(rng)
            failed = rng.random() < 1 / 7
            job = {
                "id": str(40000000 + i * n_jobs + j), "ppid": None, "pid": str(rng.randrange(1000, 99999)),
                "key": key, "remote_id": None, "app_id": str(50000 + i), "content_id": str(50000 + i),
                "content_guid": guid, "variant_id": "0", "bundle_id": str(120000 + i),
                "start_time": start_s,
                "end_time": None if status in (0, 1) or rng.random() < 0.05 else
                (start + timedelta(seconds=rng.randrange(1, 7200))).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "last_heartbeat_time": start_s, "queued_time": None, "queue_name": None,
                "tag": rng.choice(TAGS), "exit_code": None if status in (0, 3) else (1 if failed else 0),
                "status": status, "hostname": "connect01", "cluster": None, "image": None,
                "run_as": "rstudio-connect",
            }
            spec = {"job": job}
            if status == 3:
                job["skip_reason"] = "a duplicate job was already queued"
                spec["download_status"] = 404
            else:
                spec["log_size"] = log_size(rng)
            if failed and status == 2:
                spec["error"] = {"code": "E%d" % rng.randrange(100, 999),
                                 "summary": "The process exited with status 1: Error in library(shiny)",
                                 "help_url": "https://docs.posit.co/connect/user/troubleshooting/"}
            jobs.append(spec)
        content[guid] = {"name": "item-%03d" % i, "jobs": jobs}
    return {"api_key": api_key, "content": content}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--items", type=int, default=4)
    ap.add_argument("--jobs", type=int, default=12, help="jobs per content item")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--api-key", default="demo-api-key-0123456789")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    with open(a.out, "w") as f:
        json.dump(make(a.items, a.jobs, a.seed, a.api_key), f)


if __name__ == "__main__":
    main()
