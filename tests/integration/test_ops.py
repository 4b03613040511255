#!/usr/bin/env python3
"""Operations: the metrics file, retention, and the free-space guard."""
import datetime
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (FakeConnect, assert_no_temporaries, make_jobspec, new_guid,  # noqa: E402
                     read_archive, run_archiver, start_archiver, stop_process, wait_for,
                     write_config)

KEY = "cja-ops-key-2b7e151628"
SAMPLE = re.compile(r'^connect_job_archiver_[a-z_]+(\{(guid="[^"]*",name="(\\.|[^"\\])*"|'
                    r'source="[a-z]+")\})? -?[0-9.]+$')


def parse_metrics(path):
    values = {}
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("#"):
                continue
            assert SAMPLE.match(line), "not a Prometheus sample: %r" % line
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def day(delta_days):
    d = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=delta_days)
    return d.strftime("%Y-%m-%dT%H:%M:%SZ"), d.strftime("%Y/%m/%d")


class OpsTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="cja-ops-")
        self.archive = os.path.join(self.tmp, "archive")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_metrics_file_parses_and_counts(self):
        a, b = new_guid(), new_guid()
        metrics = os.path.join(self.tmp, "cja.prom")
        with FakeConnect({a: [make_jobspec("metricJob0000001", log="x" * 1000),
                              make_jobspec("metricJob0000002", log="y" * 500)],
                          b: {"jobs": [], "status": 404}}, api_key=KEY) as fc:
            cfg = write_config(self.tmp, fc.url, self.archive, content=[(a, 'we "quote"'), b],
                               api_key=KEY, metrics_file=metrics)
            t0 = time.time()
            p = run_archiver(["-c", cfg, "--once"])
            self.assertEqual(p.returncode, 1, p.stderr)
            m = parse_metrics(metrics)
            self.assertEqual(m["connect_job_archiver_jobs_archived_total"], 2)
            self.assertEqual(m["connect_job_archiver_downloaded_bytes_total"], 1500)
            self.assertGreater(m["connect_job_archiver_written_bytes_total"], 0)
            self.assertEqual(m["connect_job_archiver_list_failures_total"], 1)
            self.assertEqual(m["connect_job_archiver_connect_up"], 1)
            self.assertEqual(m["connect_job_archiver_disk_paused"], 0)
            la = 'connect_job_archiver_last_success_timestamp_seconds{guid="%s",name="we \\"quote\\""}' % a
            lb = 'connect_job_archiver_last_success_timestamp_seconds{guid="%s",name=""}' % b
            self.assertGreaterEqual(m[la], int(t0))
            self.assertEqual(m[lb], 0)
            self.assertEqual(m['connect_job_archiver_item_failing{guid="%s",name=""}' % b], 1)
            self.assertFalse(os.path.exists(metrics + ".tmp"))

    def test_service_rewrites_metrics_each_poll(self):
        g = new_guid()
        metrics = os.path.join(self.tmp, "cja.prom")
        with FakeConnect({g: [make_jobspec("svcMetricJob0001", log="a\n")]}, api_key=KEY) as fc:
            cfg = write_config(self.tmp, fc.url, self.archive, content=[g], api_key=KEY,
                               metrics_file=metrics)
            p = start_archiver(["-c", cfg])
            try:
                wait_for(lambda: os.path.exists(metrics) and parse_metrics(metrics).get(
                    "connect_job_archiver_jobs_archived_total") == 1, 10, message="metrics")
                fc.add_job(g, make_jobspec("svcMetricJob0002", log="b\n"))
                wait_for(lambda: parse_metrics(metrics).get(
                    "connect_job_archiver_jobs_archived_total") == 2, 10, message="metrics 2")
            finally:
                self.assertEqual(stop_process(p), 0)

    def test_retention_prunes_and_never_refetches(self):
        g = new_guid()
        old_time, old_dir = day(-60)
        new_time, new_dir = day(-1)
        # A job archived long ago, now past the 30-day window.
        old_folder = os.path.join(self.archive, g, old_dir)
        os.makedirs(old_folder)
        with open(os.path.join(old_folder, "prunedJob0000001.json"), "w") as f:
            f.write("{}")
        jobs = [make_jobspec("prunedJob0000001", start_time=old_time, log="old\n"),
                make_jobspec("tooOldToFetch001", start_time=old_time, log="old\n"),
                make_jobspec("recentJob0000001", start_time=new_time, log="new\n")]
        with FakeConnect({g: jobs}, api_key=KEY) as fc:
            cfg = write_config(self.tmp, fc.url, self.archive, content=[g], api_key=KEY,
                               archive__retention_days=30)
            p = run_archiver(["-c", cfg, "--once"])
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("retention: removed 1 day folders", p.stderr)
            self.assertFalse(os.path.exists(old_folder))
            # A second run: the old jobs stay gone, nothing is fetched again.
            p = run_archiver(["-c", cfg, "--once"])
            self.assertEqual(p.returncode, 0, p.stderr)
            arch = read_archive(self.archive)
            self.assertEqual(sorted(arch.jobs), ["recentJob0000001"])
            self.assertEqual(arch.jobs["recentJob0000001"]["dir"], "%s/%s" % (g, new_dir))
            downloads = [r["path"] for r in fc.requests(path="/download$")]
            self.assertEqual(downloads,
                             ["/__api__/v1/content/%s/jobs/recentJob0000001/download" % g])

    def mount_tmpfs(self, size):
        if os.geteuid() != 0:
            self.skipTest("needs root to mount a small tmpfs")
        mnt = os.path.join(self.tmp, "small")
        os.makedirs(mnt)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=" + size, "tmpfs", mnt],
                           stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            self.skipTest("cannot mount a tmpfs here: " + r.stderr.strip())
        self.addCleanup(subprocess.run, ["umount", "-l", mnt])
        return mnt

    def test_disk_full_loses_nothing(self):
        mnt = self.mount_tmpfs("1m")
        archive = os.path.join(mnt, "archive")
        g = new_guid()
        # Random bytes do not compress: 3 MB of them cannot fit in 1 MB.
        big = random.Random(7).randbytes(3 * 1024 * 1024)
        with FakeConnect({g: [make_jobspec("tooBigForDisk001", log=big),
                              make_jobspec("smallFitsFine001", log="ok\n")]}, api_key=KEY) as fc:
            cfg = write_config(self.tmp, fc.url, archive, content=[g], api_key=KEY,
                               archive__min_free_mb=0)
            p = run_archiver(["-c", cfg, "--once"])
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertRegex(p.stderr, r"job=tooBigForDisk001: cannot write the log to %s/%s/"
                                       r"2024/11/25: No space left on device; will retry next cycle"
                             % (re.escape(archive), g))
            arch = read_archive(archive)
            self.assertEqual(sorted(arch.jobs), ["smallFitsFine001"])
            assert_no_temporaries(archive)
            # Space returns: the next run archives the job, byte-exact.
            subprocess.run(["mount", "-o", "remount,size=16m", mnt], check=True)
            p = run_archiver(["-c", cfg, "--once"])
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(read_archive(archive).jobs["tooBigForDisk001"]["log"], big)

    def test_read_only_archive_keeps_the_service_running(self):
        mnt = self.mount_tmpfs("8m")
        archive = os.path.join(mnt, "archive")
        g = new_guid()
        with FakeConnect({g: [make_jobspec("beforeReadOnly01", log="a\n")]}, api_key=KEY) as fc:
            cfg = write_config(self.tmp, fc.url, archive, content=[g], api_key=KEY,
                               poll__interval_seconds=1, archive__min_free_mb=0)
            p = start_archiver(["-c", cfg])
            try:
                first = os.path.join(archive, g, "2024/11/25/beforeReadOnly01.json")
                wait_for(lambda: os.path.exists(first), 10, message="the first job")
                subprocess.run(["mount", "-o", "remount,ro", mnt], check=True)
                fc.add_job(g, make_jobspec("whileReadOnly001", log="b\n"))
                wait_for(lambda: "job=whileReadOnly001: cannot write the log to %s/%s/2024/11/25: "
                                 "Read-only file system" % (archive, g) in p.read_stderr(), 10,
                         message="the read-only error, naming the folder")
                self.assertIsNone(p.poll())
                subprocess.run(["mount", "-o", "remount,rw", mnt], check=True)
                second = os.path.join(archive, g, "2024/11/25/whileReadOnly001.json")
                wait_for(lambda: os.path.exists(second), 10, message="archived once writable")
            finally:
                self.assertEqual(stop_process(p), 0)
            self.assertEqual(read_archive(archive).jobs["whileReadOnly001"]["log"], b"b\n")
            assert_no_temporaries(archive)

    def test_disk_guard_pauses_and_resumes(self):
        mnt = self.mount_tmpfs("8m")
        archive = os.path.join(mnt, "archive")
        filler = os.path.join(mnt, "filler")
        with open(filler, "wb") as f:
            f.write(b"\0" * (6 * 1024 * 1024))
        g = new_guid()
        with FakeConnect({g: [make_jobspec("waitsForSpace001", log_size=100000)]},
                         api_key=KEY) as fc:
            cfg = write_config(self.tmp, fc.url, archive, content=[g], api_key=KEY,
                               archive__min_free_mb=4)
            p = start_archiver(["-c", cfg])
            try:
                wait_for(lambda: "archiving paused" in p.read_stderr(), 10, message="pause")
                time.sleep(1.5)
                self.assertEqual(fc.requests(path="/download$"), [])
                os.unlink(filler)
                record = os.path.join(archive, g, "2024/11/25/waitsForSpace001.json")
                wait_for(lambda: os.path.exists(record), 15,
                         message="the job archived once space returned")
                self.assertIn("waitsForSpace001", read_archive(archive).jobs)
                self.assertIn("archiving resumes", p.read_stderr())
            finally:
                self.assertEqual(stop_process(p), 0)
            assert_no_temporaries(archive)


if __name__ == "__main__":
    unittest.main(verbosity=2)
