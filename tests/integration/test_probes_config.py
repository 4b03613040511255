#!/usr/bin/env python3
"""Probes: YAML abuse. An alias bomb (a billion laughs), a 50 MB file, nesting half a
million deep, a directory, a FIFO and /dev/zero as the config: connect-job-archiver
(--check-config, and a running service's reload) and connect-jobs each refuse it at once
with file:line:col or file: reason, in flat memory, and never wait on a FIFO."""
import os
import shutil
import signal
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (FakeConnect, new_guid, start_archiver, stop_process,  # noqa: E402
                     wait_for, write_config)
from probe_util import archiver_measured, jobs_measured, report, rss_limit_kb  # noqa: E402

RSS_MB = 24
SECONDS = 5  # "at once", with room for a loaded machine and a sanitizer build
GUID = "38400000-8cf0-11bd-b23e-10b96e4ef00d"
HEAD = "server:\n  url: http://127.0.0.1:9\narchive:\n  directory: /tmp/x\n"


class YamlAbuse(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="cja-probe-yaml-")
        t = cls.tmp

        def write(name, text):
            path = os.path.join(t, name)
            with open(path, "w") as f:
                f.write(text)
            return path

        # Nine levels of nine: 9^9 (387 million) strings once expanded.
        lines = [HEAD + "content: &a0\n  - " + GUID]
        lines += ["x%d: &a%d [%s]" % (i, i, ", ".join(["*a%d" % (i - 1)] * 9))
                  for i in range(1, 10)]
        cls.bomb = write("bomb.yaml", "\n".join(lines) + "\n")
        # The bomb's first alias comes first (no anchor to refuse before it).
        cls.alias = write("alias.yaml", HEAD + "poll: *p\n")
        item = "  - " + GUID + "\n"
        with open(os.path.join(t, "big.yaml"), "w") as f:
            f.write(HEAD + "content:\n")
            chunk = item * 10000
            for _ in range((50 << 20) // len(chunk)):
                f.write(chunk)
        cls.big = os.path.join(t, "big.yaml")
        cls.deep = write("deep.yaml", HEAD + "content: " + "[" * 500000 + "\n")
        cls.deepmap = write("deepmap.yaml", HEAD + "poll: " + "{a: " * 200000 + "\n")
        cls.dir = os.path.join(t, "dir.yaml")
        os.mkdir(cls.dir)
        cls.fifo = os.path.join(t, "fifo.yaml")
        os.mkfifo(cls.fifo)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def refused(self, name, path, want):
        """Both programs refuse path with `want` (a regex) after the path, exit 78."""
        for prog, m in (("archiver", archiver_measured(["--check-config", "-c", path],
                                                       timeout=30)),
                        ("connect-jobs", jobs_measured(["-c", path, "ls"], timeout=30))):
            report("%s: %s" % (prog, name), m, "| " + m.stderr.strip()[:160])
            self.assertEqual(m.returncode, 78, m.stderr[-2000:])
            self.assertRegex(m.stderr, re_escape(path) + want)
            self.assertLess(m.seconds, SECONDS)
            self.assertLess(m.peak_kb, rss_limit_kb(RSS_MB), "peak RSS %d KiB" % m.peak_kb)
            self.assertLess(len(m.stderr), 2048, "one clear line")

    def test_alias_bomb(self):
        self.refused("a billion laughs", self.bomb, r":5:10: YAML anchors \(&a0\) are not")

    def test_alias(self):
        self.refused("an alias", self.alias, r":5:7: YAML aliases \(\*p\) are not supported")

    def test_50_mb(self):
        self.refused("a 50 MB file", self.big, r": the config file is larger than 1048576 bytes")

    def test_deep_sequence(self):
        self.refused("nesting 500,000 deep", self.deep, r":5:\d+: content")

    def test_deep_mapping(self):
        self.refused("mappings 200,000 deep", self.deepmap, r":5:\d+: ")

    def test_directory(self):
        self.refused("a directory", self.dir, r": cannot read the config file: Is a directory")

    def test_fifo(self):
        self.refused("a FIFO with no writer", self.fifo,
                     r": the config file is not a regular file \(a FIFO\)")

    def test_dev_zero(self):
        self.refused("/dev/zero", "/dev/zero",
                     r": the config file is not a regular file \(a character device\)")


def re_escape(s):
    import re
    return re.escape(s)


class ReloadAbuse(unittest.TestCase):
    def test_reload_onto_a_fifo_and_dev_zero(self):
        """The service's config replaced by a FIFO, then a symlink to /dev/zero, then a 50 MB
        file: each reload is refused at once, the running config stays, the loop goes on."""
        tmp = tempfile.mkdtemp(prefix="cja-probe-yaml-reload-")
        try:
            guid = new_guid()
            with FakeConnect({guid: []}) as fc:
                cfg = write_config(tmp, fc.url, os.path.join(tmp, "archive"), content=[guid],
                                   poll__interval_seconds=1)
                p = start_archiver(["-c", cfg])
                try:
                    wait_for(lambda: "watching 1 content items" in p.read_stderr(), 10)
                    good = cfg + ".good"
                    os.rename(cfg, good)
                    big = os.path.join(tmp, "big")
                    with open(big, "w") as f:
                        f.write("#" * (50 << 20))
                    for i, make in enumerate((lambda: os.mkfifo(cfg),
                                              lambda: os.symlink("/dev/zero", cfg),
                                              lambda: os.symlink(big, cfg))):
                        make()
                        p.send_signal(signal.SIGHUP)
                        wait_for(lambda: p.read_stderr().count(
                            "keeping the running one") == i + 1, 5,
                            message="reload %d refused" % (i + 1))
                        os.unlink(cfg)
                    n = len(fc.requests(path="/jobs$"))
                    wait_for(lambda: len(fc.requests(path="/jobs$")) > n, 5,
                             message="polls going on after the refused reloads")
                finally:
                    self.assertEqual(stop_process(p), 0)
                err = p.read_stderr()
                self.assertIn("not a regular file (a FIFO)", err)
                self.assertIn("not a regular file (a character device)", err)
                self.assertIn("larger than 1048576 bytes", err)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
