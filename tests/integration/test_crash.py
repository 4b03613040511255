#!/usr/bin/env python3
"""kill -9 at random moments: the archive stays complete-or-absent and every job is
archived exactly once.

The archiver runs against a fake Connect server whose downloads are slowed down (a
"trickle" fault on some of them) so that a SIGKILL at a random moment lands while logs
are streaming, while a batch is being committed, or while the daemon idles. After every
kill the archive is checked at once:

  * every <key>.json parses, holds the job exactly as served, and its sibling .log.gz
    (unless log_bytes is null) decompresses to exactly the served bytes, with matching
    log_bytes and log_sha256; its .error.json exists iff the job has an error record;
  * a .log.gz or .error.json without its .json is allowed, but only complete;
  * only hidden ".<name>.tmp" temporaries may exist besides final names;
  * files of a job archived earlier are never rewritten (same inode, size and mtime).

Then it is restarted. The request log of each run shows no /download (nor /error) of a
job whose record existed before that run started. A last run is allowed to finish:
everything due is archived, and a SIGTERM leaves no temporaries.

The kill moments come from a seeded random generator; the seed is printed, and
CJA_CRASH_SEED=<seed> repeats a run with the same choices.
"""
import datetime
import gzip
import hashlib
import json
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import time
import unittest
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (LOCK_FILE, FakeConnect, JobScenario,  # noqa: E402
                     assert_no_temporaries, make_jobspec, run_archiver, start_archiver,
                     stop_process, wait_for, write_config)

KEY = "cja-CRASH-key-4d2f8b6a01"

RATE = 2_000_000          # bytes/s of each trickled download
CONCURRENCY = 3           # server.max_concurrent_requests
DATES = ["2024-11-25T22:17:42Z", "2024-11-26T00:00:01.5+01:00", "2025-02-28T23:59:59-05:00"]

_FINAL = re.compile(r"^(?P<key>[^./][^/]*?)\.(?P<kind>log\.gz|error\.json|json)$")
_TEMP = re.compile(r"^\..+\.tmp$")


def day_folder(start_time):
    """<YYYY>/<MM>/<DD> of an RFC 3339 time, in UTC."""
    s = start_time.replace("Z", "+00:00")
    m = re.match(r"^(.*T\d\d:\d\d:\d\d)(\.\d+)?([+-]\d\d:\d\d)$", s)
    dt = datetime.datetime.fromisoformat(m.group(1) + m.group(3))
    return dt.astimezone(datetime.timezone.utc).strftime("%Y/%m/%d")


class Scenario(JobScenario):
    """The jobs the fake server holds, and what the archive must look like for them."""

    def __init__(self, rng, n_items=3):
        super().__init__(rng, n_items)

    def new_job(self, slow, status=2, error=None, download_status=None, size=None):
        self.seq += 1
        key = "%s%03d%s" % ("slow" if slow else "fast", self.seq,
                            "".join(self.rng.choice("abcdefghjkmnpqrstuvwxyzABCDEFGH23456789")
                                    for _ in range(9)))
        size = self.rng.randint(200_000, 800_000) if size is None else size
        return self.add(make_jobspec(key, status=status, start_time=self.rng.choice(DATES),
                                     log_size=size, error=error,
                                     download_status=download_status))

    def error(self, key):
        return self.specs[key].get("error")

    def remaining_seconds(self, archived):
        """A rough time for the archiver to fetch what is due and not yet archived."""
        slow = fast = 0
        for k in self.due() - archived:
            n = self.specs[k].get("log_size", 0) if self.has_log(k) else 0
            if k.startswith("slow"):
                slow += n
            else:
                fast += n
        return slow / float(RATE * CONCURRENCY) + fast / 30e6 + 0.3


class CrashTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="cja-crash-")
        self.archive = os.path.join(self.tmp, "archive")
        env_seed = os.environ.get("CJA_CRASH_SEED")
        self.seed = int(env_seed) if env_seed else random.SystemRandom().randrange(1 << 32)
        print("\n%s: CJA_CRASH_SEED=%d" % (self.id(), self.seed), file=sys.stderr, flush=True)
        self.rng = random.Random(self.seed)
        self.verified = {}   # (rel, ino, size, mtime_ns) of files already checked
        self.frozen = {}     # rel -> (ino, size, mtime_ns) of every file of an archived job
        self.runs = 0
        self.stderrs = []

    def tearDown(self):
        for err in self.stderrs:
            self.assertNotIn(KEY, err, "the API key leaked into the log")
        shutil.rmtree(self.tmp, ignore_errors=True)

    def fail_with_seed(self, msg):
        self.fail("%s (CJA_CRASH_SEED=%d)" % (msg, self.seed))

    # ---- the scenario
    def build_scenario(self, n_jobs=30):
        sc = Scenario(self.rng)
        for i in range(n_jobs):
            err = None
            if i % 5 == 1:
                err = {"code": "E%d" % i, "summary": "Error in f(): object 'x' not found",
                       "detail": "traceback line\n" * (1 + i)}
            sc.new_job(slow=(i % 2 == 0), error=err)
        # Skipped jobs have no log; finished and active ones are not due yet.
        sc.new_job(slow=False, status=3, download_status=404, size=0)
        sc.new_job(slow=True, status=3, download_status=404, size=0,
                   error={"code": 0, "summary": "skipped with an error record"})
        self.pending_active = [sc.new_job(slow=True, status=0)[1]["job"]["key"],
                               sc.new_job(slow=False, status=1)[1]["job"]["key"]]
        return sc

    def add_jobs(self, fc, sc, n):
        for i in range(n):
            guid, spec = sc.new_job(slow=(i % 3 != 2))
            fc.add_job(guid, spec)

    def start_server(self, sc):
        faults = [{"path": r"/jobs/slow[^/]*/download$", "kind": "trickle",
                   "bytes_per_sec": RATE, "times": -1}]
        return FakeConnect(sc.content(), api_key=KEY, faults=faults, startup_timeout=30)

    def config(self, fc, sc):
        return write_config(self.tmp, fc.url, self.archive, content=sc.guids, api_key=KEY,
                            poll__interval_seconds=1,
                            server__max_concurrent_requests=CONCURRENCY)

    # ---- the invariants
    def check_archive(self, sc, when):
        """Checks every file in the archive; returns the set of archived job keys."""
        files = {}   # (folder, key) -> {kind: rel}
        for root, dirs, names in os.walk(self.archive):
            if root == self.archive and ".catalog" in dirs:
                dirs.remove(".catalog")  # the search catalog: checked by test_catalog.py
            dirs.sort()
            for name in names:
                full = os.path.join(root, name)
                rel = os.path.relpath(full, self.archive).replace(os.sep, "/")
                if rel == LOCK_FILE:
                    continue  # the writer lock
                if _TEMP.match(name):
                    continue  # a temporary: allowed after a kill, swept at the next start
                m = _FINAL.match(name)
                if not m or not re.match(r"^[^/]+/\d{4}/\d\d/\d\d/[^/]+$", rel):
                    self.fail_with_seed("%s: unexpected file %s" % (when, rel))
                where = (rel.rsplit("/", 1)[0], m.group("key"))
                files.setdefault(where, {})[m.group("kind")] = rel
        archived = set()
        for (folder, key), kinds in sorted(files.items()):
            if key not in sc.specs:
                self.fail_with_seed("%s: %s/%s is not a job of the scenario"
                                    % (when, folder, key))
            want_folder = "%s/%s" % (sc.guid_of[key],
                                     day_folder(sc.specs[key]["job"]["start_time"]))
            if folder != want_folder:
                self.fail_with_seed("%s: %s archived in %s, not %s"
                                    % (when, key, folder, want_folder))
            if key in archived:
                self.fail_with_seed("%s: %s archived twice" % (when, key))
            for kind, rel in kinds.items():
                self.check_file(sc, key, kind, rel, when)
            if "json" in kinds:
                archived.add(key)
                rec = self.load_json(kinds["json"], when)
                spec = sc.specs[key]
                ctx = "%s: %s" % (when, kinds["json"])
                self.assertEqual(rec.get("job"), spec["job"], ctx)
                self.assertEqual(rec.get("content_guid"), sc.guid_of[key], ctx)
                self.assertEqual(rec.get("error"), sc.error(key), ctx)
                self.assertEqual("error.json" in kinds, sc.error(key) is not None,
                                 "%s: .error.json present iff the job has an error record" % ctx)
                if sc.has_log(key):
                    want = sc.served(key)
                    if "log.gz" not in kinds:
                        self.fail_with_seed("%s: record without its .log.gz" % ctx)
                    self.assertEqual(rec.get("log_bytes"), len(want), ctx)
                    self.assertEqual(rec.get("log_sha256"), hashlib.sha256(want).hexdigest(), ctx)
                else:
                    self.assertIsNone(rec.get("log_bytes"), ctx)
                    self.assertNotIn("log.gz", kinds, ctx)
                # Once archived, never rewritten.
                for rel in kinds.values():
                    st = os.stat(os.path.join(self.archive, rel))
                    sig = (st.st_ino, st.st_size, st.st_mtime_ns)
                    old = self.frozen.setdefault(rel, sig)
                    if old != sig:
                        self.fail_with_seed("%s: %s of an archived job was rewritten" % (when, rel))
        # A job archived before stays archived.
        for rel in self.frozen:
            if not os.path.exists(os.path.join(self.archive, rel)):
                self.fail_with_seed("%s: %s of an archived job disappeared" % (when, rel))
        return archived

    def load_json(self, rel, when):
        try:
            with open(os.path.join(self.archive, rel), "rb") as f:
                return json.loads(f.read().decode("utf-8"))
        except (ValueError, OSError) as e:
            self.fail_with_seed("%s: %s is not complete JSON: %s" % (when, rel, e))

    def check_file(self, sc, key, kind, rel, when):
        """A file under a final name is complete: exactly what the server served."""
        full = os.path.join(self.archive, rel)
        st = os.stat(full)
        sig = (rel, st.st_ino, st.st_size, st.st_mtime_ns)
        if sig in self.verified:
            return
        if kind == "log.gz":
            if not sc.has_log(key):
                self.fail_with_seed("%s: %s exists, but the server has no log" % (when, rel))
            with open(full, "rb") as f:
                data = f.read()
            try:
                got = gzip.decompress(data)
            except (OSError, EOFError, zlib.error) as e:
                self.fail_with_seed("%s: %s is not a complete gzip file (%d bytes): %s"
                                    % (when, rel, len(data), e))
            want = sc.served(key)
            if got != want:
                self.fail_with_seed("%s: %s holds %d bytes, not the %d served"
                                    % (when, rel, len(got), len(want)))
        elif kind == "error.json":
            obj = self.load_json(rel, when)
            if obj != sc.error(key):
                self.fail_with_seed("%s: %s is not the served error record" % (when, rel))
        else:
            self.load_json(rel, when)  # the rest is checked with its siblings
        self.verified[sig] = True

    def check_requests(self, fc, before, when):
        """No log or error record fetched for a job archived before the run started."""
        again = sorted({r["path"] for r in fc.requests()
                        if re.search(r"/jobs/([^/]+)/(download|error)$", r["path"])
                        and r["path"].split("/")[6] in before})
        if again:
            self.fail_with_seed("%s: fetched again although archived before the run: %s"
                                % (when, ", ".join(again[:5])))

    def archived_lines(self, stderr):
        return re.findall(r"(?m)^<6>content=\S+ \(-\) job=(\S+): archived in ", stderr)

    # ---- runs
    def run_dir(self):
        self.runs += 1
        d = os.path.join(self.tmp, "run%02d" % self.runs)
        os.makedirs(d)
        return d

    def kill_loop(self, fc, sc, cfg, iterations, extra_args, budget):
        t_start = time.monotonic()
        archived = self.check_archive(sc, "before the first run")
        history = []   # (iteration, kill_at, archived before, archived after, ...)
        prev_temps = {}
        for i in range(iterations):
            if time.monotonic() - t_start > budget:
                break
            when = "run %d (%s)" % (i + 1, " ".join(extra_args) or "service")
            fc.clear_requests()
            before = set(archived)
            kill_at = self.rng.uniform(0.05, max(0.4, sc.remaining_seconds(before)))
            p = start_archiver(["-c", cfg] + extra_args, output_dir=self.run_dir())
            time.sleep(kill_at)
            p.send_signal(signal.SIGKILL)
            p.wait()
            err = p.read_stderr()
            self.stderrs.append(err)
            when += " killed after %.2f s" % kill_at
            archived = self.check_archive(sc, when)
            self.assertTrue(before <= archived, when)
            self.check_requests(fc, before, when)
            self.check_swept(prev_temps, err, kill_at, when)
            prev_temps = self.temporaries()
            history.append((i + 1, kill_at, len(before), len(archived), len(prev_temps),
                            p.returncode))
            # Connect goes on: new jobs appear, an unfinished one is finalized.
            if i % 2 == 0:
                self.add_jobs(fc, sc, 2)
            if i == iterations // 2:
                key = self.pending_active[1]
                sc.specs[key]["job"] = fc.update_job(sc.guid_of[key], key, status=2)
        for h in history:
            print("  run %2d: killed after %.2f s, %3d -> %3d archived, %d temporaries "
                  "left (status %s)" % h,
                  file=sys.stderr)
        self.prev_temps = prev_temps
        return archived, len(history)

    def temporaries(self):
        out = {}
        for root, _, names in os.walk(self.archive):
            for n in names:
                if _TEMP.match(n):
                    st = os.stat(os.path.join(root, n))
                    out[os.path.join(root, n)] = (st.st_ino, st.st_mtime_ns)
        return out

    def check_swept(self, prev_temps, err, ran_for, when):
        """The temporaries an earlier kill left are removed when the next run starts."""
        if not prev_temps or ran_for < 0.3:
            return  # nothing to sweep, or killed before it could start up
        self.assertRegex(err, r"(?m)^<5>removed %d temporary files left by an earlier run$"
                         % len(prev_temps), when)
        for path, sig in prev_temps.items():
            try:
                st = os.stat(path)
            except FileNotFoundError:
                continue
            if (st.st_ino, st.st_mtime_ns) == sig:
                self.fail_with_seed("%s: %s left by an earlier run was not swept" % (when, path))

    def finish(self, fc, sc, archived):
        self.assertNotIn(self.pending_active[0], archived)
        self.assertEqual(fc.requests(path="/jobs/%s/" % self.pending_active[0]), [],
                         "an active job was fetched")
        self.assertEqual(archived, sc.due(), "archived jobs differ from the due ones")
        # Each archived line in all the runs' logs at most once: archived exactly once.
        seen = {}
        for err in self.stderrs:
            for key in self.archived_lines(err):
                seen[key] = seen.get(key, 0) + 1
        twice = sorted(k for k, n in seen.items() if n > 1)
        self.assertEqual(twice, [], "jobs archived more than once")
        self.assertTrue(seen, "no \"archived in\" line in any run's log")
        self.assertLessEqual(set(seen), archived, "logged as archived but not in the archive")

    # ---- the tests
    def test_kill_9_in_service_mode(self):
        sc = self.build_scenario(30)
        with self.start_server(sc) as fc:
            cfg = self.config(fc, sc)
            archived, n = self.kill_loop(fc, sc, cfg, iterations=30, extra_args=[], budget=45)
            self.assertGreaterEqual(n, 20, "too few kill iterations in the time budget")
            # The last restart runs to the end.
            fc.clear_requests()
            before = set(archived)
            p = start_archiver(["-c", cfg], output_dir=self.run_dir())
            try:
                wait_for(lambda: self.check_archive(sc, "last run") >= sc.due(), 40, 0.2,
                         message="every due job archived (CJA_CRASH_SEED=%d)" % self.seed)
                time.sleep(1.5)  # one more poll: it must fetch nothing
            finally:
                rc = stop_process(p, signal.SIGTERM, timeout=10)
            err = p.read_stderr()
            self.stderrs.append(err)
            self.assertEqual(rc, 0, err[-3000:])
            self.check_swept(self.prev_temps, err, 10, "last run")
            assert_no_temporaries(self.archive)
            archived = self.check_archive(sc, "after the last run")
            self.check_requests(fc, before, "last run")
            self.finish(fc, sc, archived)
            # Leftovers of the kills were swept at start; nothing of the last run stays.
            downloads = [r["path"].split("/")[6] for r in fc.requests(path="/download$")
                         if r["status"] == 200]
            self.assertEqual(sorted(set(downloads)), sorted(sc.due() - before
                                                            - {k for k in sc.due()
                                                               if not sc.has_log(k)}))

    def test_kill_9_during_once_runs(self):
        sc = self.build_scenario(24)
        with self.start_server(sc) as fc:
            cfg = self.config(fc, sc)
            archived, n = self.kill_loop(fc, sc, cfg, iterations=10, extra_args=["--once"],
                                         budget=20)
            self.assertGreaterEqual(n, 6)
            fc.clear_requests()
            before = set(archived)
            p = run_archiver(["-c", cfg, "--once"], timeout=90)
            self.stderrs.append(p.stderr)
            self.assertEqual(p.returncode, 0, p.stderr[-3000:])
            self.check_swept(self.prev_temps, p.stderr, 10, "the last --once run")
            assert_no_temporaries(self.archive)
            archived = self.check_archive(sc, "the last --once run")
            self.check_requests(fc, before, "the last --once run")
            self.finish(fc, sc, archived)
            self.assertRegex(p.stderr, r"%d jobs archived, 0 failed" % len(sc.due() - before))


if __name__ == "__main__":
    unittest.main(verbosity=2)
