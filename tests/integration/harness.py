"""Integration-test helpers: the fake Connect server, configs, running the archiver,
reading the archive. Python 3 standard library only; plain unittest.

    from harness import (FakeConnect, write_config, run_archiver, start_archiver,
                         stop_process, read_archive, assert_no_temporaries, new_guid,
                         new_key, make_job, make_jobspec, wait_for)

    with FakeConnect({guid: [make_jobspec("k1"), ...]}) as fc:
        cfg = write_config(tmp, fc.url, archive_dir, content=[guid])
        proc = run_archiver(["--config", cfg, "--once"])

Environment: CJA_BINARY = the built connect-job-archiver (set by ctest);
CJA_TESTS_DIR = the tests/ folder holding fake_connect.py (else found beside this file);
CJA_KEEP_TMP=1 keeps the fake server's temporary folder.
"""

import base64
import gzip
import http.client
import json
import os
import random
import re
import shutil
import signal
import string
import subprocess
import sys
import tempfile
import time
import uuid

TESTS_DIR = os.environ.get("CJA_TESTS_DIR") or os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))
FAKE_CONNECT = os.path.join(TESTS_DIR, "fake_connect.py")
FIXTURES_DIR = os.path.join(TESTS_DIR, "fixtures")

if TESTS_DIR not in sys.path:
    sys.path.insert(0, TESTS_DIR)

from fake_connect import (generated_log_bytes, iter_generated_log,  # noqa: E402,F401
                          make_job, make_jobspec)

DEFAULT_API_KEY = "secret"

# The writer lock in the archive root (archive.h: ARCHIVE_LOCK_NAME); it holds the PID of
# the archiver that last took it. Not part of the archive's contents.
LOCK_FILE = ".lock"
# The search catalog (README "Searching the archive"): the archiver's own state, not jobs.
CATALOG_DIR = ".catalog"

# Variables that would change what the archiver does behind a test's back.
_SCRUBBED_ENV = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy",
                 "ALL_PROXY", "CONNECT_API_KEY", "CONNECT_SERVER", "CREDENTIALS_DIRECTORY",
                 "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS",
                 "LISTEN_PID", "CURL_CA_BUNDLE", "SSL_CERT_FILE")


def new_guid():
    """A fresh content GUID (UUID text form)."""
    return str(uuid.uuid4())


def new_key(n=16):
    """A fresh job key like Connect's: 16 ASCII letters and digits."""
    return "".join(random.choice(string.ascii_letters + string.digits) for _ in range(n))


def load_fixture(name):
    with open(os.path.join(FIXTURES_DIR, name), encoding="utf-8") as f:
        return json.load(f)


