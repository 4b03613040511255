#!/usr/bin/env python3
"""Writes ROOT/lists/<guid>.json for bench/rss.sh: ITEMS items of JOBS finalized jobs each,
shaped like Connect's job objects (compact JSON, newest first). Prints the GUIDs."""
import json
import os
import random
import string
import sys
import uuid
from datetime import datetime, timedelta, timezone


def main():
    root, items, jobs, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    rng = random.Random(seed)
    os.makedirs(os.path.join(root, "lists"), exist_ok=True)
    base = datetime(2026, 11, 27, tzinfo=timezone.utc)
    alnum = string.ascii_letters + string.digits
    for i in range(items):
        guid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        with open(os.path.join(root, "lists", guid + ".json"), "w") as f:
            f.write("[")
            for j in range(jobs):
                start = base - timedelta(seconds=300 * j + rng.randrange(60))
                job = {
                    "id": str(41000000 + i * jobs + j), "ppid": None,
                    "pid": str(rng.randrange(1000, 4000000)),
                    "key": "".join(rng.choice(alnum) for _ in range(16)), "remote_id": None,
                    "app_id": str(50000 + i), "variant_id": "0", "bundle_id": "127015",
                    "start_time": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "end_time": (start + timedelta(seconds=42)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "tag": "run_app", "exit_code": 0, "status": 2, "hostname": "connect01",
                }
                f.write(("," if j else "") + json.dumps(job, separators=(",", ":")))
            f.write("]\n")
        print(guid)


if __name__ == "__main__":
    main()
