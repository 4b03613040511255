#!/usr/bin/env python3
"""Probes: connect-jobs on a hostile archive. A .log.gz that inflates to 256 MiB of
zeros (no newline in it), members whose CJ headers lie, records that are huge, not
objects, or filed under another key than their job.key, a FIFO or a device named like a
log or a record: every command ends (no hang), in bounded memory, names what it skipped,
and exits as documented (ls: 1 when a record could not be read; search: 2 on any error)."""
import gzip
import json
import os
import shutil
import stat
import struct
import sys
import tempfile
import unittest
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (FakeConnect, make_jobspec, new_guid, run_archiver,  # noqa: E402
                     write_config)
from probe_util import jobs_measured, report, rss_limit_kb  # noqa: E402

GOOD = "goodJob000000001"
ZEROS = "zeroBomb00000001"
LIE_MSIZE = "lieMsize00000001"
LIE_USIZE = "lieUsize00000001"
HUGE_REC = "hugeRecord000001"
NOT_OBJ = ("notObject0000001", "notObject0000002", "notObject0000003")
MISMATCH = "fileNameKey00001"
FIFO_LOG = "fifoLog000000001"
FIFO_REC = "fifoRecord000001"
DEV_LOG = "deviceLog0000001"
DAY = ("2024", "11", "25")
ZERO_BYTES = 256 << 20
# A log that is one line of hundreds of MB (zeros, no newline): search held the line
# (274 MB peak, 48 s for 1 GiB: each chunk rescanned it for a newline) and `log -n` ran for
# minutes; now a line is held up to 32 MiB (search: an error naming the log, exit 2; log:
# the first 32 MiB shown, and said so).
RSS_MB = 64
TIMEOUT = 60


def gzip_of_zeros(path, size):
    """One plain gzip member (no CJ subfield: the zlib path) of `size` zero bytes."""
    co = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1 << 20)
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(left, len(block))
            f.write(co.compress(block[:n]))
            left -= n
        f.write(co.flush())


