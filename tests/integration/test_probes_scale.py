#!/usr/bin/env python3
"""Probes: scale. An archive of many jobs (20,000 by default; CJA_PROBE_SCALE_JOBS=200000
for the issue's figure) read by connect-jobs ls, ls --failed, ls -o json, search -c and
log KEY, each timed with its peak RSS; and a service watching 5,000 items: its start, its
RSS, and the CPU an idle cycle costs.

The archive is written by this one Python process (records from a template, one small
.log.gz shared by every job), 50 items x 10 jobs a day, as an archiver of busy items would
leave it. Bounds are generous (2 shared cores, sanitizer builds) but meaningful: ls holds
one date's records and a compact row per job, not every record it has read."""
import os
import shutil
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (FakeConnect, binary_has_asan, jobs_binary, new_guid,  # noqa: E402
                     run_archiver, start_archiver, stop_process, wait_for, write_config)
from fake_connect import make_jobspec  # noqa: E402
from probe_util import jobs_measured, probe_env, report, rss_limit_kb, vm_hwm_kb  # noqa: E402

N_JOBS = int(os.environ.get("CJA_PROBE_SCALE_JOBS", "20000"))
N_ITEMS = 50
PER_DAY = 10  # jobs of an item per day
N_WATCHED = 5000
LINES = 20
TIMEOUT = 300

RECORD = ('{"job":{"id":"%(n)d","key":"%(key)s","app_id":"1","start_time":"%(start)s",'
          '"end_time":"%(end)s","queued_time":null,"tag":"run_app","exit_code":%(ec)d,'
          '"status":2,"hostname":"connect-fake-01"},"error":null,"content_guid":"%(guid)s",'
          '"content_name":"item %(item)d","archived_at":"2026-01-01T00:00:00Z",'
          '"date_source":"start_time","log_bytes":%(size)d,"log_sha256":"%(sha)s",'
          '"log_gzip_bytes":%(gz)d}')


def civil(days):
    """The date `days` after 2020-01-01 (proleptic Gregorian), as (y, m, d)."""
    t = time.gmtime(1577836800 + days * 86400)
    return t.tm_year, t.tm_mon, t.tm_mday


def build_archive(archive, template_dir, n_jobs):
    """Writes n_jobs jobs; every tenth one failed (exit code 1). Returns (guids, keys)."""
    import hashlib
    gz_path = [os.path.join(r, f) for r, _, fs in os.walk(template_dir) for f in fs
               if f.endswith(".log.gz")][0]
    with open(gz_path, "rb") as f:
        gz = f.read()
    import gzip
    raw = gzip.decompress(gz)
    sha = hashlib.sha256(raw).hexdigest()
    guids = [new_guid() for _ in range(N_ITEMS)]
    days = (n_jobs + N_ITEMS * PER_DAY - 1) // (N_ITEMS * PER_DAY)
    n = 0
    keys = []
    for day in range(days):
        y, m, d = civil(day)
        for i, guid in enumerate(guids):
            folder = os.path.join(archive, guid, "%04d" % y, "%02d" % m, "%02d" % d)
            os.makedirs(folder, mode=0o750)
            for k in range(PER_DAY):
                if n >= n_jobs:
                    break
                key = "scale%011d" % n
                start = "%04d-%02d-%02dT%02d:%02d:00Z" % (y, m, d, 8 + k, i % 60)
                end = "%04d-%02d-%02dT%02d:%02d:30Z" % (y, m, d, 8 + k, i % 60)
                rec = RECORD % dict(n=n, key=key, start=start, end=end,
                                    ec=1 if n % 10 == 0 else 0, guid=guid, item=i,
                                    size=len(raw), sha=sha, gz=len(gz))
                with open(os.path.join(folder, key + ".log.gz"), "wb") as f:
                    f.write(gz)
                with open(os.path.join(folder, key + ".json"), "w") as f:
                    f.write(rec)
                keys.append((guid, key))
                n += 1
    return guids, keys


