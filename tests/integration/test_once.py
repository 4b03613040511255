#!/usr/bin/env python3
"""--once end to end: the real binary against the fake Connect server over loopback."""
import hashlib
import json
import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (FakeConnect, assert_no_temporaries,  # noqa: E402
                     make_jobspec, new_guid, read_archive, run_archiver, write_config, served_log)

KEY = "cja-TEST-key-7f3b9c1d5e"  # distinctive, so a leak is easy to find


class OnceTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="cja-once-")
        self.archive = os.path.join(self.tmp, "archive")
        self.outputs = []

    def tearDown(self):
        for out in self.outputs:
            self.assertNotIn(KEY, out, "the API key leaked into output")
        if os.path.isdir(self.archive):
            for root, _, files in os.walk(self.archive):
                for name in files:
                    with open(os.path.join(root, name), "rb") as f:
                        data = f.read()
                    self.assertNotIn(KEY.encode(), data, name)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def run_once(self, cfg, *extra, expect=0, env=None):
        p = run_archiver(["-c", cfg, "--once", *extra], env=env, timeout=120)
        self.outputs += [p.stdout, p.stderr]
        self.assertEqual(p.returncode, expect, p.stderr[-3000:])
        return p

    def mixed_scenario(self):
        a, b = new_guid(), new_guid()
        error = {"code": "E42", "summary": "Error in library(shiny): there is no package",
                 "help_url": "https://docs.posit.co/connect/user/troubleshooting/"}
        jobs_a = [
            make_jobspec("okPlainText00001", log="2024/11/25 22:17:43.386988748 Running on host\n"
                         "Listening on http://127.0.0.1:33545\n"),
            make_jobspec("failedWithError1", log="Error in library(shiny)\nExecution halted\n",
                         error=error, exit_code=1),
            # Finalized with null end_time and exit_code: due by status alone.
            make_jobspec("nullEndTime00001", log_size=5000, end_time=None, exit_code=None),
            # Status 3, skipped: Connect has no log for it.
            dict(make_jobspec("skippedNoLog0001", status=3), download_status=404),
            make_jobspec("activeJob0000001", status=0, log="still running\n"),
            make_jobspec("finishedNotFinal", status=1, log="not final yet\n"),
            # 23:30 at -07:00 is the next day in UTC.
            make_jobspec("offsetStartTime1", start_time="2024-03-31T23:30:00.123-07:00",
                         log="offset\n"),
            make_jobspec("binaryNotUtf8001", log=bytes(range(256)) * 40 + b"\xff\xfe\x00end"),
            make_jobspec("emptyLog00000001", log=""),
            dict(make_jobspec("chunkedLog000001", log_size=300000), chunked=True),
            make_jobspec("bigLog0000000001", log_size=6 * 1024 * 1024 + 17),
        ]
        jobs_b = [make_jobspec("secondItemJob001", log_size=12345),
                  make_jobspec("secondItemJob002", log_size=0, start_time="2025-01-01T00:00:00Z")]
        return a, b, jobs_a, jobs_b

    def test_mixed_scenario_byte_exact_then_nothing_again(self):
        a, b, jobs_a, jobs_b = self.mixed_scenario()
        with FakeConnect({a: jobs_a, b: jobs_b}, api_key=KEY) as fc:
            cfg = write_config(self.tmp, fc.url, self.archive, content=[a, (b, "sales-dashboard")],
                               api_key=KEY)
            p = self.run_once(cfg)
            self.assertRegex(p.stderr, r"<5>once: 2 content items, 11 jobs archived, 0 failed")

            arch = read_archive(self.archive)
            due = [s for s in jobs_a + jobs_b if s["job"]["status"] in (2, 3)]
            self.assertEqual(sorted(arch.jobs), sorted(s["job"]["key"] for s in due))
            for spec in jobs_a + jobs_b:
                key = spec["job"]["key"]
                guid = a if spec in jobs_a else b
                if spec["job"]["status"] in (0, 1):
                    self.assertNotIn(key, arch.jobs)
                    continue
                j = arch.jobs[key]
                rec = j["record"]
                self.assertIsNotNone(rec, key)
                self.assertEqual(rec["job"], spec["job"])
                self.assertEqual(rec["content_guid"], guid)
                self.assertEqual(rec["content_name"], None if guid == a else "sales-dashboard")
                self.assertRegex(rec["archived_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
                if spec.get("download_status") == 404:
                    self.assertIsNone(j["log"])
                    self.assertIsNone(rec["log_bytes"])
                    self.assertIsNone(rec["log_sha256"])
                else:
                    want = served_log(spec)
                    self.assertEqual(j["log"], want, key)
                    self.assertEqual(rec["log_bytes"], len(want))
                    self.assertEqual(rec["log_sha256"], hashlib.sha256(want).hexdigest())
                if spec.get("error"):
                    self.assertEqual(j["error"], spec["error"])
                    self.assertEqual(rec["error"], spec["error"])
                else:
                    self.assertIsNone(j["error"])
                    self.assertIsNone(rec["error"])
            # The folder is the start date in UTC.
            self.assertEqual(arch.jobs["offsetStartTime1"]["dir"], a + "/2024/04/01")
            self.assertEqual(arch.jobs["okPlainText00001"]["dir"], a + "/2024/11/25")
            self.assertEqual(arch.jobs["secondItemJob002"]["dir"], b + "/2025/01/01")
            assert_no_temporaries(self.archive)

            # Active and unfinalized jobs were never fetched.
            for path in (r["path"] for r in fc.requests()):
                self.assertNotIn("activeJob0000001/", path)
                self.assertNotIn("finishedNotFinal/", path)

            # A second run lists, finds everything archived, and fetches nothing.
            before = {rel: os.stat(os.path.join(self.archive, rel)) for rel in arch}
            fc.clear_requests()
            p = self.run_once(cfg)
            self.assertRegex(p.stderr, r"0 jobs archived, 0 failed")
            paths = [r["path"] for r in fc.requests()]
            self.assertEqual(sorted(paths), sorted("/__api__/v1/content/%s/jobs" % g for g in (a, b)))
            for rel, st in before.items():
                st2 = os.stat(os.path.join(self.archive, rel))
                self.assertEqual((st.st_ino, st.st_mtime_ns), (st2.st_ino, st2.st_mtime_ns), rel)

            # Once Connect finalizes a job, the next run archives it.
            fc.update_job(a, "finishedNotFinal", status=2)
            p = self.run_once(cfg)
            self.assertRegex(p.stderr, r"1 jobs archived, 0 failed")
            self.assertEqual(read_archive(self.archive).jobs["finishedNotFinal"]["log"],
                             b"not final yet\n")

    def test_file_modes_and_log_lines(self):
        g = new_guid()
        with FakeConnect({g: [make_jobspec("modeCheckJob0001", log="x\n")]}, api_key=KEY) as fc:
            cfg = write_config(self.tmp, fc.url, self.archive, content=[(g, "named")], api_key=KEY)
            p = self.run_once(cfg, "-v")
            d = os.path.join(self.archive, g, "2024", "11", "25")
            for name in ("modeCheckJob0001.log.gz", "modeCheckJob0001.json"):
                self.assertEqual(os.stat(os.path.join(d, name)).st_mode & 0o777, 0o640)
            self.assertEqual(os.stat(d).st_mode & 0o777, 0o750)
            # Every line about the job names content and job, with a priority prefix.
            self.assertRegex(p.stderr, r"(?m)^<6>content=%s \(named\) job=modeCheckJob0001: archived" % g)
            for line in p.stderr.splitlines():
                self.assertRegex(line, r"^<[0-7]>")
            # -v turns on libcurl's verbose output, with the key redacted.
            self.assertIn("Authorization: <redacted>", p.stderr)

    def test_hostile_keys_are_refused(self):
        g = new_guid()
        evil = ["../../escape", "a\nb", "..", ".hidden", "x" * 129, "dup.error"]
        jobs = [make_jobspec(k, log="evil\n") for k in evil] + [make_jobspec("goodJob000000001", log="ok\n")]
        with FakeConnect({g: jobs}, api_key=KEY) as fc:
            cfg = write_config(self.tmp, fc.url, self.archive, content=[g], api_key=KEY)
            p = self.run_once(cfg, expect=1)
            self.assertRegex(p.stderr, r"1 jobs archived, %d failed" % len(evil))
            self.assertEqual(sorted(read_archive(self.archive).jobs), ["goodJob000000001"])
            # Nothing was written outside the archive, and the newline could not forge a line.
            self.assertEqual(sorted(os.listdir(self.tmp)), ["api-key", "archive", "config.yaml"])
            self.assertIn(r"job=a\x0ab: skipped: job key is not safe as a file name", p.stderr)
            for line in p.stderr.splitlines():
                self.assertRegex(line, r"^<[0-7]>")

    def test_missing_content_fails_the_run_but_not_the_others(self):
        good, gone = new_guid(), new_guid()
        with FakeConnect({good: [make_jobspec("survivorJob00001", log="ok\n")],
                          gone: {"jobs": [], "status": 404}}, api_key=KEY) as fc:
            cfg = write_config(self.tmp, fc.url, self.archive, content=[good, gone], api_key=KEY)
            p = self.run_once(cfg, expect=1)
            self.assertRegex(p.stderr, r"content=%s \(-\): cannot list jobs: HTTP 404" % gone)
            self.assertIn("survivorJob00001", read_archive(self.archive).jobs)

    def test_wrong_key_is_reported(self):
        g = new_guid()
        with FakeConnect({g: [make_jobspec("neverFetched0001", log="x\n")]}, api_key=KEY) as fc:
            cfg = write_config(self.tmp, fc.url, self.archive, content=[g], api_key="not-the-key")
            p = self.run_once(cfg, expect=1)
            self.assertIn("HTTP 401", p.stderr)
            self.assertIn("the API key was rejected", p.stderr)
            self.assertNotIn("not-the-key", p.stderr)
            self.assertEqual(read_archive(self.archive).jobs, {})

    def test_transient_failures_are_retried(self):
        g = new_guid()
        spec = make_jobspec("retriedJob000001", log_size=200000)
        faults = [{"path": "/jobs$", "kind": "status", "status": 503, "times": 1},
                  {"path": "/download$", "kind": "reset", "after_bytes": 1000, "times": 1},
                  {"path": "/error$", "kind": "status", "status": 500, "times": 1}]
        with FakeConnect({g: [spec]}, api_key=KEY, faults=faults) as fc:
            cfg = write_config(self.tmp, fc.url, self.archive, content=[g], api_key=KEY)
            self.run_once(cfg)
            arch = read_archive(self.archive)
            self.assertEqual(arch.jobs["retriedJob000001"]["log"], served_log(spec))
            assert_no_temporaries(self.archive)
            self.assertEqual(len([r for r in fc.requests() if r.get("fault")]), 3)


class CommandLineTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="cja-cli-")
        self.archive = os.path.join(self.tmp, "archive")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_check_config_summary_without_the_key(self):
        g = new_guid()
        cfg = write_config(self.tmp, "https://connect.example.com", self.archive,
                           content=[(g, "sales")], api_key=KEY)
        p = run_archiver(["--check-config", "-c", cfg])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("https://connect.example.com", p.stdout)
        self.assertIn(g, p.stdout)
        self.assertIn("sales", p.stdout)
        self.assertNotIn(KEY, p.stdout + p.stderr)
        # --check-config touches nothing.
        self.assertFalse(os.path.exists(self.archive))

    def test_exit_codes(self):
        g = new_guid()
        good = write_config(self.tmp, "http://127.0.0.1:9", self.archive, content=[g], api_key=KEY)
        for args in (["--bogus"], ["extra-argument"], ["--once", "--check-config"], ["-c"]):
            self.assertEqual(run_archiver(args).returncode, 2, args)
        self.assertEqual(run_archiver(["-h"]).returncode, 0)
        v = run_archiver(["-V"])
        self.assertEqual(v.returncode, 0)
        self.assertRegex(v.stdout, r"^connect-job-archiver \d+\.\d+\.\d+")
        # 78: missing file, invalid config, no API key anywhere.
        p = run_archiver(["-c", os.path.join(self.tmp, "missing.yaml"), "--check-config"])
        self.assertEqual(p.returncode, 78)
        self.assertIn("missing.yaml", p.stderr)
        bad = write_config(self.tmp, "http://x", self.archive, content=[g], filename="bad.yaml",
                           api_key=KEY, archive__colour="blue")
        p = run_archiver(["-c", bad, "--once"])
        self.assertEqual(p.returncode, 78)
        self.assertRegex(p.stderr, r"bad\.yaml:\d+:\d+: .*colour")
        nokey = write_config(self.tmp, "http://x", self.archive, content=[g],
                             filename="nokey.yaml", api_key=None)
        p = run_archiver(["-c", nokey, "--check-config"], env={"CONNECT_API_KEY": None})
        self.assertEqual(p.returncode, 78, p.stderr)
        # The key from the environment works, and is not printed either.
        p = run_archiver(["-c", nokey, "--check-config"], env={"CONNECT_API_KEY": KEY})
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertNotIn(KEY, p.stdout + p.stderr)
        # 1: the server cannot be reached (port 9, discard, is closed on loopback).
        p = run_archiver(["-c", good, "--once"], timeout=120)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("cannot list jobs", p.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
