#!/usr/bin/env python3
"""Fault injection, end to end: the real binary in --once mode against the fake Connect
server with one fault at a time (statuses, Retry-After, resets, truncated and broken
bodies, garbage and oversized JSON, stalls, hostile job lists, refused keys, binary logs).

Every test checks the final archive byte for byte against what the server served, that
no temporaries are left, the exit status, and the log line an operator would read.
Environment as for every integration test: CJA_BINARY, CJA_TESTS_DIR.
"""
import calendar
import email.utils
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (LOCK_FILE, FakeConnect, assert_no_temporaries,  # noqa: E402
                     make_job, make_jobspec, new_guid, read_archive, run_archiver,
                     write_config, served_log)

KEY = "cja-FAULT-key-93e1a0c4b7"  # distinctive, so a leak is easy to find
DAY = "2024/11/25"                # the folder of make_job's default start time


def downloads(fc, key):
    return fc.requests(path="/jobs/%s/download$" % key)


class FaultTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="cja-faults-")
        self.archive = os.path.join(self.tmp, "archive")
        self.outputs = []

    def tearDown(self):
        for out in self.outputs:
            self.assertNotIn(KEY, out, "the API key leaked into output")
        shutil.rmtree(self.tmp, ignore_errors=True)

    # ---- helpers
    def config(self, fc, content, **kw):
        return write_config(self.tmp, fc.url, self.archive, content=content, api_key=KEY,
                            **kw)

    def run_once(self, cfg, *extra, expect=0, timeout=110):
        t0 = time.monotonic()
        p = run_archiver(["-c", cfg, "--once", *extra], timeout=timeout)
        p.elapsed = time.monotonic() - t0
        self.outputs += [p.stdout, p.stderr]
        self.assertEqual(p.returncode, expect, "exit status; stderr:\n" + p.stderr[-4000:])
        for line in p.stderr.splitlines():
            self.assertRegex(line, r"^<[0-7]>", "every log line has a priority prefix")
        return p

    def assert_archived(self, arch, guid, spec, error=None):
        """The job is archived completely and byte-exact in its day folder."""
        key = spec["job"]["key"]
        self.assertIn(key, arch.jobs, "%s is not archived" % key)
        j = arch.jobs[key]
        rec = j["record"]
        self.assertIsNotNone(rec, "%s has no record" % key)
        self.assertEqual(j["dir"], "%s/%s" % (guid, DAY))
        self.assertEqual(rec["job"], spec["job"])
        self.assertEqual(rec["content_guid"], guid)
        want = served_log(spec)
        self.assertIsNotNone(j["log"], "%s has no .log.gz" % key)
        self.assertEqual(len(j["log"]), len(want), key)
        self.assertTrue(j["log"] == want, "%s: archived log differs from the served bytes" % key)
        self.assertEqual(rec["log_bytes"], len(want))
        self.assertEqual(rec["log_sha256"], hashlib.sha256(want).hexdigest())
        self.assertEqual(rec["error"], error)
        self.assertEqual(j["error"], error)

    def assert_absent(self, key):
        """No file at all (final or temporary) names the job."""
        found = []
        for root, _, files in os.walk(self.archive):
            found += [n for n in files if n.startswith(key) or n.startswith("." + key)]
        self.assertEqual(found, [], "files of a failed job are left behind")

    def assert_job_line(self, stderr, guid, key, pattern):
        self.assertRegex(stderr, r"(?m)^<[0-7]>content=%s \([^)]*\) job=%s: %s"
                         % (guid, key, pattern))

    # ---- 5xx and other statuses
    def _three_then_ok(self, status, path, spec_key):
        g = new_guid()
        spec = make_jobspec(spec_key, log_size=150000)
        other = make_jobspec(spec_key[:-1] + "X", log="unaffected\n")
        fault = {"path": path, "kind": "status", "status": status, "times": 3}
        with FakeConnect({g: [spec, other]}, api_key=KEY, faults=[fault]) as fc:
            cfg = self.config(fc, [g])
            p = self.run_once(cfg, "-v")
            arch = read_archive(self.archive)
            self.assert_archived(arch, g, spec)
            self.assert_archived(arch, g, other)
            assert_no_temporaries(self.archive)
            hit = [r for r in fc.requests(path=path)]
            self.assertEqual([r["status"] for r in hit][:3], [status] * 3)
            self.assertIn(hit[3]["status"], (200, 204))
            self.assertEqual(len(hit), 4)
            self.assertRegex(p.stderr, r"(?i)retry 3")
            self.assert_job_line(p.stderr, g, spec_key, "archived in")
            self.assertRegex(p.stderr, r"2 jobs archived, 0 failed")

    def test_500_on_the_job_list_three_times_then_ok(self):
        self._three_then_ok(500, r"/jobs$", "list500Job000001")

    def test_502_on_the_error_endpoint_three_times_then_ok(self):
        self._three_then_ok(502, r"/list502Job000001/error$", "list502Job000001")

    def test_503_on_the_download_three_times_then_ok(self):
        self._three_then_ok(503, r"/dl503Job00000001/download$", "dl503Job00000001")

    def test_408_429_and_504_are_retried_too(self):
        g = new_guid()
        spec = make_jobspec("mixedStatusJob01", log_size=70000)
        faults = [{"path": "/download$", "kind": "status", "status": s, "times": 1}
                  for s in (408, 504, 429)]
        with FakeConnect({g: [spec]}, api_key=KEY, faults=faults) as fc:
            cfg = self.config(fc, [g])
            self.run_once(cfg)
            self.assert_archived(read_archive(self.archive), g, spec)
            assert_no_temporaries(self.archive)
            self.assertEqual([r["status"] for r in downloads(fc, "mixedStatusJob01")],
                             [408, 504, 429, 200])

    def test_five_503_in_a_row_fail_the_job_then_the_next_run_archives_it(self):
        g = new_guid()
        bad = make_jobspec("alwaysBusyJob001", log_size=90000)
        good = make_jobspec("sameItemFine0001", log="fine\n")
        fault = {"path": r"/alwaysBusyJob001/download$", "kind": "status", "status": 503,
                 "times": 5}
        with FakeConnect({g: [bad, good]}, api_key=KEY, faults=[fault]) as fc:
            cfg = self.config(fc, [g])
            p = self.run_once(cfg, expect=1)
            # Four tries in this run, then the job is given up until the next one.
            self.assertEqual([r["status"] for r in downloads(fc, "alwaysBusyJob001")],
                             [503] * 4)
            self.assert_job_line(p.stderr, g, "alwaysBusyJob001",
                                 r"cannot download the log: HTTP 503.*; will retry next cycle")
            self.assertRegex(p.stderr, r"1 jobs archived, 1 failed")
            arch = read_archive(self.archive)
            self.assert_archived(arch, g, good)
            self.assertNotIn("alwaysBusyJob001", arch.jobs)
            self.assert_absent("alwaysBusyJob001")
            assert_no_temporaries(self.archive)

            fc.clear_faults()
            fc.clear_requests()
            p = self.run_once(cfg)
            self.assertRegex(p.stderr, r"1 jobs archived, 0 failed")
            arch = read_archive(self.archive)
            self.assert_archived(arch, g, bad)
            self.assert_archived(arch, g, good)
            self.assertEqual(len(downloads(fc, "alwaysBusyJob001")), 1)
            self.assertEqual(downloads(fc, "sameItemFine0001"), [], "fetched twice")
            assert_no_temporaries(self.archive)

    def test_persistent_500_on_one_list_fails_that_item_only(self):
        sick, well = new_guid(), new_guid()
        fault = {"path": r"/%s/jobs$" % sick, "kind": "status", "status": 500, "times": -1}
        sick_spec = make_jobspec("sickItemJob00001", log="later\n")
        well_spec = make_jobspec("wellItemJob00001", log_size=20000)
        with FakeConnect({sick: [sick_spec], well: [well_spec]}, api_key=KEY,
                         faults=[fault]) as fc:
            cfg = self.config(fc, [(sick, "sick-one"), well])
            p = self.run_once(cfg, expect=1)
            self.assertEqual(len(fc.requests(path=r"/%s/jobs$" % sick)), 4)
            self.assertRegex(p.stderr, r"(?m)^<4>content=%s \(sick-one\): cannot list jobs: "
                                       r"HTTP 500.*; will retry next cycle" % sick)
            arch = read_archive(self.archive)
            self.assert_archived(arch, well, well_spec)
            self.assertNotIn("sickItemJob00001", arch.jobs)
            fc.clear_faults()
            self.run_once(cfg)
            self.assert_archived(read_archive(self.archive), sick, sick_spec)
            assert_no_temporaries(self.archive)

    def test_400_is_not_retried(self):
        g = new_guid()
        spec = make_jobspec("badRequestJob001", log="x\n")
        fault = {"path": "/download$", "kind": "status", "status": 400, "times": -1}
        with FakeConnect({g: [spec]}, api_key=KEY, faults=[fault]) as fc:
            cfg = self.config(fc, [g])
            p = self.run_once(cfg, expect=1)
            self.assertEqual(len(downloads(fc, "badRequestJob001")), 1)
            self.assert_job_line(p.stderr, g, "badRequestJob001",
                                 r"cannot download the log: HTTP 400.*; will retry next cycle")
            self.assert_absent("badRequestJob001")
            assert_no_temporaries(self.archive)

    # ---- Retry-After
    def test_429_with_retry_after_seconds_waits_that_long(self):
        g = new_guid()
        spec = make_jobspec("rateLimitedJob01", log_size=50000)
        fault = {"path": "/download$", "kind": "status", "status": 429, "retry_after": "2",
                 "times": 1}
        with FakeConnect({g: [spec]}, api_key=KEY, faults=[fault]) as fc:
            cfg = self.config(fc, [g])
            self.run_once(cfg)
            self.assert_archived(read_archive(self.archive), g, spec)
            assert_no_temporaries(self.archive)
            dl = downloads(fc, "rateLimitedJob01")
            self.assertEqual([r["status"] for r in dl], [429, 200])
            gap = dl[1]["t"] - dl[0]["t_end"]
            self.assertGreaterEqual(gap, 1.8, "the retry came %.2f s after the 429" % gap)
            self.assertLess(gap, 6.0, "the retry came %.2f s after the 429" % gap)

    def test_503_with_retry_after_http_date_waits_until_then(self):
        g = new_guid()
        spec = make_jobspec("retryAtDateJob01", log_size=50000)
        when = int(time.time()) + 4
        # The clocks of this process and of the fake server: same CLOCK_MONOTONIC.
        mono_to_wall = time.time() - time.monotonic()
        fault = {"path": "/error$", "kind": "status", "status": 503, "times": 1,
                 "retry_after": email.utils.formatdate(when, usegmt=True)}
        with FakeConnect({g: [spec]}, api_key=KEY, faults=[fault]) as fc:
            cfg = self.config(fc, [g])
            self.run_once(cfg)
            self.assert_archived(read_archive(self.archive), g, spec)
            assert_no_temporaries(self.archive)
            er = fc.requests(path="/error$")
            self.assertEqual([r["status"] for r in er], [503, 204])
            first_end = er[0]["t_end"] + mono_to_wall
            retry_at = er[1]["t"] + mono_to_wall
            # The date has a one-second resolution; the retry must not come before it.
            self.assertGreaterEqual(retry_at, when - 0.1,
                                    "retried %.2f s before the Retry-After date"
                                    % (when - retry_at))
            self.assertGreaterEqual(retry_at - first_end, 1.5)
            self.assertLess(retry_at - when, 3.0, "waited far past the Retry-After date")

    def test_retry_after_in_the_past_or_invalid_does_not_stall(self):
        g = new_guid()
        spec = make_jobspec("retryAfterOdd001", log_size=1000)
        past = email.utils.formatdate(calendar.timegm((2001, 1, 1, 0, 0, 0)), usegmt=True)
        faults = [{"path": "/download$", "kind": "status", "status": 503, "times": 1,
                   "retry_after": past},
                  {"path": "/download$", "kind": "status", "status": 503, "times": 1,
                   "retry_after": "soon, maybe"},
                  {"path": "/download$", "kind": "status", "status": 503, "times": 1,
                   "retry_after": "-5"}]
        with FakeConnect({g: [spec]}, api_key=KEY, faults=faults) as fc:
            cfg = self.config(fc, [g])
            p = self.run_once(cfg)
            self.assert_archived(read_archive(self.archive), g, spec)
            self.assertEqual([r["status"] for r in downloads(fc, "retryAfterOdd001")],
                             [503, 503, 503, 200])
            # Backoff alone: at most 0.5 + 1 + 2 s.
            self.assertLess(p.elapsed, 8.0)

    # ---- broken transfers
    def test_reset_mid_body_is_retried_and_the_log_is_byte_exact(self):
        g = new_guid()
        spec = make_jobspec("resetMidBody0001", log_size=400000)
        faults = [{"path": "/download$", "kind": "reset", "after_bytes": 150000, "times": 1},
                  {"path": "/download$", "kind": "reset", "after_bytes": 1, "times": 1},
                  {"path": "/jobs$", "kind": "reset", "before_headers": True, "times": 1},
                  {"path": "/error$", "kind": "close", "times": 1}]
        with FakeConnect({g: [spec]}, api_key=KEY, faults=faults) as fc:
            cfg = self.config(fc, [g])
            self.run_once(cfg)
            self.assert_archived(read_archive(self.archive), g, spec)
            assert_no_temporaries(self.archive)
            dl = downloads(fc, "resetMidBody0001")
            self.assertEqual([r["fault"] for r in dl], ["reset", "reset", None])
            self.assertEqual(len(fc.requests(path="/jobs$")), 2)
            self.assertEqual(len(fc.requests(path="/error$")), 2)

    def test_truncated_body_is_retried(self):
        g = new_guid()
        spec = make_jobspec("truncatedBody001", log_size=300000,
                            error={"code": 17, "summary": "it broke", "detail": "x" * 5000})
        faults = [{"path": "/download$", "kind": "truncate", "times": 1},
                  {"path": "/download$", "kind": "truncate", "after_bytes": 299999, "times": 1},
                  {"path": "/error$", "kind": "truncate", "after_bytes": 100, "times": 1},
                  {"path": "/jobs$", "kind": "truncate", "times": 1}]
        with FakeConnect({g: [spec]}, api_key=KEY, faults=faults) as fc:
            cfg = self.config(fc, [g])
            self.run_once(cfg)
            self.assert_archived(read_archive(self.archive), g, spec, error=spec["error"])
            assert_no_temporaries(self.archive)
            self.assertEqual([r["fault"] for r in downloads(fc, "truncatedBody001")],
                             ["truncate", "truncate", None])

    def test_truncated_every_time_fails_cleanly_then_the_next_run_archives(self):
        g = new_guid()
        spec = make_jobspec("alwaysTruncated1", log_size=200000)
        fault = {"path": "/download$", "kind": "truncate", "times": -1}
        with FakeConnect({g: [spec]}, api_key=KEY, faults=[fault]) as fc:
            cfg = self.config(fc, [g])
            p = self.run_once(cfg, expect=1)
            self.assertEqual(len(downloads(fc, "alwaysTruncated1")), 4)
            self.assert_job_line(p.stderr, g, "alwaysTruncated1",
                                 r"cannot download the log: .*; will retry next cycle")
            self.assert_absent("alwaysTruncated1")
            assert_no_temporaries(self.archive)
            fc.clear_faults()
            self.run_once(cfg)
            self.assert_archived(read_archive(self.archive), g, spec)
            assert_no_temporaries(self.archive)

    def test_chunked_framing_broken_is_retried(self):
        g = new_guid()
        spec = make_jobspec("chunkedBroken001", log_size=250000, chunked=True)
        faults = [{"path": "/download$", "kind": "chunked_broken", "times": 1},
                  {"path": "/download$", "kind": "chunked_broken", "mode": "close",
                   "after_bytes": 249999, "times": 1}]
        with FakeConnect({g: [spec]}, api_key=KEY, faults=faults) as fc:
            cfg = self.config(fc, [g])
            self.run_once(cfg)
            self.assert_archived(read_archive(self.archive), g, spec)
            assert_no_temporaries(self.archive)
            self.assertEqual([r["fault"] for r in downloads(fc, "chunkedBroken001")],
                             ["chunked_broken", "chunked_broken", None])

    # ---- garbage and oversized JSON
    def test_garbage_job_list_fails_the_item_and_the_next_run_is_fine(self):
        sick, well = new_guid(), new_guid()
        sick_spec = make_jobspec("garbageItemJob01", log="ok later\n")
        well_spec = make_jobspec("garbageOtherJob1", log="ok now\n")
        bodies = ['{"not": json', "", "null", '{"jobs": []}', '"[]"', "[] x", "[1 2]",
                  "[" * 100000 + "]" * 100000, '[{"key": "a\\ud800"}', "\x00[]"]
        with FakeConnect({sick: [sick_spec], well: [well_spec]}, api_key=KEY) as fc:
            cfg = self.config(fc, [sick, well])
            for body in bodies:
                with self.subTest(body=body[:40]):
                    fc.clear_requests()
                    fc.add_fault(path=r"/%s/jobs$" % sick, kind="garbage", body=body, times=1)
                    p = self.run_once(cfg, expect=1)
                    self.assertRegex(p.stderr, r"(?m)^<4>content=%s \(-\): the job list is not "
                                               r"a JSON array; will retry next cycle" % sick)
                    # A parse failure is not a transport failure: no retry in this run.
                    self.assertEqual(len(fc.requests(path=r"/%s/jobs$" % sick)), 1)
                    self.assertEqual(fc.requests(path="/garbageItemJob01/"), [])
                    self.assert_archived(read_archive(self.archive), well, well_spec)
                    assert_no_temporaries(self.archive)
            p = self.run_once(cfg)
            self.assert_archived(read_archive(self.archive), sick, sick_spec)
            self.assertRegex(p.stderr, r"1 jobs archived, 0 failed")

    # json-c's tokener in its default, lenient mode accepts trailing commas, single-quoted
    # strings, comments, leading zeros and "tRue": "[/* c */]" counted as an empty list
    # (exit 0) and a single-quoted job was archived. None of these bodies is JSON.
    def test_non_json_job_list_is_refused(self):
        g = new_guid()
        spec = make_jobspec("singleQuoted0001", log="never\n")
        bodies = ["[1,]", '[{"a": 1,}]', "[/* a comment */]", "[01]", "[tRue]",
                  "[{'key': 'singleQuoted0001', 'status': 2, "
                  "'start_time': '2024-11-25T22:17:42Z'}]"]
        with FakeConnect({g: [spec]}, api_key=KEY) as fc:
            cfg = self.config(fc, [g])
            for body in bodies:
                with self.subTest(body=body):
                    fc.add_fault(path="/jobs$", kind="garbage", body=body, times=1)
                    p = self.run_once(cfg, expect=1)
                    self.assertRegex(p.stderr, r"(?m)^<4>content=%s \(-\): the job list is not "
                                               r"a JSON array; will retry next cycle" % g)
                    self.assertEqual(read_archive(self.archive).jobs, {})
            self.assertEqual(fc.requests(path="/download$"), [])

    def test_oversized_json_bodies_are_refused(self):
        big_list, other = new_guid(), new_guid()
        size = 70 * 1024 * 1024
        # Valid JSON, just too big: refused for its size, not its syntax.
        huge_list = '[{"key": "hugeListJob00001", "pad": "' + "x" * size + '"}]'
        huge_error = '{"code": 1, "pad": "' + "y" * size + '"}'
        spec = make_jobspec("hugeErrorRecord1", log="the log\n")
        fine = make_jobspec("besideTheHuge001", log="fine\n")
        faults = [{"path": r"/%s/jobs$" % big_list, "kind": "garbage", "body": huge_list,
                   "times": -1},
                  {"path": r"/hugeErrorRecord1/error$", "kind": "garbage", "body": huge_error,
                   "times": -1}]
        with FakeConnect({big_list: [], other: [spec, fine]}, api_key=KEY,
                         faults=faults, startup_timeout=30) as fc:
            del huge_list, huge_error
            cfg = self.config(fc, [big_list, other])
            p = self.run_once(cfg, expect=1)
            self.assertRegex(p.stderr, r"(?m)^<4>content=%s \(-\): cannot list jobs: .*"
                                       r"(?i:too large|too big|64 MiB).*; will retry next cycle"
                             % big_list)
            self.assert_job_line(p.stderr, other, "hugeErrorRecord1",
                                 r"cannot fetch the error record: .*(?i:too large|too big|64 MiB)")
            # Refused, not retried: another try would bring the same body.
            self.assertEqual(len(fc.requests(path=r"/%s/jobs$" % big_list)), 1)
            self.assertEqual(len(fc.requests(path=r"/hugeErrorRecord1/error$")), 1)
            arch = read_archive(self.archive)
            self.assert_archived(arch, other, fine)
            self.assertEqual(sorted(arch.jobs), ["besideTheHuge001"])
            assert_no_temporaries(self.archive)

    def test_error_endpoint_garbage_fails_the_job_and_the_next_run_archives(self):
        g = new_guid()
        error = {"code": "E17", "summary": "Execution halted", "help_url": None}
        spec = make_jobspec("errorGarbage0001", log_size=30000, error=error, exit_code=1)
        with FakeConnect({g: [spec]}, api_key=KEY) as fc:
            cfg = self.config(fc, [g])
            for body in ('{"not": json', "[1, 2]", '"just a string"', "42", "{", "{} {}"):
                with self.subTest(body=body):
                    fc.clear_requests()
                    fc.add_fault(path="/errorGarbage0001/error$", kind="garbage", body=body,
                                 times=1)
                    p = self.run_once(cfg, expect=1)
                    self.assert_job_line(p.stderr, g, "errorGarbage0001",
                                         r"the error record is not a JSON object; "
                                         r"will retry next cycle")
                    # The record is absent, and the log was not even fetched.
                    self.assertEqual(downloads(fc, "errorGarbage0001"), [])
                    self.assert_absent("errorGarbage0001")
                    assert_no_temporaries(self.archive)
            p = self.run_once(cfg)
            self.assert_archived(read_archive(self.archive), g, spec, error=error)
            assert_no_temporaries(self.archive)

    # ---- stalls
    def test_stalled_server_is_timed_out_and_retried(self):
        g = new_guid()
        error = {"code": 9, "summary": "stalled error record"}
        spec = make_jobspec("stalledOnce00001", log_size=40000, error=error)
        faults = [{"path": "/download$", "kind": "slow", "delay": 5, "times": 1},
                  # One byte every 5 s: less than a byte a second.
                  {"path": "/error$", "kind": "trickle", "bytes_per_sec": 0.2, "times": 1}]
        with FakeConnect({g: [spec]}, api_key=KEY, faults=faults) as fc:
            cfg = self.config(fc, [g], server__timeout_seconds=2)
            p = self.run_once(cfg, timeout=60)
            self.assert_archived(read_archive(self.archive), g, spec, error=error)
            assert_no_temporaries(self.archive)
            self.assertEqual([r["fault"] for r in downloads(fc, "stalledOnce00001")],
                             ["slow", None])
            self.assertEqual([r["fault"] for r in fc.requests(path="/error$")],
                             ["trickle", None])
            # Two stalls of timeout_seconds each, not the 5 s the server would have taken.
            self.assertGreaterEqual(p.elapsed, 3.5)
            self.assertLess(p.elapsed, 25)

    def test_server_that_always_stalls_fails_the_job_clearly(self):
        g = new_guid()
        spec = make_jobspec("alwaysStalled001", log_size=1000)
        fault = {"path": "/download$", "kind": "slow", "delay": 3, "times": -1}
        with FakeConnect({g: [spec]}, api_key=KEY, faults=[fault]) as fc:
            cfg = self.config(fc, [g], server__timeout_seconds=2)
            p = self.run_once(cfg, expect=1, timeout=60)
            self.assertEqual(len(downloads(fc, "alwaysStalled001")), 4)
            self.assert_job_line(p.stderr, g, "alwaysStalled001",
                                 r"cannot download the log: .*(?i:too slow|timed out|timeout)"
                                 r".*; will retry next cycle")
            self.assert_absent("alwaysStalled001")
            assert_no_temporaries(self.archive)
            self.assertLess(p.elapsed, 30)

    # ---- hostile and odd job lists
    def test_job_list_with_wrong_types_everywhere(self):
        g = new_guid()
        good = make_jobspec("goodAmongBad0001", log="good\n")
        # Due by status alone; the other fields are none of the archiver's business and
        # are kept exactly as served.
        odd = make_jobspec("oddFieldTypes001", log="odd\n", id={"x": [1]}, end_time=12,
                           exit_code="zero", tag=None, hostname=5, app_id=[], ppid=True,
                           queued_time=-1.5e300, pid=2 ** 63 + 5)
        base = make_job("wrongType0000001")
        wrong = [
            dict(base, key=12345), dict(base, key=None), dict(base, key={"k": 1}),
            dict(base, key=["wrongType0000002"]), dict(base, key=True),
            dict(base, key="wrongType0000003", status="2"),
            dict(base, key="wrongType0000004", status=None),
            dict(base, key="wrongType0000005", status=True),
            dict(base, key="wrongType0000006", status=[2]),
            dict(base, key="wrongType0000007", status=2.5),
            dict(base, key="wrongType0000008", status=-2),
            dict(base, key="wrongType0000009", status=2 ** 64),
            dict(base, key="wrongType0000010", start_time=1732573062),
            dict(base, key="wrongType0000011", start_time=None),
            dict(base, key="wrongType0000012", start_time="yesterday"),
            dict(base, key="wrongType0000013", start_time=["2024-11-25T22:17:42Z"]),
            dict(base, key="wrongType0000014", start_time="2024-13-45T99:99:99Z"),
            {k: v for k, v in base.items() if k != "key"},
            {k: v for k, v in dict(base, key="wrongType0000015").items() if k != "status"},
            {k: v for k, v in dict(base, key="wrongType0000016").items() if k != "start_time"},
            "a string", 42, None, [], [base], True, {},
        ]
        jobs = [good["job"]] + wrong + [odd["job"]]
        body = json.dumps(jobs)
        with FakeConnect({g: [good, odd]}, api_key=KEY) as fc:
            fc.add_fault(path=r"/%s/jobs$" % g, kind="garbage", body=body, times=-1)
            cfg = self.config(fc, [g])
            # -v: past the first three, a poll's failures are debug lines, and one line at
            # the end of the poll sums them up (FAILURES_SAID_PER_POLL).
            p = self.run_once(cfg, "-v", expect=1)
            self.assertRegex(p.stderr, r"(?m)^<4>content=%s \(-\): %d more jobs failed this "
                             r"poll \(the last: " % (g, len(wrong) - 3))
            arch = read_archive(self.archive)
            self.assertEqual(sorted(arch.jobs), ["goodAmongBad0001", "oddFieldTypes001"])
            self.assert_archived(arch, g, good)
            self.assert_archived(arch, g, odd)
            self.assertRegex(p.stderr, r"2 jobs archived, %d failed" % len(wrong))
            for k in ("wrongType0000003", "wrongType0000009"):
                self.assert_job_line(p.stderr, g, k, "skipped: ")
            # No usable start time is no reason to skip a job (it is dated by its end time):
            # these are fetched, and this server no longer has them.
            undated = ["wrongType00000%d" % n for n in (10, 11, 12, 13, 14, 16)]
            for k in undated:
                self.assert_job_line(p.stderr, g, k, "the job no longer exists on the server")
            # Nothing was fetched for any of the others.
            fetched = {r["path"].split("/")[6] for r in fc.requests() if r["path"].count("/") >= 7}
            self.assertEqual(fetched, {"goodAmongBad0001", "oddFieldTypes001", *undated})
            assert_no_temporaries(self.archive)
            self.assertEqual(sorted(os.listdir(self.tmp)), ["api-key", "archive", "config.yaml"])

    def test_duplicate_keys_in_job_objects(self):
        g = new_guid()
        first = make_jobspec("dupKeyFirst00001", log="first\n")
        last = make_jobspec("dupKeyLast000001", log="last\n")
        st_first = make_jobspec("dupStatusFirst01", log="s-first\n")
        st_last = make_jobspec("dupStatusLast001", log="s-last\n")

        def obj(pairs):
            return "{" + ", ".join("%s: %s" % (json.dumps(k), json.dumps(v))
                                   for k, v in pairs) + "}"
        base = [(k, v) for k, v in make_job("unused").items() if k not in ("key", "status")]
        body = "[" + ", ".join([
            # The same name twice: RFC 8259 leaves it open; whatever the archiver picks, the
            # file name, the record and the requests must agree with each other.
            obj([("key", "dupKeyFirst00001"), ("status", 2), ("key", "dupKeyLast000001")]
                + base),
            obj([("key", "dupStatusFirst01"), ("status", 0), ("status", 2)] + base),
            obj([("key", "dupStatusLast001"), ("status", 2), ("status", 0)] + base),
        ]) + "]"
        with FakeConnect({g: [first, last, st_first, st_last]}, api_key=KEY) as fc:
            fc.add_fault(path=r"/%s/jobs$" % g, kind="garbage", body=body, times=-1)
            cfg = self.config(fc, [g])
            p = run_archiver(["-c", cfg, "--once"], timeout=60)
            self.outputs += [p.stdout, p.stderr]
            self.assertIn(p.returncode, (0, 1), p.stderr[-3000:])
            arch = read_archive(self.archive)
            assert_no_temporaries(self.archive)
            # At most one of each pair, and every archived job is self-consistent.
            self.assertLessEqual(len({"dupKeyFirst00001", "dupKeyLast000001"} & set(arch.jobs)), 1)
            self.assertLessEqual(len({"dupStatusFirst01", "dupStatusLast001"} & set(arch.jobs)), 2)
            for key, j in arch.jobs.items():
                rec = j["record"]
                self.assertIsNotNone(rec, key)
                self.assertEqual(rec["job"]["key"], key,
                                 "file name and record disagree about the key")
                self.assertIn(rec["job"]["status"], (2, 3),
                              "%s archived with a not-due status in its record" % key)
                self.assertEqual(j["log"], {"dupKeyFirst00001": b"first\n",
                                            "dupKeyLast000001": b"last\n",
                                            "dupStatusFirst01": b"s-first\n",
                                            "dupStatusLast001": b"s-last\n"}[key])
            fetched = {r["path"].split("/")[6] for r in fc.requests(path="/download$")}
            self.assertEqual(fetched, set(arch.jobs), "downloaded a job it did not archive")
            # Whatever was not archived and not left waiting was reported, and the exit
            # status says so.
            reported = len(re.findall(r"(?m)^<[0-4]>content=%s .*job=.*: (skipped|cannot)" % g,
                                      p.stderr))
            self.assertEqual(p.returncode, 1 if reported else 0, p.stderr[-3000:])

    def test_huge_list_of_active_jobs_is_parsed_fast(self):
        g = new_guid()
        n = 20000
        active = [make_jobspec("activeJob%07d" % i, status=i % 2, log_size=10)
                  for i in range(n)]
        due = [make_jobspec("dueAmongMany0001", log_size=5000),
               make_jobspec("dueAmongMany0002", status=3, log="skipped\n")]
        with FakeConnect({g: active[:n // 2] + due + active[n // 2:]}, api_key=KEY,
                         startup_timeout=30) as fc:
            cfg = self.config(fc, [g])
            p = self.run_once(cfg)
            self.assertRegex(p.stderr, r"2 jobs archived, 0 failed")
            arch = read_archive(self.archive)
            self.assertEqual(sorted(arch.jobs), ["dueAmongMany0001", "dueAmongMany0002"])
            for spec in due:
                self.assert_archived(arch, g, spec)
            paths = sorted(r["path"] for r in fc.requests())
            self.assertEqual(len(paths), 1 + 2 * 2, paths[:10])
            self.assertLess(p.elapsed, 20.0, "20,000 jobs took %.1f s" % p.elapsed)
            assert_no_temporaries(self.archive)
            # Again: listed, nothing fetched.
            fc.clear_requests()
            p = self.run_once(cfg)
            self.assertEqual(len(fc.requests()), 1)
            self.assertLess(p.elapsed, 20.0)

    # ---- 404, 401, 403
    def test_404_on_one_item_while_another_is_fine(self):
        gone, well, plain = new_guid(), new_guid(), new_guid()
        faults = [{"path": r"/%s/jobs$" % gone, "kind": "status", "status": 404, "times": -1},
                  # A routing-level 404 (a proxy, an old Connect): text, not a Connect error.
                  {"path": r"/%s/jobs$" % plain, "kind": "status", "status": 404, "times": -1,
                   "body": "404 page not found\n"}]
        well_spec = make_jobspec("wellBeside404001", log_size=3000)
        with FakeConnect({gone: [make_jobspec("goneItemJob00001")], well: [well_spec],
                          plain: [make_jobspec("plainItemJob0001")]},
                         api_key=KEY, faults=faults) as fc:
            cfg = self.config(fc, [(gone, "gone-item"), well, plain])
            p = self.run_once(cfg, expect=1)
            self.assertRegex(p.stderr, r"(?m)^<4>content=%s \(gone-item\): cannot list jobs: "
                                       r"HTTP 404.*; will retry next cycle" % gone)
            self.assertRegex(p.stderr, r"(?m)^<4>content=%s \(-\): cannot list jobs: HTTP 404"
                             % plain)
            # 404 is an answer, not a transient failure: one request each.
            self.assertEqual(len(fc.requests(path=r"/%s/jobs$" % gone)), 1)
            self.assertEqual(len(fc.requests(path=r"/%s/jobs$" % plain)), 1)
            arch = read_archive(self.archive)
            self.assertEqual(sorted(arch.jobs), ["wellBeside404001"])
            self.assert_archived(arch, well, well_spec)
            assert_no_temporaries(self.archive)

    def test_404_on_the_error_endpoint_means_the_job_is_gone(self):
        g = new_guid()
        spec = make_jobspec("goneBeforeError1", log="x\n")
        fault = {"path": "/goneBeforeError1/error$", "kind": "status", "status": 404,
                 "times": 1}
        with FakeConnect({g: [spec]}, api_key=KEY, faults=[fault]) as fc:
            cfg = self.config(fc, [g])
            p = self.run_once(cfg, expect=1)
            self.assert_job_line(p.stderr, g, "goneBeforeError1",
                                 r"the job no longer exists on the server .*HTTP 404")
            self.assertEqual(len(fc.requests(path="/error$")), 1)
            self.assertEqual(downloads(fc, "goneBeforeError1"), [])
            self.assert_absent("goneBeforeError1")
            self.run_once(cfg)
            self.assert_archived(read_archive(self.archive), g, spec)

    def test_404_on_the_download_archives_the_record_alone(self):
        g = new_guid()
        spec = make_jobspec("sweptLogJob00001", log="swept\n")
        fault = {"path": "/download$", "kind": "status", "status": 404, "times": -1}
        with FakeConnect({g: [spec]}, api_key=KEY, faults=[fault]) as fc:
            cfg = self.config(fc, [g])
            p = self.run_once(cfg)
            self.assert_job_line(p.stderr, g, "sweptLogJob00001",
                                 r"log file is gone .*HTTP 404.*archiving the job record alone")
            j = read_archive(self.archive).jobs["sweptLogJob00001"]
            self.assertIsNone(j["log"])
            self.assertEqual(j["record"]["job"], spec["job"])
            self.assertIsNone(j["record"]["log_bytes"])
            self.assertIsNone(j["record"]["log_sha256"])
            self.assertEqual(len(downloads(fc, "sweptLogJob00001")), 1)
            assert_no_temporaries(self.archive)

    def test_401_wrong_key_writes_nothing(self):
        a, b = new_guid(), new_guid()
        with FakeConnect({a: [make_jobspec("neverFetchedA001")],
                          b: [make_jobspec("neverFetchedB001")]}, api_key=KEY) as fc:
            cfg = write_config(self.tmp, fc.url, self.archive, content=[a, b],
                               api_key="cja-wrong-key-0000")
            p = self.run_once(cfg, expect=1)
            self.outputs.append(p.stderr)
            for g in (a, b):
                self.assertRegex(p.stderr, r"(?m)^<4>content=%s \(-\): cannot list jobs: HTTP 401"
                                           r".*\(the API key was rejected\)" % g)
            self.assertNotIn("cja-wrong-key-0000", p.stderr + p.stdout)
            # Not retried: a second try with the same key cannot succeed.
            self.assertEqual(len(fc.requests()), 2)
            self.assertEqual(read_archive(self.archive).jobs, {})
            self.assertEqual([f for _, _, fs in os.walk(self.archive) for f in fs], [LOCK_FILE])

    def test_403_on_the_download_lacks_rights(self):
        g = new_guid()
        spec = make_jobspec("forbiddenLog0001", log="secret\n")
        fault = {"path": "/download$", "kind": "status", "status": 403, "times": -1}
        with FakeConnect({g: [spec]}, api_key=KEY, faults=[fault]) as fc:
            cfg = self.config(fc, [g])
            p = self.run_once(cfg, expect=1)
            self.assert_job_line(p.stderr, g, "forbiddenLog0001",
                                 r"cannot download the log: HTTP 403.*lacks rights.*"
                                 r"; will retry next cycle")
            self.assertEqual(len(downloads(fc, "forbiddenLog0001")), 1)
            self.assert_absent("forbiddenLog0001")
            assert_no_temporaries(self.archive)

    # ---- binary logs
    def test_non_utf8_log_bytes_are_archived_byte_exact(self):
        g = new_guid()
        nasty = (bytes(range(256)) * 64 + b"\xff\xfe\x00\x00" + b"\xc3\x28\xa0\xa1"
                 + b"\xed\xa0\x80" + b"\xf4\x90\x80\x80" + b"\r\n\r" + b"\x1b[31mred\x1b[0m"
                 + b"\x00" * 70000 + b"no newline at the end \xe2\x82")
        specs = [make_jobspec("binaryLogPlain01", log=nasty),
                 make_jobspec("binaryLogChunk01", log=nasty[::-1], chunked=True),
                 make_jobspec("binaryLogReset01", log=nasty + nasty)]
        fault = {"path": "/binaryLogReset01/download$", "kind": "reset",
                 "after_bytes": len(nasty) + 3, "times": 1}
        with FakeConnect({g: specs}, api_key=KEY, faults=[fault]) as fc:
            cfg = self.config(fc, [g])
            self.run_once(cfg)
            arch = read_archive(self.archive)
            for spec in specs:
                self.assert_archived(arch, g, spec)
            assert_no_temporaries(self.archive)


if __name__ == "__main__":
    unittest.main(verbosity=2)
