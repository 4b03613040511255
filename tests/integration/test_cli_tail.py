#!/usr/bin/env python3
"""connect-jobs tail: every framing of /tail, lines appended while it runs, the exit at
finalization, no line lost or doubled where /log and /tail meet (nor after a reset), the
/log fallback for a server without /tail, Ctrl-C, and kill ending a tail."""
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (FakeConnect, make_jobspec, new_guid, run_jobs, start_jobs,  # noqa: E402
                     stop_process, wait_for, write_config)

KEY = "cja-TEST-key-8d2f6b0a9e"
OLD_LOG = "".join("2024/11/27 10:00:%02d.000000001 [%s] old line %d\n"
                  % (i, "stderr" if i % 2 else "stdout", i) for i in range(1, 6))


class TailTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.guid = new_guid()
        cls.fc = FakeConnect({cls.guid: []}, api_key=KEY)
        cls.fc.start()
        cls.seq = 0

    @classmethod
    def tearDownClass(cls):
        cls.fc.stop()

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="cja-tail-")
        self.cfg = write_config(self.tmp, self.fc.url, os.path.join(self.tmp, "archive"),
                                content=[(self.guid, "live-app")], api_key=KEY)
        self.procs = []

    def tearDown(self):
        self.fc.clear_faults()
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
            for out in (p.read_stdout(), p.read_stderr()):
                self.assertNotIn(KEY, out, "the API key leaked into output")
        shutil.rmtree(self.tmp, ignore_errors=True)

    def new_job(self, **spec):
        TailTest.seq += 1
        key = "tailJob%09d" % TailTest.seq
        self.fc.add_job(self.guid, dict(make_jobspec(key, status=0, log=OLD_LOG), **spec))
        return key

    def append(self, key, *lines):
        self.fc.control("POST", "jobs/%s/%s/lines" % (self.guid, key), {"lines": list(lines)})

    def all_entries(self, key):
        status, _, body = self.fc.get("/__api__/v1/content/%s/jobs/%s/log?maxLogLines=100000"
                                      % (self.guid, key))
        self.assertEqual(status, 200)
        return json.loads(body)["entries"]

    def tail(self, key, *extra):
        p = start_jobs(["-c", self.cfg, "tail", "live-app", key, *extra],
                       output_dir=tempfile.mkdtemp(dir=self.tmp))
        self.procs.append(p)
        return p

    def lines_of(self, p):
        return [ln for ln in p.read_stdout().split("\n") if ln]

    def wait_lines(self, p, n):
        try:
            wait_for(lambda: len(self.lines_of(p)) >= n or p.poll() is not None, timeout=15,
                     message="%d lines" % n)
        except AssertionError as e:
            raise AssertionError("%s (have %r, stderr %r)" % (e, self.lines_of(p),
                                                               p.read_stderr()))

    def finish(self, p, timeout=15):
        try:
            rc = p.wait(timeout)
        except Exception:
            stop_process(p, signal.SIGKILL)
            raise AssertionError("tail did not end at finalization: %r" % p.read_stderr())
        return rc

    def follow(self, framing, replay, json_output=True):
        key = self.new_job(tail_framing=framing, tail_replay=replay)
        p = self.tail(key, "-n", "3", *(["-o", "json"] if json_output else ["--utc"]))
        self.wait_lines(p, 3)
        self.append(key, "new 1", {"source": "stderr", "data": "new 2 {with} \"quotes\""})
        self.wait_lines(p, 5)
        self.append(key, "new 3")
        # Finalized right after the last line: that line still comes, then the exit.
        self.fc.update_job(self.guid, key, status=2)
        self.assertEqual(self.finish(p), 0, p.read_stderr())
        self.assertEqual(p.read_stderr(), "")
        want = self.all_entries(key)[-6:]
        self.assertEqual(want[0]["data"], "old line 3")
        self.assertEqual(want[-1]["data"], "new 3")
        if json_output:
            self.assertEqual([json.loads(ln) for ln in self.lines_of(p)], want)
        else:
            got = self.lines_of(p)
            self.assertEqual(len(got), 6, got)
            self.assertEqual(got[0], "2024-11-27 10:00:03.000 stderr old line 3")
            self.assertTrue(got[4].endswith(' stderr new 2 {with} "quotes"'), got[4])
        return p

    def test_framings_and_replays(self):
        for framing in ("ndjson", "sse", "concatenated"):
            for replay in ("all", 2, 0):
                with self.subTest(framing=framing, replay=replay):
                    self.follow(framing, replay)

    def test_text_output(self):
        self.follow("sse", "all", json_output=False)

    def test_seam_lines_written_while_log_is_asked(self):
        # The stream is open; /log is slow; lines written meanwhile reach both the stream
        # and the /log answer. Each must be shown once.
        for replay in (0, "all"):
            with self.subTest(replay=replay):
                key = self.new_job(tail_replay=replay)
                self.fc.add_fault(kind="slow", delay=1.0, path=key + "/log$")
                self.fc.clear_requests()
                p = self.tail(key, "-n", "3", "-o", "json")
                wait_for(lambda: self.fc.requests(key + r"/log\?"), message="the /log request")
                self.append(key, "during 1", "during 2")
                self.wait_lines(p, 3)
                self.append(key, "after")
                self.wait_lines(p, 4)
                self.fc.update_job(self.guid, key, status=2)
                self.assertEqual(self.finish(p), 0, p.read_stderr())
                got = [json.loads(ln) for ln in self.lines_of(p)]
                self.assertEqual(got, self.all_entries(key)[-4:])
                self.assertEqual([e["data"] for e in got],
                                 ["old line 5", "during 1", "during 2", "after"])

    def test_stream_reset_midway(self):
        # The stream dies after some bytes; the retry replays the log: nothing twice.
        key = self.new_job(tail_replay="all")
        self.fc.add_fault(kind="reset", path=key + "/tail$", after_bytes=300)
        p = self.tail(key, "-n", "3", "-o", "json")
        self.wait_lines(p, 3)
        self.append(key, "x 1")
        self.wait_lines(p, 4)
        self.fc.update_job(self.guid, key, status=2)
        self.assertEqual(self.finish(p), 0, p.read_stderr())
        self.assertGreaterEqual(len(self.fc.requests(key + "/tail$")), 2)
        self.assertEqual([json.loads(ln) for ln in self.lines_of(p)], self.all_entries(key)[-4:])

    def test_finalized_job_prints_and_exits(self):
        key = self.new_job()
        self.fc.update_job(self.guid, key, status=2)
        p = run_jobs(["-c", self.cfg, "tail", "live-app", key, "-n", "2", "--utc"], timeout=20)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, "2024-11-27 10:00:04.000 stdout old line 4\n"
                                   "2024-11-27 10:00:05.000 stderr old line 5\n")

    def test_n_zero_only_follows(self):
        key = self.new_job(tail_replay="all")
        p = self.tail(key, "-n", "0", "-o", "json")
        wait_for(lambda: self.fc.requests(key + "/log"), message="the /log request")
        time.sleep(0.3)
        self.append(key, "only this")
        self.wait_lines(p, 1)
        self.fc.update_job(self.guid, key, status=2)
        self.assertEqual(self.finish(p), 0)
        self.assertEqual([json.loads(ln)["data"] for ln in self.lines_of(p)], ["only this"])

    def test_fallback_to_polling_log(self):
        key = self.new_job(tail_status=404)
        p = self.tail(key, "-n", "2", "-o", "json")
        self.wait_lines(p, 2)
        self.append(key, "polled 1")
        self.wait_lines(p, 3)
        self.append(key, "polled 2")
        self.fc.update_job(self.guid, key, status=2)
        self.assertEqual(self.finish(p), 0, p.read_stderr())
        self.assertEqual([json.loads(ln) for ln in self.lines_of(p)], self.all_entries(key)[-4:])
        err = p.read_stderr()
        self.assertEqual(err.count("\n"), 1, err)
        self.assertRegex(err, r"^connect-jobs: http://127\.0\.0\.1:\d+ has no /tail endpoint "
                              r"\(HTTP 404 without a Connect error\): polling /log every 2 s "
                              r"instead\n$")

    def test_ctrl_c_exits_130_quietly(self):
        key = self.new_job()
        p = self.tail(key, "-n", "1")
        self.wait_lines(p, 1)
        time.sleep(0.2)
        p.send_signal(signal.SIGINT)
        self.assertEqual(self.finish(p, timeout=5), 130)
        self.assertEqual(p.read_stderr(), "")
        # In the fallback's sleep as well.
        key = self.new_job(tail_status=404)
        p = self.tail(key, "-n", "1")
        self.wait_lines(p, 1)
        p.send_signal(signal.SIGINT)
        self.assertEqual(self.finish(p, timeout=5), 130)

    def test_kill_ends_the_tail(self):
        key = self.new_job()
        p = self.tail(key, "-n", "1", "-v")
        self.wait_lines(p, 1)
        k = run_jobs(["-c", self.cfg, "kill", "live-app", key])
        self.assertEqual(k.returncode, 0, k.stderr)
        self.assertEqual(self.finish(p), 0, p.read_stderr())
        self.assertTrue(self.lines_of(p)[-1].endswith(" stderr Killed"), self.lines_of(p))
        self.assertIn("Authorization: <redacted>", p.read_stderr())

    def test_unknown_job_is_4(self):
        p = run_jobs(["-c", self.cfg, "tail", "live-app", "noSuchJob0000001"], timeout=20)
        self.assertEqual(p.returncode, 4, p.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
