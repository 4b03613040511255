#!/usr/bin/env python3
"""Job lists parsed as a stream (issue 14): a big list is archived whole, each job once; a
list refused late refuses everything in it; jobs without a usable start time are dated by
their end time, queued time, or the day first seen, and never archived twice."""
import collections
import datetime
import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (FakeConnect, assert_no_temporaries, make_jobspec,  # noqa: E402
                     new_guid, read_archive, run_archiver, write_config)

KEY = "cja-TEST-key-list-stream-42"


class ListStreamTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="cja-list-")
        self.archive = os.path.join(self.tmp, "archive")
        # The spool goes to $TMPDIR: a folder of its own, checked empty afterwards.
        self.spool_dir = os.path.join(self.tmp, "spool")
        os.mkdir(self.spool_dir)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def run_once(self, cfg, expect=0, timeout=300):
        p = run_archiver(["-c", cfg, "--once"], env={"TMPDIR": self.spool_dir},
                         timeout=timeout)
        self.assertEqual(p.returncode, expect, p.stderr[-3000:])
        self.assertNotIn(KEY, p.stdout + p.stderr)
        self.assertEqual(os.listdir(self.spool_dir), [])
        return p

    def fetch_counts(self, fc, what):
        counts = collections.Counter()
        for r in fc.requests(path="/%s$" % what):
            counts[r["path"].split("/")[6]] += 1
        return counts

    def test_a_big_list_is_archived_whole_each_job_once(self):
        # Far more due jobs than the daemon keeps live at once (512) and than one batch
        # (256), active and invalid ones among them, and a second small item that must not
        # wait for the big one.
        big, small = new_guid(), new_guid()
        n = int(os.environ.get("CJA_BIG_LIST_JOBS", "6000"))
        jobs, due = [], []
        for i in range(n):
            key = "big%013d" % i
            if i % 10 == 3:
                jobs.append(make_jobspec(key, status=0, log="active\n"))
                continue
            spec = make_jobspec(key, log="log of %s\n" % key,
                                start_time="2024-%02d-%02dT12:00:00Z" % (i % 12 + 1, i % 28 + 1))
            jobs.append(spec)
            due.append(spec)
        jobs.insert(100, make_jobspec("bad/key", log="x\n"))
        small_jobs = [make_jobspec("smallItemJob0001", log="small\n")]
        with FakeConnect({big: jobs, small: small_jobs}, api_key=KEY,
                         startup_timeout=60) as fc:
            cfg = write_config(self.tmp, fc.url, self.archive, content=[big, small],
                               api_key=KEY, server__max_concurrent_requests=16)
            p = self.run_once(cfg, expect=1)  # the unsafe key fails the run
            self.assertRegex(p.stderr, r"<5>once: 2 content items, %d jobs archived, 1 failed, "
                                       r"0 lists failed" % (len(due) + 1))
            arch = read_archive(self.archive)
            self.assertEqual(len(arch.jobs), len(due) + 1)
            for spec in due:
                key = spec["job"]["key"]
                rec = arch.jobs[key]["record"]
                self.assertEqual(rec["job"], spec["job"], key)
                self.assertEqual(rec["date_source"], "start_time")
                self.assertEqual(arch.jobs[key]["log"], ("log of %s\n" % key).encode())
                self.assertEqual(arch.jobs[key]["dir"],
                                 big + "/" + spec["job"]["start_time"][:10].replace("-", "/"))
            # Every due job fetched exactly once; no active one at all.
            for what in ("download", "error"):
                counts = self.fetch_counts(fc, what)
                self.assertEqual(set(counts), {s["job"]["key"] for s in due + small_jobs})
                self.assertEqual(max(counts.values()), 1)
            assert_no_temporaries(self.archive)

            # The second run lists both items and fetches nothing.
            fc.clear_requests()
            p = self.run_once(cfg, expect=1)
            self.assertRegex(p.stderr, r"0 jobs archived, 1 failed, 0 lists failed")
            self.assertEqual(sorted(r["path"] for r in fc.requests()),
                             sorted("/__api__/v1/content/%s/jobs" % g for g in (big, small)))

    def test_a_list_refused_at_its_end_starts_nothing(self):
        # Hundreds of good jobs (well past the spool's first write), then garbage: the list
        # is refused whole, as it was when it was parsed in one piece.
        g = new_guid()
        specs = [make_jobspec("early%011d" % i, log="x\n") for i in range(600)]
        import json
        body = json.dumps([s["job"] for s in specs])[:-1] + ', {"key": NaN}]'
        with FakeConnect({g: specs}, api_key=KEY) as fc:
            fc.add_fault(path=r"/%s/jobs$" % g, kind="garbage", body=body, times=1)
            cfg = write_config(self.tmp, fc.url, self.archive, content=[g], api_key=KEY)
            p = self.run_once(cfg, expect=1)
            self.assertRegex(p.stderr, r"(?m)^<4>content=%s \(-\): the job list is not a JSON "
                                       r"array; will retry next cycle" % g)
            self.assertEqual(fc.requests(path="/(download|error)$"), [])
            self.assertEqual(read_archive(self.archive).jobs, {})
            # The next poll gets the good list and archives it all.
            p = self.run_once(cfg)
            self.assertRegex(p.stderr, r"600 jobs archived, 0 failed")

    def test_jobs_without_a_usable_start_time(self):
        g = new_guid()
        today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y/%m/%d")
        end = "2024-06-07T08:09:10Z"
        queued = "2023-02-03T23:30:00-02:00"  # 2023-02-04 in UTC
        cases = [
            # key, job fields, date folder, date_source
            ("hasStartTime0001", dict(start_time="2024-05-01T10:00:00Z", end_time=end),
             "2024/05/01", "start_time"),
            ("missingStart0001", dict(start_time=None, end_time=end), "2024/06/07", "end_time"),
            ("nullStart0000001", dict(start_time=None, end_time=end), "2024/06/07", "end_time"),
            ("emptyStart000001", dict(start_time="", end_time=None, queued_time=queued),
             "2023/02/04", "queued_time"),
            ("notRfc3339000001", dict(start_time="25/11/2024 10:00", end_time=None,
                                      queued_time=queued), "2023/02/04", "queued_time"),
            ("skippedNoTimes01", dict(start_time=None, end_time=None, queued_time=None),
             today, "first_seen"),
            ("numberTimes00001", dict(start_time=1732573062, end_time=1732573062,
                                      queued_time=None), today, "first_seen"),
        ]
        specs = []
        for key, fields, _, _ in cases:
            spec = make_jobspec(key, status=3, **fields)
            spec["download_status"] = 404  # skipped: no log
            if key == "missingStart0001":
                del spec["job"]["start_time"]
            specs.append(spec)
        with FakeConnect({g: specs}, api_key=KEY) as fc:
            cfg = write_config(self.tmp, fc.url, self.archive, content=[g], api_key=KEY)
            p = self.run_once(cfg)
            self.assertRegex(p.stderr, r"%d jobs archived, 0 failed" % len(cases))
            arch = read_archive(self.archive)
            for (key, _, folder, source), spec in zip(cases, specs):
                j = arch.jobs[key]
                self.assertEqual(j["dir"], g + "/" + folder, key)
                self.assertEqual(j["record"]["date_source"], source, key)
                self.assertEqual(j["record"]["job"], spec["job"], key)

            # Polled again (a new process, as after a restart): all found, nothing fetched.
            fc.clear_requests()
            p = self.run_once(cfg)
            self.assertRegex(p.stderr, r"0 jobs archived, 0 failed")
            self.assertEqual(fc.requests(path="/(download|error)$"), [])

            # A job dated by the day first seen and archived on an earlier day (moved there
            # to stand for it): a poll on a later day finds it and does not archive it again.
            old = os.path.join(self.archive, g, "2020", "01", "02")
            os.makedirs(old)
            for name in arch.jobs["skippedNoTimes01"]["files"]:
                os.rename(os.path.join(self.archive, name),
                          os.path.join(old, os.path.basename(name)))
            # And one dated by its end time, archived under another date before (say, when
            # Connect had not set end_time yet): still found.
            for name in arch.jobs["missingStart0001"]["files"]:
                os.rename(os.path.join(self.archive, name),
                          os.path.join(old, os.path.basename(name)))
            p = self.run_once(cfg)
            self.assertRegex(p.stderr, r"0 jobs archived, 0 failed")
            self.assertEqual(fc.requests(path="/(download|error)$"), [])
            arch2 = read_archive(self.archive)
            self.assertEqual(arch2.jobs["skippedNoTimes01"]["dir"], g + "/2020/01/02")
            self.assertEqual(len(arch2.jobs), len(cases))


if __name__ == "__main__":
    unittest.main(verbosity=2)
