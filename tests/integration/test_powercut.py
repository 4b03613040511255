#!/usr/bin/env python3
"""Power cuts: the archive stays complete-or-absent, and exactly-once, when the page cache
is lost, not only the process.

The archive lives on powercutfs (tests/powercut/powercutfs.c), a FUSE pass-through that
keeps everything not yet durable and throws it away on a cut, so that the backing folder
shows what a disk would after a power loss (file data durable on fsync, names on fsync of
their folder, everything on syncfs). The archiver runs with tests/powercut/syncfs_shim.so
preloaded: the kernel does not forward syncfs(2) to a FUSE daemon, and the archiver's
durability rests on syncfs alone, so the shim tells the file system when one returned.

A clean --once run counts the durable points (N) and modifying operations of a run. Then,
each on a fresh archive:
  * a cut right after the kth durable point, for every k = 1..N+1 (N+1: after the clean
    end of the run);
  * cuts before a random modifying operation, and at random moments (wall clock);
  * partial cuts (below) when the kth durable point is asked for, before it takes effect;
  * the same in service mode (polling every second);
and after each cut, on what the cut left:
  * every <key>.json parses and holds the served job; its .log.gz decompresses to exactly
    the served log (SHA-256 and log_bytes as in the record), its .error.json exists iff the
    job has an error record and is exactly it; a .log.gz or .error.json without a record
    is complete too; nothing else but hidden ".<name>.tmp" temporaries;
  * every job the run logged as archived before the cut survived it;
then a restart (on the plain backing folder, or remounted and cut once more after it ends)
archives every due job: no job archived before the restart is fetched again or rewritten,
every other is downloaded exactly once, and the active job never.

Partial cuts keep a random part of what was pending (names and data in any order, a rename
whole or not at all, torn files: more than any real disk reorders), and the invariant must
hold after them too.

CJA_POWERCUT_SEED=<n> repeats the random choices; CJA_POWERCUT_ALL=1 runs the long set (a
bigger scenario, more random cuts). Exits 77 with "skipped: <why>" where no FUSE mount can be
made (no /dev/fuse, no fusermount3, powercutfs not built).
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
import subprocess
import sys
import tempfile
import time
import unittest
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "powercut"))
from harness import (CATALOG_DIR, LOCK_FILE, FakeConnect, JobScenario,  # noqa: E402
                     make_jobspec, run_jobs, start_archiver, stop_process, write_config)
from powercut import SKIP_EXIT, PowercutFS, shim_env, skip_reason  # noqa: E402

KEY = "cja-POWERCUT-key-7e31c0d9"
ALL = os.environ.get("CJA_POWERCUT_ALL") == "1"
SLOW_RATE = 400_000  # bytes/s of a "slow" job's download: it outlives the first batch

_FINAL = re.compile(r"^(?P<key>[^./][^/]*?)\.(?P<kind>log\.gz|error\.json|json)$")
_TEMP = re.compile(r"^\..+\.tmp$")
_ARCHIVED = re.compile(r"(?m)^<6>content=\S+ \(-\) job=(\S+): archived in ")


def day_folder(start_time):
    dt = datetime.datetime.fromisoformat(start_time.replace("Z", "+00:00"))
    return dt.astimezone(datetime.timezone.utc).strftime("%Y/%m/%d")


class Scenario(JobScenario):
    """The jobs of the fake server; what each must look like in the archive."""

    def __init__(self, rng, n_fast, n_slow, n_items=2):
        super().__init__(rng, n_items)
        for i in range(n_fast + n_slow):
            err = None
            if i % 3 == 1:
                err = {"code": "E%d" % i, "summary": "Error in f(): object 'x' not found",
                       "detail": "traceback line\n" * (1 + i)}
            slow = i >= n_fast
            self.new_job(slow, error=err,
                         size=rng.randint(520_000, 600_000) if slow
                         else rng.choice([0, 1, 2_000, 40_000, 300_000]))
        self.new_job(False, status=3, download_status=404, size=0)
        self.new_job(False, status=3, download_status=404, size=0,
                     error={"code": 0, "summary": "skipped with an error record"})
        self.active = self.new_job(False, status=0)[1]["job"]["key"]

    def new_job(self, slow, status=2, error=None, download_status=None, size=0):
        self.seq += 1
        key = "%s%03d%s" % ("slow" if slow else "fast", self.seq,
                            "".join(self.rng.choice("abcdefghjkmnpqrstuvwxyz23456789")
                                    for _ in range(8)))
        start = "2025-%02d-%02dT%02d:17:42Z" % (self.rng.randint(1, 12),
                                                 self.rng.randint(1, 28),
                                                 self.rng.randint(0, 23))
        return self.add(make_jobspec(key, status=status, start_time=start, log_size=size,
                                     error=error, download_status=download_status))


class PowerCutTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        env_seed = os.environ.get("CJA_POWERCUT_SEED")
        cls.seed = int(env_seed) if env_seed else random.SystemRandom().randrange(1 << 32)
        print("\nCJA_POWERCUT_SEED=%d%s" % (cls.seed, " CJA_POWERCUT_ALL=1" if ALL else ""),
              file=sys.stderr, flush=True)
        cls.rng = random.Random(cls.seed)
        cls.tmp = tempfile.mkdtemp(prefix="cja-powercut-")
        cls.sc = Scenario(cls.rng, n_fast=12 if ALL else 6, n_slow=3 if ALL else 1)
        cls.fc = FakeConnect(cls.sc.content(), api_key=KEY, startup_timeout=30).start()
        cls.t0 = time.monotonic()
        cls.cuts = {}      # kind -> how many ran
        cls.clean = None   # the clean --once run's counts

    @classmethod
    def tearDownClass(cls):
        cls.fc.stop()
        print("\npower cuts: %s; %d in all, %.1f s" % (
            ", ".join("%d %s" % (n, k) for k, n in sorted(cls.cuts.items())),
            sum(cls.cuts.values()), time.monotonic() - cls.t0), file=sys.stderr, flush=True)
        if not os.environ.get("CJA_KEEP_TMP"):
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def fail_with_seed(self, msg):
        self.fail("%s (CJA_POWERCUT_SEED=%d)" % (msg, self.seed))

    def slow_downloads(self, on):
        """The cut runs download the "slow" jobs' logs slowly, so that a run commits more
        than one batch; restarts go at full speed."""
        self.fc.clear_faults()
        if on:
            self.fc.add_fault(path=r"/jobs/slow[^/]*/download$", kind="trickle",
                              bytes_per_sec=SLOW_RATE, times=-1)

    # ---- one case: a fresh archive, a run over the mount, a cut, the checks, a restart
    def case_dirs(self, name):
        d = tempfile.mkdtemp(prefix=re.sub(r"[^A-Za-z0-9.]+", "-", name) + "-", dir=self.tmp)
        os.mkdir(os.path.join(d, "backing"))
        os.mkdir(os.path.join(d, "mnt"))
        return d, os.path.join(d, "backing"), os.path.join(d, "mnt")

    def config(self, d, archive_dir, name):
        return write_config(d, self.fc.url, archive_dir, content=self.sc.guids, api_key=KEY,
                            filename=name, poll__interval_seconds=1,
                            server__max_concurrent_requests=3)

    def run_over_mount(self, d, backing, mnt, args, arm=None, at_time=None, timeout=60,
                       while_running=None, service_cap=None, partial=0):
        """Runs the archiver over a fresh mount of backing until the cut (arm: ("durable", k)
        or ("op", k); at_time: seconds), or until it ends and then cuts. Returns (the run's
        stderr, the exit status or None when it was still running at the cut, the file
        system's status just before the cut)."""
        cfg = self.config(d, mnt, "mnt.yaml")
        fs = PowercutFS(backing, mnt).start()
        try:
            if partial:
                fs.partial(partial)
            if arm:
                getattr(fs, "arm_" + arm[0])(arm[1])
            run_dir = tempfile.mkdtemp(prefix="run-", dir=d)
            p = start_archiver(["-c", cfg] + args, env=shim_env(), output_dir=run_dir)
            t_start = time.monotonic()
            rc = None
            while True:
                if at_time is not None and time.monotonic() - t_start >= at_time:
                    break
                if fs.status()["cut"]:
                    break
                if p.poll() is not None:
                    rc = p.returncode
                    break
                if while_running:
                    while_running(time.monotonic() - t_start)
                if service_cap and time.monotonic() - t_start > service_cap:
                    break  # a service past its last durable point: cut it idle
                if time.monotonic() - t_start > timeout:
                    p.kill()
                    p.wait()
                    self.fail_with_seed("the archiver ran %ds without a cut: %s"
                                        % (timeout, p.read_stderr()[-2000:]))
                time.sleep(0.01)
            status = fs.status()
            fs.cut()
            # The power is gone: so is the process.
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
            p.wait()
            fs.wait_released()
        finally:
            fs_err = fs.unmount()
        if "writing the durable state" in fs_err:
            self.fail_with_seed("powercutfs could not write the durable state: " + fs_err)
        return p.read_stderr(), rc, status

    # ---- the invariant
    def check_archive(self, root, when, frozen=None):
        """Checks every file under root; returns the set of archived job keys. frozen:
        {rel: sha256} of files of jobs archived earlier, which must be there,
        unchanged (updated with this call's)."""
        sc = self.sc
        files = {}
        for top, dirs, names in os.walk(root):
            for name in names:
                rel = os.path.relpath(os.path.join(top, name), root).replace(os.sep, "/")
                if (rel == LOCK_FILE or _TEMP.match(name) or
                        rel.startswith(CATALOG_DIR + "/")):
                    continue  # the catalog is checked by its answers (check_catalog)
                m = _FINAL.match(name)
                if not m or not re.match(r"^[^/]+/\d{4}/\d\d/\d\d/[^/]+$", rel):
                    self.fail_with_seed("%s: unexpected file %s" % (when, rel))
                where = (rel.rsplit("/", 1)[0], m.group("key"))
                files.setdefault(where, {})[m.group("kind")] = rel
        archived = set()
        for (folder, key), kinds in sorted(files.items()):
            if key not in sc.specs:
                self.fail_with_seed("%s: %s/%s is not a job of the scenario" % (when, folder, key))
            want = "%s/%s" % (sc.guid_of[key], day_folder(sc.specs[key]["job"]["start_time"]))
            if folder != want:
                self.fail_with_seed("%s: %s archived in %s, not %s" % (when, key, folder, want))
            if key in archived:
                self.fail_with_seed("%s: %s archived twice" % (when, key))
            for kind, rel in kinds.items():
                self.check_file(root, key, kind, rel, when)
            if "json" not in kinds:
                continue
            archived.add(key)
            ctx = "%s: %s" % (when, kinds["json"])
            rec = self.load_json(root, kinds["json"], when)
            spec = sc.specs[key]
            self.assertEqual(rec.get("job"), spec["job"], ctx)
            self.assertEqual(rec.get("content_guid"), sc.guid_of[key], ctx)
            self.assertEqual(rec.get("error"), spec.get("error"), ctx)
            if ("error.json" in kinds) != (spec.get("error") is not None):
                self.fail_with_seed("%s: .error.json must exist iff the job has an error "
                                    "record (files: %s)" % (ctx, sorted(kinds)))
            if sc.has_log(key):
                if "log.gz" not in kinds:
                    self.fail_with_seed("%s: a record without its .log.gz" % ctx)
                log = sc.served(key)
                self.assertEqual(rec.get("log_bytes"), len(log), ctx)
                self.assertEqual(rec.get("log_sha256"), hashlib.sha256(log).hexdigest(), ctx)
            else:
                self.assertIsNone(rec.get("log_bytes"), ctx)
                self.assertNotIn("log.gz", kinds, ctx)
            if frozen is not None:
                for rel in kinds.values():
                    # By content: a cut rewrites the backing folder (new inodes, times).
                    with open(os.path.join(root, rel), "rb") as f:
                        sig = hashlib.sha256(f.read()).hexdigest()
                    if frozen.setdefault(rel, sig) != sig:
                        self.fail_with_seed("%s: %s of an archived job was rewritten"
                                            % (when, rel))
        for rel in frozen or ():
            if not os.path.exists(os.path.join(root, rel)):
                self.fail_with_seed("%s: %s of an archived job disappeared" % (when, rel))
        return archived

    def load_json(self, root, rel, when):
        try:
            with open(os.path.join(root, rel), "rb") as f:
                return json.loads(f.read().decode("utf-8"))
        except (ValueError, OSError) as e:
            self.fail_with_seed("%s: %s is not complete JSON: %s" % (when, rel, e))

    def check_file(self, root, key, kind, rel, when):
        """A file under a final name is complete: exactly what the server served."""
        with open(os.path.join(root, rel), "rb") as f:
            data = f.read()
        if kind == "log.gz":
            if not self.sc.has_log(key):
                self.fail_with_seed("%s: %s exists, but the server has no log" % (when, rel))
            try:
                got = gzip.decompress(data)
            except (OSError, EOFError, zlib.error) as e:
                self.fail_with_seed("%s: %s is not a complete gzip file (%d bytes): %s"
                                    % (when, rel, len(data), e))
            if got != self.sc.served(key):
                self.fail_with_seed("%s: %s holds %d bytes, not the %d served"
                                    % (when, rel, len(got), len(self.sc.served(key))))
        elif kind == "error.json":
            if self.load_json(root, rel, when) != self.sc.specs[key].get("error"):
                self.fail_with_seed("%s: %s is not the served error record" % (when, rel))
        else:
            self.load_json(root, rel, when)

    # ---- the restart
    def restart(self, d, backing, survived, when, mode, service):
        """Runs the archiver on what the cut left until every due job is archived; checks
        that it fetched exactly the jobs that were not archived, once each."""
        sc = self.sc
        frozen = {}
        self.check_archive(backing, when, frozen)
        self.slow_downloads(False)
        self.fc.clear_requests()
        if mode == "remount":
            args = ["--once"]
            err, rc, _ = self.run_over_mount(d, backing, os.path.join(d, "mnt"), args)
            when_after = "%s, restarted on a new mount and cut after it ended" % when
        elif service:
            cfg = self.config(d, backing, "plain.yaml")
            p = start_archiver(["-c", cfg], output_dir=tempfile.mkdtemp(prefix="run-", dir=d))
            t_start = time.monotonic()
            while time.monotonic() - t_start < 30:
                # (a second at least: ready, and a poll after the last job fetches nothing)
                if (time.monotonic() - t_start > 1.5 and
                        self.check_archive(backing, when + ", service restarted") >= sc.due()):
                    break
                time.sleep(0.1)
            rc = stop_process(p, signal.SIGTERM)
            err = p.read_stderr()
            when_after = "%s, service restarted on the backing folder" % when
        else:
            cfg = self.config(d, backing, "plain.yaml")
            p = subprocess.run([os.environ["CJA_BINARY"], "-c", cfg, "--once"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               errors="replace", timeout=60)
            rc, err = p.returncode, p.stderr
            when_after = "%s, restarted on the backing folder" % when
        self.assertNotIn(KEY, err)
        if rc != 0:
            self.fail_with_seed("%s: exit status %s: %s" % (when_after, rc, err[-3000:]))
        archived = self.check_archive(backing, when_after, frozen)
        if archived != sc.due():
            self.fail_with_seed("%s: archived %s, due %s" % (when_after, sorted(archived),
                                                             sorted(sc.due())))
        fetched = {}
        for r in self.fc.requests(path=r"/jobs/[^/]+/(download|error)$"):
            k = r["path"].split("/")[6]
            kind = r["path"].rsplit("/", 1)[1]
            if r["status"] in (200, 204):
                fetched.setdefault(kind, []).append(k)
        again = sorted(set(fetched.get("download", []) + fetched.get("error", [])) & survived)
        if again:
            self.fail_with_seed("%s: fetched again although archived before: %s"
                                % (when_after, again))
        want = sorted(k for k in sc.due() - survived if sc.has_log(k))
        if sorted(fetched.get("download", [])) != want:
            self.fail_with_seed("%s: downloads %s, want each of %s once"
                                % (when_after, sorted(fetched.get("download", [])), want))
        if sc.active in fetched.get("download", []) + fetched.get("error", []):
            self.fail_with_seed("%s: the active job was fetched" % when_after)
        self.check_catalog(backing, when_after)

    def check_catalog(self, root, when):
        """Whatever the cut left of the catalog, ls and search answer as a full scan does."""
        for args in (["ls", "-o", "json"], ["search", "-c", "-F", "e"],
                     ["search", "-n", "-F", "line 1"]):
            got = [run_jobs(["--archive", root] + args, env=env)
                   for env in ({}, {"CJA_CATALOG": "0"})]
            if (got[0].returncode, got[0].stdout) != (got[1].returncode, got[1].stdout):
                self.fail_with_seed("%s: connect-jobs %s with the catalog differs from a "
                                    "full scan:\n%s\n---\n%s" % (when, " ".join(args),
                                                                   got[0].stdout[-1500:],
                                                                   got[1].stdout[-1500:]))

    # ---- one cut, checked
    def cut_case(self, name, args, arm=None, at_time=None, restart="plain", while_running=None,
                 partial=0):
        sc = self.sc
        service = "--once" not in args
        d, backing, mnt = self.case_dirs(name)
        self.slow_downloads(True)
        err, rc, status = self.run_over_mount(d, backing, mnt, args, arm, at_time,
                                              while_running=while_running,
                                              service_cap=8 if service else None,
                                              partial=partial)
        self.assertNotIn(KEY, err)
        when = "%s: cut %s (after %d durable points, %d operations; the run %s)" % (
            " ".join(args) or "service", name, status["durable"], status["ops"],
            "had ended with %d" % rc if rc is not None else "was running")
        survived = self.check_archive(backing, when)
        acknowledged = set(_ARCHIVED.findall(err))
        lost = sorted(acknowledged - survived)
        if lost:
            self.fail_with_seed("%s: logged as archived, lost in the cut: %s" % (when, lost))
        if rc == 0 and survived != sc.due():
            self.fail_with_seed("%s: a clean run's jobs lost in the cut: %s"
                                % (when, sorted(sc.due() - survived)))
        self.restart(d, backing, survived, when, restart, service)
        kind = name.split(" ")[0] + (" (service)" if service else "")
        if partial:
            kind = "partial " + kind
        self.cuts[kind] = self.cuts.get(kind, 0) + 1
        shutil.rmtree(d, ignore_errors=True)
        return status, survived

    def clean_counts(self):
        """The clean --once run: durable points and modifying operations (then a cut after
        its end: everything must be there)."""
        if PowerCutTest.clean is None:
            status, survived = self.cut_case("clean", ["--once"])
            print("clean --once run: %d durable points (%d syncfs, %d fsync, %d fsyncdir), "
                  "%d modifying operations, %d jobs" % (
                      status["durable"], status["syncfs"], status["fsync"],
                      status["fsyncdir"], status["ops"], len(survived)),
                  file=sys.stderr, flush=True)
            self.assertGreaterEqual(status["durable"], 3)
            PowerCutTest.clean = status
        return PowerCutTest.clean

    # ---- the tests
    def test_1_once_cut_after_every_durable_point(self):
        n = self.clean_counts()["durable"]
        for k in range(1, n + 2):
            restart = "remount" if k % 2 == 0 else "plain"
            self.cut_case("durable-point %d/%d" % (k, n), ["--once"], arm=("durable", k),
                          restart=restart)

    def test_2_once_cut_at_random_operations(self):
        ops = self.clean_counts()["ops"]
        count = 40 if ALL else 4
        for i, k in enumerate(sorted(self.rng.sample(range(1, ops + 1), min(count, ops)))):
            self.cut_case("operation %d/%d" % (k, ops), ["--once"], arm=("op", k),
                          restart="remount" if i % 3 == 2 else "plain")

    def test_3_once_cut_at_random_moments(self):
        for i in range(20 if ALL else 3):
            t = self.rng.uniform(0.05, 1.8)
            self.cut_case("moment %.2fs" % t, ["--once"], at_time=t,
                          restart="remount" if i % 2 else "plain")

    def test_5_partial_cuts(self):
        # The cut keeps a random part of what was pending (powercutfs "partial"): names
        # and data written back in any order, a rename whole or not at all, torn files. Cut
        # when a durable point is asked for, before it takes effect, the most is pending.
        c = self.clean_counts()
        seeds = 5 if ALL else 1
        for k in range(1, c["durable"] + 1):
            for i in range(seeds):
                seed = self.rng.randrange(1, 1 << 62)
                self.cut_case("before-durable-point %d/%d, seed %d" % (k, c["durable"], seed),
                              ["--once"], arm=("before_durable", k), partial=seed,
                              restart="remount" if (k + i) % 3 == 0 else "plain")
        for i in range(20 if ALL else 1):
            seed = self.rng.randrange(1, 1 << 62)
            k = self.rng.randint(1, c["ops"])
            self.cut_case("operation %d/%d, seed %d" % (k, c["ops"], seed), ["--once"],
                          arm=("op", k), partial=seed)

    def test_4_service_cuts(self):
        n = self.clean_counts()["durable"]
        points = list(range(1, n + 1)) if ALL else sorted(self.rng.sample(range(1, n + 1),
                                                                          min(3, n)))
        for k in points:
            self.cut_case("durable-point %d" % k, [], arm=("durable", k))
        for _ in range(10 if ALL else 2):
            t = self.rng.uniform(0.1, 2.5)
            self.cut_case("moment %.2fs" % t, [], at_time=t)


if __name__ == "__main__":
    why = skip_reason()
    if why:
        print("skipped: " + why, flush=True)
        sys.exit(SKIP_EXIT)
    if not os.environ.get("CJA_BINARY"):
        print("CJA_BINARY is not set (the built connect-job-archiver)", file=sys.stderr)
        sys.exit(2)
    unittest.main(verbosity=2)
