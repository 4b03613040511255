#!/usr/bin/env python3
"""Probes: Connect's faults on a bad day. The key revoked mid-run (401 after a good
start), a job list that is valid JSON but not an array, thousands of failing downloads,
jobs dated 1970 and 9999: what the daemon says (how loud), what it asks of Connect (no
hammering), and what it does once the fault is gone."""
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (FakeConnect, make_jobspec, new_guid, read_archive,  # noqa: E402
                     run_archiver, run_jobs, start_archiver, stop_process, wait_for,
                     write_config)


def lines_with(text, pattern):
    return [line for line in text.splitlines() if re.search(pattern, line)]


class KeyRevoked(unittest.TestCase):
    def test_key_revoked_mid_run(self):
        tmp = tempfile.mkdtemp(prefix="cja-probe-401-")
        try:
            guids = [new_guid() for _ in range(10)]
            content = {g: [make_jobspec("first%011d" % i)] for i, g in enumerate(guids)}
            with FakeConnect(content) as fc:
                archive = os.path.join(tmp, "archive")
                cfg = write_config(tmp, fc.url, archive, content=guids,
                                   poll__interval_seconds=1, poll__max_interval_seconds=4)
                p = start_archiver(["-c", cfg])
                try:
                    wait_for(lambda: len(read_archive(archive).records) == 10, 15,
                             message="the good start")
                    # Revoked: the server now takes only another key.
                    before = len(p.read_stderr())
                    fc.set_api_key("the-new-key")
                    fc.clear_requests()
                    time.sleep(9)
                    revoked = p.read_stderr()[before:]
                    asked = fc.requests()
                    refused = [r for r in asked if not r["auth_ok"]]
                    first = min([r["t"] for r in asked] or [0])
                    print("PROBE key revoked: %d requests in 9 s (%d refused; %d after the "
                          "first half second), %d log lines, %d naming 401"
                          % (len(asked), len(refused),
                             len([r for r in asked if r["t"] > first + 0.5]),
                             len(revoked.splitlines()), len(lines_with(revoked, "401"))),
                          file=sys.stderr)
                    # Said clearly, once; not a line per item and poll.
                    said = lines_with(revoked, "rejects the API key")
                    self.assertEqual(len(said), 1, revoked)
                    self.assertRegex(said[0], r"HTTP 401")
                    self.assertRegex(said[0], r"reload")
                    self.assertLessEqual(len(lines_with(revoked, "401")), 2, revoked)
                    # No hammering: the lists in flight when the first 401 came (at most
                    # half the 8 transfer slots; all ten items on a loaded machine), then one
                    # list now and then (after 1 s, 2 s, 4 s, 4 s), not ten items a second.
                    first = min(r["t"] for r in asked)
                    probes = [r for r in asked if r["t"] > first + 0.5]
                    self.assertLessEqual(len(probes), 5, probes)
                    self.assertLessEqual(len(asked), 14, asked)
                    # The operator puts the new key in and reloads: picked up at once.
                    with open(os.path.join(tmp, "api-key"), "w") as f:
                        f.write("the-new-key\n")
                    fc.add_job(guids[3], make_jobspec("afterNewKey00001"))
                    t0 = time.monotonic()
                    p.send_signal(signal.SIGHUP)
                    wait_for(lambda: "afterNewKey00001" in read_archive(archive).jobs, 10,
                             message="a job archived after the new key")
                    took = time.monotonic() - t0
                    err = p.read_stderr()
                    print("PROBE key revoked: archived %.2f s after the reload" % took,
                          file=sys.stderr)
                    self.assertLess(took, 5)
                    self.assertEqual(len(lines_with(err, "API key is accepted again")), 1, err)
                finally:
                    self.assertEqual(stop_process(p), 0)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


