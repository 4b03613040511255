"""connect-jobs over an archive in S3, against a real Ceph RADOS Gateway (tests/s3/rgw.sh):
the same jobs archived into a local folder and into a bucket by the daemon, then every
archive command (ls, search, show, log, error, download) run on both must print the same
bytes and exit with the same status. Also: what the read-through cache asks of S3 a second
time, a job deleted from the bucket, wrong and missing credentials. Exit 77 (ctest: skipped)
with the reason when the gateway cannot run here.

Run: /usr/bin/python3 tests/s3/test_s3_read.py (CJA_BINARY = the built connect-job-archiver,
CJA_JOBS_BINARY = connect-jobs); ctest runs it as s3.test_s3_read. RGW_DIR of a running
gateway (rgw.sh start) is reused.
"""

import json
import os
import re
import shutil
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))

import test_s3  # noqa: E402  (the gateway's setup, the boto3 client)
from test_s3 import RGW, s3client, s3_env, list_keys  # noqa: E402
from harness import (FakeConnect, make_jobspec, new_guid, new_key, run_archiver,  # noqa: E402
                     run_jobs, write_config)


def setUpModule():
    test_s3.setUpModule()


def tearDownModule():
    test_s3.tearDownModule()


def s3_stats(stderr):
    """The counts of connect-jobs -v's last "s3: N LIST, N GET" line."""
    m = None
    for m in re.finditer(r"s3: (\d+) LIST, (\d+) GET, (\d+) retries; cache \S+: (\d+) objects "
                         r"listed, (\d+) records fetched \((\d+) bytes\), (\d+) logs fetched "
                         r"\((\d+) bytes\), (\d+) found cached, (\d+) removed", stderr):
        pass
    if not m:
        return None
    names = ("list", "get", "retries", "listed", "fetched", "fetched_bytes", "logs_fetched",
             "logs_bytes", "cached", "removed")
    d = dict(zip(names, map(int, m.groups())))
    p = re.search(r"(\d+) logs fetched in part \((\d+) ranged GET, (\d+) bytes\)",
                  stderr[m.start():])
    if p:
        d.update(zip(("parts", "part_gets", "part_bytes"), map(int, p.groups())))
    return d


