#!/usr/bin/env python3
"""completion/connect-jobs.bash: commands, options per command, content names from the
config, under the real bash-completion."""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import TESTS_DIR, new_guid, write_config  # noqa: E402

SCRIPT = os.path.join(os.path.dirname(TESTS_DIR), "completion", "connect-jobs.bash")
BASH_COMPLETION = "/usr/share/bash-completion/bash_completion"


class CompletionTest(unittest.TestCase):
    def setUp(self):
        if not os.path.exists(BASH_COMPLETION) or not shutil.which("bash"):
            self.skipTest("skipped: bash-completion is not installed")
        self.tmp = tempfile.mkdtemp(prefix="cja-comp-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def complete(self, *words):
        """The completions bash offers for the command line `words` (last = current)."""
        script = ('source %s; source %s; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); '
                  'COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}; _connect_jobs; '
                  'printf "%%s\\n" "${COMPREPLY[@]}"' % (BASH_COMPLETION, SCRIPT))
        p = subprocess.run(["bash", "-c", script, "bash", *words], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        return [w for w in p.stdout.split("\n") if w]

    def test_commands_options_and_names(self):
        cfg = write_config(self.tmp, "http://127.0.0.1:1", os.path.join(self.tmp, "a"),
                           content=[(new_guid(), "sales-dashboard"), new_guid(),
                                    {"guid": new_guid(), "name": "etl nightly"}])
        self.assertEqual(self.complete("connect-jobs", ""),
                         ["list", "show", "log", "tail", "download", "error", "kill", "ls",
                          "search", "content"])
        self.assertEqual(self.complete("connect-jobs", "t"), ["tail"])
        self.assertEqual(self.complete("connect-jobs", "-c", cfg, "tail", ""),
                         ["sales-dashboard", "etl nightly"])
        self.assertEqual(self.complete("connect-jobs", "-c", cfg, "show", "sa"),
                         ["sales-dashboard"])
        self.assertIn("-n", self.complete("connect-jobs", "log", "x", "k", "-"))
        self.assertNotIn("-n", self.complete("connect-jobs", "list", "x", "-"))
        self.assertIn("-O", self.complete("connect-jobs", "download", "x", "k", "-"))
        # ls and search: filters, grep options, names after --content, no names as PATTERN.
        self.assertEqual(self.complete("connect-jobs", "-c", cfg, "search", "--content", "sa"),
                         ["sales-dashboard"])
        self.assertEqual(self.complete("connect-jobs", "-c", cfg, "search", "-c", "--content",
                                       "et"), ["etl nightly"])
        self.assertEqual(self.complete("connect-jobs", "-c", cfg, "search", ""), [])
        self.assertIn("--failed", self.complete("connect-jobs", "ls", "-"))
        self.assertIn("-C", self.complete("connect-jobs", "search", "-i", "-"))
        self.assertNotIn("-C", self.complete("connect-jobs", "ls", "-"))
        self.assertEqual(self.complete("connect-jobs", "search", "--color=a"),
                         ["--color=auto", "--color=always"])
        self.assertIn("yesterday", self.complete("connect-jobs", "ls", "--since", ""))
        self.assertNotIn("--live", self.complete("connect-jobs", "kill", "x", "k", "-"))
        self.assertEqual(self.complete("connect-jobs", "list", "-o", ""), ["json", "text"])
        self.assertIn("--server", self.complete("connect-jobs", "--s"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
