"""The archive in S3, against a real Ceph RADOS Gateway started here (tests/s3/rgw.sh) and
read back with boto3 (Debian's python3-boto3). Exit 77 (ctest: skipped) with the reason
when the gateway cannot run on this machine.

Run: /usr/bin/python3 tests/s3/test_s3.py (CJA_BINARY = the built connect-job-archiver);
ctest runs it as s3.test_s3. RGW_DIR of a running gateway (rgw.sh start) is reused.
"""

import gzip
import hashlib
import http.client
import http.server
import os
import re
import shutil
import signal
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))

from harness import (FakeConnect, make_jobspec, new_guid, new_key, run_archiver,  # noqa: E402
                     served_log, start_archiver, stop_process, wait_for, write_config)

try:
    import boto3
    import botocore.config
except ImportError:
    boto3 = None

RGW = {}
MIB = 1024 * 1024


def setUpModule():
    if boto3 is None:
        print("skipped: python3-boto3 is missing (tests/s3/rgw.sh installs it as root)",
              file=sys.stderr)
        sys.exit(77)
    if os.environ.get("RGW_DIR") and os.environ.get("S3_ENDPOINT"):
        RGW.update({k: os.environ[k] for k in ("S3_ENDPOINT", "AWS_ACCESS_KEY_ID",
                                                "AWS_SECRET_ACCESS_KEY")})
        return
    t0 = time.monotonic()
    p = subprocess.run([os.path.join(HERE, "rgw.sh"), "start"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=600)
    if p.returncode == 77:
        print(p.stderr.strip(), file=sys.stderr)
        sys.exit(77)
    if p.returncode != 0:
        raise RuntimeError("rgw.sh start failed:\n" + p.stderr)
    for line in p.stdout.splitlines():
        m = re.match(r"^(\w+)=(.*)$", line)
        if m:
            RGW[m.group(1)] = m.group(2).strip("'")
    RGW["owned"] = True
    print("rgw started in %.1f s" % (time.monotonic() - t0), file=sys.stderr)


def tearDownModule():
    if RGW.get("owned"):
        subprocess.run([os.path.join(HERE, "rgw.sh"), "stop", RGW["RGW_DIR"]], timeout=60)


def s3client(endpoint=None):
    return boto3.client("s3", endpoint_url=endpoint or RGW["S3_ENDPOINT"],
                        aws_access_key_id=RGW["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=RGW["AWS_SECRET_ACCESS_KEY"],
                        region_name="us-east-1",
                        config=botocore.config.Config(s3={"addressing_style": "path"}))


def list_keys(s3, bucket, prefix):
    keys = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for o in page.get("Contents", []):
            keys[o["Key"]] = o["Size"]
    return keys


def s3_env(**extra):
    env = {"AWS_ACCESS_KEY_ID": RGW["AWS_ACCESS_KEY_ID"],
           "AWS_SECRET_ACCESS_KEY": RGW["AWS_SECRET_ACCESS_KEY"]}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def s3_summary(stderr):
    """The counts of the last 's3: ...' summary line."""
    m = None
    for m in re.finditer(r"s3: (\d+) jobs archived by another archiver first; requests: "
                         r"(\d+) PUT \((\d+) refused as existing\), (\d+) HEAD, (\d+) GET, "
                         r"(\d+) LIST, (\d+) DELETE, (\d+) POST, (\d+) retries", stderr):
        pass
    if not m:
        return None
    names = ("elsewhere", "put", "put_conflict", "head", "get", "list", "delete", "post",
             "retries")
    return dict(zip(names, map(int, m.groups())))


def gateway_pid():
    """The running radosgw of the gateway (its latest line in RGW_DIR/pids)."""
    pid = None
    with open(os.path.join(RGW["RGW_DIR"], "pids")) as f:
        for line in f:
            name, _, p = line.strip().partition(" ")
            if name == "rgw.gw":
                pid = int(p)
    return pid


def gateway_stop():
    """Stops the gateway's radosgw (the mon and the OSD keep the data); returns its command
    line for gateway_start()."""
    pid = gateway_pid()
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        argv = [a.decode() for a in f.read().split(b"\0") if a]
    os.kill(pid, signal.SIGTERM)

    def gone():
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                return not f.read()  # a zombie has none
        except FileNotFoundError:
            return True
    wait_for(gone, timeout=20, interval=0.05, message="radosgw to stop")
    return argv


def gateway_start(argv):
    """Starts radosgw again as it ran (rgw.sh stop stops it: its PID goes into the list)."""
    log = open(os.path.join(RGW["RGW_DIR"], "log", "rgw.gw.stdout"), "ab")
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                         start_new_session=True)
    log.close()
    with open(os.path.join(RGW["RGW_DIR"], "pids"), "a") as f:
        f.write("rgw.gw %d\n" % p.pid)

    def up():
        try:
            s3client().list_buckets()
            return True
        except Exception:
            return False
    wait_for(up, timeout=60, interval=0.1, message="radosgw to answer again")
    return p


def live_sealed(names):
    """The catalog's sealed files that readers use: a file whose segment range lies inside
    another's was merged into it (src/archive/catalog_read.c, cat_list_sealed)."""
    refs = []
    for n in names:
        m = re.match(r"^L(\d+)-(\d+)-(\d+)\.cat$", n)
        if m:
            refs.append((int(m.group(1)), int(m.group(2)), int(m.group(3)), n))

    def inside(i, j):
        return (i is not j and j[1] <= i[1] and i[2] <= j[2]
                and ((j[1], j[2]) != (i[1], i[2]) or j[0] > i[0]))

    return sorted(i[3] for i in refs if not any(inside(i, j) for j in refs))


class SlowDownProxy:
    """A loopback HTTP proxy in front of the gateway that answers every `every`-th request
    503 SlowDown (with Retry-After: 0) and forwards the others unchanged (Host included,
    so SigV4 signatures stay valid)."""

    def __init__(self, target, every=3):
        self.target = target.replace("http://", "")
        self.every = every
        self.count = 0
        self.refused = 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def handle_one(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                with proxy.lock:
                    proxy.count += 1
                    refuse = proxy.count % proxy.every == 0
                    if refuse:
                        proxy.refused += 1
                if refuse:
                    msg = (b"<?xml version=\"1.0\"?><Error><Code>SlowDown</Code>"
                           b"<Message>Please reduce your request rate.</Message></Error>")
                    self.send_response(503, "Slow Down")
                    self.send_header("Retry-After", "0")
                    self.send_header("Content-Length", str(len(msg)))
                    self.end_headers()
                    self.wfile.write(msg)
                    return
                c = http.client.HTTPConnection(proxy.target, timeout=30)
                c.putrequest(self.command, self.path, skip_host=True,
                             skip_accept_encoding=True)
                for k, v in self.headers.items():
                    c.putheader(k, v)
                c.endheaders(body)
                r = c.getresponse()
                data = r.read()
                self.send_response(r.status, r.reason)
                for k, v in r.getheaders():
                    if k.lower() not in ("transfer-encoding", "content-length", "connection"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                c.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_one

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


class S3Test(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="cja-s3-")
        self.s3 = s3client()
        self.bucket = "cja-" + new_key(10).lower()
        self.s3.create_bucket(Bucket=self.bucket)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def config(self, fc, name="a", prefix="prod/connect", endpoint=None, guids=(),
               archive=None, **kw):
        s3 = {"endpoint": endpoint or RGW["S3_ENDPOINT"], "bucket": self.bucket}
        if prefix:
            s3["prefix"] = prefix
        d = os.path.join(self.tmp, name)
        return write_config(d, fc.url, os.path.join(d, "state"), content=list(guids),
                            archive=dict(archive or {}, s3=s3), **kw)

    def assert_staging_empty(self, name="a"):
        """Nothing staged is left: only the lock and the search catalog's local part."""
        state = os.path.join(self.tmp, name, "state")
        left = []
        for root, dirs, files in os.walk(state):
            if root == state:
                files = [f for f in files if f not in (".lock", ".catalog-id")]
                dirs[:] = [d for d in dirs if d != ".catalog"]
            left += [os.path.join(root, f) for f in files]
            left += [os.path.join(root, d) for d in dirs]
        self.assertEqual(left, [], "staging left files or folders behind")
        cat = os.path.join(state, ".catalog")
        if os.path.isdir(cat):
            self.assertEqual([f for f in os.listdir(cat) if f != "open"
                              and not re.match(r"^L\d+-\d+-\d+\.cat$", f)], [],
                             "the catalog's staging left files behind")

    def check_catalog(self, prefix, names=("a",)):
        """The bucket's .catalog/<id>/ of each archiver holds exactly its live sealed files
        (none merged away), byte for byte; returns the number of sealed files."""
        keys = list_keys(self.s3, self.bucket, prefix + "/.catalog/")
        ids = {k.split("/")[-2] for k in keys}
        total = 0
        for name in names:
            state = os.path.join(self.tmp, name, "state")
            with open(os.path.join(state, ".catalog-id")) as f:
                cid = f.read().strip()
            local = live_sealed(os.listdir(os.path.join(state, ".catalog")))
            if local:
                ids.remove(cid)
            remote = sorted(k.split("/")[-1] for k in keys if k.split("/")[-2] == cid)
            self.assertEqual(remote, local)
            for n in local:
                body = self.s3.get_object(Bucket=self.bucket,
                                          Key="%s/.catalog/%s/%s" % (prefix, cid, n))["Body"]
                with open(os.path.join(state, ".catalog", n), "rb") as f:
                    self.assertEqual(body.read(), f.read(), n)
            total += len(local)
        self.assertEqual(ids, set(), "catalog folders of no archiver")
        return total

    def check_bucket(self, prefix, jobs_by_guid):
        """Every job's objects are there, byte for byte: the record names the log's size and
        SHA-256, the log is one valid gzip file (gzip -t) holding exactly the served log."""
        keys = list_keys(self.s3, self.bucket, prefix + "/")
        n_records = 0
        for guid, specs in jobs_by_guid.items():
            for spec in specs:
                job = spec["job"]
                day = job["start_time"][:10].replace("-", "/")
                base = "%s/%s/%s/%s" % (prefix, guid, day, job["key"])
                self.assertIn(base + ".json", keys)
                n_records += 1
                rec = self.s3.get_object(Bucket=self.bucket, Key=base + ".json")["Body"].read()
                import json
                rec = json.loads(rec)
                self.assertEqual(rec["job"]["key"], job["key"])
                if spec.get("download_status") == 404:
                    self.assertNotIn(base + ".log.gz", keys)
                    self.assertIsNone(rec["log_sha256"])
                    continue
                gz = self.s3.get_object(Bucket=self.bucket, Key=base + ".log.gz")["Body"].read()
                path = os.path.join(self.tmp, "check.log.gz")
                with open(path, "wb") as f:
                    f.write(gz)
                self.assertEqual(subprocess.run(["gzip", "-t", path]).returncode, 0)
                log = gzip.decompress(gz)
                self.assertEqual(log, served_log(spec))
                self.assertEqual(hashlib.sha256(log).hexdigest(), rec["log_sha256"])
                self.assertEqual(len(log), rec["log_bytes"])
                self.assertEqual(len(gz), rec["log_gzip_bytes"])
                if spec.get("error"):
                    self.assertIn(base + ".error.json", keys)
                    self.assertEqual(rec["error"], spec["error"])
        self.assertEqual(sum(1 for k in keys if k.endswith(".json")
                             and not k.endswith(".error.json")), n_records)

    # ----------------------------------------------------------------------------------

    def test_once_byte_exact_then_nothing_again(self):
        g = new_guid()
        jobs = [make_jobspec(new_key(), log_size=3000),
                make_jobspec(new_key(), error={"code": 1, "message": "boom"}),
                make_jobspec(new_key(), download_status=404),
                make_jobspec(new_key(), log_size=0),
                # 12 MiB of log, over the 6 MiB threshold once compressed? No: it
                # compresses to ~2.4 MiB, so a 1 MiB threshold sends it in parts.
                make_jobspec(new_key(), log_size=24 * MIB, start_time="2024-11-26T10:00:00Z")]
        with FakeConnect({g: jobs}) as fc:
            cfg = self.config(fc, guids=[g])
            env = s3_env(CJA_S3_MULTIPART_THRESHOLD=1 * MIB, CJA_S3_PART_SIZE=5 * MIB)
            t0 = time.monotonic()
            p = run_archiver(["-c", cfg, "--once"], env=env)
            t1 = time.monotonic() - t0
            self.assertEqual(p.returncode, 0, p.stderr)
            first = s3_summary(p.stderr)
            downloads = len(fc.requests(method="GET", path=None))
            p = run_archiver(["-c", cfg, "--once"], env=env)
            self.assertEqual(p.returncode, 0, p.stderr)
            again = s3_summary(p.stderr)
            self.assertIn("0 jobs archived", p.stderr)
            # Nothing fetched or written again: one HEAD per listed job.
            self.assertEqual(again["put"], 0)
            self.assertEqual(again["head"], len(jobs))
            dl = [r for r in fc.requests() if r["path"].endswith("/download")]
            self.assertEqual(len(dl), len(jobs))
            del downloads
        self.check_bucket("prod/connect", {g: jobs})
        self.assert_staging_empty()
        # The big log went up in parts (ETag "...-N") and no upload is left open.
        big = "prod/connect/%s/2024/11/26/%s.log.gz" % (g, jobs[4]["job"]["key"])
        self.assertRegex(self.s3.head_object(Bucket=self.bucket, Key=big)["ETag"], r"-\d+\"$")
        self.assertEqual(self.s3.list_multipart_uploads(Bucket=self.bucket).get("Uploads", []),
                         [])
        print("\nonce: %d jobs in %.2f s; requests %s" % (len(jobs), t1, first),
              file=sys.stderr)

    def test_catalog_sealed_files_go_to_the_bucket(self):
        """With the archive in S3 the catalog is written in the local folder and each sealed
        file copied to <prefix>/.catalog/<id>/; merged files leave the bucket too."""
        g = new_guid()
        env = s3_env(CJA_CATALOG_SEAL_SECONDS=0, CJA_CATALOG_SEAL_JOBS=1000)
        jobs = []
        with FakeConnect({g: []}) as fc:
            cfg = self.config(fc, guids=[g])
            # Ten runs of two jobs: ten sealed segments, eight of them merged into one.
            for i in range(10):
                for _ in range(2):
                    jobs.append(make_jobspec(new_key(), log_size=4000))
                    fc.add_job(g, jobs[-1])
                p = run_archiver(["-c", cfg, "--once"], env=env)
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertNotIn("cannot copy the search catalog", p.stderr)
        self.check_bucket("prod/connect", {g: jobs})
        self.assertEqual(self.check_catalog("prod/connect"), 3)  # L1-1-8, L0-9-9, L0-10-10
        self.assert_staging_empty()

    def test_catalog_sealed_at_the_end_of_a_run(self):
        """A run's jobs are in the bucket's catalog when it ends, though they are fewer than
        a segment and younger than the time bound: the open segment is sealed at exit."""
        g = new_guid()
        jobs = [make_jobspec(new_key(), log_size=3000) for _ in range(3)]
        with FakeConnect({g: jobs}) as fc:
            cfg = self.config(fc, guids=[g])
            p = run_archiver(["-c", cfg, "--once"], env=s3_env())
            self.assertEqual(p.returncode, 0, p.stderr)
            p = run_archiver(["-c", cfg, "--once"], env=s3_env())  # nothing new: no file
            self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(self.check_catalog("prod/connect"), 1)

    def test_kill_9_mid_upload_then_restart(self):
        g = new_guid()
        small = [make_jobspec(new_key(), log_size=2000) for _ in range(5)]
        big = make_jobspec(new_key(), log_size=80 * MIB, start_time="2024-11-27T10:00:00Z")
        with FakeConnect({g: small}) as fc:
            cfg = self.config(fc, guids=[g])
            env = s3_env(CJA_S3_MULTIPART_THRESHOLD=1 * MIB, CJA_S3_PART_SIZE=5 * MIB,
                         CJA_S3_ABANDONED_SECONDS=1)
            p = run_archiver(["-c", cfg, "--once"], env=env)
            self.assertEqual(p.returncode, 0, p.stderr)
            fc.add_job(g, big)
            proc = start_archiver(["-c", cfg], env=env)
            try:
                # Killed while its parts go up: a multipart upload is open.
                wait_for(lambda: self.s3.list_multipart_uploads(Bucket=self.bucket)
                         .get("Uploads"), timeout=60, interval=0.02,
                         message="a multipart upload in flight")
            finally:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
            key = "prod/connect/%s/2024/11/27/%s" % (g, big["job"]["key"])
            keys = list_keys(self.s3, self.bucket, "prod/connect/")
            self.assertNotIn(key + ".json", keys)
            self.assertNotIn(key + ".log.gz", keys)
            time.sleep(1.1)
            fc.clear_requests()
            p = run_archiver(["-c", cfg, "--once"], env=env)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertRegex(p.stderr, r"aborted [1-9]\d* multipart uploads abandoned")
            self.assertRegex(p.stderr, r"removed [1-9]\d* temporary files")
            dl = [r["path"] for r in fc.requests() if r["path"].endswith("/download")]
            self.assertEqual(dl, ["/__api__/v1/content/%s/jobs/%s/download"
                                  % (g, big["job"]["key"])])
        self.check_bucket("prod/connect", {g: small + [big]})
        self.assertEqual(self.s3.list_multipart_uploads(Bucket=self.bucket).get("Uploads", []),
                         [])
        self.assert_staging_empty()

    def test_two_archivers_one_bucket_each_job_once(self):
        guids = [new_guid() for _ in range(3)]
        content = {g: [make_jobspec(new_key(), log_size=5000) for _ in range(20)]
                   for g in guids}
        with FakeConnect(content) as fc:
            cfgs = [self.config(fc, name=n, guids=guids) for n in ("a", "b")]
            procs = [start_archiver(["-c", c], env=s3_env(CJA_CATALOG_SEAL_SECONDS=0))
                     for c in cfgs]
            try:
                wait_for(lambda: len([k for k in list_keys(self.s3, self.bucket, "prod/")
                                      if k.endswith(".json") and ".error" not in k]) >= 60,
                         timeout=60, message="60 records")
                time.sleep(1.5)  # both poll again at least once
            finally:
                for p in procs:
                    stop_process(p)
            errs = [p.read_stderr() for p in procs]
        archived = sum(len(re.findall(r"archived in \d{4}/", e)) for e in errs)
        elsewhere = sum(len(re.findall(r"already archived in .* by another archiver", e))
                        for e in errs)
        puts = [s3_summary(e) for e in errs]
        # Each job has exactly one record, written once: the loser's conditional PUT is
        # refused (412) and it takes the job as archived.
        self.assertEqual(archived, 60, errs)
        self.assertEqual(archived + elsewhere,
                         sum(len(re.findall(r"job=\S+: (archived|already archived) in", e))
                             for e in errs))
        # The loser found the record before its commit (one HEAD) or had its conditional PUT
        # refused (412); it never rewrote a record: every record names the bytes it sits with
        # (check_bucket), and each archiver said "archived" only for jobs it wrote.
        self.assertEqual(sum(s["elsewhere"] for s in puts), elsewhere)
        for e in errs:
            self.assertNotRegex(e, r"<[34]>")
        self.check_bucket("prod/connect", content)
        self.assertGreaterEqual(self.check_catalog("prod/connect", ("a", "b")), 2)
        print("\ntwo archivers: %d archived, %d found archived by the other; %s"
              % (archived, elsewhere, puts), file=sys.stderr)

    def test_store_stopped_and_started_during_a_run(self):
        """The gateway goes away while the service archives (connections refused, uploads
        cut) and comes back: every job ends archived exactly once, byte for byte, nothing
        half-written counts as archived, and the service neither dies nor floods its log."""
        g = new_guid()
        first = [make_jobspec(new_key(), log_size=200000) for _ in range(10)]
        later = [make_jobspec(new_key(), log_size=200000) for _ in range(20)]
        with FakeConnect({g: first}) as fc:
            cfg = self.config(fc, guids=[g], server__timeout_seconds=3,
                              poll={"interval_seconds": 1, "max_interval_seconds": 1})
            proc = start_archiver(["-c", cfg], env=s3_env(CJA_CATALOG_SEAL_SECONDS=0))
            gw = None
            try:
                wait_for(lambda: len([k for k in list_keys(self.s3, self.bucket, "prod/")
                                      if k.endswith(".json") and ".error" not in k]) >= 10,
                         timeout=60, message="the first 10 records")
                argv = gateway_stop()
                for spec in later:
                    fc.add_job(g, spec)
                # The service polls, downloads and fails to upload for a while.
                wait_for(lambda: len([r for r in fc.requests()
                                      if r["path"].endswith("/download")]) >= 15,
                         timeout=60, message="downloads while the store is down")
                # Long enough for a batch's requests to outlive their retries.
                wait_for(lambda: "cannot commit" in proc.read_stderr()
                         or "cannot archive" in proc.read_stderr(), timeout=60,
                         message="a commit that failed while the store was down")
                self.assertIsNone(proc.poll(), "the service died while the store was down")
                gw = gateway_start(argv)
                wait_for(lambda: len([k for k in list_keys(self.s3, self.bucket, "prod/")
                                      if k.endswith(".json") and ".error" not in k]) >= 30,
                         timeout=120, message="all 30 records after the store came back")
                time.sleep(1.5)
            finally:
                if gw is None and "argv" in locals():
                    gateway_start(argv)
                stop_process(proc)
            err = proc.read_stderr()
        self.check_bucket("prod/connect", {g: first + later})
        archived = re.findall(r"job=(\S+): archived in \d{4}/", err)
        self.assertEqual(sorted(archived), sorted(s["job"]["key"] for s in first + later), err)
        self.assertRegex(err, r"cannot (commit|archive)")
        self.assertEqual(len(re.findall(r"the S3 store at \S+ is failing or slow", err)), 1, err)
        self.assertRegex(err, r"the S3 store at \S+ answers again")
        # Said, not flooded: a few lines a second while the store was down.
        self.assertLess(len(err.splitlines()), 400, err[-3000:])
        self.assert_staging_empty()
        self.check_catalog("prod/connect")
        print("\nstore stopped and started: %d log lines; %s"
              % (len(err.splitlines()), s3_summary(err)), file=sys.stderr)

    def test_wrong_credentials(self):
        with FakeConnect({}) as fc:
            cfg = self.config(fc, guids=[new_guid()])
            env = s3_env(AWS_SECRET_ACCESS_KEY="wrong" + RGW["AWS_SECRET_ACCESS_KEY"][5:])
            p = run_archiver(["-c", cfg, "--check-config"], env=env)
            self.assertEqual(p.returncode, 78, p.stderr)
            self.assertIn("S3 refuses the credentials for bucket %s" % self.bucket, p.stderr)
            self.assertIn("SignatureDoesNotMatch", p.stderr)
            self.assertNotIn(env["AWS_SECRET_ACCESS_KEY"], p.stderr + p.stdout)
            # The service exits 78 at once (RestartPreventExitStatus=78: no restart loop).
            proc = start_archiver(["-c", cfg], env=env)
            self.assertEqual(proc.wait(timeout=30), 78)
            self.assertIn("cannot open the archive in S3: S3 refuses", proc.read_stderr())
            env = s3_env(AWS_ACCESS_KEY_ID="NOSUCHKEY0000000000")
            p = run_archiver(["-c", cfg, "--once"], env=env)
            self.assertEqual(p.returncode, 78, p.stderr)
            self.assertIn("InvalidAccessKeyId", p.stderr)
            # A bucket that does not exist: 78 as well.
            self.bucket = "cja-missing-" + new_key(6).lower()
            cfg = self.config(fc, name="c", guids=[new_guid()])
            p = run_archiver(["-c", cfg, "--check-config"], env=s3_env())
            self.assertEqual(p.returncode, 78, p.stderr)
            self.assertIn("S3 bucket %s does not exist" % self.bucket, p.stderr)
            p = run_archiver(["-c", cfg, "--check-config"],
                             env={"AWS_SECRET_ACCESS_KEY": None, "AWS_ACCESS_KEY_ID": None})
            self.assertEqual(p.returncode, 78)
            self.assertIn("no S3 credentials found", p.stderr)

    def test_slowdown_storm_is_retried(self):
        g = new_guid()
        jobs = [make_jobspec(new_key(), log_size=4000, error={"code": 2, "message": "x"})
                for _ in range(10)]
        with FakeConnect({g: jobs}) as fc, SlowDownProxy(RGW["S3_ENDPOINT"], every=3) as px:
            cfg = self.config(fc, guids=[g], endpoint=px.url)
            p = run_archiver(["-c", cfg, "--once"], env=s3_env())
            self.assertEqual(p.returncode, 0, p.stderr)
            s = s3_summary(p.stderr)
            self.assertGreater(px.refused, 5)
            self.assertGreaterEqual(s["retries"], px.refused)
        self.check_bucket("prod/connect", {g: jobs})
        print("\nslowdown: %d of %d requests refused 503, all retried: %s"
              % (px.refused, px.count, s), file=sys.stderr)

    def test_retention_removes_old_days_by_prefix(self):
        g = new_guid()
        now = time.gmtime()
        recent = make_jobspec(new_key(), start_time=time.strftime("%Y-%m-%dT08:00:00Z", now))
        old = [make_jobspec(new_key(), start_time="2020-01-0%dT08:00:00Z" % d,
                            error={"code": 1, "message": "old"}) for d in (1, 2)]
        with FakeConnect({g: old + [recent]}) as fc:
            cfg = self.config(fc, guids=[g])
            p = run_archiver(["-c", cfg, "--once"], env=s3_env())
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(len([k for k in list_keys(self.s3, self.bucket, "prod/")
                                  if k.endswith(".json") and ".error" not in k]), 3)
            cfg = self.config(fc, guids=[g], archive={"retention_days": 30})
            p = run_archiver(["-c", cfg, "--once"], env=s3_env())
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("retention: removed 2 day folders", p.stderr)
        keys = list_keys(self.s3, self.bucket, "prod/")
        self.assertFalse([k for k in keys if "/2020/" in k], keys)
        self.check_bucket("prod/connect", {g: [recent]})


if __name__ == "__main__":
    unittest.main(verbosity=2)