class S3ReadTest(unittest.TestCase):
    """One scenario for the whole class: archived once locally, once into S3."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="cja-s3read-")
        cls.s3 = s3client()
        cls.bucket = "cjr-" + new_key(10).lower()
        cls.s3.create_bucket(Bucket=cls.bucket)
        cls.prefix = "prod/connect"
        cls.g1, cls.g2 = new_guid(), new_guid()
        lines = "".join("2024/11/25 10:%02d:%02d.123 [stdout] request %d served in %d ms\n"
                        % (i // 60 % 60, i % 60, i, i * 7 % 1000) for i in range(4000))
        cls.jobs = {
            cls.g1: [
                make_jobspec("k1aaaa", log="hello world\nERROR: disk full\nbye\n",
                             start_time="2024-11-25T10:00:00Z"),
                make_jobspec("k2bbbb", log=lines, start_time="2024-11-26T09:30:00Z",
                             exit_code=1, error={"code": 12, "message": "boom",
                                                  "summary": "the app failed"}),
                make_jobspec("k3cccc", download_status=404, start_time="2024-11-27T23:59:59Z"),
                make_jobspec("k4dddd", log="Error in f(): object 'x' not found\n",
                             start_time="2024-11-28T00:00:01+02:00", tag="run_rmd"),
            ],
            cls.g2: [
                make_jobspec("z1eeee", log_size=300000, start_time="2024-11-25T12:00:00Z"),
                make_jobspec("z2ffff", log="ERROR nothing here\nerror lower\n",
                             start_time="2024-12-01T08:00:00Z", exit_code=2),
            ],
        }
        cls.local = os.path.join(cls.tmp, "local", "archive")
        cls.fc = FakeConnect(cls.jobs)
        cls.fc.__enter__()
        content = [(cls.g1, "sales"), cls.g2]
        cls.cfg_local = write_config(os.path.join(cls.tmp, "local"), cls.fc.url, cls.local,
                                     content=content)
        s3 = {"endpoint": RGW["S3_ENDPOINT"], "bucket": cls.bucket, "prefix": cls.prefix}
        d = os.path.join(cls.tmp, "s3")
        cls.cfg_s3 = write_config(d, cls.fc.url, os.path.join(d, "state"), content=content,
                                  archive={"s3": s3})
        # The catalog sealed at once, so that the bucket has one (.catalog/<id>/), with a
        # posting unit per member (not 256 KiB of small jobs), so that the tests can count
        # exactly which logs a search fetches.
        for cfg in (cls.cfg_local, cls.cfg_s3):
            p = run_archiver(["-c", cfg, "--once"],
                             env=s3_env(CJA_CATALOG_SEAL_SECONDS=0, CJA_CATALOG_UNIT_BYTES=1))
            assert p.returncode == 0, p.stderr
        assert [k for k in list_keys(cls.s3, cls.bucket, cls.prefix + "/.catalog/")
                if k.endswith(".cat")], "no catalog in the bucket"
        cls.cache = os.path.join(cls.tmp, "cache")

    @classmethod
    def tearDownClass(cls):
        cls.fc.__exit__(None, None, None)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def jobs_env(self, **kw):
        env = s3_env(XDG_CACHE_HOME=self.cache, TZ="UTC", LC_ALL="C.UTF-8")
        env.update(kw)
        return env

    def run_both(self, args, env=None):
        """connect-jobs args on the local archive and on the bucket: (local, s3)."""
        env = env or self.jobs_env()
        a = run_jobs(["-c", self.cfg_local] + args, env=env)
        b = run_jobs(["-c", self.cfg_s3] + args, env=env)
        return a, b

    def same(self, args, status=None, env=None):
        a, b = self.run_both(args, env)
        root = "s3://%s/%s" % (self.bucket, self.prefix)
        self.assertEqual(b.stdout.replace(root, "<root>"), a.stdout.replace(self.local, "<root>"),
                         "%s: stdout differs\nlocal stderr: %s\ns3 stderr: %s"
                         % (args, a.stderr, b.stderr))
        self.assertEqual(b.returncode, a.returncode, "%s\n%s\n%s" % (args, a.stderr, b.stderr))
        if status is not None:
            self.assertEqual(a.returncode, status, a.stderr)
        self.assertNotIn(RGW["AWS_SECRET_ACCESS_KEY"], b.stdout + b.stderr)
        return a, b

    # ----------------------------------------------------------------------------------

    def test_ls_same_as_on_disk(self):
        for catalog in ("1", "0"):
            with self.subTest(catalog=catalog):
                self.ls_same(self.jobs_env(CJA_CATALOG=catalog, XDG_CACHE_HOME=os.path.join(
                    self.tmp, "cache-ls" + catalog)))

    def ls_same(self, env):
        n = 0
        for args in (["ls"], ["ls", "-o", "json"], ["ls", "--failed"], ["ls", "-r"],
                     ["ls", "--content", "sales"], ["ls", "--content", self.g2, "-o", "json"],
                     ["ls", "--since", "2024-11-26"], ["ls", "--until", "2024-11-26"],
                     ["ls", "--since", "2024-11-26", "--until", "2024-11-27", "-o", "json"],
                     ["ls", "--key", "k2bbbb"], ["ls", "--tag", "run_rmd"],
                     ["ls", "--since", "2030-01-01"]):
            a, _ = self.same(args, status=0, env=env)
            n += a.stdout.count("\n")
        self.assertGreater(n, 30)  # not all empty
        a, _ = self.same(["ls", "-o", "json"], status=0, env=env)
        self.assertEqual(len(a.stdout.splitlines()), 6)
        self.same(["ls", "--since", "yesterday-ish"], status=2, env=env)

    def test_search_same_as_on_disk(self):
        for catalog in ("1", "0"):
            with self.subTest(catalog=catalog):
                self.search_same(self.jobs_env(CJA_CATALOG=catalog, XDG_CACHE_HOME=os.path.join(
                    self.tmp, "cache-search" + catalog)))

    def search_same(self, env):
        for args, status in ((["search", "ERROR"], 0), (["search", "-i", "error"], 0),
                             (["search", "-c", "request 3[0-9]+ "], 0),
                             (["search", "-l", "-i", "error"], 0),
                             (["search", "-o", "json", "disk full"], 0),
                             (["search", "-F", "-w", "bye"], 0),
                             (["search", "--content", "sales", "served in 99"], 0),
                             (["search", "--failed", "-C", "1", "request 1999 "], 0),
                             (["search", "--since", "2024-11-28", "-i", "error"], 0),
                             (["search", "no such text anywhere"], 1),
                             (["search", "a[b"], 2)):
            self.same(args, status=status, env=env)

    def test_show_log_error_download_same_as_on_disk(self):
        for guid, key in ((self.g1, "k1aaaa"), (self.g1, "k2bbbb"), (self.g2, "z1eeee")):
            for args in (["show", guid, key], ["show", "-o", "json", guid, key],
                         ["log", guid, key], ["log", "-n", "3", guid, key],
                         ["log", "-o", "json", "-n", "10", guid, key],
                         ["error", guid, key], ["error", "-o", "json", guid, key],
                         ["download", guid, key]):
                _, b = self.same(args, status=0)
                self.assertIn("from the archive (s3://%s/%s/" % (self.bucket, self.prefix),
                              b.stderr)
        # The live commands' ARCHIVED column and line come from the bucket too.
        a, b = self.same(["list", "--utc", "sales"], status=0)
        self.assertEqual(a.stdout.count(" yes\n"), 4, a.stdout)
        self.same(["list", "--utc", self.g2], status=0)
        a, _ = self.same(["show", "--live", "sales", "k2bbbb"], status=0)
        self.assertIn("<root>/%s/2024/11/26/k2bbbb.json" % self.g1,
                      a.stdout.replace(self.local, "<root>"))
        # No log file: the same refusal; the job's record still answers show.
        self.same(["download", "sales", "k3cccc"], status=4)
        self.same(["log", "sales", "k3cccc"], status=0)
        # download -O: the same bytes.
        out = os.path.join(self.tmp, "dl.log")
        p = run_jobs(["-c", self.cfg_s3, "download", "-O", out, self.g2, "z1eeee"],
                     env=self.jobs_env())
        self.assertEqual(p.returncode, 0, p.stderr)
        q = run_jobs(["-c", self.cfg_local, "download", self.g2, "z1eeee"], env=self.jobs_env(),
                     text=False)
        with open(out, "rb") as f:
            self.assertEqual(f.read(), q.stdout)
        self.assertEqual(len(q.stdout), 300000)

    def test_catalog_answers_instead_of_records(self):
        env = self.jobs_env(XDG_CACHE_HOME=os.path.join(self.tmp, "cache-cat"))
        p = run_jobs(["-v", "-c", self.cfg_s3, "ls"], env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        s = s3_stats(p.stderr)
        days = int(re.search(r"(\d+) day folders from the catalog", p.stderr).group(1))
        # Every day folder (6 jobs on 5 days) from the catalog: no record fetched; the GETs
        # are the catalog's files.
        self.assertEqual(days, 5, p.stderr)
        self.assertEqual(s["fetched"], s["get"], p.stderr)
        self.assertLess(s["get"], 7)
        q = run_jobs(["-v", "-c", self.cfg_s3, "ls"], env=env)
        self.assertEqual(q.stdout, p.stdout)
        self.assertEqual(s3_stats(q.stderr)["get"], 0, q.stderr)
        # show needs the record itself, which the catalog's folders did not fetch.
        a, b = self.run_both(["show", "-o", "json", "sales", "k1aaaa"], env=env)
        self.assertEqual((b.returncode, b.stdout), (a.returncode, a.stdout), b.stderr)
        self.assertIn("from the archive", b.stderr)
        # A search reads only the logs the catalog cannot rule out: one here.
        p = run_jobs(["-v", "-c", self.cfg_s3, "search", "disk full"], env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(s3_stats(p.stderr)["logs_fetched"], 1, p.stderr)
        # A job the catalog has not got (archived after its files were sealed): its folder
        # is read from its records, the others still from the catalog.
        bucket = "cjc-" + new_key(10).lower()
        self.s3.create_bucket(Bucket=bucket)
        for k in list_keys(self.s3, self.bucket, self.prefix + "/"):
            self.s3.copy_object(Bucket=bucket, Key=k, CopySource={"Bucket": self.bucket, "Key": k})
        base = "%s/%s/2024/11/26/" % (self.prefix, self.g1)
        rec = json.loads(self.s3.get_object(Bucket=bucket, Key=base + "k2bbbb.json")["Body"]
                         .read())
        rec["job"]["key"] = "k9zzzz"
        self.s3.put_object(Bucket=bucket, Key=base + "k9zzzz.json", Body=json.dumps(rec))
        d = os.path.join(self.tmp, "cat2")
        s3 = {"endpoint": RGW["S3_ENDPOINT"], "bucket": bucket, "prefix": self.prefix}
        cfg = write_config(d, self.fc.url, os.path.join(d, "state"), content=[self.g1, self.g2],
                           archive={"s3": s3})
        p = run_jobs(["-v", "-c", cfg, "ls", "-o", "json"], env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn('"key":"k9zzzz"', p.stdout)
        self.assertEqual(len(p.stdout.splitlines()), 7)
        self.assertIn("4 day folders from the catalog", p.stderr)
        # The bucket's catalog removed: the cache's copy goes too, every folder from records.
        for k in list_keys(self.s3, bucket, self.prefix + "/.catalog/"):
            self.s3.delete_object(Bucket=bucket, Key=k)
        env2 = self.jobs_env(XDG_CACHE_HOME=env["XDG_CACHE_HOME"])
        p = run_jobs(["-v", "-c", cfg, "ls", "-o", "json"], env=env2)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(len(p.stdout.splitlines()), 7)
        self.assertIn(" 0 day folders from the catalog", p.stderr)
        mirror = re.search(r"cache (\S+): ", p.stderr).group(1)
        cats = [f for _, _, fs in os.walk(mirror) for f in fs if f.endswith(".cat")]
        self.assertEqual(cats, [])

    def test_second_ls_gets_nothing_cached(self):
        env = self.jobs_env(XDG_CACHE_HOME=os.path.join(self.tmp, "cache-count"),
                            CJA_CATALOG="0")
        t0 = time.monotonic()
        p = run_jobs(["-v", "-c", self.cfg_s3, "ls"], env=env)
        t1 = time.monotonic() - t0
        self.assertEqual(p.returncode, 0, p.stderr)
        first = s3_stats(p.stderr)
        # 6 records and 1 error record, and no log.
        self.assertEqual(first["fetched"], 7, p.stderr)
        self.assertEqual(first["get"], 7)
        self.assertEqual(first["logs_fetched"], 0)
        t0 = time.monotonic()
        q = run_jobs(["-v", "-c", self.cfg_s3, "ls"], env=env)
        t2 = time.monotonic() - t0
        self.assertEqual(q.returncode, 0, q.stderr)
        again = s3_stats(q.stderr)
        self.assertEqual(q.stdout, p.stdout)
        self.assertEqual(again["get"], 0, q.stderr)
        self.assertEqual(again["fetched"], 0)
        self.assertEqual(again["cached"], 7)
        # The probe, the content folders, one listing per item.
        self.assertEqual(again["list"], 1 + 1 + 2)
        # A search fetches the logs it reads once; a second one none.
        p = run_jobs(["-v", "-c", self.cfg_s3, "search", "-c", "ERROR"], env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        s = s3_stats(p.stderr)
        self.assertEqual(s["logs_fetched"], 5, p.stderr)  # all but the one without a log
        p = run_jobs(["-v", "-c", self.cfg_s3, "search", "-c", "ERROR"], env=env)
        self.assertEqual(s3_stats(p.stderr)["get"], 0, p.stderr)
        # show of a cached job: one listing of its day folder (besides the probe and the
        # content folders), no GET; its log once.
        p = run_jobs(["-v", "-c", self.cfg_s3, "show", self.g1, "k2bbbb"], env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        s = s3_stats(p.stderr)
        self.assertEqual((s["list"], s["get"]), (3, 0), p.stderr)
        p = run_jobs(["-v", "-c", self.cfg_s3, "log", self.g2, "z2ffff"], env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(s3_stats(p.stderr)["get"], 0, p.stderr)  # the search fetched it
        # -v says what it asked, never the secret.
        self.assertNotIn(RGW["AWS_SECRET_ACCESS_KEY"], p.stdout + p.stderr)
        # The cache is private.
        top = os.path.join(env["XDG_CACHE_HOME"], "connect-jobs")
        self.assertEqual(os.stat(top).st_mode & 0o777, 0o700)
        print("\nls: first run %.3f s (%s), cached %.3f s (%s)" % (t1, first, t2, again),
              file=sys.stderr)

    def test_job_deleted_from_bucket_disappears(self):
        # A bucket of its own: the other tests share the class's.
        bucket = "cjd-" + new_key(10).lower()
        self.s3.create_bucket(Bucket=bucket)
        for k in list_keys(self.s3, self.bucket, self.prefix + "/"):
            self.s3.copy_object(Bucket=bucket, Key=k, CopySource={"Bucket": self.bucket, "Key": k})
        d = os.path.join(self.tmp, "del")
        s3 = {"endpoint": RGW["S3_ENDPOINT"], "bucket": bucket, "prefix": self.prefix}
        cfg = write_config(d, self.fc.url, os.path.join(d, "state"), content=[self.g1],
                           archive={"s3": s3})
        env = self.jobs_env(XDG_CACHE_HOME=os.path.join(self.tmp, "cache-del"))
        p = run_jobs(["-c", cfg, "ls", "-o", "json"], env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(len(p.stdout.splitlines()), 6)
        p = run_jobs(["-c", cfg, "log", self.g1, "k2bbbb"], env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        base = "%s/%s/2024/11/26/k2bbbb" % (self.prefix, self.g1)
        for suffix in (".json", ".log.gz", ".error.json"):
            self.s3.delete_object(Bucket=bucket, Key=base + suffix)
        p = run_jobs(["-v", "-c", cfg, "ls", "-o", "json"], env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(len(p.stdout.splitlines()), 5)
        self.assertNotIn("k2bbbb", p.stdout)
        self.assertEqual(s3_stats(p.stderr)["removed"], 3, p.stderr)
        mirror = [os.path.join(r, f) for r, _, fs in os.walk(env["XDG_CACHE_HOME"]) for f in fs]
        self.assertFalse([m for m in mirror if "k2bbbb" in m], mirror)
        # Not in the archive any more: the show asks Connect (which still has it).
        p = run_jobs(["-c", cfg, "show", "-o", "json", self.g1, "k2bbbb"], env=env)
        self.assertNotIn("from the archive", p.stderr)
        # Cached, then deleted from the bucket: show finds that out without an ls first.
        p = run_jobs(["-c", cfg, "show", self.g1, "k1aaaa"], env=env)
        self.assertIn("from the archive", p.stderr)
        self.s3.delete_object(Bucket=bucket, Key="%s/%s/2024/11/25/k1aaaa.json"
                              % (self.prefix, self.g1))
        p = run_jobs(["-c", cfg, "show", "-o", "json", self.g1, "k1aaaa"], env=env)
        self.assertNotIn("from the archive", p.stderr)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout)["key"], "k1aaaa")  # from Connect
        # A whole content folder gone: its jobs go too.
        for k in list_keys(self.s3, bucket, "%s/%s/" % (self.prefix, self.g2)):
            self.s3.delete_object(Bucket=bucket, Key=k)
        p = run_jobs(["-c", cfg, "ls", "--content", self.g2], env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertNotIn("z1eeee", p.stdout)

    def test_wrong_and_missing_credentials(self):
        secret = "wrong" + RGW["AWS_SECRET_ACCESS_KEY"][5:]
        env = self.jobs_env(AWS_SECRET_ACCESS_KEY=secret)
        for args, status in ((["ls"], 1), (["search", "x"], 2)):
            p = run_jobs(["-c", self.cfg_s3] + args, env=env)
            self.assertEqual(p.returncode, status, p.stderr)
            self.assertIn("cannot read the archive s3://%s/%s: S3 refuses the credentials"
                          % (self.bucket, self.prefix), p.stderr)
            self.assertIn("SignatureDoesNotMatch", p.stderr)
            self.assertEqual(p.stdout, "")
            self.assertNotIn(secret, p.stdout + p.stderr)
            self.assertNotIn(RGW["AWS_SECRET_ACCESS_KEY"], p.stdout + p.stderr)
        # The same status a local archive that cannot be read gives.
        unreadable = os.path.join(self.tmp, "no-such-archive")
        for args, status in ((["ls"], 1), (["search", "x"], 2)):
            p = run_jobs(["-c", self.cfg_local, "--archive", unreadable] + args,
                         env=self.jobs_env())
            self.assertEqual(p.returncode, status, p.stderr)
        p = run_jobs(["-c", self.cfg_s3, "ls"],
                     env=self.jobs_env(AWS_ACCESS_KEY_ID=None, AWS_SECRET_ACCESS_KEY=None))
        self.assertEqual(p.returncode, 78, p.stderr)
        self.assertIn("no S3 credentials found", p.stderr)
        # An unreachable endpoint: said, not hung.
        d = os.path.join(self.tmp, "down")
        s3 = {"endpoint": "http://127.0.0.1:9", "bucket": self.bucket}
        cfg = write_config(d, self.fc.url, os.path.join(d, "state"), content=[self.g1],
                           archive={"s3": s3}, server__timeout_seconds=2)
        p = run_jobs(["-c", cfg, "ls"], env=self.jobs_env(), timeout=120)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("cannot reach S3 bucket", p.stderr)
        # show: the archive cannot answer, said; Connect does.
        p = run_jobs(["-c", cfg, "show", "-o", "json", self.g1, "k1aaaa"], env=self.jobs_env(),
                     timeout=120)
        self.assertIn("cannot read the archive s3://%s: cannot reach" % self.bucket, p.stderr)
        self.assertIn("asking Connect", p.stderr)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout)["key"], "k1aaaa")

    def test_log_cache_cap(self):
        # CONNECT_JOBS_S3_CACHE_MB=0: no log stays after the command; the records do.
        cache = os.path.join(self.tmp, "cache-cap")
        env = self.jobs_env(XDG_CACHE_HOME=cache, CONNECT_JOBS_S3_CACHE_MB="0", CJA_CATALOG="0")
        p = run_jobs(["-c", self.cfg_s3, "search", "-c", "ERROR"], env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        files = [f for _, _, fs in os.walk(cache) for f in fs]
        self.assertEqual([f for f in files if f.endswith(".log.gz")], [])
        self.assertEqual(len([f for f in files if f.endswith(".json")]), 7)
        # A cap of 1 MiB keeps these (1 MiB is more than all of them).
        env["CONNECT_JOBS_S3_CACHE_MB"] = "1"
        p = run_jobs(["-c", self.cfg_s3, "search", "-c", "ERROR"], env=env)
        files = [f for _, _, fs in os.walk(cache) for f in fs]
        self.assertEqual(len([f for f in files if f.endswith(".log.gz")]), 5)

    def test_archive_option_reads_the_folder(self):
        # --archive DIR is a local folder even when the config names a bucket.
        p = run_jobs(["-c", self.cfg_s3, "--archive", self.local, "ls", "-o", "json"],
                     env=self.jobs_env(AWS_ACCESS_KEY_ID=None, AWS_SECRET_ACCESS_KEY=None))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(len(p.stdout.splitlines()), 6)
        self.assertIn(self.local, json.loads(p.stdout.splitlines()[0])["path"])


MEMBER = 256 * 1024  # the log's uncompressed bytes per gzip member (gzblock.h)


def big_log(seed, members, late=None, cross_at=None):
    """About members * 256 KiB of log lines that compress like real ones (a counter, a
    pseudo-random id). late: a line holding it in the last member only; cross_at: a member
    boundary that a line holding "CROSSMATCH" (after the boundary) runs across."""
    import random
    rnd = random.Random(seed)
    out, size, i = [], 0, 0
    end = members * MEMBER - 4096
    while size < end:
        if cross_at is not None and size > cross_at * MEMBER - 400 and size < cross_at * MEMBER:
            pad = cross_at * MEMBER - 100 - size - 1
            if pad >= 1:
                line = "p" * pad + "\n"
                out.append(line)
                size += len(line)
            line = "CROSS-START " + "y" * 120 + " CROSSMATCH here %d\n" % seed
            assert size < cross_at * MEMBER < size + line.index("CROSSMATCH")
            out.append(line)
            size += len(line)
            cross_at = None
            continue
        line = "2024/11/25 10:%02d:%02d.%03d [stdout] request %d id %08x served in %d ms\n" % (
            i // 60 % 60, i % 60, i % 1000, i, rnd.getrandbits(32), rnd.randrange(1000))
        out.append(line)
        size += len(line)
        i += 1
    if late:
        out.append("2024/11/25 11:00:00.000 [stderr] %s happened late\n" % late)
    return "".join(out)


class S3RangedTest(unittest.TestCase):
    """A search over S3 fetches only the members of a log that the catalog says it reads."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="cja-s3ranged-")
        s3c = s3client()
        cls.bucket = "cjg-" + new_key(10).lower()
        s3c.create_bucket(Bucket=cls.bucket)
        cls.g = new_guid()
        cls.keys = ["b1aaaa", "b2bbbb", "b3cccc"]
        jobs = [make_jobspec("b1aaaa", log=big_log(1, 14, late="NEEDLE-LATE"),
                             start_time="2024-11-25T10:00:00Z"),
                make_jobspec("b2bbbb", log=big_log(2, 12, cross_at=5),
                             start_time="2024-11-26T10:00:00Z"),
                make_jobspec("b3cccc", log=big_log(3, 10, late="needle-late again",
                                                   cross_at=9),
                             start_time="2024-11-27T10:00:00Z"),
                make_jobspec("s1dddd", log="small\nNEEDLE-LATE too\n",
                             start_time="2024-11-27T11:00:00Z")]
        with FakeConnect({cls.g: jobs}) as fc:
            cls.local = os.path.join(cls.tmp, "local", "archive")
            cls.cfg_local = write_config(os.path.join(cls.tmp, "local"), fc.url, cls.local,
                                         content=[cls.g])
            d = os.path.join(cls.tmp, "s3")
            cls.cfg_s3 = write_config(d, fc.url, os.path.join(d, "state"), content=[cls.g],
                                      archive={"s3": {"endpoint": RGW["S3_ENDPOINT"],
                                                      "bucket": cls.bucket}})
            for cfg in (cls.cfg_local, cls.cfg_s3):
                p = run_archiver(["-c", cfg, "--once"], env=s3_env(CJA_CATALOG_SEAL_SECONDS=0),
                                 timeout=600)
                assert p.returncode == 0, p.stderr
        cls.gz = {f[:-7]: os.path.getsize(os.path.join(dp, f))
                  for dp, _, fs in os.walk(cls.local) for f in fs if f.endswith(".log.gz")}
        cls.root = "s3://" + cls.bucket

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def env(self, cache, **kw):
        env = s3_env(XDG_CACHE_HOME=os.path.join(self.tmp, cache), TZ="UTC", LC_ALL="C.UTF-8")
        env.update(kw)
        return env

    def same(self, args, env, status=None):
        a = run_jobs(["-c", self.cfg_local] + args, env=env, timeout=300)
        b = run_jobs(["-v", "-c", self.cfg_s3] + args, env=env, timeout=300)
        self.assertEqual(b.stdout.replace(self.root, "<root>"),
                         a.stdout.replace(self.local, "<root>"),
                         "%s: stdout differs\n%s" % (args, b.stderr))
        self.assertEqual(b.returncode, a.returncode, "%s\n%s\n%s" % (args, a.stderr, b.stderr))
        if status is not None:
            self.assertEqual(a.returncode, status, a.stderr)
        return a, b

    def no_part_left(self, env):
        cache = os.path.join(env["XDG_CACHE_HOME"], "connect-jobs", "s3")
        for dp, dirs, _ in os.walk(cache):
            self.assertEqual([d for d in dirs if d.startswith(".part.")], [], dp)

    def test_search_fetches_only_the_members_read(self):
        # Logs of 10-14 members (2.5-3.5 MiB), 0.5-0.7 MB of gzip each.
        self.assertGreater(min(self.gz[k] for k in self.keys), 400 << 10)
        env = self.env("cache-ranged")
        big = sum(self.gz[k] for k in self.keys)
        for args, status in ((["search", "NEEDLE-LATE"], 0),
                             (["search", "-c", "NEEDLE-LATE"], 0),
                             (["search", "-i", "needle-late"], 0),
                             (["search", "-o", "needle-[a-z]+"], 0),
                             (["search", "-H", "CROSSMATCH"], 0),
                             (["search", "-o", "json", "CROSSMATCH"], 0),
                             (["search", "-c", "-i", "crossmatch|needle"], 0),
                             (["search", "-l", "-F", "CROSS-START"], 0),
                             (["search", "ZZ-NOT-THERE"], 1)):
            a, b = self.same(args, env, status)
            if status == 0:
                self.assertNotEqual(a.stdout, "")
            s = s3_stats(b.stderr)
            # No big log whole (the small one's member is all of it); the parts are a few
            # members: far less than the logs.
            self.assertLessEqual(s["logs_bytes"], self.gz["s1dddd"], (args, b.stderr))
            self.assertLess(s["part_bytes"], big / 4, (args, b.stderr))
            if args[-1] in ("NEEDLE-LATE", "CROSSMATCH"):
                self.assertGreater(s["parts"], 0, b.stderr)
            self.no_part_left(env)
        # A killed command's part folder goes once it is an hour old; a newer one stays.
        mirror = re.search(r"cache (\S+): ", b.stderr).group(1)
        for name, age in ((".part.1.00000001", 7200), (".part.1.00000002", 60)):
            os.makedirs(os.path.join(mirror, name, "x"))
            t = time.time() - age
            os.utime(os.path.join(mirror, name), (t, t))
        _, b = self.same(["search", "NEEDLE-LATE"], env, 0)
        self.assertEqual(sorted(f for f in os.listdir(mirror) if f.startswith(".part.")),
                         [".part.1.00000002"])
        shutil.rmtree(os.path.join(mirror, ".part.1.00000002"))
        # Nothing of a part is in the cache under the log's name: log and download fetch
        # the logs whole and give the same bytes.
        for key in self.keys:
            self.same(["log", "-n", "5", self.g, key], env, 0)
            a = run_jobs(["-c", self.cfg_local, "download", self.g, key], env=env, text=False,
                         timeout=300)
            b = run_jobs(["-c", self.cfg_s3, "download", self.g, key], env=env, text=False,
                         timeout=300)
            self.assertEqual((b.returncode, len(b.stdout)), (0, len(a.stdout)))
            self.assertTrue(b.stdout == a.stdout, key)
        # Whole in the cache now: read from there, nothing fetched.
        _, b = self.same(["search", "-c", "NEEDLE-LATE"], env, 0)
        s = s3_stats(b.stderr)
        self.assertEqual((s["parts"], s["logs_fetched"]), (0, 0), b.stderr)
        # Options that need every line fetch logs whole, as before.
        env = self.env("cache-whole")
        _, b = self.same(["search", "-c", "-v", "served"], env, 0)
        self.assertEqual(s3_stats(b.stderr)["parts"], 0, b.stderr)
        self.same(["search", "-C", "1", "CROSSMATCH"], env, 0)

    def test_part_not_as_the_catalog_says(self):
        # A log object replaced (not what its catalog row lists): the part is not used, the
        # log is fetched whole and read whole; the output is a full scan's of that object.
        env = self.env("cache-stale")
        s3c = s3client()
        key = "%s/2024/11/25/b1aaaa.log.gz" % self.g
        body = s3c.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        bucket = "cjh-" + new_key(10).lower()
        s3c.create_bucket(Bucket=bucket)
        for k in list_keys(s3c, self.bucket, ""):
            s3c.copy_object(Bucket=bucket, Key=k, CopySource={"Bucket": self.bucket, "Key": k})
        import gzip
        s3c.put_object(Bucket=bucket, Key=key,
                       Body=body + gzip.compress(b"NEEDLE-LATE appended\n"))
        d = os.path.join(self.tmp, "stale")
        cfg = write_config(d, "http://127.0.0.1:9", os.path.join(d, "state"), content=[self.g],
                           archive={"s3": {"endpoint": RGW["S3_ENDPOINT"], "bucket": bucket}})
        p = run_jobs(["-v", "-c", cfg, "search", "-c", "NEEDLE-LATE"], env=env, timeout=300)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(" b1aaaa:2\n", p.stdout)  # the line appended found too
        s = s3_stats(p.stderr)
        self.assertGreaterEqual(s["logs_fetched"], 1, p.stderr)

    def test_timed_ranged_and_whole(self):
        # The numbers: a selective search on the big logs, from an empty cache each time.
        for parts in ("1", "0"):
            for run in range(2):
                env = self.env("cache-t%s%d" % (parts, run), CJA_S3_PARTS=parts)
                t0 = time.monotonic()
                p = run_jobs(["-v", "-c", self.cfg_s3, "search", "NEEDLE-LATE"], env=env,
                             timeout=300)
                t = time.monotonic() - t0
                self.assertEqual(p.returncode, 0, p.stderr)
                s = s3_stats(p.stderr)
                print("\nsearch NEEDLE-LATE over S3, %s: %.3f s, %d GET, logs whole %d (%d "
                      "bytes), in part %d (%d ranged GET, %d bytes); gz of the big logs %d"
                      % ("ranged" if parts == "1" else "whole", t, s["get"], s["logs_fetched"],
                         s["logs_bytes"], s["parts"], s["part_gets"], s["part_bytes"],
                         sum(self.gz[k] for k in self.keys)), file=sys.stderr)


