#!/usr/bin/env python3
"""connect-jobs list/show/log/error/download/kill against the fake Connect server: text and
JSON output, names and GUIDs, every exit status, and the key in no output."""
import json
import os
import re
import shutil
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (FakeConnect, make_jobspec, new_guid, run_jobs, run_jobs_pty,  # noqa: E402
                     served_log, wait_for, write_config)

KEY = "cja-TEST-key-4e1d9a7c2b"  # distinctive, so a leak is easy to find
ERROR = {"code": "E42", "summary": "Error in library(shiny): there is no package",
         "help_url": "https://docs.posit.co/connect/user/troubleshooting/"}


def tree(path):
    """Every path under `path` with its mtime: proof that nothing was created or touched."""
    out = {}
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            full = os.path.join(root, name)
            out[os.path.relpath(full, path)] = os.lstat(full).st_mtime_ns
    return out


class CliTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.a, cls.b, cls.k = new_guid(), new_guid(), new_guid()  # k: for kill orders
        cls.specs = [
            make_jobspec("finalOK000000001", start_time="2024-11-25T22:17:42Z",
                         log="2024/11/25 22:17:43.386988748 [stdout] Running on host\n"
                             "2024/11/25 22:17:44.000000001 [stderr] \x1b[31mred\x1b[0m\n"
                             "2024/11/25 22:17:45.000000001 [stdout] done\n"),
            make_jobspec("failedJob0000001", start_time="2024-11-26T10:00:00Z", exit_code=1,
                         error=ERROR),
            make_jobspec("activeJob0000001", status=0, start_time="2024-11-27T10:00:00Z"),
            make_jobspec("nullEnd000000001", start_time="2024-11-24T08:00:00Z", end_time=None,
                         exit_code=None),
            make_jobspec("gone000000000001", download_status=404, error_status=404,
                         job_status=404),
        ]
        cls.fc = FakeConnect({cls.a: cls.specs, cls.b: [make_jobspec("otherItem0000001")]},
                             api_key=KEY)
        cls.fc.start()

    @classmethod
    def tearDownClass(cls):
        cls.fc.stop()

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="cja-cli-")
        self.archive = os.path.join(self.tmp, "archive")
        self.cfg = write_config(self.tmp, self.fc.url, self.archive,
                                content=[(self.a, "sales-dashboard"), self.b], api_key=KEY)
        self.outputs = []

    def tearDown(self):
        self.fc.clear_faults()
        for out in self.outputs:
            self.assertNotIn(KEY, out, "the API key leaked into output")
        shutil.rmtree(self.tmp, ignore_errors=True)

    def jobs(self, *args, expect=0, env=None, cfg=True, text=True):
        argv = (["-c", self.cfg] if cfg else []) + list(args)
        p = run_jobs(argv, env=env, text=text)
        if text:
            self.outputs += [p.stdout, p.stderr]
        else:
            self.outputs += [p.stdout.decode("utf-8", "replace"),
                             p.stderr.decode("utf-8", "replace")]
        self.assertEqual(p.returncode, expect, "%s: %s" % (args, p.stderr[-2000:]))
        return p

    def served(self, path):
        status, _, body = self.fc.get("/__api__/v1/content/" + path)
        self.assertEqual(status, 200)
        return body.decode("utf-8")

    # -- list
    def test_list_text_newest_first_and_archived_marks(self):
        # One job is in the archive already: its record is what counts.
        day = os.path.join(self.archive, self.a, "2024", "11", "26")
        os.makedirs(day)
        with open(os.path.join(day, "failedJob0000001.json"), "w") as f:
            f.write("{}\n")
        before = tree(self.archive)
        p = self.jobs("list", "sales-dashboard", "--utc")
        lines = p.stdout.splitlines()
        self.assertRegex(lines[0], r"^KEY +STATUS +STARTED \(UTC\) +DURATION +EXIT +TAG +HOST "
                                   r"+ARCHIVED$")
        keys = [ln.split()[0] for ln in lines[1:]]
        # Equal start times keep the server's order.
        self.assertEqual(keys, ["activeJob0000001", "failedJob0000001", "finalOK000000001",
                                "gone000000000001", "nullEnd000000001"])
        rows = {ln.split()[0]: ln for ln in lines[1:]}
        self.assertRegex(rows["failedJob0000001"],
                         r"finalized +2024-11-26 10:00:00 +2m 00s +1 +run_app +\S+ +yes$")
        self.assertRegex(rows["finalOK000000001"], r"finalized .* 0 .* no$")
        self.assertRegex(rows["activeJob0000001"], r"^activeJob0000001 +active +")
        self.assertRegex(rows["nullEnd000000001"], r"finalized +2024-11-24 08:00:00 +- +- ")
        # The columns line up: every row starts its STATUS where the header does.
        col = lines[0].index("STATUS")
        for ln in lines[1:]:
            self.assertEqual(ln[col - 2:col], "  ")
            self.assertNotEqual(ln[col], " ")
        # Read-only: nothing created, nothing touched.
        self.assertEqual(tree(self.archive), before)

    def test_list_without_archive_folder_creates_nothing(self):
        self.jobs("list", self.a)
        self.assertFalse(os.path.exists(self.archive))

    def test_list_json_is_the_server_body(self):
        p = self.jobs("list", self.a, "-o", "json")
        self.assertEqual(p.stdout, self.served(self.a + "/jobs"))
        p = self.jobs("--output", "json", "list", self.b)
        self.assertEqual(json.loads(p.stdout)[0]["key"], "otherItem0000001")

    # -- show
    def test_show_by_name_and_guid(self):
        p = self.jobs("show", "sales-dashboard", "failedJob0000001", "--utc")
        self.assertIn("job        failedJob0000001 (id ", p.stdout)
        self.assertIn("content    %s (sales-dashboard)" % self.a, p.stdout)
        self.assertIn("status     finalized\n", p.stdout)
        self.assertIn("started    2024-11-26 10:00:00 UTC\n", p.stdout)
        self.assertIn("duration   2m 00s\n", p.stdout)
        self.assertIn("exit code  1\n", p.stdout)
        self.assertIn("archived   no\n", p.stdout)
        # A GUID in another case is the configured item (its name comes along).
        q = self.jobs("show", self.a.upper(), "failedJob0000001", "--utc")
        self.assertEqual(q.stdout, p.stdout)
        # A GUID the config does not list works too, without a name.
        r = self.jobs("show", self.a, "failedJob0000001", "--utc", cfg=False,
                      env={"CONNECT_SERVER": self.fc.url, "CONNECT_API_KEY": KEY})
        self.assertIn("content    %s\n" % self.a, r.stdout)

    def test_show_json_is_the_server_body(self):
        p = self.jobs("show", "sales-dashboard", "nullEnd000000001", "-o", "json")
        self.assertEqual(p.stdout, self.served(self.a + "/jobs/nullEnd000000001"))

    def test_show_local_time_follows_tz(self):
        p = self.jobs("show", self.a, "failedJob0000001", env={"TZ": "America/New_York"})
        self.assertIn("started    2024-11-26 05:00:00 EST\n", p.stdout)

    # -- log
    def test_log_text_json_and_lines(self):
        p = self.jobs("log", "sales-dashboard", "finalOK000000001", "--utc")
        self.assertEqual(p.stdout.splitlines(), [
            "2024-11-25 22:17:43.386 stdout Running on host",
            "2024-11-25 22:17:44.000 stderr \x1b[31mred\x1b[0m",  # to a pipe: as received
            "2024-11-25 22:17:45.000 stdout done"])
        rc, out, err = run_jobs_pty(["-c", self.cfg, "log", "sales-dashboard",
                                     "finalOK000000001", "--utc"])
        self.assertEqual(rc, 0, err)
        self.assertIn(b"stderr \\x1b[31mred\\x1b[0m\n", out)  # a terminal: no control
        p = self.jobs("log", "sales-dashboard", "finalOK000000001", "-n", "2", "-o", "json")
        served = json.loads(self.served(self.a + "/jobs/finalOK000000001/log?maxLogLines=2"))
        self.assertEqual([json.loads(ln) for ln in p.stdout.splitlines()], served["entries"])
        self.assertEqual(len(served["entries"]), 2)
        self.assertTrue(self.fc.requests(r"/log\?maxLogLines=2$"))

    # -- error
    def test_error_record_none_and_json(self):
        p = self.jobs("error", "sales-dashboard", "failedJob0000001")
        self.assertEqual(p.stdout, "code       E42\n"
                                   "summary    Error in library(shiny): there is no package\n"
                                   "help       https://docs.posit.co/connect/user/troubleshooting/\n")
        p = self.jobs("error", self.a, "failedJob0000001", "-o", "json")
        self.assertEqual(p.stdout, self.served(self.a + "/jobs/failedJob0000001/error"))
        p = self.jobs("error", self.a, "finalOK000000001")
        self.assertEqual(p.stdout, "job finalOK000000001 has no error record\n")
        p = self.jobs("error", self.a, "finalOK000000001", "-o", "json")
        self.assertEqual(p.stdout, "null\n")
        self.jobs("error", self.a, "gone000000000001", expect=4)

    # -- download
    def test_download_stdout_and_file(self):
        want = served_log(self.specs[0])
        p = self.jobs("download", "sales-dashboard", "finalOK000000001", text=False)
        self.assertEqual(p.stdout, want)
        out = os.path.join(self.tmp, "out", "job.log")
        os.makedirs(os.path.dirname(out))
        with open(out, "w") as f:
            f.write("old contents\n")
        self.jobs("download", "sales-dashboard", "finalOK000000001", "-O", out)
        with open(out, "rb") as f:
            self.assertEqual(f.read(), want)
        self.assertEqual(os.listdir(os.path.dirname(out)), ["job.log"])
        # A failed download leaves the old file and no temporary.
        p = self.jobs("download", self.a, "gone000000000001", "-O", out, expect=4)
        self.assertIn("not found: HTTP 404", p.stderr)
        with open(out, "rb") as f:
            self.assertEqual(f.read(), want)
        self.assertEqual(os.listdir(os.path.dirname(out)), ["job.log"])

    def test_download_survives_a_reset_midway(self):
        # The first attempt dies after 40 bytes; the retry must not write them twice.
        self.fc.add_fault(kind="reset", path="finalOK000000001/download$", after_bytes=40)
        p = self.jobs("download", self.a, "finalOK000000001", text=False)
        self.assertEqual(p.stdout, served_log(self.specs[0]))
        self.assertEqual(len(self.fc.requests(r"finalOK000000001/download$")) >= 2, True)

    # -- kill
    def test_kill_200_then_409_and_404(self):
        key = "toKill0000000001"
        self.fc.add_job(self.k, make_jobspec(key, status=0, log="running\n"))
        p = self.jobs("kill", self.k, key)
        self.assertRegex(p.stdout, r"^kill order registered for job toKill0000000001: Order to "
                                   r"kill job registered \(order [0-9a-f-]{36}\)\n$")
        kills = self.fc.control("GET", "kills")
        self.assertEqual([(k["guid"], k["key"]) for k in kills if k["key"] == key],
                         [(self.k, key)])
        # The job is finalized soon after; a second kill finds nothing to kill.
        wait_for(lambda: json.loads(self.served(self.k + "/jobs/" + key))["status"] == 2,
                 message="the killed job to be finalized")
        p = self.jobs("kill", self.k, key, expect=1)
        self.assertEqual(p.stderr, "connect-jobs: job %s is not active; nothing to kill\n" % key)
        self.assertEqual(p.stdout, "")
        p = self.jobs("kill", self.k, "noSuchJob0000001", expect=4)
        self.assertIn("not found: HTTP 404: The requested object does not exist. (code 4)",
                      p.stderr)

    def test_kill_json_is_the_server_body(self):
        key = "toKillJson000001"
        self.fc.add_job(self.k, make_jobspec(key, status=0))
        p = self.jobs("kill", self.k, key, "-o", "json")
        order = json.loads(p.stdout)
        self.assertEqual(order["job_key"], key)
        self.assertEqual(order["result"], "Order to kill job registered")
        self.assertEqual(order["app_guid"], self.k)
        self.assertEqual(len(self.fc.requests(key + "$", method="DELETE")), 1)

    # -- exit statuses
    def test_unknown_name_is_usage_listing_names(self):
        before = len(self.fc.requests())
        p = self.jobs("list", "no-such-thing", expect=2)
        self.assertEqual(p.stderr, "connect-jobs: unknown content 'no-such-thing': not a GUID, "
                                   "and the known names are: sales-dashboard\n")
        self.assertEqual(len(self.fc.requests()), before, "asked Connect anyway")

    def test_usage_errors(self):
        for args in (["list"], ["show", self.a], ["frobnicate", self.a], ["list", self.a, "-n",
                     "5"], ["log", self.a, "k", "-n", "many"], ["log", self.a, "k", "-n", "-1"],
                     ["list", self.a, "-o", "yaml"], ["download", self.a, "k", "-O"],
                     ["kill", self.a, "k", "--live"], ["show", self.a, ""], []):
            p = self.jobs(*args, expect=2)
            self.assertTrue(p.stderr, args)
        self.assertIn("kill does not take --live", self.jobs("kill", self.a, "k", "--live",
                                                             expect=2).stderr)
        self.jobs("show", self.a, "failedJob0000001", "--live")  # accepted where it belongs
        self.assertIn("Usage: connect-jobs", self.jobs("--help").stdout)
        self.assertRegex(self.jobs("-V").stdout, r"^connect-jobs \d+\.\d+\.\d+\n$")

    def test_not_found_is_4(self):
        p = self.jobs("list", new_guid(), expect=4)
        self.assertRegex(p.stderr, r"not found: HTTP 404: .*\(code 4\)")
        self.jobs("show", self.a, "noSuchJob0000001", expect=4)
        self.jobs("log", self.a, "gone000000000001", expect=4)

    def test_refused_key_is_77(self):
        cfg = write_config(os.path.join(self.tmp, "wrong"), self.fc.url, self.archive,
                           content=[self.a], api_key="not-the-key")
        p = run_jobs(["-c", cfg, "list", self.a])
        self.outputs += [p.stdout, p.stderr]
        self.assertEqual(p.returncode, 77, p.stderr)
        self.assertIn("Connect refused the API key (from file ", p.stderr)
        self.assertIn("HTTP 401", p.stderr)
        self.assertNotIn("not-the-key", p.stderr)
        self.fc.add_fault(kind="status", status=403, path="/jobs$")
        p = self.jobs("list", self.a, expect=77)
        self.assertIn("HTTP 403: You don", p.stderr)

    def test_bad_config_is_78(self):
        bad = os.path.join(self.tmp, "bad.yaml")
        with open(bad, "w") as f:
            f.write("server:\n  url: http://x\n  colour: blue\n")
        p = run_jobs(["-c", bad, "list", self.a])
        self.assertEqual(p.returncode, 78, p.stderr)
        self.assertIn("bad.yaml:3:3:", p.stderr)
        p = run_jobs(["-c", os.path.join(self.tmp, "missing.yaml"), "list", self.a])
        self.assertEqual(p.returncode, 78, p.stderr)

    def test_environment_without_config(self):
        if os.path.exists("/etc/connect-job-archiver/config.yaml"):
            self.skipTest("skipped: /etc/connect-job-archiver/config.yaml exists here")
        p = self.jobs("list", self.a, cfg=False, expect=78)
        self.assertIn("no Connect server", p.stderr)
        p = self.jobs("list", self.a, cfg=False, expect=78,
                      env={"CONNECT_SERVER": self.fc.url})
        self.assertIn("no API key found", p.stderr)
        env = {"CONNECT_SERVER": self.fc.url + "/", "CONNECT_API_KEY": KEY}
        p = self.jobs("list", self.a, "-o", "json", cfg=False, env=env)
        self.assertEqual(p.stdout, self.served(self.a + "/jobs"))
        # No config, so no names: a name is a usage error that says why.
        p = self.jobs("list", "sales-dashboard", cfg=False, env=env, expect=2)
        self.assertIn("the config names no content (no config was read)", p.stderr)
        # --server wins over the environment.
        self.jobs("list", self.a, "--server", "http://127.0.0.1:9", cfg=False, env=env,
                  expect=1)
        self.jobs("--server", "ftp://x", "list", self.a, cfg=False, env=env, expect=2)

    def test_unreadable_service_key_falls_back_to_connect_api_key(self):
        if os.geteuid() == 0:
            self.skipTest("skipped: root reads any key file")
        os.chmod(os.path.join(self.tmp, "api-key"), 0)
        p = self.jobs("list", self.a, expect=78)
        self.assertIn("cannot open api key file", p.stderr)
        self.assertIn("set CONNECT_API_KEY to your own Connect key", p.stderr)
        self.jobs("list", self.a, env={"CONNECT_API_KEY": KEY})

    def test_transient_failures_are_retried(self):
        self.fc.add_fault(kind="status", status=503, path="/jobs$", times=2)
        p = self.jobs("list", self.a, "-o", "json")
        self.assertEqual(p.stdout, self.served(self.a + "/jobs"))
        self.fc.add_fault(kind="status", status=503, path="/failedJob0000001$", times=-1)
        self.fc.clear_requests()
        t = time.monotonic()
        p = self.jobs("show", self.a, "failedJob0000001", expect=1)
        self.assertIn("HTTP 503: The service is temporarily unavailable. (code 1); gave up "
                      "after retrying", p.stderr)
        self.assertEqual(len(self.fc.requests("/failedJob0000001$")), 4)
        self.assertLess(time.monotonic() - t, 30)

    def test_plain_404_is_not_not_found(self):
        # A server without the v1 jobs API answers a plain-text 404: that is not "no such
        # job" (exit 4) but "no such endpoint" (exit 1).
        self.fc.add_fault(kind="status", status=404, body="404 page not found\n",
                          path="/failedJob0000001$")
        p = self.jobs("show", self.a, "failedJob0000001", expect=1)
        self.assertIn("HTTP 404 without a Connect error", p.stderr)

    def test_key_absent_from_verbose_output(self):
        for args in (["list", self.a], ["show", self.a, "failedJob0000001"],
                     ["log", self.a, "finalOK000000001"], ["error", self.a, "failedJob0000001"],
                     ["download", self.a, "finalOK000000001"],
                     ["kill", self.k, "noSuchJob0000001"]):
            p = run_jobs(["-v", "-c", self.cfg] + args)
            self.outputs += [p.stdout, p.stderr]
            self.assertIn("Authorization: <redacted>", p.stderr, args)
            self.assertTrue(re.search(r"curl > GET|curl > DELETE", p.stderr), args)
            # stderr is a pipe here: still "debug: " lines, not journald's "<7>" prefixes.
            self.assertRegex(p.stderr, r"(?m)^debug: ", args)
            self.assertNotRegex(p.stderr, r"(?m)^<\d>", args)


if __name__ == "__main__":
    unittest.main(verbosity=2)
