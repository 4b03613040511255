#!/usr/bin/env python3
"""Probes: connect-jobs against a hostile server. A /tail line that never ends, an SSE
field that never ends, a 500 MB body for list and show, nesting a million deep, a gzip
bomb it did not ask for: each ends with a clear error, in bounded memory and time."""
import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import FakeConnect, make_jobspec, new_guid, write_config  # noqa: E402
from probe_util import jobs_measured, report, rss_limit_kb  # noqa: E402

KEY = "activeJob0000001"
DONE = "finalOK000000001"
BIG = 500 * 1024 * 1024
RSS_MB = 64
# list holds the whole answer (it sorts it newest first; -o json prints it as received), up
# to the engine's 64 MiB: that much is the bound, not a leak.
LIST_RSS_MB = 96
TIMEOUT = 60


class HostileServer(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="cja-probe-srv-")
        cls.guid = new_guid()
        cls.fc = FakeConnect({cls.guid: [make_jobspec(KEY, status=0, log="x\n"),
                                         make_jobspec(DONE)]}).start()
        cls.cfg = write_config(cls.tmp, cls.fc.url, os.path.join(cls.tmp, "archive"),
                               content=[(cls.guid, "app")])

    @classmethod
    def tearDownClass(cls):
        cls.fc.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.fc.clear_faults()

    def probe(self, name, args, want_rc, want_err, fault, rss_mb=RSS_MB):
        self.fc.add_fault(times=-1, **fault)
        m = jobs_measured(["-c", self.cfg] + args, timeout=TIMEOUT)
        report(name, m, "| " + m.stderr.strip().splitlines()[-1][:160]
               if m.stderr.strip() else "")
        self.assertEqual(m.returncode, want_rc, m.stderr[-2000:])
        self.assertRegex(m.stderr, want_err)
        self.assertLess(m.peak_kb, rss_limit_kb(rss_mb), "peak RSS %d KiB" % m.peak_kb)
        self.assertLess(len(m.stderr), 4096, "the error is one clear line, not a flood")
        return m

    # --- /tail
    def test_tail_line_never_ends(self):
        self.probe("tail: an ndjson line that never ends", ["tail", "app", KEY], 1,
                   r"(?i)(too large|malformed|not .*log entr)",
                   dict(path="/tail$", kind="stream", content_type="application/x-ndjson",
                        head='{"source":"stdout","timestamp":null,"data":"', fill="A",
                        size=-1))

    def test_tail_sse_field_never_ends(self):
        self.probe("tail: an SSE field that never ends", ["tail", "app", KEY], 1,
                   r"(?i)(too large|malformed|not .*log entr)",
                   dict(path="/tail$", kind="stream", content_type="text/event-stream",
                        head="data: ", fill="x", size=-1))

    # --- list and show
    def test_list_500mb_body(self):
        job = ('{"key":"k%s","status":2,"start_time":"2024-11-25T22:17:42Z",'
               '"tag":"run_app","exit_code":0},')
        self.probe("list: a 500 MB job list", ["list", "app"], 1,
                   r"(?i)too large|larger than",
                   dict(path="/jobs$", kind="stream", head="[", fill=job % "AAAAAAAAAAAAAA",
                        size=BIG, end="{}]"), LIST_RSS_MB)

    def test_list_500mb_body_json_output(self):
        self.probe("list -o json: a 500 MB job list", ["-o", "json", "list", "app"], 1,
                   r"(?i)too large|larger than",
                   dict(path="/jobs$", kind="stream", head="[", fill='{"key":"x"},',
                        size=BIG, end="{}]"), LIST_RSS_MB)

    def test_show_500mb_body(self):
        self.probe("show: a 500 MB job", ["show", "app", KEY], 1,
                   r"(?i)too large|larger than",
                   dict(path="/jobs/%s$" % KEY, kind="stream",
                        head='{"key":"%s","status":0,"tag":"' % KEY, fill="A", size=BIG,
                        end='"}'))

    def test_list_nested_a_million_deep(self):
        self.probe("list: nesting a million deep", ["list", "app"], 1,
                   r"(?i)(malformed|not a JSON|too (deep|large))",
                   dict(path="/jobs$", kind="stream", head="", fill="[", size=1 << 20,
                        end=""))

    def test_show_nested_a_million_deep(self):
        self.probe("show: nesting a million deep", ["show", "app", KEY], 1,
                   r"(?i)(malformed|not a JSON|too (deep|large))",
                   dict(path="/jobs/%s$" % KEY, kind="stream", head='{"key":"%s","x":' % KEY,
                        fill='{"a":', size=1 << 20, end=""))

    def test_tail_nested_a_million_deep(self):
        self.probe("tail: nesting a million deep", ["tail", "app", KEY], 1,
                   r"(?i)(too large|malformed|not .*log entr)",
                   dict(path="/tail$", kind="stream", content_type="application/x-ndjson",
                        head="", fill="[", size=1 << 20))

    # --- a gzip bomb: connect-jobs asks for gzip, so it inflates; the cap still holds (the
    # body is counted as it is decoded, and the answer refused at 1 MiB or 64 MiB)
    def test_list_gzip_bomb(self):
        self.probe("list: a 1 GiB gzip bomb", ["list", "app"], 1,
                   r"(?i)larger than (1|64) MiB, refused",
                   dict(path="/jobs$", kind="gzip_bomb", size=1 << 30), rss_mb=LIST_RSS_MB)

    def test_show_gzip_bomb(self):
        self.probe("show: a 1 GiB gzip bomb", ["show", "app", KEY], 1,
                   r"(?i)larger than (1|64) MiB, refused",
                   dict(path="/jobs/%s$" % KEY, kind="gzip_bomb", size=1 << 30))

    def test_log_gzip_bomb(self):
        self.probe("log: a 1 GiB gzip bomb", ["log", "--live", "app", DONE], 1,
                   r"(?i)larger than 64 MiB, refused",
                   dict(path="/log$", kind="gzip_bomb", size=1 << 30), rss_mb=LIST_RSS_MB)


if __name__ == "__main__":
    unittest.main(verbosity=2)