class S3ReadManyTest(unittest.TestCase):
    """More objects than one ListObjectsV2 page (1,000) under one content folder."""

    def test_many_jobs_paged_and_timed(self):
        tmp = tempfile.mkdtemp(prefix="cja-s3many-")
        try:
            self.run_many(tmp, int(os.environ.get("CJA_S3_READ_JOBS", "600")))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def run_many(self, tmp, n):
        s3c = s3client()
        bucket = "cjm-" + new_key(10).lower()
        s3c.create_bucket(Bucket=bucket)
        g = new_guid()
        jobs = [make_jobspec("m%05d" % i, log_size=3000,
                             start_time="2024-%02d-%02dT%02d:00:00Z"
                             % (1 + i % 12, 1 + i % 28, i % 24),
                             exit_code=1 if i % 10 == 0 else 0) for i in range(n)]
        with FakeConnect({g: jobs}) as fc:
            local = os.path.join(tmp, "local", "archive")
            cfg_local = write_config(os.path.join(tmp, "local"), fc.url, local, content=[g])
            d = os.path.join(tmp, "s3")
            cfg_s3 = write_config(d, fc.url, os.path.join(d, "state"), content=[g],
                                  archive={"s3": {"endpoint": RGW["S3_ENDPOINT"],
                                                  "bucket": bucket}})
            for cfg in (cfg_local, cfg_s3):
                p = run_archiver(["-c", cfg, "--once"], env=s3_env(CJA_CATALOG_SEAL_SECONDS=0),
                                 timeout=600)
                self.assertEqual(p.returncode, 0, p.stderr)
        self.assertGreater(len(list_keys(s3c, bucket, "")), 1000)
        root = "s3://" + bucket
        for catalog in ("0", "1"):
            env = s3_env(XDG_CACHE_HOME=os.path.join(tmp, "cache" + catalog), TZ="UTC",
                         CJA_CATALOG=catalog)
            self.compare_timed(n, env, cfg_local, cfg_s3, local, root, catalog == "1")

    def compare_timed(self, n, env, cfg_local, cfg_s3, local, root, catalog):
        def timed(cfg, args):
            t0 = time.monotonic()
            p = run_jobs(["-v", "-c", cfg] + args, env=env, timeout=600)
            return p, time.monotonic() - t0

        results = {}
        for name, args in (("ls", ["ls", "-o", "json"]),
                           ("search", ["search", "-c", "GET /"]),
                           ("search-rare", ["search", "request 2999 "])):
            a, ta = timed(cfg_local, args)
            b1, t1 = timed(cfg_s3, args)
            b2, t2 = timed(cfg_s3, args)
            for b in (b1, b2):
                self.assertEqual(b.returncode, a.returncode, b.stderr)
                self.assertEqual(b.stdout.replace(root, "<root>"),
                                 a.stdout.replace(local, "<root>"))
            self.assertEqual(s3_stats(b2.stderr)["get"], 0, b2.stderr)
            results[name] = (ta, t1, s3_stats(b1.stderr), t2, s3_stats(b2.stderr))
            if name == "ls":
                self.assertEqual(len(a.stdout.splitlines()), n)
            elif name == "search":
                self.assertGreater(len(a.stdout.splitlines()), n / 2)
        # Without the catalog every record and every log is fetched; with it none of the
        # records of the folders it covers, and only the logs it cannot rule out.
        if not catalog:
            self.assertEqual(results["ls"][2]["fetched"], n)
            self.assertEqual(results["search"][2]["logs_fetched"], n)
        else:
            self.assertLess(results["ls"][2]["fetched"], n / 2)
            self.assertLess(results["search-rare"][2]["logs_fetched"], n / 2)
        for name, (ta, t1, s1, t2, s2) in results.items():
            print("\n%s over %d jobs, catalog %s: disk %.2f s; s3 first %.2f s (%d LIST, %d GET,"
                  " %d logs), cached %.2f s (%d LIST, %d GET)"
                  % (name, n, "on" if catalog else "off", ta, t1, s1["list"], s1["get"],
                     s1["logs_fetched"], t2, s2["list"], s2["get"]), file=sys.stderr)