class NotAnArray(unittest.TestCase):
    def test_valid_json_but_not_an_array(self):
        tmp = tempfile.mkdtemp(prefix="cja-probe-notarray-")
        try:
            bodies = ['{"jobs": []}', "{}", "null", '"jobs"', "42", "true",
                      '{"code": 0, "error": "OK", "payload": null}']
            guids = [new_guid() for _ in bodies]
            with FakeConnect({g: [make_jobspec("job%013d" % i)] for i, g in
                              enumerate(guids)}) as fc:
                for g, body in zip(guids, bodies):
                    fc.add_fault(path="/%s/jobs$" % g, kind="garbage", body=body, times=-1)
                archive = os.path.join(tmp, "archive")
                cfg = write_config(tmp, fc.url, archive, content=guids)
                p = run_archiver(["-c", cfg, "--once"])
            print("PROBE not an array: rc=%d; %s" % (p.returncode, p.stderr.strip()
                                                     .splitlines()[-1]), file=sys.stderr)
            self.assertEqual(p.returncode, 1, p.stderr)
            said = lines_with(p.stderr, "the job list is not a JSON array")
            self.assertEqual(len(said), len(bodies), p.stderr)
            for g in guids:
                self.assertEqual(len([s for s in said if g in s]), 1)
            self.assertEqual(read_archive(archive).records, {})
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


class ManyFailures(unittest.TestCase):
    N = 2000

    def test_thousands_of_failing_downloads(self):
        """2,000 jobs whose downloads fail (403, not retried within the cycle) in one poll:
        a few lines with their reasons and one summary, not 2,000 lines."""
        tmp = tempfile.mkdtemp(prefix="cja-probe-loud-")
        try:
            g = new_guid()
            jobs = [make_jobspec("fail%012d" % i, log="x\n") for i in range(self.N)]
            with FakeConnect({g: jobs}) as fc:
                fc.add_fault(path="/download$", kind="status", status=403, times=-1)
                archive = os.path.join(tmp, "archive")
                cfg = write_config(tmp, fc.url, archive, content=[(g, "busy")],
                                   poll__interval_seconds=2)
                t0 = time.monotonic()
                m = run_archiver(["-c", cfg, "--once"], timeout=120)
                took = time.monotonic() - t0
                # The service, two polls: the same, each poll.
                p = start_archiver(["-c", cfg])
                try:
                    wait_for(lambda: len(lines_with(p.read_stderr(), "more jobs failed")) >= 2,
                             20, message="two polls' summaries")
                finally:
                    self.assertEqual(stop_process(p, timeout=20), 0)
            lines = m.stderr.splitlines()
            print("PROBE %d failing downloads (--once): %d log lines in %.1f s; the summary: %s"
                  % (self.N, len(lines), took,
                     (lines_with(m.stderr, "more jobs failed") or ["none"])[0]),
                  file=sys.stderr)
            self.assertEqual(m.returncode, 1)
            self.assertLess(len(lines), 20, "\n".join(lines[:30]))
            summary = lines_with(m.stderr, "more jobs failed")
            self.assertEqual(len(summary), 1, m.stderr)
            self.assertRegex(summary[0], r"%d more jobs failed this poll" % (self.N - 3))
            self.assertRegex(summary[0], r"HTTP 403")
            self.assertIn("%d failed" % self.N, m.stderr)  # the --once summary counts all
            service = p.read_stderr().splitlines()
            self.assertLess(len(service), 40, "\n".join(service[:50]))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


