#!/usr/bin/env python3
"""One 1 GiB log through the real path (HTTP, SHA-256, blocks, the compression threads, the
file, the record): exactly 4,096 members of 256 KiB, each found through its header's sizes,
the whole file read back by Python's zlib member after member and by `gzip -t`, and the
record's log_bytes and log_sha256 exact. The log is 1 MiB of log lines served 1,024 times, so
the fake server is not the bottleneck; the bench archives a 1 GB generated log."""
import glob
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import FakeConnect, make_jobspec, new_guid, run_archiver, write_config  # noqa: E402

BLOCK = 256 * 1024
REPEAT = 1024


def pattern():
    lines, n = [], 0
    size = 0
    while size < 1 << 20:
        line = "2024/11/25 22:%02d:%02d.%09d [%s] GET /session/%08x HTTP/1.1 200 %d\n" % (
            n // 60 % 60, n % 60, n * 7919 % 10**9, "stderr" if n % 7 == 0 else "stdout",
            n * 2654435761 % 2**32, n % 5000)
        lines.append(line)
        size += len(line)
        n += 1
    return "".join(lines).encode()[:1 << 20]


class BigLogTest(unittest.TestCase):
    def test_one_gib_log(self):
        tmp = tempfile.mkdtemp(prefix="cja-big-")
        self.addCleanup(shutil.rmtree, tmp, True)
        unit = pattern()
        want_len = len(unit) * REPEAT
        h = hashlib.sha256()
        for _ in range(REPEAT):
            h.update(unit)
        want_sha = h.hexdigest()

        g = new_guid()
        archive = os.path.join(tmp, "archive")
        spec = make_jobspec("bigLog0000000001", log=unit, log_repeat=REPEAT)
        with FakeConnect({g: [spec]}) as fc:
            cfg = write_config(tmp, fc.url, archive, content=[g])
            p = run_archiver(["--config", cfg, "--once"], timeout=600)
        self.assertEqual(p.returncode, 0, p.stderr[-3000:])

        rec_path, = glob.glob(os.path.join(archive, g, "*", "*", "*", "bigLog0000000001.json"))
        with open(rec_path) as f:
            rec = json.load(f)
        self.assertEqual(rec["log_bytes"], want_len)
        self.assertEqual(rec["log_sha256"], want_sha)
        path = rec_path[:-len(".json")] + ".log.gz"
        self.assertEqual(rec["log_gzip_bytes"], os.path.getsize(path))

        # Member after member: the header's MSIZE finds the next one, USIZE is 256 KiB, and
        # each inflates alone (zlib, gzip wrapper) to exactly that, in order.
        h = hashlib.sha256()
        members = 0
        with open(path, "rb") as f:
            while True:
                head = f.read(24)
                if not head:
                    break
                self.assertEqual(head[:4], b"\x1f\x8b\x08\x04", members)
                self.assertEqual(head[10:16], b"\x0c\x00CJ\x08\x00", members)
                msize, usize = struct.unpack("<II", head[16:24])
                self.assertEqual(usize, BLOCK, members)
                data = zlib.decompress(head + f.read(msize - 24), 31)
                self.assertEqual(len(data), usize, members)
                h.update(data)
                members += 1
        self.assertEqual(members, want_len // BLOCK)
        self.assertEqual(h.hexdigest(), want_sha)
        subprocess.run(["gzip", "-t", path], check=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