class HostileArchive(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="cja-probe-arch-")
        cls.guid = new_guid()
        cls.archive = os.path.join(cls.tmp, "archive")
        log = "".join("2024/11/25 22:17:%02d.000000001 [stdout] line %d\n" % (i % 60, i)
                      for i in range(20000))
        with FakeConnect({cls.guid: [make_jobspec(GOOD, log=log)]}) as fc:
            cls.cfg = write_config(cls.tmp, fc.url, cls.archive, content=[(cls.guid, "app")])
            p = run_archiver(["--config", cls.cfg, "--once"])
            assert p.returncode == 0, p.stderr
        cls.day = os.path.join(cls.archive, cls.guid, *DAY)
        with open(os.path.join(cls.day, GOOD + ".json")) as f:
            cls.record = json.load(f)
        with open(os.path.join(cls.day, GOOD + ".log.gz"), "rb") as f:
            cls.good_gz = f.read()

        def record(key, **fields):
            rec = json.loads(json.dumps(cls.record))
            rec["job"]["key"] = key
            rec.update(fields)
            with open(os.path.join(cls.day, key + ".json"), "w") as f:
                json.dump(rec, f)

        def raw(name, data):
            with open(os.path.join(cls.day, name), "wb") as f:
                f.write(data)

        # A gigabyte of zeros whose record says 100 bytes.
        gzip_of_zeros(os.path.join(cls.day, ZEROS + ".log.gz"), ZERO_BYTES)
        record(ZEROS, log_bytes=100)
        # The first member's CJ subfield: MSIZE past the end of the file; USIZE too small.
        assert cls.good_gz[12:14] == b"CJ" and len(cls.good_gz) > 24
        msize, usize = struct.unpack("<II", cls.good_gz[16:24])
        raw(LIE_MSIZE + ".log.gz", cls.good_gz[:16] + struct.pack("<II", 0x7fffffff, usize)
            + cls.good_gz[24:])
        record(LIE_MSIZE)
        raw(LIE_USIZE + ".log.gz", cls.good_gz[:16] + struct.pack("<II", msize, 10)
            + cls.good_gz[24:])
        record(LIE_USIZE)
        # Records: 50 MB, not objects, filed under another key than job.key.
        rec = json.loads(json.dumps(cls.record))
        rec["job"]["key"] = HUGE_REC
        rec["padding"] = "x" * (50 << 20)
        raw(HUGE_REC + ".json", json.dumps(rec).encode())
        for key, text in zip(NOT_OBJ, ("[1, 2]", '"a string"', "null")):
            raw(key + ".json", text.encode())
        rec = json.loads(json.dumps(cls.record))
        rec["job"]["key"] = "someOtherKey0001"
        raw(MISMATCH + ".json", json.dumps(rec).encode())
        raw(MISMATCH + ".log.gz", cls.good_gz)
        # A FIFO named like a log (with a good record), and one named like a record.
        os.mkfifo(os.path.join(cls.day, FIFO_LOG + ".log.gz"))
        record(FIFO_LOG)
        os.mkfifo(os.path.join(cls.day, FIFO_REC + ".json"))
        # A character device (/dev/null's numbers) named like a log, where mknod works.
        try:
            os.mknod(os.path.join(cls.day, DEV_LOG + ".log.gz"), 0o644 | stat.S_IFCHR,
                     os.makedev(1, 3))
            record(DEV_LOG)
            cls.has_device = True
        except OSError:
            cls.has_device = False

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def jobs(self, name, args, rss_mb=RSS_MB):
        m = jobs_measured(["-c", self.cfg] + args, timeout=TIMEOUT)
        report(name, m)
        self.assertLess(m.peak_kb, rss_limit_kb(rss_mb), "peak RSS %d KiB; stderr %s"
                        % (m.peak_kb, m.stderr[-1000:]))
        return m

    def test_ls_names_what_it_skipped(self):
        m = self.jobs("ls on the hostile archive", ["ls", "-o", "json"])
        self.assertEqual(m.returncode, 1, m.stderr)
        keys = {json.loads(line)["key"] for line in m.stdout.splitlines()}
        for k in (GOOD, ZEROS, LIE_MSIZE, LIE_USIZE, FIFO_LOG, MISMATCH):
            self.assertIn(k, keys)
        for k in (HUGE_REC,) + NOT_OBJ:
            self.assertNotIn(k, keys)
            self.assertIn(k + ".json", m.stderr)
        # A FIFO named like a record is passed over by the listing (not a regular file).
        self.assertNotIn(FIFO_REC, keys)
        # The file name is the job's key (the archive's invariant); job.key is not used.
        self.assertNotIn("someOtherKey0001", keys)

    def test_search_goes_on_and_exits_2(self):
        m = self.jobs("search -c on the hostile archive (256 MiB of zeros in it)",
                      ["search", "-c", "line 1999"])
        self.assertEqual(m.returncode, 2, m.stderr)
        counts = dict(line.rsplit(":", 1) for line in m.stdout.splitlines())
        good = [k for k in counts if GOOD in k]
        self.assertEqual(len(good), 1, m.stdout)
        self.assertEqual(counts[good[0]], "11")  # "line 1999" and "line 19990".."19999"
        for k in (LIE_MSIZE, LIE_USIZE, FIFO_LOG):
            self.assertRegex(m.stderr, r"%s\.log\.gz" % k)

    def test_log_of_a_line_of_zeros(self):
        m = self.jobs("log -n 5 of 256 MiB of zeros", ["log", "app", ZEROS, "-n", "5"])
        self.assertIn(m.returncode, (0, 1), m.stderr)
        self.assertLess(len(m.stdout), 64 << 20)
        self.assertIn("longer than 32 MiB", m.stderr)

    def test_download_of_a_line_of_zeros(self):
        out = os.path.join(self.tmp, "zeros.out")
        m = self.jobs("download of 256 MiB of zeros", ["download", "app", ZEROS, "-O", out])
        self.assertEqual(m.returncode, 0, m.stderr)
        self.assertEqual(os.path.getsize(out), ZERO_BYTES)
        os.unlink(out)

    def test_lying_headers(self):
        for key in (LIE_MSIZE, LIE_USIZE):
            m = self.jobs("log of a member with a lying header (%s)" % key,
                          ["log", "app", key, "-n", "3"])
            self.assertNotEqual(m.returncode, 0)
            self.assertRegex(m.stderr, r"(?i)corrupt|truncated|invalid")

    def test_fifo_and_device_do_not_hang(self):
        m = self.jobs("log of a FIFO named like a log", ["log", "app", FIFO_LOG, "-n", "3"])
        self.assertNotEqual(m.returncode, 0)
        self.assertIn(FIFO_LOG + ".log.gz", m.stderr)
        m = self.jobs("show of a FIFO named like a record", ["show", "app", FIFO_REC])
        self.assertNotEqual(m.returncode, 0)
        if not self.has_device:
            print("device probe skipped: mknod is not permitted here", file=sys.stderr)
            return
        m = self.jobs("log of a device named like a log", ["log", "app", DEV_LOG, "-n", "3"])
        self.assertNotEqual(m.returncode, 0)
        self.assertIn(DEV_LOG + ".log.gz", m.stderr)

    def test_record_under_another_key(self):
        m = self.jobs("show of a record whose job.key differs", ["show", "app", MISMATCH])
        self.assertEqual(m.returncode, 0, m.stderr)
        self.assertIn("from the archive", m.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