def read_ops_binary():
    b = os.environ.get("CJA_S3_READ_OPS")
    if b:
        return b
    import harness
    return os.path.join(os.path.dirname(harness.jobs_binary()), "tests", "s3-read-ops")


class S3ReadOpsTest(unittest.TestCase):
    """The read operations alone (s3_read.h, through tests/s3/s3_read_ops.c), against what
    boto3 reads of the same objects: listings over several pages, start-after and the stop
    name, whole and ranged GETs into memory and into a file, many at once, a missing one."""

    @classmethod
    def setUpClass(cls):
        cls.s3 = s3client()
        cls.bucket = "cjo-" + new_key(10).lower()
        cls.s3.create_bucket(Bucket=cls.bucket)
        cls.names = ["%04d/o%d.json" % (i // 10, i) for i in range(1100)]
        for n in cls.names:
            cls.s3.put_object(Bucket=cls.bucket, Key="pre/x/" + n, Body=n.encode() * 3)
        cls.big = os.urandom(3 * 1024 * 1024 + 17)
        cls.s3.put_object(Bucket=cls.bucket, Key="pre/big.log.gz", Body=cls.big)
        cls.tmp = tempfile.mkdtemp(prefix="cja-s3ops-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def ops(self, *args, text=True):
        import subprocess
        return subprocess.run([read_ops_binary(), RGW["S3_ENDPOINT"], self.bucket, "pre"]
                              + list(args), env=dict(os.environ, **s3_env()),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120,
                              text=text)

    def test_list_pages_after_until(self):
        p = self.ops("list", "x")
        self.assertEqual(p.returncode, 0, p.stderr)
        got = [line.split(" ") for line in p.stdout.splitlines()]
        self.assertEqual([g[0] for g in got], sorted(self.names))
        self.assertEqual([int(g[1]) for g in got], [3 * len(g[0]) for g in got])
        p = self.ops("list", "x", "0050", "0059")
        self.assertEqual(p.stdout.split()[::2],
                         sorted(n for n in self.names if "0050" < n[:4] + "/" and n[:4] <= "0059"))
        self.assertEqual(len(p.stdout.splitlines()), 100)
        p = self.ops("list", "x", "0109/o1095.json", "-")
        self.assertEqual(p.stdout.split()[::2], ["0109/o1096.json", "0109/o1097.json",
                                                 "0109/o1098.json", "0109/o1099.json"])
        p = self.ops("list", "nothing-here")
        self.assertEqual((p.returncode, p.stdout), (0, ""), p.stderr)

    def test_get_whole_ranged_fd_many(self):
        p = self.ops("get", "", "big.log.gz", text=False)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, self.big)
        p = self.ops("get", "", "big.log.gz", "1000", "5000", text=False)
        self.assertEqual(p.stdout, self.big[1000:6000])
        out = os.path.join(self.tmp, "part")
        p = self.ops("getfd", "", "big.log.gz", out, str(len(self.big) - 10), "10")
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(out, "rb") as f:
            self.assertEqual(f.read(), self.big[-10:])
        p = self.ops("getfd", "", "big.log.gz", out)
        with open(out, "rb") as f:
            self.assertEqual(f.read(), self.big)
        # Ranges at their offsets of one file, at once; the rest a hole (zeros).
        ranges = [(0, 100), (262144, 300000), (700000, 5), (len(self.big) - 17, 17)]
        p = self.ops("at", "", "big.log.gz", out, str(len(self.big)),
                     *[str(x) for r in ranges for x in r])
        self.assertEqual(p.returncode, 0, p.stderr)
        want = bytearray(len(self.big))
        for o, n in ranges:
            want[o:o + n] = self.big[o:o + n]
        with open(out, "rb") as f:
            self.assertTrue(f.read() == bytes(want))
        p = self.ops("get", "x/0001", "nope.json")
        self.assertEqual(p.returncode, 1)
        self.assertIn("No such file", p.stderr)
        names = ["o%d.json" % i for i in range(10, 20)] + ["gone.json"]
        p = self.ops("many", "x/0001", *names)
        self.assertEqual(p.returncode, 0, p.stderr)
        rows = [line.split(" ") for line in p.stdout.splitlines()]
        self.assertEqual([r[0] for r in rows], names)
        self.assertEqual([int(r[1]) for r in rows], [0] * 10 + [-2])
        self.assertEqual([int(r[2]) for r in rows[:10]], [3 * len("0001/" + n) for n in names[:10]])
        # Wrong credentials: said at open.
        import subprocess
        p = subprocess.run([read_ops_binary(), RGW["S3_ENDPOINT"], self.bucket, "-", "list", ""],
                           env=dict(os.environ, **s3_env(AWS_SECRET_ACCESS_KEY="x" * 40)),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.assertEqual(p.returncode, 1)
        self.assertIn("SignatureDoesNotMatch", p.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