def wait_for(predicate, timeout=10.0, interval=0.05, message="condition"):
    """Poll predicate() until it returns a truthy value (returned); AssertionError on
    timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, message))
        time.sleep(interval)


# --------------------------------------------------------------------------------------
# Fake Connect server


class FakeConnect:
    """Runs tests/fake_connect.py as a subprocess on a free loopback port.

    FakeConnect(content=None, *, api_key="secret", faults=None, chunked=False,
                scenario=None, startup_timeout=10, verbose=False)

    content: {guid: [JOBSPEC, ...]} or {guid: {"jobs": [...], "status": 404, ...}}.
    scenario: a whole scenario dict instead (content/api_key/faults are then ignored).
    Attributes: url ("http://127.0.0.1:PORT", no trailing slash), api_url (url +
    "/__api__"), port, pid, api_key, dir (its temporary folder), request_log_path.
    """

    def __init__(self, content=None, *, api_key=DEFAULT_API_KEY, faults=None,
                 chunked=False, scenario=None, startup_timeout=10.0, verbose=False):
        if scenario is None:
            scenario = {"api_key": api_key, "chunked": chunked, "content": {},
                        "faults": list(faults or [])}
            for guid, c in (content or {}).items():
                scenario["content"][guid] = {"jobs": list(c)} if isinstance(c, list) else c
        self.scenario = scenario
        self.api_key = scenario.get("api_key", DEFAULT_API_KEY)
        self.startup_timeout = startup_timeout
        self.verbose = verbose
        self.proc = None
        self.dir = None
        self.port = None
        self.url = None

    # -- lifecycle
    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def start(self):
        self.dir = tempfile.mkdtemp(prefix="fake-connect-")
        self.scenario_path = os.path.join(self.dir, "scenario.json")
        self.port_file = os.path.join(self.dir, "port")
        self.request_log_path = os.path.join(self.dir, "requests.jsonl")
        self.stderr_path = os.path.join(self.dir, "stderr.txt")
        with open(self.scenario_path, "w", encoding="utf-8") as f:
            json.dump(self.scenario, f)
        cmd = [sys.executable, FAKE_CONNECT, "--scenario", self.scenario_path,
               "--host", "127.0.0.1", "--port", "0", "--port-file", self.port_file,
               "--request-log", self.request_log_path, "--quiet"]
        if self.verbose:
            cmd.append("--verbose")
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self._stderr)
        deadline = time.monotonic() + self.startup_timeout
        while not os.path.exists(self.port_file):
            if self.proc.poll() is not None:
                err = self.server_stderr()
                self.stop()
                raise RuntimeError("fake_connect.py exited with %s: %s"
                                   % (self.proc.returncode, err))
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("fake_connect.py did not start within %.0fs"
                                   % self.startup_timeout)
            time.sleep(0.02)
        with open(self.port_file) as f:
            self.port = int(f.read().strip())
        self.url = "http://127.0.0.1:%d" % self.port
        self.api_url = self.url + "/__api__"
        self.pid = self.proc.pid
        return self

    def stop(self, timeout=5.0):
        """SIGTERM, then SIGKILL after `timeout`; returns the exit status."""
        rc = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            rc = self.proc.returncode
            self._stderr.close()
        if self.dir and not os.environ.get("CJA_KEEP_TMP"):
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
        return rc

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def server_stderr(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    # -- control API
    def control(self, method, path, body=None, timeout=10.0):
        """Calls /__control__/<path>; returns the decoded JSON answer. Raises
        RuntimeError on a non-2xx answer."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            data = None if body is None else json.dumps(body).encode("utf-8")
            headers = {"Content-Type": "application/json"} if data is not None else {}
            conn.request(method, "/__control__/" + path.lstrip("/"), body=data,
                         headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
            out = json.loads(raw) if raw else None
            if resp.status // 100 != 2:
                raise RuntimeError("control %s %s -> %d %s" % (method, path, resp.status,
                                                                raw[:500]))
            return out
        finally:
            conn.close()

    def health(self):
        return self.control("GET", "health")

    def add_job(self, guid, jobspec):
        """Adds (or replaces, same key) a job; JOBSPEC or a bare Job object. Returns key."""
        return self.control("POST", "jobs/" + guid, jobspec)["key"]

    def update_job(self, guid, key, fields=None, **kw):
        """Merges Job fields, e.g. update_job(g, k, status=2). A dict with a "job" member
        updates spec-level fields too (log, error, download_status, ...). Returns the job."""
        body = dict(fields or {})
        body.update(kw)
        return self.control("PUT", "jobs/%s/%s" % (guid, key), body)["job"]

    def delete_job(self, guid, key):
        self.control("DELETE", "jobs/%s/%s" % (guid, key))

    def set_content(self, guid, **fields):
        """e.g. set_content(g, status=404) or status=None to restore; or any content key
        of the scenario (title, owner, tags, app_mode, app_role, listed)."""
        self.control("PUT", "content/" + guid, fields)

    def delete_content(self, guid):
        """The item is deleted on the server: every endpoint of it answers 404 code 4."""
        self.control("DELETE", "content/" + guid)

    def set_tags(self, tags):
        self.control("PUT", "tags", tags)

    def set_api_key(self, key):
        """The key the server accepts from now on (None: any): the old one is revoked."""
        self.control("PUT", "api_key", key)
        self.api_key = key

    def set_user(self, user):
        """The key's user for GET /v1/user (None: the endpoint does not exist)."""
        self.control("PUT", "user", user)

    def add_faults(self, *faults):
        """add_faults(FAULT, ...) or add_faults([FAULT, ...]); returns the fault ids."""
        items = []
        for f in faults:
            items.extend(f if isinstance(f, list) else [f])
        return self.control("POST", "faults", items)["ids"]

    def add_fault(self, **fault):
        return self.add_faults(fault)[0]

    def faults(self):
        return self.control("GET", "faults")

    def clear_faults(self):
        self.control("DELETE", "faults")

    def requests(self, path=None, method=None, everything=False):
        """Every jobs API request served so far, oldest first; optionally only those whose
        path matches the regex `path` (re.search) and method. The content API requests
        (discovery's listings, a configured item's name: paths without "/jobs") are left
        out unless everything=True."""
        reqs = self.control("GET", "requests")
        if not everything:
            reqs = [r for r in reqs if "/jobs" in r["path"] or not r["path"].startswith("/__api__/v1/")]
        if path is not None:
            reqs = [r for r in reqs if re.search(path, r["path"])]
        if method is not None:
            reqs = [r for r in reqs if r["method"] == method]
        return reqs

    def clear_requests(self):
        self.control("DELETE", "requests")

    # -- plain API client (for tests of the fake itself)
    def get(self, path, key=None, headers=None, timeout=10.0):
        """GET <url><path> with "Authorization: Key <api_key>" (key=False: none).
        Returns (status, headers dict (lower-case names), body bytes)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            h = dict(headers or {})
            if key is not False:
                h["Authorization"] = "Key " + (self.api_key if key is None else key)
            conn.request("GET", path, headers=h)
            resp = conn.getresponse()
            body = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
        finally:
            conn.close()


# --------------------------------------------------------------------------------------
# Config


def _yaml_scalar(v):
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return json.dumps(str(v))  # a JSON string is a valid YAML double-quoted scalar


def _yaml(obj, indent=0):
    pad = " " * indent
    lines = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, (dict, list)) and v:
                lines.append("%s%s:" % (pad, k))
                lines.extend(_yaml(v, indent + 2))
            elif isinstance(v, (dict, list)):
                lines.append("%s%s: %s" % (pad, k, "{}" if isinstance(v, dict) else "[]"))
            else:
                lines.append("%s%s: %s" % (pad, k, _yaml_scalar(v)))
    elif isinstance(obj, list):
        for item in obj:
            if isinstance(item, dict) and item:
                sub = _yaml(item, indent + 2)
                lines.append(pad + "- " + sub[0].lstrip())
                lines.extend(sub[1:])
            else:
                lines.append(pad + "- " + _yaml_scalar(item))
    return lines


def to_yaml(obj):
    """Minimal YAML emitter for dicts/lists/scalars (block style, quoted strings)."""
    return "\n".join(_yaml(obj)) + "\n"


def write_config(dir, url, archive_dir, content=(), *, api_key=DEFAULT_API_KEY,
                 api_key_env=None, filename="config.yaml", **overrides):
    """Writes <dir>/<filename> and returns its path.

    content: GUID strings, (guid, name) tuples or {"guid":..., "name":...} dicts;
      None omits the content key.
    api_key: written to <dir>/api-key (mode 0600) and named by server.api_key_file;
      None = no key in the config at all (test CONNECT_API_KEY etc. via env).
    api_key_env="NAME": write server.api_key_env: NAME instead of a key file (pass the
      key to run_archiver(env={NAME: key})).
    overrides: SECTION__KEY=value (e.g. server__timeout_seconds=5,
      archive__compression_level=1, poll__interval_seconds=2), SECTION={...} merged into
      that section, or a top-level key (metrics_file=path, anything_else=... to test
      rejection). A value of None removes the key. url=None omits server.url.
    Defaults written: server.url, server.api_key_file, server.timeout_seconds: 10,
    archive.directory, poll.interval_seconds: 1.
    """
    os.makedirs(dir, exist_ok=True)
    cfg = {"server": {}, "archive": {"directory": archive_dir},
           "poll": {"interval_seconds": 1}}
    if url is not None:
        cfg["server"]["url"] = url
    if api_key_env is not None:
        cfg["server"]["api_key_env"] = api_key_env
    elif api_key is not None:
        key_path = os.path.join(dir, "api-key")
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(api_key + "\n")
        os.chmod(key_path, 0o600)
        cfg["server"]["api_key_file"] = key_path
    cfg["server"]["timeout_seconds"] = 10

    items = []
    for c in content or ():
        if isinstance(c, tuple):
            items.append({"guid": c[0], "name": c[1]})
        else:
            items.append(c)
    for k, v in overrides.items():
        if "__" in k:
            section, sub = k.split("__", 1)
            sec = cfg.setdefault(section, {})
            if v is None:
                sec.pop(sub, None)
            else:
                sec[sub] = v
        elif isinstance(v, dict) and isinstance(cfg.get(k), dict):
            for sk, sv in v.items():
                if sv is None:
                    cfg[k].pop(sk, None)
                else:
                    cfg[k][sk] = sv
        elif v is None:
            cfg.pop(k, None)
        else:
            cfg[k] = v
    if content is not None:
        cfg["content"] = items
    for sec in ("server", "archive", "poll"):
        if sec in cfg and cfg[sec] == {}:
            del cfg[sec]
    path = os.path.join(dir, filename)
    with open(path, "w", encoding="utf-8") as f:
        f.write(to_yaml(cfg))
    return path


# --------------------------------------------------------------------------------------
# Running the archiver


def archiver_binary():
    b = os.environ.get("CJA_BINARY")
    if not b:
        raise RuntimeError("CJA_BINARY is not set (the built connect-job-archiver)")
    return b


def archiver_env(env=None):
    """os.environ without proxies, API-key and systemd variables, plus `env` (a value of
    None removes that variable)."""
    e = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
    e["NO_PROXY"] = e["no_proxy"] = "*"
    for k, v in (env or {}).items():
        if v is None:
            e.pop(k, None)
        else:
            e[k] = v
    return e


def run_archiver(args, env=None, timeout=60, cwd=None, input=None):
    """Runs CJA_BINARY with args to completion; returns subprocess.CompletedProcess with
    text stdout/stderr (undecodable bytes replaced). Raises subprocess.TimeoutExpired
    (after killing it) when it runs longer than `timeout` seconds."""
    return subprocess.run([archiver_binary()] + list(args), env=archiver_env(env),
                          cwd=cwd, input=input, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout, text=True,
                          errors="replace")


def start_program(binary, args, env=None, cwd=None, output_dir=None):
    """Starts `binary` in the background. stdout/stderr go to files (p.stdout_path,
    p.stderr_path) so a chatty process never blocks on a pipe; read them with
    p.read_stdout() and p.read_stderr(). Returns the subprocess.Popen."""
    out_dir = output_dir or tempfile.mkdtemp(prefix="cja-run-")
    so = open(os.path.join(out_dir, "stdout.txt"), "wb")
    se = open(os.path.join(out_dir, "stderr.txt"), "wb")
    p = subprocess.Popen([binary] + list(args), env=archiver_env(env), cwd=cwd,
                         stdin=subprocess.DEVNULL, stdout=so, stderr=se)
    so.close()
    se.close()
    p.stdout_path = so.name
    p.stderr_path = se.name

    def read(path):
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    p.read_stdout = lambda: read(p.stdout_path)
    p.read_stderr = lambda: read(p.stderr_path)
    return p


def start_archiver(args, env=None, cwd=None, output_dir=None):
    """Starts CJA_BINARY in the background (daemon mode tests): see start_program."""
    return start_program(archiver_binary(), args, env, cwd, output_dir)


def stop_process(p, sig=signal.SIGTERM, timeout=10.0):
    """Sends `sig`, waits up to `timeout`, SIGKILLs if still running (then raises
    AssertionError). Returns the exit status."""
    if p.poll() is None:
        p.send_signal(sig)
        try:
            return p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise AssertionError("process %d did not exit within %.0fs of signal %d"
                                 % (p.pid, timeout, sig))
    return p.returncode


# --------------------------------------------------------------------------------------
# Reading the archive

_DATE_DIR = re.compile(r"^[^/]+/\d{4}/\d\d/\d\d/[^/]+$")
_FINAL_NAME = re.compile(r"^[^./][^/]*?\.(log\.gz|error\.json|json)$")
_TEMP_HINT = re.compile(r"(^\.|\.tmp|tmp\.|\.part|\.partial|~$|\.swp$|\.new$)", re.I)


class Archive(dict):
    """dict: relative path (POSIX) -> raw bytes of every regular file, plus:
    .logs    {relpath of x.log.gz: decompressed bytes}
    .records {relpath of x.json: parsed object}   (job records, not .error.json)
    .errors  {relpath of x.error.json: parsed object}
    .jobs    {job key: {"dir", "record", "log" (bytes or None), "error", "files"}}
    """

    def __init__(self):
        super().__init__()
        self.logs = {}
        self.records = {}
        self.errors = {}
        self.jobs = {}


def read_archive(archive_dir):
    """Reads the whole archive (see Archive). A .log.gz that does not decompress or a
    .json that does not parse raises AssertionError naming the file."""
    arch = Archive()
    if not os.path.isdir(archive_dir):
        return arch
    for root, dirs, files in os.walk(archive_dir):
        if root == archive_dir and CATALOG_DIR in dirs:
            dirs.remove(CATALOG_DIR)
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            if not os.path.isfile(full) or os.path.islink(full):
                continue
            rel = os.path.relpath(full, archive_dir).replace(os.sep, "/")
            if rel == LOCK_FILE:
                continue
            try:
                with open(full, "rb") as f:
                    data = f.read()
            except FileNotFoundError:
                # A running daemon renames or removes its temporaries between the listing
                # and the open; a final name never goes away.
                if name.startswith("."):
                    continue
                raise
            arch[rel] = data
            if name.endswith(".log.gz"):
                try:
                    arch.logs[rel] = gzip.decompress(data)
                except (OSError, EOFError, ValueError) as e:
                    raise AssertionError("%s: not a valid gzip file: %s" % (rel, e))
            elif name.endswith(".json"):
                try:
                    obj = json.loads(data.decode("utf-8"))
                except ValueError as e:
                    raise AssertionError("%s: not valid JSON: %s" % (rel, e))
                if name.endswith(".error.json"):
                    arch.errors[rel] = obj
                else:
                    arch.records[rel] = obj
    for rel in list(arch.keys()):
        d, name = rel.rsplit("/", 1) if "/" in rel else ("", rel)
        if not _DATE_DIR.match(rel) or name.startswith("."):
            continue
        for suffix in (".log.gz", ".error.json", ".json"):
            if name.endswith(suffix):
                key = name[:-len(suffix)]
                break
        else:
            continue
        j = arch.jobs.setdefault(key, {"dir": d, "record": None, "log": None,
                                       "error": None, "files": []})
        j["files"].append(rel)
        if suffix == ".log.gz":
            j["log"] = arch.logs.get(rel)
        elif suffix == ".error.json":
            j["error"] = arch.errors.get(rel)
        else:
            j["record"] = arch.records.get(rel)
    return arch


def served_log(spec):
    """The exact bytes the fake server sends as the log of JOBSPEC spec."""
    if "log" in spec:
        return spec["log"].encode("utf-8")
    if "log_b64" in spec:
        return base64.b64decode(spec["log_b64"])
    return generated_log_bytes(spec["job"]["key"], spec.get("log_size", 0),
                               spec["job"]["start_time"])


class JobScenario:
    """The jobs a crash test gives the fake server, spread over n_items content items in
    turn, and what the archive must hold for them. Subclasses make the jobs (add())."""

    def __init__(self, rng, n_items):
        self.rng = rng
        self.guids = [new_guid() for _ in range(n_items)]
        self.specs = {}    # key -> JOBSPEC
        self.guid_of = {}  # key -> guid
        self.seq = 0
        self._served = {}

    def add(self, spec):
        """Files spec under the next item; returns (guid, spec)."""
        key = spec["job"]["key"]
        guid = self.guids[self.seq % len(self.guids)]
        self.specs[key] = spec
        self.guid_of[key] = guid
        return guid, spec

    def content(self):
        out = {g: [] for g in self.guids}
        for key, spec in self.specs.items():
            out[self.guid_of[key]].append(spec)
        return out

    def due(self):
        return {k for k, s in self.specs.items() if s["job"]["status"] in (2, 3)}

    def has_log(self, key):
        return self.specs[key].get("download_status") != 404

    def served(self, key):
        if key not in self._served:
            self._served[key] = served_log(self.specs[key])
        return self._served[key]


def find_temporaries(archive_dir, allow=()):
    """Relative paths of files that look like leftover temporaries: a hidden or
    temp-looking name anywhere, or a file in a <guid>/<YYYY>/<MM>/<DD>/ folder that is
    not <key>.log.gz / <key>.error.json / <key>.json. `allow`: regexes (re.search on the
    relative path) of files to ignore, e.g. the archiver's own state. The lock file is never
    reported."""
    bad = []
    for root, dirs, files in os.walk(archive_dir):
        if root == archive_dir and CATALOG_DIR in dirs:
            dirs.remove(CATALOG_DIR)
        for name in files + [d for d in dirs if _TEMP_HINT.search(d)]:
            rel = os.path.relpath(os.path.join(root, name), archive_dir).replace(os.sep, "/")
            if rel == LOCK_FILE or any(re.search(a, rel) for a in allow):
                continue
            if _TEMP_HINT.search(name):
                bad.append(rel)
            elif _DATE_DIR.match(rel) and not _FINAL_NAME.match(name):
                bad.append(rel)
            elif rel.count("/") > 4:
                bad.append(rel)
    return sorted(bad)


def lock_holder(archive_dir):
    """The PID written in the archive's lock file, or None (no file, empty, not a number).
    Note that a PID stays there after its process is gone: this is "who took it last"."""
    try:
        with open(os.path.join(archive_dir, LOCK_FILE), encoding="ascii") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def assert_no_temporaries(archive_dir, allow=()):
    """AssertionError listing leftover temporaries (see find_temporaries)."""
    bad = find_temporaries(archive_dir, allow)
    if bad:
        raise AssertionError("leftover temporaries in %s: %s" % (archive_dir, ", ".join(bad)))


# --------------------------------------------------------------------------------------
# Running connect-jobs, the operator's command


def jobs_binary():
    """CJA_JOBS_BINARY (set by ctest), else connect-jobs beside CJA_BINARY."""
    b = os.environ.get("CJA_JOBS_BINARY")
    if b:
        return b
    return os.path.join(os.path.dirname(archiver_binary()), "connect-jobs")


def run_jobs(args, env=None, timeout=60, cwd=None, input=None, text=True):
    """Runs connect-jobs with args to completion (environment as archiver_env: no key or
    server variables unless given); returns subprocess.CompletedProcess."""
    kw = {"text": True, "errors": "replace"} if text else {}
    return subprocess.run([jobs_binary()] + list(args), env=archiver_env(env), cwd=cwd,
                          input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout, **kw)


def start_jobs(args, env=None, cwd=None, output_dir=None):
    """Starts connect-jobs in the background (tail): see start_program."""
    return start_program(jobs_binary(), args, env, cwd, output_dir)


def binary_has_asan(path):
    """True when the binary is built with AddressSanitizer (its memory use is not the
    program's own)."""
    with open(path, "rb") as f:
        return b"__asan_init" in f.read()


def run_jobs_pty(args, env=None, timeout=60):
    """Runs connect-jobs with args, its standard output a terminal (a pty in raw mode, so
    the bytes are the program's); returns (exit status, stdout bytes, stderr bytes)."""
    import pty
    import select
    import tty
    master, slave = pty.openpty()
    tty.setraw(slave)
    try:
        p = subprocess.Popen([jobs_binary()] + list(args), env=archiver_env(env),
                             stdin=subprocess.DEVNULL, stdout=slave, stderr=subprocess.PIPE)
    finally:
        os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([master], [], [], 0.5)
        if not r:
            if p.poll() is not None:
                break
            continue
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the last writer closed the pty
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    err = p.stderr.read()
    p.stderr.close()
    return p.wait(timeout=timeout), out, err