class ScaleArchive(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="cja-probe-scale-")
        tmpl = os.path.join(cls.tmp, "template")
        g = new_guid()
        log = "".join("2024/11/25 22:17:%02d.000000001 [stdout] line %d\n" % (i % 60, i)
                      for i in range(LINES))
        with FakeConnect({g: [make_jobspec("tmplJob000000001", log=log)]}) as fc:
            cfg = write_config(tmpl, fc.url, os.path.join(tmpl, "archive"), content=[g])
            p = run_archiver(["--config", cfg, "--once"])
            assert p.returncode == 0, p.stderr
        cls.archive = os.path.join(cls.tmp, "archive")
        t0 = time.monotonic()
        cls.guids, cls.keys = build_archive(cls.archive, os.path.join(tmpl, "archive"), N_JOBS)
        print("PROBE scale: wrote %d jobs in %.1f s" % (N_JOBS, time.monotonic() - t0),
              file=sys.stderr)
        cls.cfg = write_config(cls.tmp, "http://127.0.0.1:9", cls.archive,
                               content=[(g, "item %d" % i) for i, g in enumerate(cls.guids)])
        cls.asan = binary_has_asan(jobs_binary())
        # The same walk keeping nothing (a key no job has): what every command costs before
        # it holds any record. The bounds below are on what a command holds beyond it.
        m = jobs_measured(["-c", cls.cfg, "ls", "--key", "noSuchJob0000000"], timeout=TIMEOUT)
        cls.base_kb = m.peak_kb
        report("ls --key (the walk alone, %d jobs)" % N_JOBS, m)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def jobs(self, name, args, per_job, seconds, fixed_mb=4):
        """Runs connect-jobs; its peak RSS beyond the walk's must stay under fixed_mb plus
        per_job bytes a job (under ASan: 3x, for the redzones, plus the 16 MiB quarantine
        of freed blocks, which the walk alone hardly fills), its time under seconds (4x)."""
        out = os.path.join(self.tmp, "out")
        m = jobs_measured(["-c", self.cfg] + args, timeout=TIMEOUT, out_path=out)
        extra = m.peak_kb - self.base_kb
        report("%s (%d jobs)" % (name, N_JOBS), m, "(%+d KiB over the walk: %d bytes a job)"
               % (extra, max(extra, 0) * 1024 // N_JOBS))
        limit_kb = fixed_mb * 1024 + N_JOBS * per_job // 1024
        if self.asan:
            limit_kb = 3 * limit_kb + 16 * 1024
        self.assertLess(extra, limit_kb, "peak RSS %d KiB, %d over the walk's; stderr %s"
                        % (m.peak_kb, extra, m.stderr[-1000:]))
        self.assertLess(m.seconds, seconds * (4 if self.asan else 1))
        return m

    # A record held whole costs about 280 bytes (the struct scan_job and its seven strings):
    # 200,000 of them 55 MB. A row of the table costs 60 to 70, one date of records a
    # constant: the bounds are 120 bytes a job for the table, nothing for the others.
    def test_ls(self):
        m = self.jobs("ls", ["ls"], 120, 10 + N_JOBS / 4000, 1)
        self.assertEqual(m.returncode, 0, m.stderr[-2000:])
        lines = m.stdout.splitlines()
        self.assertEqual(len(lines), N_JOBS + 1)  # the header
        self.assertIn("scale%011d" % 0, lines[1])
        self.assertIn("scale%011d" % (N_JOBS - 1), lines[-1])

    def test_ls_reverse(self):
        m = self.jobs("ls -r", ["ls", "-r"], 120, 10 + N_JOBS / 4000, 1)
        self.assertEqual(m.returncode, 0, m.stderr[-2000:])
        lines = m.stdout.splitlines()
        self.assertIn("scale%011d" % (N_JOBS - 1), lines[1])
        self.assertIn("scale%011d" % 0, lines[-1])

    def test_ls_json_streams(self):
        # One date's records at a time: the bound does not grow with the archive.
        m = self.jobs("ls -o json", ["ls", "-o", "json"], 0, 10 + N_JOBS / 4000, 3)
        self.assertEqual(m.returncode, 0, m.stderr[-2000:])
        self.assertEqual(m.stdout.count("\n"), N_JOBS)

    def test_ls_failed(self):
        m = self.jobs("ls --failed", ["ls", "--failed"], 12, 10 + N_JOBS / 4000, 1)
        self.assertEqual(m.returncode, 0, m.stderr[-2000:])
        self.assertEqual(len(m.stdout.splitlines()), (N_JOBS + 9) // 10 + 1)

    def test_search_count(self):
        m = self.jobs("search -c", ["search", "-c", "line 7$"], 0, 10 + N_JOBS / 2000, 16)
        self.assertEqual(m.returncode, 0, m.stderr[-2000:])
        lines = m.stdout.splitlines()
        self.assertEqual(len(lines), N_JOBS)
        self.assertTrue(all(line.endswith(":1") for line in lines[:100]), lines[:3])

    def test_log_key(self):
        guid, key = self.keys[len(self.keys) // 2]
        m = self.jobs("log KEY", ["log", guid, key, "-n", "5"], 0, 5)
        self.assertEqual(m.returncode, 0, m.stderr[-2000:])
        self.assertEqual(len(m.stdout.splitlines()), 5)
        self.assertIn("line %d" % (LINES - 1), m.stdout)
        self.assertIn("from the archive", m.stderr)


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ScaleWatched(unittest.TestCase):
    def test_five_thousand_items(self):
        """5,000 items in content:, with nothing to archive: the start (config read, first
        polls spread over one interval), the RSS, and the CPU of idle cycles."""
        tmp = tempfile.mkdtemp(prefix="cja-probe-watch-")
        try:
            guids = [new_guid() for _ in range(N_WATCHED)]
            content = {g: [] for g in guids}
            with FakeConnect(content) as fc:
                archive = os.path.join(tmp, "archive")
                interval = 4
                cfg = write_config(tmp, fc.url, archive,
                                   content=[(g, "item %d" % i) for i, g in enumerate(guids)],
                                   poll__interval_seconds=interval,
                                   server__max_concurrent_requests=16)
                t0 = time.monotonic()
                # (probe_env: the ASan quarantine cut to 16 MiB, or freed blocks count.)
                p = start_archiver(["-c", cfg], env={
                    "ASAN_OPTIONS": probe_env().get("ASAN_OPTIONS")})
                try:
                    wait_for(lambda: "watching 5000 content items" in p.read_stderr(), 30,
                             message="the start")
                    started = time.monotonic() - t0
                    # The first polls are spread over one interval.
                    wait_for(lambda: len(fc.requests(path=r"/jobs$")) >= N_WATCHED,
                             interval * 6, interval=0.5, message="the first cycle")
                    first = time.monotonic() - t0
                    cpu0, t1 = cpu_seconds(p.pid), time.monotonic()
                    n0 = len(fc.requests(path=r"/jobs$"))
                    time.sleep(2 * interval)
                    cpu1, t2 = cpu_seconds(p.pid), time.monotonic()
                    n1 = len(fc.requests(path=r"/jobs$"))
                    hwm = vm_hwm_kb(p.pid)
                finally:
                    self.assertEqual(stop_process(p, timeout=20), 0)
            polls = n1 - n0
            per_poll_ms = 1000 * (cpu1 - cpu0) / polls if polls else 0
            print("PROBE 5,000 watched items: started in %.2f s, first cycle done in %.1f s, "
                  "peak RSS %d KiB; idle %.1f s: %d polls, %.2f s CPU (%.3f ms a poll, %.1f%% "
                  "of a core)" % (started, first, hwm, t2 - t1, polls, cpu1 - cpu0,
                                  per_poll_ms, 100 * (cpu1 - cpu0) / (t2 - t1)),
                  file=sys.stderr)
            self.assertLess(started, 10)
            self.assertLess(hwm, rss_limit_kb(48, p.args[0]))
            # An idle poll is one request and a parsed one-job list: well under 5 ms of CPU
            # (ASan: 4x), and polling at all costs under a quarter of a core.
            self.assertGreater(polls, 0)
            self.assertLess(per_poll_ms, 5 * (4 if binary_has_asan(p.args[0]) else 1))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