class OddDates(unittest.TestCase):
    def test_jobs_dated_1970_and_9999(self):
        tmp = tempfile.mkdtemp(prefix="cja-probe-dates-")
        try:
            g = new_guid()
            specs = {
                "epoch00000000001": "1970-01-01T00:00:00Z",
                "beforeEpoch00001": "1969-12-31T23:59:59Z",
                "year999900000001": "9999-12-31T23:59:59Z",
                "year999900000002": "9999-12-31T23:59:59.999999999-07:00",
                "year000100000001": "0001-01-01T00:00:00Z",
                "normal0000000001": "2024-11-25T22:17:42Z",
            }
            jobs = [make_jobspec(k, start_time=t, log="line of %s\n" % k)
                    for k, t in specs.items()]
            with FakeConnect({g: jobs}) as fc:
                archive = os.path.join(tmp, "archive")
                cfg = write_config(tmp, fc.url, archive, content=[(g, "odd")])
                p = run_archiver(["-c", cfg, "--once"])
                print("PROBE dates 1970/9999: --once rc=%d; %s" % (
                    p.returncode, " | ".join(lines_with(p.stderr, "archived in|failed|skip"))),
                    file=sys.stderr)
                self.assertEqual(p.returncode, 0, p.stderr)
                arch = read_archive(archive)
                dirs = {k: arch.jobs[k]["dir"].split("/", 1)[1] for k in specs}
                source = {k: arch.jobs[k]["record"]["date_source"] for k in specs}
                today = time.strftime("%Y/%m/%d", time.gmtime())
                # The folders are four-digit years from 1970: 1970-01-01 and 9999-12-31 are
                # start dates; a start before 1970 is not usable (the end time dates it),
                # nor one in the year 0001 or 10000 in UTC (no end or queued time either:
                # the day first seen dates it).
                self.assertEqual(dirs["epoch00000000001"], "1970/01/01")
                self.assertEqual(source["epoch00000000001"], "start_time")
                self.assertEqual(dirs["year999900000001"], "9999/12/31")
                self.assertEqual(source["year999900000001"], "start_time")
                self.assertEqual((dirs["beforeEpoch00001"], source["beforeEpoch00001"]),
                                 ("1970/01/01", "end_time"))
                for k in ("year999900000002", "year000100000001"):
                    self.assertIn(dirs[k], (today, time.strftime("%Y/%m/%d", time.gmtime(
                        time.time() - 60))))
                    self.assertEqual(source[k], "first_seen")
                again = run_archiver(["-c", cfg, "--once"])
                self.assertEqual(again.returncode, 0, again.stderr)
                self.assertRegex(again.stderr, r" 0 jobs archived")
                ls = run_jobs(["-c", cfg, "ls", "--utc", "-o", "json"])
                self.assertEqual(ls.returncode, 0, ls.stderr)
                keys = [line.split('"key":"')[1][:16] for line in ls.stdout.splitlines()]
                # A date folder's place, then the start time's within it.
                self.assertEqual(keys, ["beforeEpoch00001", "epoch00000000001",
                                        "normal0000000001", "year000100000001",
                                        "year999900000002", "year999900000001"])
                ls = run_jobs(["-c", cfg, "ls", "--utc", "--since", "9999-12-31"])
                self.assertEqual(ls.returncode, 0, ls.stderr)
                self.assertIn("year999900000001", ls.stdout)
                self.assertNotIn("normal0000000001", ls.stdout)
                s = run_jobs(["-c", cfg, "search", "-c", "line of"])
                self.assertEqual(s.returncode, 0, s.stderr)
                self.assertEqual(len(s.stdout.splitlines()), len(specs))
                for k in ("year999900000001", "epoch00000000001"):
                    lg = run_jobs(["-c", cfg, "log", "odd", k])
                    self.assertEqual(lg.returncode, 0, lg.stderr)
                    self.assertIn("line of " + k, lg.stdout)
                # Retention (30 days): the 1970 and 2024 folders go and are not fetched
                # again, though Connect still lists their jobs; 9999's never goes.
                cfg2 = write_config(tmp, fc.url, archive, content=[(g, "odd")],
                                    archive__retention_days=30, filename="retention.yaml")
                p = run_archiver(["-c", cfg2, "--once"])
                self.assertEqual(p.returncode, 0, p.stderr)
                left = set(read_archive(archive).jobs)
                self.assertNotIn("epoch00000000001", left)
                self.assertNotIn("beforeEpoch00001", left)
                self.assertIn("year999900000001", left)
                self.assertNotIn("normal0000000001", left)
                self.assertEqual(len(left), 3)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
