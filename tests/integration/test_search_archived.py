#!/usr/bin/env python3
"""connect-jobs show, log, error and download of an archived job: answered from the archive
(and said so on stderr) even when Connect swept the job or no server is configured;
--live asks Connect; a job in neither is exit 4; a job filed under another date than its
start time's is found by key."""
import json
import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (FakeConnect, make_jobspec, new_guid, run_archiver, run_jobs,  # noqa: E402
                     served_log, write_config)

ERROR = {"code": "E42", "summary": "Error in library(shiny): there is no package",
         "help_url": "https://docs.posit.co/connect/user/troubleshooting/"}
LOG = ("2024/11/25 22:17:43.386988748 [stdout] Running on host\n"
       "2024/11/25 22:17:44.000000001 [stderr] Error in library(shiny)\n"
       "no timestamp here\n"
       "2024/11/25 22:17:45.5 [stdout] done\n")


class ArchivedTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="cja-archived-")
        cls.g = new_guid()
        cls.specs = [
            make_jobspec("withError0000001", start_time="2024-11-25T22:17:42Z", exit_code=1,
                         error=ERROR, log=LOG),
            make_jobspec("noError00000001", start_time="2024-11-26T10:00:00Z",
                         log_size=300000),
            make_jobspec("noLog0000000001", start_time="2024-11-26T11:00:00Z",
                         download_status=404),
            make_jobspec("moved0000000001", start_time="2024-11-27T23:59:00Z", log="moved\n"),
        ]
        cls.archive = os.path.join(cls.tmp, "archive")
        cls.fc = FakeConnect({cls.g: cls.specs})
        cls.fc.start()
        cls.cfg = write_config(cls.tmp, cls.fc.url, cls.archive, content=[(cls.g, "sales")])
        p = run_archiver(["--config", cls.cfg, "--once"])
        assert p.returncode == 0, p.stderr
        # Filed under its end day, as the archiver does for a job without a start time.
        src = os.path.join(cls.archive, cls.g, "2024", "11", "27")
        dst = os.path.join(cls.archive, cls.g, "2024", "11", "28")
        os.makedirs(dst)
        for name in ("moved0000000001.log.gz", "moved0000000001.json"):
            os.rename(os.path.join(src, name), os.path.join(dst, name))
        with open(os.path.join(dst, "moved0000000001.json")) as f:
            rec = json.load(f)
        rec["date_source"] = "end_time"
        with open(os.path.join(dst, "moved0000000001.json"), "w") as f:
            json.dump(rec, f)

    @classmethod
    def tearDownClass(cls):
        cls.fc.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def cj(self, *args, expect=0, cfg=True, text=True):
        argv = (["-c", self.cfg] if cfg else []) + list(args)
        p = run_jobs(argv, env={"TZ": "UTC"}, text=text)
        self.assertEqual(p.returncode, expect, "%s: %s" % (args, p.stderr[-2000:]))
        return p

    def day(self, key):
        for root, _, files in os.walk(self.archive):
            if key + ".json" in files:
                return root
        raise AssertionError(key)

    def assert_from_archive(self, p, path):
        self.assertIn("from the archive (%s)" % path, p.stderr)

    def test_show(self):
        d = self.day("withError0000001")
        p = self.cj("show", "sales", "withError0000001")
        self.assert_from_archive(p, os.path.join(d, "withError0000001.json"))
        self.assertRegex(p.stdout, r"(?m)^job +withError0000001")
        self.assertRegex(p.stdout, r"(?m)^exit code +1$")
        self.assertRegex(p.stdout, r"(?m)^archived +%s$" % os.path.join(d, "withError0000001.json"))
        p = self.cj("show", "-o", "json", self.g, "withError0000001")
        self.assertEqual(json.loads(p.stdout), self.specs[0]["job"])

    def test_log_matches_the_live_log(self):
        live = self.cj("log", "--live", "-o", "json", "sales", "withError0000001")
        self.assertNotIn("from the archive", live.stderr)
        p = self.cj("log", "-o", "json", "sales", "withError0000001")
        self.assert_from_archive(p, os.path.join(self.day("withError0000001"),
                                                 "withError0000001.log.gz"))
        self.assertEqual([json.loads(x) for x in p.stdout.splitlines()],
                         [json.loads(x) for x in live.stdout.splitlines()])
        p = self.cj("log", "-n", "2", "sales", "withError0000001")
        self.assertEqual(p.stdout, "-                       stdout no timestamp here\n"
                                   "2024-11-25 22:17:45.500 stdout done\n")
        p = self.cj("log", "-n", "100000", "sales", "noError00000001")
        self.assertEqual(len(p.stdout.splitlines()),
                         served_log(self.specs[1]).count(b"\n"))

    def test_error(self):
        p = self.cj("error", "sales", "withError0000001")
        self.assert_from_archive(p, os.path.join(self.day("withError0000001"),
                                                 "withError0000001.error.json"))
        self.assertRegex(p.stdout, r"(?m)^summary +Error in library\(shiny\)")
        p = self.cj("error", "-o", "json", "sales", "withError0000001")
        self.assertEqual(json.loads(p.stdout), ERROR)
        p = self.cj("error", "sales", "noError00000001")
        self.assertEqual(p.stdout, "job noError00000001 has no error record\n")
        p = self.cj("error", "-o", "json", "sales", "noError00000001")
        self.assertEqual(p.stdout, "null\n")

    def test_download(self):
        p = self.cj("download", "sales", "noError00000001", text=False)
        self.assertEqual(p.stdout, served_log(self.specs[1]))
        self.assertIn(b"from the archive (", p.stderr)
        out = os.path.join(self.tmp, "out.log")
        self.cj("download", "-O", out, "sales", "withError0000001")
        with open(out, "rb") as f:
            self.assertEqual(f.read(), LOG.encode())
        p = self.cj("download", "sales", "noLog0000000001", expect=4)
        self.assertIn("without a log file", p.stderr)
        p = self.cj("log", "sales", "noLog0000000001")
        self.assertEqual(p.stdout, "")

    def test_list_marks_archived_without_following_symlinks(self):
        def archived_column():
            p = self.cj("list", "sales")
            return {ln.split()[0]: ln.split()[-1] for ln in p.stdout.splitlines()[1:]}

        self.assertEqual(archived_column()["noError00000001"], "yes")
        # The same folder reached through a symlink is not the archive's: "no", as the
        # daemon would archive the job again rather than trust it.
        real = os.path.join(self.archive, self.g, "2024", "11", "26")
        outside = os.path.join(self.tmp, "outside-26")
        os.rename(real, outside)
        os.symlink(outside, real)
        try:
            cols = archived_column()
            self.assertEqual(cols["noError00000001"], "no")
            self.assertEqual(cols["withError0000001"], "yes")
        finally:
            os.unlink(real)
            os.rename(outside, real)

    def test_found_under_another_date(self):
        d = os.path.join(self.archive, self.g, "2024", "11", "28")
        p = self.cj("show", "sales", "moved0000000001", "--live")
        self.assertRegex(p.stdout, r"(?m)^archived +%s$" % os.path.join(d, "moved0000000001.json"))
        p = self.cj("download", "sales", "moved0000000001")
        self.assert_from_archive(p, os.path.join(d, "moved0000000001.log.gz"))
        self.assertEqual(p.stdout, "moved\n")

    def test_no_server_no_key(self):
        # No config at all, no environment: the archive alone answers.
        args = ["--archive", self.archive]
        p = self.cj(*args, "show", self.g, "withError0000001", cfg=False)
        self.assertIn("from the archive", p.stderr)
        p = self.cj(*args, "log", self.g, "missingKey000001", cfg=False, expect=4)
        self.assertIn("not in the archive", p.stderr)
        self.cj(*args, "show", self.g, "../../etc/passwd", cfg=False, expect=4)

    def test_live_and_neither(self):
        p = self.cj("show", "--live", "sales", "withError0000001")
        self.assertNotIn("from the archive", p.stderr)
        self.fc.add_job(self.g, make_jobspec("notArchived00001", start_time="2024-11-29T00:00:00Z"))
        try:
            p = self.cj("show", "sales", "notArchived00001")  # not archived: Connect answers
            self.assertNotIn("from the archive", p.stderr)
            self.assertRegex(p.stdout, r"(?m)^archived +no$")
        finally:
            self.fc.delete_job(self.g, "notArchived00001")
        for cmd in ("show", "log", "error", "download"):
            self.cj(cmd, "sales", "notArchived00001", expect=4)
        # Swept by Connect: --live says so, the archive still answers.
        self.fc.delete_job(self.g, "noError00000001")
        try:
            self.cj("show", "--live", "sales", "noError00000001", expect=4)
            self.cj("show", "sales", "noError00000001")
        finally:
            self.fc.add_job(self.g, self.specs[1])


if __name__ == "__main__":
    unittest.main()
