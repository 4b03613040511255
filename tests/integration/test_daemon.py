#!/usr/bin/env python3
"""The service mode: sd_notify over a real AF_UNIX datagram socket, real signals, a job
added while running, reloads good and bad, a clean stop."""
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (FakeConnect, assert_no_temporaries, make_jobspec, new_guid,  # noqa: E402
                     read_archive, start_archiver, stop_process, wait_for, write_config)

KEY = "cja-daemon-key-5a1c9e77"


class NotifySocket:
    """A real NOTIFY_SOCKET: collects every datagram the daemon sends, with its time."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.messages = []  # (monotonic time, {field: value})
        self.lock = threading.Lock()
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while self.running:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            with self.lock:
                self.messages.append((time.monotonic(), fields))

    def with_field(self, name, since=0.0):
        with self.lock:
            return [(t, m) for t, m in self.messages if name in m and t >= since]

    def close(self):
        self.running = False
        self.thread.join(2)
        self.sock.close()


class DaemonTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="cja-daemon-")
        self.archive = os.path.join(self.tmp, "archive")
        self.notify = NotifySocket(os.path.join(self.tmp, "notify.sock"))

    def tearDown(self):
        self.notify.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_service_lifecycle(self):
        a, b = new_guid(), new_guid()
        with FakeConnect({a: [make_jobspec("firstJob00000001", log="one\n")],
                          b: [make_jobspec("otherItemJob0001", log="two\n")]}, api_key=KEY) as fc:
            # No back-off (poll.max_interval_seconds = the interval): this times the interval.
            cfg = write_config(self.tmp, fc.url, self.archive, content=[(a, "alpha")],
                               api_key=KEY, poll__interval_seconds=1,
                               poll__max_interval_seconds=1)
            env = {"NOTIFY_SOCKET": self.notify.path, "WATCHDOG_USEC": "1000000"}
            p = start_archiver(["-c", cfg], env=env)
            try:
                wait_for(lambda: self.notify.with_field("READY"), 10, message="READY=1")
                wait_for(lambda: "firstJob00000001" in read_archive(self.archive).jobs, 10,
                         message="the first job archived")
                wait_for(lambda: any("1 jobs archived" in m["STATUS"]
                                     for _, m in self.notify.with_field("STATUS")), 10,
                         message="STATUS with the count")
                status = self.notify.with_field("STATUS")[-1][1]["STATUS"]
                self.assertRegex(status, r"^watching 1 item; 1 jobs archived since start \(4 B\); 0 failing; "
                                         r"last poll [\d.]+ s ago$")

                # Watchdog: WATCHDOG_USEC=1 s, so a ping every half second.
                t0 = time.monotonic()
                time.sleep(3.0)
                pings = self.notify.with_field("WATCHDOG", since=t0)
                self.assertGreaterEqual(len(pings), 4, pings)
                self.assertLessEqual(len(pings), 8, pings)

                # A job added while running is archived within two intervals (plus slack).
                fc.add_job(a, make_jobspec("addedWhileRunning", log="late\n"))
                t0 = time.monotonic()
                wait_for(lambda: "addedWhileRunning" in read_archive(self.archive).jobs, 5,
                         message="the added job archived")
                self.assertLess(time.monotonic() - t0, 2 * 1 + 1.5)

                # A broken config on SIGHUP: logged with its place, the old one stays.
                with open(cfg) as f:
                    good = f.read()
                with open(cfg, "w") as f:
                    f.write(good.replace("interval_seconds: 1", "interval_seconds: 0"))
                t0 = time.monotonic()
                p.send_signal(signal.SIGHUP)
                wait_for(lambda: self.notify.with_field("READY", since=t0), 5,
                         message="READY after the failed reload")
                self.assertTrue(self.notify.with_field("RELOADING", since=t0))
                self.assertRegex(p.read_stderr(), r"<3>.*config\.yaml:\d+:\d+: .*interval_seconds")
                self.assertIsNone(p.poll())
                fc.add_job(a, make_jobspec("afterBadReload01", log="still\n"))
                wait_for(lambda: "afterBadReload01" in read_archive(self.archive).jobs, 5,
                         message="archiving goes on with the old config")

                # A good config with a new item: RELOADING (with MONOTONIC_USEC), READY,
                # and the new item's jobs are archived.
                write_config(self.tmp, fc.url, self.archive, content=[(a, "alpha"), b],
                             api_key=KEY, poll__interval_seconds=1)
                t0 = time.monotonic()
                p.send_signal(signal.SIGHUP)
                wait_for(lambda: "otherItemJob0001" in read_archive(self.archive).jobs, 5,
                         message="the new item's job archived")
                reloading = self.notify.with_field("RELOADING", since=t0)
                self.assertTrue(reloading)
                self.assertRegex(reloading[0][1].get("MONOTONIC_USEC", ""), r"^\d+$")
                ready = self.notify.with_field("READY", since=t0)
                self.assertTrue(ready)
                self.assertLessEqual(reloading[0][0], ready[0][0])
            finally:
                t0 = time.monotonic()
                rc = stop_process(p, signal.SIGTERM, timeout=10)
            self.assertEqual(rc, 0, p.read_stderr()[-2000:])
            self.assertLess(time.monotonic() - t0, 5)
            wait_for(lambda: self.notify.with_field("STOPPING"), 2, message="STOPPING=1")
            assert_no_temporaries(self.archive)
            err = p.read_stderr()
            self.assertNotIn(KEY, err)
            for line in err.splitlines():
                self.assertRegex(line, r"^<[0-7]>")

    def test_sigterm_during_a_slow_download_leaves_nothing_half_written(self):
        g = new_guid()
        spec = make_jobspec("slowDownload0001", log_size=400000)
        faults = [{"path": "/download$", "kind": "trickle", "bytes_per_sec": 20000, "times": -1}]
        with FakeConnect({g: [spec]}, api_key=KEY, faults=faults) as fc:
            cfg = write_config(self.tmp, fc.url, self.archive, content=[g], api_key=KEY)
            p = start_archiver(["-c", cfg], env={"NOTIFY_SOCKET": self.notify.path})
            try:
                wait_for(lambda: fc.requests(path="/download$"), 10, message="download started")
                time.sleep(0.5)
            finally:
                t0 = time.monotonic()
                rc = stop_process(p, signal.SIGTERM, timeout=10)
            self.assertEqual(rc, 0, p.read_stderr()[-2000:])
            self.assertLess(time.monotonic() - t0, 3)
            assert_no_temporaries(self.archive)
            self.assertEqual(read_archive(self.archive).jobs, {})


    def test_a_job_that_keeps_failing_is_reported_not_dropped(self):
        g = new_guid()
        metrics = os.path.join(self.tmp, "cja.prom")
        jobs = [make_jobspec("bad/key", log="x\n"), make_jobspec("fineJob000000001", log="y\n")]
        with FakeConnect({g: jobs}, api_key=KEY) as fc:
            cfg = write_config(self.tmp, fc.url, self.archive, content=[g], api_key=KEY,
                               poll__interval_seconds=1, metrics_file=metrics)
            p = start_archiver(["-c", cfg], env={"NOTIFY_SOCKET": self.notify.path})
            try:
                wait_for(lambda: "failed 5 polls in a row" in p.read_stderr(), 15,
                         message="the stuck report")
                wait_for(lambda: any("1 jobs stuck" in m["STATUS"]
                                     for _, m in self.notify.with_field("STATUS")), 5,
                         message="STATUS names the stuck job")
                wait_for(lambda: "connect_job_archiver_jobs_stuck 1\n" in open(metrics).read(),
                         5, message="the stuck metric")
                time.sleep(2.5)
            finally:
                self.assertEqual(stop_process(p), 0)
            err = p.read_stderr()
            # Warnings for the first four polls, one error at the fifth, then quiet.
            self.assertEqual(len(re.findall(r"(?m)^<4>.*job=bad/key: skipped", err)), 4, err)
            self.assertEqual(len(re.findall(r"(?m)^<3>.*job=bad/key: skipped.*failed 5 polls "
                                            r"in a row, still retrying every poll$", err)), 1)
            self.assertIn("fineJob000000001", read_archive(self.archive).jobs)


if __name__ == "__main__":
    unittest.main(verbosity=2)
