#!/usr/bin/env python3
"""One writer per archive, and no writing through symlinks: the real binary, real processes,
the fake Connect server over loopback.

Two --once at once, and --once (or a second service) beside the running service: the second
writer is refused at once, before it touches the archive or the server, with a message naming
the first one's PID, and the first one archives every due job byte-exact. A symlink planted
inside the archive fails that job with a line naming it, and nothing lands beyond it.
"""
import hashlib
import os
import re
import shutil
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (TESTS_DIR, FakeConnect, assert_no_temporaries,  # noqa: E402
                     lock_holder, make_jobspec, new_guid, read_archive, run_archiver,
                     served_log, start_archiver, stop_process, wait_for, write_config)

if TESTS_DIR not in sys.path:
    sys.path.insert(0, TESTS_DIR)
from make_scenario import make as make_scenario  # noqa: E402

KEY = "cja-WRITERS-key-5b1e7c9d20"
EXIT_ARCHIVE_IN_USE = 75


def in_use_message(archive, pid):
    return (r"(?m)^<3>archive %s is in use by another connect-job-archiver \(PID %d\); "
            r"only one may write to an archive at a time, so this one exits$"
            % (re.escape(archive), pid))


class WritersTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="cja-writers-")
        self.archive = os.path.join(self.tmp, "archive")
        self.procs = []
        self.outputs = []

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for out in self.outputs:
            self.assertNotIn(KEY, out, "the API key leaked into output")
        shutil.rmtree(self.tmp, ignore_errors=True)

    def scenario(self, seed):
        """3 items x 40 jobs of make_scenario.py's mix (finalized, skipped without a log,
        active, not yet finalized; error records; logs up to megabytes)."""
        return make_scenario(3, 40, seed, KEY)

    def start(self, cfg, *extra):
        p = start_archiver(["-c", cfg, *extra], output_dir=tempfile.mkdtemp(dir=self.tmp))
        self.procs.append(p)
        return p

    def finish(self, p, timeout=120):
        rc = p.wait(timeout)
        err = p.read_stderr()
        self.outputs.append(err)
        return rc, err

    def count_records(self):
        """Job records in the archive, by name only (the service is writing: no reads)."""
        return sum(1 for _, _, names in os.walk(self.archive) for n in names
                   if n.endswith(".json") and not n.endswith(".error.json")
                   and not n.startswith("."))

    def assert_complete(self, sc):
        """Every due job of the scenario is archived completely and byte-exact; nothing else
        is there, and no temporary is left."""
        arch = read_archive(self.archive)
        due = {}
        for guid, item in sc["content"].items():
            for spec in item["jobs"]:
                if spec["job"]["status"] in (2, 3):
                    due[spec["job"]["key"]] = (guid, spec)
        self.assertEqual(sorted(arch.jobs), sorted(due))
        for key, (guid, spec) in due.items():
            j = arch.jobs[key]
            rec = j["record"]
            self.assertIsNotNone(rec, "%s has no record" % key)
            self.assertTrue(j["dir"].startswith(guid + "/"), key)
            self.assertEqual(rec["job"], spec["job"])
            if spec.get("download_status") == 404:
                self.assertIsNone(j["log"], key)
                self.assertIsNone(rec["log_bytes"], key)
            else:
                want = served_log(spec)
                self.assertIsNotNone(j["log"], "%s: a record without its .log.gz" % key)
                self.assertTrue(j["log"] == want, "%s: the log differs from the served bytes"
                                % key)
                self.assertEqual(rec["log_sha256"], hashlib.sha256(want).hexdigest())
            self.assertEqual(j["error"], spec.get("error"), key)
        assert_no_temporaries(self.archive)
        return len(due)

    def test_two_once_at_once(self):
        sc = self.scenario(seed=14)
        # The first downloads are slow, so whichever gets the lock still holds it when the
        # other one starts, even on a loaded machine.
        faults = [{"path": "/download$", "kind": "slow", "delay": 1.5, "times": 2}]
        with FakeConnect(scenario=dict(sc, faults=faults)) as fc:
            cfg = write_config(self.tmp, fc.url, self.archive, content=list(sc["content"]),
                               api_key=KEY, server__max_concurrent_requests=4)
            p1 = self.start(cfg, "--once")
            p2 = self.start(cfg, "--once")
            (rc1, err1), (rc2, err2) = self.finish(p1), self.finish(p2)

            # Exactly one ran; the other was refused, naming it.
            if rc1 == 1 and re.search(in_use_message(self.archive, p2.pid), err1):
                (winner, rcw, errw), (rcl, errl) = (p2, rc2, err2), (rc1, err1)
            else:
                (winner, rcw, errw), (rcl, errl) = (p1, rc1, err1), (rc2, err2)
            self.assertEqual(rcw, 0, errw[-3000:])
            self.assertEqual(rcl, 1, errl[-3000:])
            self.assertRegex(errl, in_use_message(self.archive, winner.pid))
            # The refused one did nothing at all: no job, no sweep, no summary.
            self.assertNotRegex(errl, r"content=|removed \d+ temporary|once:")
            n = self.assert_complete(sc)
            self.assertRegex(errw, r"<5>once: 3 content items, %d jobs archived, 0 failed" % n)
            self.assertEqual(lock_holder(self.archive), winner.pid)
            # Each due job was fetched once: nobody fetched in parallel with the winner.
            downloads = [r["path"] for r in fc.requests(path="/download$")]
            self.assertEqual(len(downloads), len(set(downloads)))

    def test_once_and_a_second_service_beside_the_service(self):
        sc = self.scenario(seed=9)
        with FakeConnect(scenario=sc) as fc:
            cfg = write_config(self.tmp, fc.url, self.archive, content=list(sc["content"]),
                               api_key=KEY, poll__interval_seconds=1)
            service = self.start(cfg)
            wait_for(lambda: lock_holder(self.archive) == service.pid, 20,
                     message="the service to take the lock")

            t0 = time.monotonic()
            p = run_archiver(["-c", cfg, "--once"], timeout=60)
            took = time.monotonic() - t0
            self.outputs += [p.stdout, p.stderr]
            self.assertEqual(p.returncode, 1, p.stderr[-3000:])
            self.assertRegex(p.stderr, in_use_message(self.archive, service.pid))
            self.assertNotRegex(p.stderr, r"content=|removed \d+ temporary|once:")
            self.assertLess(took, 10)

            # A second service fails with the status the unit does not restart on.
            second = self.start(cfg)
            rc, err = self.finish(second, timeout=30)
            self.assertEqual(rc, EXIT_ARCHIVE_IN_USE, err[-3000:])
            self.assertRegex(err, in_use_message(self.archive, service.pid))

            due = sum(1 for item in sc["content"].values() for s in item["jobs"]
                      if s["job"]["status"] in (2, 3))
            wait_for(lambda: self.count_records() >= due, 120, 0.2,
                     "the service to archive every due job")
            self.assertEqual(service.poll(), None, "the service died")
            self.assertEqual(stop_process(service), 0)
            self.outputs.append(service.read_stderr())
            self.assertNotIn("<3>", service.read_stderr())
            self.assertNotIn("<4>", service.read_stderr())
            self.assert_complete(sc)

            # With the service gone, --once takes the lock and finds nothing to do.
            p = run_archiver(["-c", cfg, "--once"], timeout=60)
            self.outputs += [p.stdout, p.stderr]
            self.assertEqual(p.returncode, 0, p.stderr[-3000:])
            self.assertRegex(p.stderr, r"<5>once: 3 content items, 0 jobs archived, 0 failed")

    def test_symlink_in_the_archive_is_refused(self):
        g, ok = new_guid(), new_guid()
        spec = make_jobspec("plantedLink00001", log="would go elsewhere\n",
                            start_time="2024-11-25T22:17:42Z")
        skipped = dict(make_jobspec("plantedLink00002", status=3,
                                    start_time="2024-11-25T22:17:42Z"), download_status=404)
        fine = make_jobspec("besideTheLink001", log="fine\n")
        outside = os.path.join(self.tmp, "outside")
        os.makedirs(os.path.join(outside, "11", "25"))
        os.makedirs(os.path.join(self.archive, g))
        link = os.path.join(self.archive, g, "2024")
        os.symlink(outside, link)
        with FakeConnect({g: [spec, skipped], ok: [fine]}, api_key=KEY) as fc:
            cfg = write_config(self.tmp, fc.url, self.archive, content=[g, ok], api_key=KEY)
            p = run_archiver(["-c", cfg, "--once"], timeout=60)
            self.outputs += [p.stdout, p.stderr]
            self.assertEqual(p.returncode, 1, p.stderr[-3000:])
            for key in ("plantedLink00001", "plantedLink00002"):
                self.assertRegex(p.stderr, r"(?m)^<4>content=%s \(-\) job=%s: %s is a symlink; "
                                 r"refusing to write through it; will retry next cycle$"
                                 % (g, key, re.escape(link)))
            self.assertRegex(p.stderr, r"<5>once: 2 content items, 1 jobs archived, 2 failed")
            self.assertEqual(os.listdir(os.path.join(outside, "11", "25")), [])
            self.assertEqual(sorted(read_archive(self.archive).jobs), ["besideTheLink001"])
            self.assertTrue(os.path.islink(link))


if __name__ == "__main__":
    unittest.main(verbosity=2)
