#!/usr/bin/env python3
"""The systemd unit: systemd-analyze verify, and the offline security score (at most 1.5).
Skipped, visibly, where systemd-analyze is not installed."""
import os
import re
import shutil
import subprocess
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
UNIT = os.path.join(ROOT, "systemd", "connect-job-archiver.service")


@unittest.skipIf(shutil.which("systemd-analyze") is None, "systemd-analyze is not installed")
class UnitTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="cja-unit-")
        with open(UNIT) as f:
            text = f.read()
        # Point the unit at the binary under test; let `man` find the page in the tree.
        text = text.replace("/usr/bin/connect-job-archiver", os.environ["CJA_BINARY"])
        self.env = dict(os.environ)
        if shutil.which("man"):
            mandir = os.path.join(self.tmp, "man", "man8")
            os.makedirs(mandir)
            shutil.copy(os.path.join(ROOT, "man", "connect-job-archiver.8"), mandir)
            self.env["MANPATH"] = os.path.join(self.tmp, "man")
        else:
            text = re.sub(r"man:\S+ ?", "", text)
        self.unit = os.path.join(self.tmp, "connect-job-archiver.service")
        with open(self.unit, "w") as f:
            f.write(text)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_verify(self):
        p = subprocess.run(["systemd-analyze", "verify", self.unit], env=self.env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.assertEqual(p.returncode, 0, p.stdout)
        self.assertEqual(p.stdout.strip(), "")

    def test_security_score(self):
        p = subprocess.run(["systemd-analyze", "security", "--offline=true", self.unit],
                           env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
        m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", p.stdout)
        self.assertIsNotNone(m, p.stdout[-2000:])
        print("\nexposure level: %s" % m.group(1))
        self.assertLessEqual(float(m.group(1)), 1.5)

    def test_required_settings(self):
        with open(UNIT) as f:
            text = f.read()
        for line in ("Type=notify", "ExecStart=/usr/bin/connect-job-archiver",
                     "ExecReload=/bin/kill -HUP $MAINPID", "Restart=on-failure",
                     "StateDirectory=connect-job-archiver",
                     "LoadCredential=api-key:/etc/connect-job-archiver/api-key", "UMask=0027"):
            self.assertIn("\n" + line + "\n", text)
        self.assertRegex(text, r"\nWatchdogSec=\d+\n")
        self.assertRegex(text, r"\nRestartPreventExitStatus=78( \d+)*\n")
        # A failing ExecStartPre= is restarted despite RestartPreventExitStatus= (it covers
        # the main process only): the config error must come from the main process.
        self.assertNotIn("\nExecStartPre=", text)


if __name__ == "__main__":
    unittest.main(verbosity=2)
