#!/usr/bin/python3
"""Archives Posit Connect job logs, one job after the other, with requests and gzip.

The script a Connect user would write for the job: same archive layout as
connect-job-archiver (<dir>/<guid>/<YYYY>/<MM>/<DD>/<key>.log.gz, .error.json, .json),
a job counts as archived when its .json exists, logs are streamed (never held whole in
memory) and gzipped at --level. No temporaries, no fsync, no retries, no concurrency.

    archive_requests.py --server URL --api-key-file FILE --dir DIR [--level 6] GUIDS_FILE
"""
import argparse
import gzip
import hashlib
import json
import os
import sys
from datetime import datetime, timezone

import requests


def archive_job(s, api, guid, job, folder, level):
    key = job["key"]
    base = os.path.join(folder, key)
    os.makedirs(folder, exist_ok=True)

    r = s.get(f"{api}/content/{guid}/jobs/{key}/error")
    if r.status_code == 204:
        error = None
    else:
        r.raise_for_status()
        error = r.json()
        with open(base + ".error.json", "wb") as f:
            f.write(r.content)

    log_bytes = sha = None
    with s.get(f"{api}/content/{guid}/jobs/{key}/download", stream=True) as r:
        if r.status_code != 404:
            r.raise_for_status()
            h = hashlib.sha256()
            n = 0
            with gzip.open(base + ".log.gz", "wb", compresslevel=level) as gz:
                for chunk in r.iter_content(chunk_size=64 * 1024):
                    gz.write(chunk)
                    h.update(chunk)
                    n += len(chunk)
            log_bytes, sha = n, h.hexdigest()

    record = {
        "job": job,
        "error": error,
        "content_guid": guid,
        "content_name": None,
        "archived_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "log_bytes": log_bytes,
        "log_sha256": sha,
    }
    with open(base + ".json", "w") as f:
        json.dump(record, f, indent=2)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", required=True)
    ap.add_argument("--api-key-file", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--level", type=int, default=6)
    ap.add_argument("guids")
    a = ap.parse_args()

    with open(a.api_key_file) as f:
        key = f.read().strip()
    with open(a.guids) as f:
        guids = [g.strip() for g in f if g.strip()]
    api = a.server.rstrip("/") + "/__api__/v1"
    s = requests.Session()
    s.headers["Authorization"] = "Key " + key

    archived = failed = 0
    for guid in guids:
        try:
            r = s.get(f"{api}/content/{guid}/jobs")
            r.raise_for_status()
            jobs = r.json()
        except Exception as e:
            print(f"{guid}: cannot list jobs: {e}", file=sys.stderr)
            failed += 1
            continue
        for job in jobs:
            if job["status"] not in (2, 3):
                continue
            start = datetime.fromisoformat(job["start_time"].replace("Z", "+00:00"))
            start = start.astimezone(timezone.utc)
            folder = os.path.join(a.dir, guid, start.strftime("%Y"), start.strftime("%m"),
                                  start.strftime("%d"))
            if os.path.exists(os.path.join(folder, job["key"] + ".json")):
                continue
            try:
                archive_job(s, api, guid, job, folder, a.level)
                archived += 1
            except Exception as e:
                print(f"{guid} {job['key']}: {e}", file=sys.stderr)
                failed += 1
    print(f"archive_requests: {len(guids)} content items, {archived} jobs archived, "
          f"{failed} failed", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
