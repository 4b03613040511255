#!/usr/bin/env python3
"""connect-jobs download: a 100 MB log streamed with flat memory (the child's peak RSS,
VmHWM), to stdout and atomically to -O FILE, byte-exact."""
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (FakeConnect, archiver_env, binary_has_asan,  # noqa: E402
                     iter_generated_log, jobs_binary, make_jobspec, new_guid, write_config)

KEY = "cja-TEST-key-1c5e7a3f90"
BIG = 100 * 1024 * 1024
SMALL = 1024 * 1024
# The bound is for correctness (memory must not grow with the log), not for speed: a plain
# build peaks near 10 MB whatever the size.
RSS_LIMIT_KB = 30 * 1024
RSS_GROWTH_LIMIT_KB = 8 * 1024


def sha256_of_generated(key, size, start):
    h = hashlib.sha256()
    for piece in iter_generated_log(key, size, start):
        h.update(piece)
    return h.hexdigest()


def sha256_of_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class DownloadTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="cja-dl-")
        self.guid = new_guid()

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    @staticmethod
    def peak_rss_kb(pid):
        """VmHWM: the peak RSS of the program (exec starts it afresh; wait4's ru_maxrss
        would count the forking Python's pages too). None once the process is gone."""
        try:
            with open("/proc/%d/status" % pid) as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1])
        except OSError:
            return None
        return None

    def download(self, cfg, key, out_path, via_file):
        """Runs a download; returns (exit status, peak RSS in KiB, stderr). The peak is
        sampled every 20 ms until the process exits (it only grows)."""
        args = [jobs_binary(), "-c", cfg, "download", self.guid, key]
        err_path = os.path.join(self.tmp, "stderr.txt")
        with open(err_path, "wb") as err, open(os.devnull if via_file else out_path,
                                               "wb") as out:
            if via_file:
                args += ["-O", out_path]
            p = subprocess.Popen(args, env=archiver_env(), stdin=subprocess.DEVNULL,
                                 stdout=out, stderr=err)
            peak = 0
            while True:
                # A zombie still has its /proc status until it is reaped, but no memory:
                # sample while it runs, reap when it has exited.
                pid, status = os.waitpid(p.pid, os.WNOHANG)
                if pid:
                    break
                v = self.peak_rss_kb(p.pid)
                if v:
                    peak = max(peak, v)
                time.sleep(0.02)
            p.returncode = os.waitstatus_to_exitcode(status)
        with open(err_path, "rb") as f:
            stderr = f.read().decode("utf-8", "replace")
        self.assertNotIn(KEY, stderr)
        self.assertGreater(peak, 0, "no RSS sample")
        return p.returncode, peak, stderr

    def test_100mb_flat_memory(self):
        start = "2024-11-25T22:17:42Z"
        specs = [dict(make_jobspec("bigLog0000000001", log_size=BIG, start_time=start),
                      chunked=True),
                 make_jobspec("smallLog00000001", log_size=SMALL, start_time=start)]
        with FakeConnect({self.guid: specs}, api_key=KEY) as fc:
            cfg = write_config(self.tmp, fc.url, os.path.join(self.tmp, "archive"),
                               content=[self.guid], api_key=KEY)
            small_out = os.path.join(self.tmp, "small.log")
            rc, small_rss, err = self.download(cfg, "smallLog00000001", small_out, False)
            self.assertEqual(rc, 0, err)
            self.assertEqual(sha256_of_file(small_out),
                             sha256_of_generated("smallLog00000001", SMALL, start))

            # To stdout (chunked, no length known in advance).
            big_out = os.path.join(self.tmp, "big-stdout.log")
            rc, big_rss, err = self.download(cfg, "bigLog0000000001", big_out, False)
            self.assertEqual(rc, 0, err)
            self.assertEqual(os.path.getsize(big_out), BIG)
            want = sha256_of_generated("bigLog0000000001", BIG, start)
            self.assertEqual(sha256_of_file(big_out), want)
            os.unlink(big_out)

            # To a file, atomically: only the final name is left.
            dest = os.path.join(self.tmp, "dest", "big.log")
            os.makedirs(os.path.dirname(dest))
            rc, file_rss, err = self.download(cfg, "bigLog0000000001", dest, True)
            self.assertEqual(rc, 0, err)
            self.assertEqual(os.listdir(os.path.dirname(dest)), ["big.log"])
            self.assertEqual(sha256_of_file(dest), want)

        print("peak RSS: 1 MB log %d KiB, 100 MB log to stdout %d KiB, to a file %d KiB"
              % (small_rss, big_rss, file_rss), file=sys.stderr)
        self.assertLess(big_rss - small_rss, RSS_GROWTH_LIMIT_KB)
        self.assertLess(file_rss - small_rss, RSS_GROWTH_LIMIT_KB)
        if binary_has_asan(jobs_binary()):
            print("absolute RSS bound skipped: AddressSanitizer build", file=sys.stderr)
        else:
            self.assertLess(big_rss, RSS_LIMIT_KB)
            self.assertLess(file_rss, RSS_LIMIT_KB)


if __name__ == "__main__":
    unittest.main(verbosity=2)
