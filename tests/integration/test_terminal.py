#!/usr/bin/env python3
"""Server and log text on a terminal: escaped there, the bytes as received to a pipe.

Each command that prints text from the server or the archive (ls, search, and from Connect
log, show, error, list, kill; text and -o json) runs twice: with its standard output a pty
(what an operator's terminal sees must carry no control character of the text) and a pipe
(the bytes as received, for scripts)."""
import gzip
import json
import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import run_jobs, run_jobs_pty  # noqa: E402

GUID = "38400000-8cf0-11bd-b23e-10b96e4ef00d"
KEY = "hostileJob000001"
# A window title (OSC 0 ... BEL), a screen clear, and an 8-bit CSI as UTF-8 (U+009B).
TITLE = "\x1b]0;pwned\x07"
CLEAR = "\x1b[2J"
C1 = "\u009b31m"
LOG = ("ok line\nboom " + TITLE + " and " + CLEAR + " and " + C1 + "\n").encode()


def has_controls(b):
    """Whether bytes b hold a C0 control but tab and newline, DEL, or a C1 control."""
    s = b.decode("utf-8", "replace")
    return any((ord(c) < 0x20 and c not in "\t\n\r") or 0x7f <= ord(c) <= 0x9f for c in s)


class TerminalTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="cja-tty-")
        cls.archive = os.path.join(cls.tmp, "archive")
        day = os.path.join(cls.archive, GUID, "2024", "11", "26")
        os.makedirs(day)
        with open(os.path.join(day, KEY + ".log.gz"), "wb") as f:
            f.write(gzip.compress(LOG))
        rec = {"job": {"key": KEY, "status": 2, "start_time": "2024-11-26T00:00:00Z",
                       "end_time": "2024-11-26T00:01:00Z", "exit_code": 1,
                       "tag": "run" + CLEAR + C1, "id": "1", "hostname": "h" + TITLE},
               "error": {"code": "E1", "summary": "bad " + TITLE}, "content_guid": GUID,
               "content_name": "evil" + C1, "archived_at": "2024-12-01T00:00:00Z",
               "log_bytes": len(LOG), "log_sha256": None}
        with open(os.path.join(day, KEY + ".json"), "w") as f:
            json.dump(rec, f, ensure_ascii=False)
        with open(os.path.join(day, KEY + ".error.json"), "w") as f:
            json.dump({"code": "E1", "summary": "bad " + TITLE, "help_url": "u" + C1}, f,
                      ensure_ascii=False)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def both(self, *args):
        argv = ["--archive", self.archive] + list(args)
        rc, tty_out, err = run_jobs_pty(argv, env={"LC_ALL": "C.UTF-8"})
        self.assertEqual(rc, 0, err)
        p = run_jobs(argv, env={"LC_ALL": "C.UTF-8"}, text=False)
        self.assertEqual(p.returncode, 0, p.stderr)
        return tty_out, p.stdout

    def test_ls_text_escapes_names_tags_and_errors_on_a_terminal(self):
        tty_out, pipe = self.both("ls")
        self.assertFalse(has_controls(tty_out), tty_out)
        self.assertIn(b"evil\\xc2\\x9b31m", tty_out)
        self.assertIn(b"run\\x1b[2J", tty_out)
        self.assertIn(b"bad \\x1b]0;pwned\\x07", tty_out)
        self.assertIn(b"run" + CLEAR.encode(), pipe)  # as archived
        self.assertIn(b"bad " + TITLE.encode(), pipe)

    def test_ls_json_escapes_c1_on_a_terminal(self):
        tty_out, pipe = self.both("ls", "-o", "json")
        self.assertFalse(has_controls(tty_out), tty_out)
        self.assertIn("evil\u009b31m".encode(), pipe)
        json.loads(pipe.splitlines()[0])

    def test_search_text_and_json(self):
        # our own colours are the only escape sequences a terminal gets
        tty_out, pipe = self.both("search", "--color=never", "boom")
        self.assertFalse(has_controls(tty_out), tty_out)
        self.assertIn(b"boom \\x1b]0;pwned\\x07 and \\x1b[2J and \\xc2\\x9b31m", tty_out)
        self.assertIn(LOG.splitlines()[1], pipe)
        tty_out, pipe = self.both("search", "-o", "json", "boom")
        self.assertFalse(has_controls(tty_out), tty_out)
        self.assertEqual(json.loads(pipe)["line"], LOG.splitlines()[1].decode())

    def test_log_show_and_error_from_the_archive(self):
        for args in (["log", GUID, KEY], ["show", GUID, KEY], ["error", GUID, KEY],
                     ["show", GUID, KEY, "-o", "json"], ["error", GUID, KEY, "-o", "json"],
                     ["log", GUID, KEY, "-o", "json"]):
            tty_out, pipe = self.both(*args)
            self.assertFalse(has_controls(tty_out), (args, tty_out))
            self.assertNotEqual(tty_out.replace(b"\r", b""), pipe, args)


if __name__ == "__main__":
    unittest.main()
