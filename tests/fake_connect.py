#!/usr/bin/env python3
"""A fake Posit Connect server: the content-jobs API, for tests and the demo.

Python 3 standard library only (runs on a bare Debian 12, python3 3.11).

    fake_connect.py --scenario FILE.json [--host 127.0.0.1] [--port 0]
                    [--port-file PATH] [--request-log PATH] [--quiet] [--verbose]

Scenario (JSON):

    {"api_key": "secret",                 # null: accept any (or no) Authorization
     "chunked": false,                    # default framing of every /download
     "faults": [FAULT, ...],              # optional, see below
     "content": {"<guid>": {"status": 404,            # optional: every endpoint of this
                                                       #   content answers a Connect error
                            "name": "label",          # optional: Connect's name (null
                                                       #   when absent, unlike Connect)
                            "title": "Title",         # optional: Connect's title
                            "app_mode": "shiny",      # optional (default "shiny")
                            "owner": "alice",         # optional owner username ("publisher1")
                            "tags": ["7", ...],       # optional tag ids (see "tags")
                            "app_role": "owner",      # the key's role (default "owner")
                            "listed": true,           # false: not in GET /v1/content
                            "jobs": [JOBSPEC, ...]}},
     "tags": [{"id": "3", "name": "Finance", "parent_id": null}, ...],  # GET /v1/tags
     "user": {"username": "archiver", "user_role": "administrator"},  # GET /v1/user;
                                          #   null: the endpoint answers 404 (an old server)
     "gzip": false}                       # JSON bodies gzip-encoded when the client asks

    JOBSPEC = {"job": {...Connect Job object...},    # served exactly as given
               "log": "text" | "log_b64": "..." | "log_size": N,
               "log_repeat": N,                      # optional: log/log_b64 served N times
               "error": {LoggedError} | null,        # absent = null -> /error answers 204
               "download_status": 404,               # optional: /download answers this error
               "error_status": 404,                  # optional: /error answers this error
               "job_status": 404,                    # optional: /jobs/{key} answers this error
               "chunked": true}                      # optional: /download uses chunked framing

    With none of log/log_b64/log_size the log is a generated one of DEFAULT_LOG_SIZE bytes.
    A generated log ("log_size") is deterministic (seeded by the key, timestamps from the
    job's start_time as first seen) and produced on the fly, 64 KiB at a time.

API (under /__api__, header "Authorization: Key <api_key>" required, exactly):
    GET /v1/user                                the key's user ("user" above)
    GET /v1/tags                                bare array of Tag objects ("tags")
    GET /v1/content[?include=tags,owner]        bare array of Content objects (the listed
                                                ones; "tags"/"owner" only when included)
    GET /v1/content/{guid}                      one Content object
    GET /v1/content/{guid}/jobs                 bare JSON array of Job objects
    GET /v1/content/{guid}/jobs/{key}           one Job object
    GET /v1/content/{guid}/jobs/{key}/download  the log bytes (text/plain, attachment)
    GET /v1/content/{guid}/jobs/{key}/error     200 LoggedError JSON, or 204 empty body
    GET /v1/content/{guid}/jobs/{key}/log       LogEntries, ?maxLogLines=N (last N, default 5000)
    GET /v1/content/{guid}/jobs/{key}/tail      a live stream of LogEntry objects (see TAIL)
    DELETE /v1/content/{guid}/jobs/{key}        KillJobOrder for an active job (it is finalized
                                                "kill_delay" s later), else 409 code 163
    unknown GUID/key: 404 {"code":4,...}; unknown route: 404 text/plain "404 page not found";
    bad/missing key: 401 {"code":24,...}.

Control API (no auth, JSON bodies, never recorded nor faulted):
    POST   /__control__/jobs/{guid}          body JOBSPEC (or a bare Job object): add/replace
    PUT    /__control__/jobs/{guid}/{key}    body: Job fields to merge, e.g. {"status": 2};
                                             or {"job": {...fields}, "log": ..., ...} to
                                             update spec-level fields as well
    DELETE /__control__/jobs/{guid}/{key}    remove the job (as if Connect swept it)
    PUT    /__control__/content/{guid}       body {"status": 404 | null, "name": ...} (any
                                             content key above): add or change an item
    DELETE /__control__/content/{guid}       delete the item (its endpoints answer 404 code 4)
    PUT    /__control__/tags                 body: the tag list
    PUT    /__control__/user                 body: the user (null: no /v1/user)
    PUT    /__control__/api_key              body: the key the server accepts from now on
                                             (a JSON string; null: any), e.g. a key revoked
    POST   /__control__/faults               body FAULT or [FAULT, ...]
    GET    /__control__/faults               active faults with "remaining"
    DELETE /__control__/faults
    GET    /__control__/requests             [{"method","path","status","auth_ok","fault",
                                               "fault_id","t","t_end","conn","body_bytes",
                                               "user_agent"}, ...]
    DELETE /__control__/requests
    GET    /__control__/health               {"ok": true, "port": N}
    POST   /__control__/jobs/{guid}/{key}/lines  body {"lines": ["text" | {"source", "data"}]}:
                                             appends to the job's log, timestamped now
    GET    /__control__/kills                [{"guid", "key", "t"}, ...] kill orders registered

TAIL: scenario keys (or JOBSPEC keys, which win) "tail_framing": "ndjson" (default) | "sse" |
    "concatenated"; "tail_replay": "all" (default: the log from its start) | N (the last N
    lines) | 0 (only what comes next); JOBSPEC "tail_status": 404 = the route does not exist
    (plain-text 404, an older server); scenario "tail": false = no /tail for any job;
    "kill_delay" (default 0.3 s). Every frame is written as two chunks; the stream closes
    when the job's status becomes 2 or 3 (or the job is deleted).

FAULT = {"path": REGEX (re.search on the request path, query excluded; default "."),
         "method": "GET" (optional), "times": N (default 1; -1 = forever),
         "skip": N (optional: let the first N matching requests through first),
         "kind": K, ...}
    "status"          answer "status" (default 503) with a Connect JSON error ("code",
                      "error" override); "retry_after": header value sent verbatim;
                      "body": raw text instead ("content_type", default text/plain)
    "reset"           real headers + "after_bytes" (default 0) body bytes, a pause of
                      "rst_delay" s (default 0.05, so the client sees what was sent),
                      then TCP RST (SO_LINGER 0); "before_headers": true = RST at once
    "close"           close the connection (FIN) without sending a response
    "truncate"        Content-Length of the full body, only "after_bytes" (default half), FIN
    "garbage"         200 application/json, body "body" (default '{"not": json')
    "slow"            sleep "delay" seconds (default 2), then answer normally
    "trickle"         send the body at "bytes_per_sec" (default 1024) bytes/s
    "chunked_broken"  chunked framing, "after_bytes" (default half) body bytes, then
                      "mode": "malformed" (default: a bad chunk-size line) or "close"
                      (FIN before the terminating 0-chunk)
    "stream"          a hostile body, generated as it is sent (chunked): "status" (default
                      200), "content_type" (default application/json), "head" text, then
                      "fill" (default "A") repeated until the body is "size" bytes
                      (default 500 MiB; -1 = never ends), then "end" text; instead of
                      the real answer (a /tail line that never ends, an SSE field without a
                      newline, a 500 MB job list, nesting a million deep)
    "gzip_bomb"       200 with "Content-Encoding: gzip" (never asked for) and a
                      Content-Length: one gzip member of "size" (default 1 GiB) bytes of
                      "byte" (default 0), about 1/1000 of that on the wire
"""

import argparse
import base64
import collections
import datetime
import gzip
import itertools
import json
import os
import random
import re
import signal
import socket
import struct
import sys
import threading
import time
import uuid
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

PIECE = 64 * 1024
DEFAULT_LOG_SIZE = 2048
DEFAULT_START_TIME = "2024-11-25T22:17:42Z"

NOT_FOUND_TEXT = b"404 page not found\n"

# Connect error code for an HTTP status, when a fault or a scenario asks for a status.
STATUS_CODES = {
    400: (3, "The requested object ID is invalid."),
    401: (24, "This API requires authentication. Please provide an API key."),
    403: (22, "You don't have permission to perform this operation."),
    404: (4, "The requested object does not exist."),
    409: (163, "The specified job cannot be terminated because it is not active"),
    429: (277, "Rate limit exceeded. Please try again later."),
    500: (1, "An internal failure occurred."),
    502: (1, "An internal failure occurred."),
    503: (1, "The service is temporarily unavailable."),
    504: (1, "An internal failure occurred."),
}

# What a scenario or the control API may set of a content item.
CONTENT_KEYS = ("status", "name", "title", "app_mode", "owner", "tags", "app_role", "listed")

FAULT_KINDS = ("status", "reset", "close", "truncate", "garbage", "slow", "trickle",
               "chunked_broken", "stream", "gzip_bomb")


def connect_error(code, message):
    return {"code": code, "error": message, "payload": None}


# --------------------------------------------------------------------------------------
# Job objects and generated logs


def _parse_time(value):
    """RFC 3339 -> epoch seconds (float); None if unparseable."""
    if not isinstance(value, str):
        return None
    s = value.strip()
    if s.endswith("Z") or s.endswith("z"):
        s = s[:-1] + "+00:00"
    m = re.match(r"^(.*T\d\d:\d\d:\d\d)(\.\d+)?([+-]\d\d:\d\d)?$", s)
    if not m:
        return None
    try:
        dt = datetime.datetime.fromisoformat(m.group(1) + (m.group(3) or "+00:00"))
    except ValueError:
        return None
    frac = float(m.group(2)) if m.group(2) else 0.0
    return dt.timestamp() + frac


def _fmt_time(epoch):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(epoch)))


def make_job(key, status=2, start_time=DEFAULT_START_TIME, **overrides):
    """A Connect v1 Job object with realistic defaults (string ids, explicit nulls).

    status 0 (active): end_time and exit_code null; 1/2: end_time = start + 2 min,
    exit_code 0; 3 (skipped): end_time/exit_code null, skip_reason set.
    Keyword overrides replace (or add) fields; pass end_time=None etc. to null them.
    """
    h = zlib.crc32(key.encode("utf-8"))
    start = _parse_time(start_time)
    job = {
        "id": str(40000000 + h % 1000000),
        "ppid": str(2000000 + h % 500000),
        "pid": str(2000000 + h % 500000 + 16),
        "key": key,
        "remote_id": None,
        "app_id": "52389",
        "variant_id": "0",
        "bundle_id": "127015",
        "start_time": start_time,
        "end_time": None,
        "last_heartbeat_time": start_time,
        "queued_time": None,
        "queue_name": None,
        "tag": "run_app",
        "exit_code": None,
        "status": status,
        "hostname": "connect-fake-01",
        "cluster": None,
        "image": None,
        "run_as": "rstudio-connect",
    }
    if status in (1, 2) and start is not None:
        job["end_time"] = _fmt_time(start + 120)
        job["last_heartbeat_time"] = _fmt_time(start + 115)
        job["exit_code"] = 0
    if status == 3:
        job["skip_reason"] = "A previous run of this schedule was still in progress."
    if "content_guid" in overrides and "content_id" not in overrides:
        job["content_id"] = job["app_id"]
    job.update(overrides)
    return job


def make_jobspec(key, status=2, start_time=DEFAULT_START_TIME, log=None, log_size=None,
                 error=None, chunked=None, download_status=None, error_status=None,
                 job_status=None, log_repeat=None, **job_overrides):
    """A JOBSPEC dict around make_job(key, status, start_time, **job_overrides).
    log: str or bytes (bytes go as log_b64), served log_repeat times; else a generated log of
    log_size bytes (default DEFAULT_LOG_SIZE, written explicitly into the spec). Spec-level
    options (chunked, download_status, error_status, job_status, log_repeat) are only set
    when given."""
    spec = {"job": make_job(key, status, start_time, **job_overrides), "error": error}
    for name, value in (("chunked", chunked), ("download_status", download_status),
                        ("error_status", error_status), ("job_status", job_status),
                        ("log_repeat", log_repeat)):
        if value is not None:
            spec[name] = value
    if log is not None:
        if isinstance(log, bytes):
            spec["log_b64"] = base64.b64encode(log).decode("ascii")
        else:
            spec["log"] = log
    else:
        spec["log_size"] = DEFAULT_LOG_SIZE if log_size is None else log_size
    return spec


_MESSAGES = [
    "[stdout] Listening on http://127.0.0.1:{port}",
    "[stderr] Listening on http://127.0.0.1:{port}",
    "[stderr] [rsc-session] Content GUID: {guid8}",
    "[stdout] GET /{path} HTTP/1.1 200 {n} - {ms}ms",
    "[stdout] POST /session/{hex}/dataobj/{path}?w=&nonce={hex} HTTP/1.1 200 {n}",
    "[stderr] Warning: Error in {fn}: object '{word}' not found",
    "[stderr]   {n}: {fn}",
    "[stderr] Warning in {fn}(...) : NAs introduced by coercion",
    "[stdout] Loading required package: {word}",
    "[stdout] INFO [{hms}] {word} refreshed {n} rows in {ms} ms",
    "[stderr] DEBUG {word}.{fn}: cache miss for key {hex}",
    "[stdout] [{n}] \"{word}\" \"{fn}\"",
    "[stderr] Attaching package: '{word}'",
    "[stderr] The following objects are masked from 'package:{word}': {fn}, {word}",
    "[stdout] |{bar}| {pct}%",
    "[stdout] processing file: {word}.Rmd",
    "[stderr] WARN  connection pool: {n} idle, {ms} ms wait",
    "[stdout] {word}: {n} observations of {pct} variables",
]
_WORDS = ["dplyr", "shiny", "ggplot2", "data", "sales", "region", "plumber", "readr",
          "tidyr", "httr", "jsonlite", "DBI", "odbc", "forecast", "leaflet", "plotly",
          "model", "input", "output", "session", "reactive", "observer", "widget"]
_FNS = ["renderPlot", "observeEvent", "reactive", "filter", "mutate", "summarise",
        "read_csv", "dbGetQuery", "withCallingHandlers", "tryCatch", "lapply", "do.call"]


def _log_base_ns(start_time):
    t = _parse_time(start_time) if start_time else None
    if t is None:
        t = _parse_time(DEFAULT_START_TIME)
    return int(t) * 1_000_000_000 + 386988748


def iter_generated_log(key, size, start_time=None, piece=PIECE):
    """Yield a deterministic, realistic Connect log of exactly `size` bytes in pieces of
    `piece` bytes (the last may be shorter). Seeded by `key`; never holds more than about
    two pieces in memory. The last byte is a newline."""
    if size <= 0:
        return
    rng = random.Random("fake-connect-log:" + key)
    guid8 = "%08x" % zlib.crc32(key.encode("utf-8"))
    header = [
        "[stdout] Running on host: connect-fake-01",
        "[stdout] Process ID: %d" % (2000000 + zlib.crc32(key.encode()) % 500000),
        "[stdout] Linux distribution: Debian GNU/Linux 12 (bookworm)",
        "[stdout] Running as user: uid=999(rstudio-connect) gid=999(rstudio-connect) "
        "groups=999(rstudio-connect)",
        "[stdout] Connect version: 2024.08.0",
        "[stdout] LANG: C.UTF-8",
        "[stdout] Working directory: /opt/rstudio-connect/mnt/app",
        "[stdout] Using R 4.4.1",
        "[stderr] [rsc-session] Content GUID: %s" % guid8,
        "[stderr] [rsc-session] Job Key: %s" % key,
        "[stdout] Shiny application starting ...",
    ]
    # A pool of messages and of time deltas; periods 1021 and 1019 are coprime, so the
    # (timestamp step, message) sequence only repeats after ~1M lines.
    msgs = []
    for _ in range(1021):
        tmpl = rng.choice(_MESSAGES)
        msgs.append(tmpl.format(
            port=rng.randint(30000, 45000), guid8=guid8,
            path=rng.choice(_WORDS) + "/" + rng.choice(_WORDS),
            n=rng.randint(1, 99999), ms=rng.randint(1, 4000),
            hex="%012x" % rng.getrandbits(48), fn=rng.choice(_FNS),
            word=rng.choice(_WORDS), hms="%02d:%02d:%02d" % (
                rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59)),
            bar="=" * rng.randint(0, 40), pct=rng.randint(0, 100)) + "\n")
    deltas = [int(rng.expovariate(1 / 3_000_000)) + 1000 for _ in range(1019)]

    t = _log_base_ns(start_time)
    state = {"sec": None, "prefix": ""}

    def stamp(ns_total):
        sec, ns = divmod(ns_total, 1_000_000_000)
        if sec != state["sec"]:
            state["sec"] = sec
            state["prefix"] = time.strftime("%Y/%m/%d %H:%M:%S", time.gmtime(sec))
        return "%s.%09d " % (state["prefix"], ns)

    buf = bytearray()
    first = []
    for line in header:
        t += 12345 + len(line) * 1000
        first.append(stamp(t) + line + "\n")
    buf += "".join(first).encode("utf-8")

    remaining = size
    i = 0
    nm, nd = len(msgs), len(deltas)
    while True:
        while len(buf) < piece and len(buf) < remaining:
            lines = []
            for _ in range(512):
                t += deltas[i % nd]
                sec, ns = divmod(t, 1_000_000_000)
                if sec != state["sec"]:
                    state["sec"] = sec
                    state["prefix"] = time.strftime("%Y/%m/%d %H:%M:%S", time.gmtime(sec))
                lines.append("%s.%09d %s" % (state["prefix"], ns, msgs[i % nm]))
                i += 1
            buf += "".join(lines).encode("utf-8")
        if remaining <= piece:
            out = bytes(buf[:remaining])
            if out[-1:] != b"\n":
                out = out[:-1] + b"\n"
            yield out
            return
        out = bytes(buf[:piece])
        del buf[:piece]
        remaining -= piece
        yield out


def generated_log_bytes(key, size, start_time=None):
    """The whole generated log as bytes (for tests; small sizes only)."""
    return b"".join(iter_generated_log(key, size, start_time))


# --------------------------------------------------------------------------------------
# State


class BadRequest(Exception):
    pass


def normalize_jobspec(spec, default_chunked=False):
    if not isinstance(spec, dict):
        raise BadRequest("JOBSPEC must be an object")
    if "job" not in spec:
        if "key" in spec:  # a bare Job object
            spec = {"job": spec}
        else:
            raise BadRequest("JOBSPEC needs a \"job\" object")
    job = spec["job"]
    if not isinstance(job, dict) or not isinstance(job.get("key"), str):
        raise BadRequest("JOBSPEC \"job\" must be an object with a string \"key\"")
    out = {
        "job": job,
        "error": spec.get("error"),
        "download_status": spec.get("download_status"),
        "error_status": spec.get("error_status"),
        "job_status": spec.get("job_status"),
        "chunked": bool(spec.get("chunked", default_chunked)),
        "tail_status": spec.get("tail_status"),
        "tail_framing": spec.get("tail_framing"),
        "tail_replay": spec.get("tail_replay"),
        "log": None,
        "log_size": None,
        "log_repeat": max(1, int(spec.get("log_repeat") or 1)),
        "log_start": job.get("start_time"),
    }
    if spec.get("log_b64") is not None:
        out["log"] = base64.b64decode(spec["log_b64"])
    elif spec.get("log") is not None:
        log = spec["log"]
        out["log"] = log.encode("utf-8") if isinstance(log, str) else bytes(log)
    elif spec.get("log_size") is not None:
        out["log_size"] = int(spec["log_size"])
    else:
        out["log_size"] = DEFAULT_LOG_SIZE
    return out


def normalize_fault(f):
    if not isinstance(f, dict):
        raise BadRequest("FAULT must be an object")
    kind = f.get("kind")
    if kind not in FAULT_KINDS:
        raise BadRequest("unknown fault kind %r (one of %s)" % (kind, ", ".join(FAULT_KINDS)))
    f = dict(f)
    f.setdefault("path", ".")
    f.setdefault("times", 1)
    f.setdefault("skip", 0)
    try:
        f["_re"] = re.compile(f["path"])
    except re.error as e:
        raise BadRequest("bad fault path regex %r: %s" % (f["path"], e))
    f["remaining"] = int(f["times"])
    f["hits"] = 0
    return f


class State:
    def __init__(self, scenario):
        self.lock = threading.RLock()
        if not isinstance(scenario, dict):
            raise BadRequest("scenario must be a JSON object")
        self.api_key = scenario.get("api_key", "secret")
        self.default_chunked = bool(scenario.get("chunked", False))
        self.content = collections.OrderedDict()
        self.tags = list(scenario.get("tags") or [])
        self.user = scenario.get("user", {"username": "archiver",
                                          "user_role": "administrator"})
        self.gzip = bool(scenario.get("gzip", False))
        for guid, c in (scenario.get("content") or {}).items():
            entry = self._content(guid)
            c = c or {}
            for k in CONTENT_KEYS:
                if k in c:
                    entry[k] = c[k]
            for spec in c.get("jobs") or []:
                js = normalize_jobspec(spec, self.default_chunked)
                entry["jobs"][js["job"]["key"]] = js
        self.cond = threading.Condition(self.lock)
        self.tail_enabled = scenario.get("tail", True) is not False
        self.tail_framing = scenario.get("tail_framing", "ndjson")
        self.tail_replay = scenario.get("tail_replay", "all")
        self.kill_delay = float(scenario.get("kill_delay", 0.3))
        self.kills = []
        self.last_line_ns = 0
        self.faults = []
        self.fault_seq = itertools.count(1)
        for f in scenario.get("faults") or []:
            self.add_fault(f)
        self.requests = []
        self.conn_seq = itertools.count(1)
        self.request_log = None
        self.request_log_lock = threading.Lock()

    def _content(self, guid):
        c = self.content.get(guid)
        if c is None:
            c = {"status": None, "name": None, "title": None, "app_mode": "shiny",
                 "owner": "publisher1", "tags": [], "app_role": "owner", "listed": True,
                 "jobs": collections.OrderedDict()}
            self.content[guid] = c
        return c

    def content_objects(self, include=()):
        """The listed items as Connect's Content objects (GET /v1/content)."""
        with self.lock:
            return [self.content_object(g, c, include)
                    for g, c in self.content.items() if c["listed"]]

    def content_object(self, guid, c, include=()):
        tags = {t["id"]: t for t in self.tags}
        obj = {"guid": guid, "name": c["name"], "title": c["title"],
               "description": "", "access_type": "acl", "created_time": DEFAULT_START_TIME,
               "last_deployed_time": DEFAULT_START_TIME, "bundle_id": "1",
               "app_mode": c["app_mode"], "content_category": "",
               "owner_guid": str(uuid.uuid5(uuid.NAMESPACE_DNS, c["owner"] or "")),
               "content_url": "http://connect.example/content/%s/" % guid,
               "app_role": c["app_role"], "id": str(zlib.crc32(guid.encode()) % 100000)}
        if "tags" in include and c["tags"]:
            obj["tags"] = [dict(tags.get(t, {"id": t, "name": "t" + t, "parent_id": None}),
                                created_time=DEFAULT_START_TIME,
                                updated_time=DEFAULT_START_TIME) for t in c["tags"]]
        if "owner" in include:
            obj["owner"] = {"guid": obj["owner_guid"], "username": c["owner"],
                            "first_name": None, "last_name": None}
        return obj

    # -- jobs
    def add_job(self, guid, spec):
        js = normalize_jobspec(spec, self.default_chunked)
        with self.lock:
            self._content(guid)["jobs"][js["job"]["key"]] = js
        return js["job"]["key"]

    def update_job(self, guid, key, body):
        if not isinstance(body, dict):
            raise BadRequest("body must be an object")
        with self.lock:
            c = self.content.get(guid)
            if c is None or key not in c["jobs"]:
                return None
            js = c["jobs"][key]
            if isinstance(body.get("job"), dict):
                job = dict(js["job"])
                job.update(body["job"])
                merged = {k: v for k, v in js.items()
                          if k not in ("log", "log_size", "log_repeat")}
                merged["job"] = job
                for k in ("error", "download_status", "error_status", "job_status",
                          "chunked", "tail_status", "tail_framing", "tail_replay"):
                    if k in body:
                        merged[k] = body[k]
                if any(k in body for k in ("log", "log_b64", "log_size")):
                    tmp = normalize_jobspec(dict(body, job=job), self.default_chunked)
                    src = tmp
                else:
                    src = js
                for k in ("log", "log_size", "log_repeat"):
                    merged[k] = src[k]
                new = merged
            else:
                new = dict(js)
                job = dict(js["job"])
                job.update(body)
                new["job"] = job
            newkey = new["job"].get("key")
            if newkey != key:
                raise BadRequest("a job's key cannot change")
            c["jobs"][key] = new
            self.cond.notify_all()
            return dict(new["job"])

    def delete_job(self, guid, key):
        with self.lock:
            c = self.content.get(guid)
            if c is None or key not in c["jobs"]:
                return False
            del c["jobs"][key]
            self.cond.notify_all()
            return True

    def set_content(self, guid, body):
        with self.lock:
            c = self._content(guid)
            for k in CONTENT_KEYS:
                if k in body:
                    c[k] = body[k]

    def delete_content(self, guid):
        with self.lock:
            return self.content.pop(guid, None) is not None

    def lookup(self, guid, key=None):
        """(content_status, content_exists, jobspec or list of jobs)"""
        with self.lock:
            c = self.content.get(guid)
            if c is None:
                return None, False, None
            if key is None:
                return c["status"], True, [dict(js["job"]) for js in c["jobs"].values()]
            js = c["jobs"].get(key)
            return c["status"], True, (dict(js) if js is not None else None)

    # -- faults
    def add_fault(self, f):
        nf = normalize_fault(f)
        with self.lock:
            nf["id"] = next(self.fault_seq)
            self.faults.append(nf)
        return nf["id"]

    def clear_faults(self):
        with self.lock:
            self.faults = []

    def list_faults(self):
        with self.lock:
            return [{k: v for k, v in f.items() if not k.startswith("_")} for f in self.faults]

    def take_fault(self, method, path):
        with self.lock:
            for f in self.faults:
                if f["remaining"] == 0:
                    continue
                if f.get("method") and f["method"].upper() != method:
                    continue
                if not f["_re"].search(path):
                    continue
                f["hits"] += 1
                if f["hits"] <= f["skip"]:
                    continue
                if f["remaining"] > 0:
                    f["remaining"] -= 1
                return dict(f)
            return None

    # -- request records
    def begin_request(self, method, path, conn, user_agent):
        rec = {"method": method, "path": path, "status": None, "auth_ok": None,
               "fault": None, "fault_id": None, "t": time.monotonic(), "t_end": None,
               "conn": conn, "body_bytes": 0, "user_agent": user_agent}
        with self.lock:
            self.requests.append(rec)
        return rec

    def end_request(self, rec):
        with self.lock:
            rec["t_end"] = time.monotonic()
            line = json.dumps(rec) if self.request_log else None
        if line is not None:
            with self.request_log_lock:
                try:
                    self.request_log.write(line + "\n")
                    self.request_log.flush()
                except (OSError, ValueError):
                    pass

    def list_requests(self):
        with self.lock:
            return [dict(r) for r in self.requests]

    def clear_requests(self):
        with self.lock:
            self.requests = []

    # -- live logs and kill orders (connect-jobs)
    def append_lines(self, guid, key, lines):
        """Appends lines to a job's log in Connect's format, timestamped now (strictly
        increasing), and wakes the /tail streams. False if there is no such job."""
        with self.lock:
            c = self.content.get(guid)
            js = c["jobs"].get(key) if c is not None else None
            if js is None:
                return False
            if js["log"] is None:
                js["log"] = generated_log_bytes(key, js["log_size"] or 0, js["log_start"])
                js["log_size"] = None
            js["log"], js["log_repeat"] = js["log"] * js["log_repeat"], 1
            out = []
            for line in lines:
                if isinstance(line, dict):
                    source, data = line.get("source", "stdout"), line.get("data", "")
                else:
                    source, data = "stdout", str(line)
                ns = max(time.time_ns(), self.last_line_ns + 1)
                self.last_line_ns = ns
                sec, frac = divmod(ns, 1_000_000_000)
                out.append("%s.%09d [%s] %s\n" % (
                    time.strftime("%Y/%m/%d %H:%M:%S", time.gmtime(sec)), frac, source, data))
            js["log"] = js["log"] + "".join(out).encode("utf-8")
            self.cond.notify_all()
            return True

    def register_kill(self, guid, key):
        with self.lock:
            self.kills.append({"guid": guid, "key": key, "t": time.monotonic()})

        def finalize():
            with self.lock:
                c = self.content.get(guid)
                js = c["jobs"].get(key) if c is not None else None
                if js is None or js["job"].get("status") != 0:
                    return
            self.append_lines(guid, key, [{"source": "stderr", "data": "Killed"}])
            self.update_job(guid, key, {"status": 2, "exit_code": 137,
                                        "end_time": _fmt_time(time.time())})

        t = threading.Timer(self.kill_delay, finalize)
        t.daemon = True
        t.start()


# --------------------------------------------------------------------------------------
# Responses


class Resp:
    """A response: status, headers, and a body given as a length plus a factory of an
    iterator of byte pieces (so a generated body is produced while it is sent)."""

    def __init__(self, status, headers=None, body=b"", length=None, pieces=None,
                 chunked=False):
        self.status = status
        self.headers = list(headers or [])
        if pieces is None:
            data = body

            def pieces():
                for off in range(0, len(data), PIECE):
                    yield data[off:off + PIECE]
            length = len(data)
        self.length = length
        self.pieces = pieces
        self.chunked = chunked


def json_resp(status, obj, extra_headers=()):
    return Resp(status, [("Content-Type", "application/json")] + list(extra_headers),
                (json.dumps(obj, separators=(",", ":")) + "\n").encode("utf-8"))


def error_resp(status, code=None, message=None, extra_headers=()):
    dcode, dmsg = STATUS_CODES.get(status, (1, "An internal failure occurred."))
    return json_resp(status, connect_error(dcode if code is None else code,
                                           dmsg if message is None else message),
                     extra_headers)


def stream_resp(fault):
    """The "stream" fault's answer: head, fill to "size" bytes (or forever), end."""
    head = str(fault.get("head", "")).encode("utf-8")
    end = str(fault.get("end", "")).encode("utf-8")
    fill = str(fault.get("fill", "A")).encode("utf-8") or b"A"
    size = int(fault.get("size", 500 * 1024 * 1024))
    block = fill * max(1, PIECE // len(fill))

    def pieces():
        if head:
            yield head
        left = None if size < 0 else max(0, size - len(head) - len(end))
        while left is None or left > 0:
            n = len(block) if left is None else min(left, len(block))
            yield block[:n]
            if left is not None:
                left -= n
        if end:
            yield end
    return Resp(int(fault.get("status", 200)),
                [("Content-Type", fault.get("content_type", "application/json"))],
                length=None, pieces=pieces, chunked=True)


_GZIP_BOMBS = {}


def gzip_bomb_body(size, byte=0):
    """One gzip member of `size` bytes all equal to `byte` (cached: made once per size)."""
    key = (size, byte)
    if key not in _GZIP_BOMBS:
        co = zlib.compressobj(9, zlib.DEFLATED, 31)
        block = bytes([byte]) * (1 << 20)
        out = []
        left = size
        while left > 0:
            n = min(left, len(block))
            out.append(co.compress(block[:n]))
            left -= n
        out.append(co.flush())
        _GZIP_BOMBS[key] = b"".join(out)
    return _GZIP_BOMBS[key]


def gzip_bomb_resp(fault):
    body = gzip_bomb_body(int(fault.get("size", 1 << 30)), int(fault.get("byte", 0)))
    return Resp(200, [("Content-Type", fault.get("content_type", "application/json")),
                      ("Content-Encoding", "gzip")], body)


def not_found_route():
    return Resp(404, [("Content-Type", "text/plain; charset=utf-8"),
                      ("X-Content-Type-Options", "nosniff")], NOT_FOUND_TEXT)


def take(pieces, n):
    """Yield pieces totalling at most n bytes."""
    if n <= 0:
        return
    for p in pieces:
        if len(p) >= n:
            yield p[:n]
            return
        n -= len(p)
        yield p


def log_pieces(js):
    if js["log"] is not None:
        data, times = js["log"], js["log_repeat"]

        def pieces():
            for _ in range(times):
                for off in range(0, len(data), PIECE):
                    yield data[off:off + PIECE]
        return len(data) * times, pieces
    size = js["log_size"]
    key = js["job"]["key"]
    start = js["log_start"]
    return size, (lambda: iter_generated_log(key, size, start))


_LINE_RE = re.compile(
    r"^(\d{4})/(\d\d)/(\d\d) (\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))? (?:\[(stdout|stderr)\] ?)?(.*)$")


def log_entries(js, max_lines):
    size, pieces = log_pieces(js)
    tail = collections.deque(maxlen=max(0, max_lines))
    rest = b""
    for p in pieces():
        chunk = rest + p
        lines = chunk.split(b"\n")
        rest = lines.pop()
        tail.extend(lines)
    if rest:
        tail.append(rest)
    entries = []
    for raw in tail:
        line = raw.decode("utf-8", "replace")
        m = _LINE_RE.match(line)
        if m:
            frac = (m.group(7) or "").ljust(9, "0")
            ts = "%s-%s-%sT%s:%s:%s.%sZ" % (m.group(1), m.group(2), m.group(3), m.group(4),
                                           m.group(5), m.group(6), frac)
            entries.append({"source": m.group(8) or "stdout", "timestamp": ts,
                            "data": m.group(9)})
        else:
            entries.append({"source": "stdout", "timestamp": None, "data": line})
    return {"entries": entries}


# --------------------------------------------------------------------------------------
# HTTP


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-connect/1.0"
    timeout = 300  # idle keep-alive connections are closed after this
    disable_nagle_algorithm = True

    def version_string(self):
        return self.server_version

    # quiet unless --verbose
    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("fake_connect: %s - %s\n" % (self.address_string(), fmt % args))

    def setup(self):
        super().setup()
        self.conn_id = next(self.server.state.conn_seq)

    def handle_one_request(self):
        try:
            super().handle_one_request()
        except (OSError, ValueError):
            # client went away (BrokenPipe, ConnectionReset, timeout) or we closed the
            # socket on purpose (reset fault): this connection is done.
            self.close_connection = True

    # ---- low-level writers
    def _start(self, status, headers, length=None, chunked=False, rec=None):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        if status in (204, 304) or 100 <= status < 200:
            pass  # no body and no framing headers (RFC 9110 8.6)
        elif chunked:
            self.send_header("Transfer-Encoding", "chunked")
        elif length is not None:
            self.send_header("Content-Length", str(length))
        self.end_headers()
        if rec is not None:
            rec["status"] = status

    def _write_body(self, pieces, chunked, rec, rate=None):
        for p in pieces:
            if not p:
                continue
            if rate:
                self._trickle(p, chunked, rec, rate)
                continue
            if chunked:
                self.wfile.write(b"%x\r\n" % len(p) + p + b"\r\n")
            else:
                self.wfile.write(p)
            if rec is not None:
                rec["body_bytes"] += len(p)

    def _trickle(self, p, chunked, rec, rate):
        step = max(1, int(rate) // 20)
        for off in range(0, len(p), step):
            s = p[off:off + step]
            if chunked:
                self.wfile.write(b"%x\r\n" % len(s) + s + b"\r\n")
            else:
                self.wfile.write(s)
            if rec is not None:
                rec["body_bytes"] += len(s)
            time.sleep(len(s) / float(rate))

    def _rst(self):
        """Close abruptly: SO_LINGER 0 makes close() send a TCP RST."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
        except OSError:
            pass
        try:
            self.rfile.close()  # drop the makefile reference so close() really closes
        except OSError:
            pass
        try:
            self.connection.close()
        except OSError:
            pass

    def _fin(self):
        """Close normally (FIN) after what was sent; no more requests on it."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def send_resp(self, resp, rec, fault=None):
        kind = fault["kind"] if fault else None
        if kind == "reset":
            if fault.get("before_headers"):
                self._rst()
                return
            self._start(resp.status, resp.headers, resp.length, resp.chunked, rec)
            self._write_body(take(resp.pieces(), int(fault.get("after_bytes", 0))),
                             resp.chunked, rec)
            self.wfile.flush()
            time.sleep(float(fault.get("rst_delay", 0.05)))
            self._rst()
            return
        if kind == "close":
            self._fin()
            return
        if kind == "truncate":
            n = fault.get("after_bytes")
            n = resp.length // 2 if n is None else min(int(n), max(resp.length - 1, 0))
            self._start(resp.status, resp.headers, resp.length, False, rec)
            self._write_body(take(resp.pieces(), n), False, rec)
            self._fin()
            return
        if kind == "chunked_broken":
            n = fault.get("after_bytes")
            n = resp.length // 2 if n is None else int(n)
            self._start(resp.status, resp.headers, None, True, rec)
            self._write_body(take(resp.pieces(), n), True, rec)
            if fault.get("mode", "malformed") == "malformed":
                self.wfile.write(b"zz-not-hex\r\nbroken\r\n")
            self._fin()
            return
        rate = float(fault.get("bytes_per_sec", 1024)) if kind == "trickle" else None
        self._start(resp.status, resp.headers, resp.length, resp.chunked, rec)
        if self.command != "HEAD":
            self._write_body(resp.pieces(), resp.chunked, rec, rate)
            if resp.chunked:
                self.wfile.write(b"0\r\n\r\n")

    # ---- dispatch
    def do_GET(self):
        self.dispatch()

    def do_HEAD(self):
        self.dispatch()

    def do_POST(self):
        self.dispatch()

    def do_PUT(self):
        self.dispatch()

    def do_DELETE(self):
        self.dispatch()

    def do_PATCH(self):
        self.dispatch()

    def read_body(self):
        n = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = bytearray()
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(data)
                data += self.rfile.read(size)
                self.rfile.readline(65537)
        return self.rfile.read(int(n)) if n else b""

    def dispatch(self):
        split = urlsplit(self.path)
        path = split.path
        state = self.server.state
        if path == "/__control__" or path.startswith("/__control__/"):
            try:
                body = self.read_body()
                resp = self.control(self.command, path, body)
            except BadRequest as e:
                resp = json_resp(400, {"ok": False, "error": str(e)})
            except (ValueError, TypeError) as e:
                resp = json_resp(400, {"ok": False, "error": "bad request: %s" % e})
            self.send_resp(resp, None)
            return

        # Discard any request body so the connection stays in sync.
        try:
            self.read_body()
        except (ValueError, OSError):
            self.close_connection = True

        rec = state.begin_request(self.command, self.path, self.conn_id,
                                  self.headers.get("User-Agent"))
        try:
            auths = self.headers.get_all("Authorization") or []
            rec["auth_ok"] = state.api_key is None or (
                len(auths) == 1 and auths[0] == "Key " + state.api_key)
            fault = state.take_fault(self.command, path)
            if fault:
                rec["fault"] = fault["kind"]
                rec["fault_id"] = fault["id"]
                if fault["kind"] == "slow":
                    time.sleep(float(fault.get("delay", 2)))
                elif fault["kind"] == "status":
                    self.send_resp(self.fault_status(fault), rec)
                    return
                elif fault["kind"] == "stream":
                    self.send_resp(stream_resp(fault), rec)
                    return
                elif fault["kind"] == "gzip_bomb":
                    self.send_resp(gzip_bomb_resp(fault), rec)
                    return
                elif fault["kind"] == "garbage":
                    body = fault.get("body", '{"not": json')
                    self.send_resp(Resp(200, [("Content-Type", "application/json")],
                                        body.encode("utf-8")), rec)
                    return
            resp = self.api(path, split.query, rec)
            resp.headers.append(("X-Correlation-ID", self.headers.get("X-Correlation-ID")
                                 or str(uuid.uuid4())))
            self.send_resp(resp, rec, fault)
        finally:
            state.end_request(rec)

    def fault_status(self, fault):
        status = int(fault.get("status", 503))
        headers = []
        if fault.get("retry_after") is not None:
            headers.append(("Retry-After", str(fault["retry_after"])))
        if fault.get("body") is not None:
            return Resp(status, [("Content-Type", fault.get("content_type",
                                                            "text/plain; charset=utf-8"))]
                        + headers, str(fault["body"]).encode("utf-8"))
        return error_resp(status, fault.get("code"), fault.get("error"), headers)

    # ---- Connect API
    def content_api(self, path, query, rec):
        """GET /v1/user, /v1/tags, /v1/content, /v1/content/{guid}; None for other paths."""
        state = self.server.state
        parts = path.split("/")
        if len(parts) < 4 or parts[:3] != ["", "__api__", "v1"] or len(parts) > 5:
            return None
        what = parts[3]
        if what not in ("user", "tags", "content") or (len(parts) == 5 and what != "content"):
            return None
        if self.command not in ("GET", "HEAD"):
            return Resp(405, [("Content-Type", "text/plain; charset=utf-8"),
                              ("Allow", "GET")], b"405 method not allowed\n")
        if not rec["auth_ok"]:
            return error_resp(401, 24, "This API requires authentication. Please provide "
                              "an API key or log in.")
        if what == "user":
            with state.lock:
                user = state.user
            if user is None:
                return not_found_route()
            return self.json_maybe_gzip(dict({"guid": str(uuid.uuid4()), "email": "",
                                              "first_name": None, "last_name": None,
                                              "locked": False, "confirmed": True}, **user))
        if what == "tags":
            with state.lock:
                tags = [dict(t, created_time=DEFAULT_START_TIME, updated_time=DEFAULT_START_TIME)
                        for t in state.tags]
            return self.json_maybe_gzip(tags)
        include = ",".join(parse_qs(query).get("include", [])).split(",")
        if len(parts) == 4:
            return self.json_maybe_gzip(state.content_objects(include))
        guid = unquote(parts[4])
        with state.lock:
            c = state.content.get(guid)
            if c is None or c["status"]:
                return error_resp(int(c["status"]) if c else 404)
            return self.json_maybe_gzip(state.content_object(guid, c, include))

    def json_maybe_gzip(self, obj, status=200):
        """JSON, gzip-encoded when the scenario says so and the client accepts it."""
        resp = json_resp(status, obj)
        accept = self.headers.get("Accept-Encoding", "")
        if self.server.state.gzip and "gzip" in accept:
            data = b"".join(resp.pieces())
            return Resp(status, [("Content-Type", "application/json"),
                                 ("Content-Encoding", "gzip"), ("Vary", "Accept-Encoding")],
                        gzip.compress(data, 6))
        return resp

    def api(self, path, query, rec):
        found = self.content_api(path, query, rec)
        if found is not None:
            return found
        parts = path.split("/")
        # ['', '__api__', 'v1', 'content', guid, 'jobs', key?, sub?]
        if (len(parts) < 6 or len(parts) > 8 or parts[0] != "" or parts[1] != "__api__"
                or parts[2] != "v1" or parts[3] != "content" or parts[5] != "jobs"
                or any(p == "" for p in parts[4:])):
            return not_found_route()
        sub = parts[7] if len(parts) == 8 else None
        if sub not in (None, "download", "error", "log", "tail"):
            return not_found_route()
        if sub == "tail" and not self.server.state.tail_enabled:
            return not_found_route()
        kill = self.command == "DELETE" and sub is None and len(parts) == 7
        if self.command not in ("GET", "HEAD") and not kill:
            return Resp(405, [("Content-Type", "text/plain; charset=utf-8"),
                              ("Allow", "GET")], b"405 method not allowed\n")
        if not rec["auth_ok"]:
            return error_resp(401, 24, "This API requires authentication. Please provide "
                              "an API key or log in.")
        guid = unquote(parts[4])
        key = unquote(parts[6]) if len(parts) >= 7 else None
        cstatus, exists, found = self.server.state.lookup(guid, key)
        if not exists:
            return error_resp(404)
        if cstatus:
            return error_resp(int(cstatus))
        if key is None:
            return self.json_maybe_gzip(found)
        js = found
        if js is None:
            return error_resp(404)
        q = parse_qs(query)
        if kill:
            return self.kill(guid, key, js)
        if sub == "tail":
            return self.tail(guid, key, js)
        if sub is None:
            if js.get("job_status"):
                return error_resp(int(js["job_status"]))
            return json_resp(200, js["job"])
        if sub == "error":
            if js.get("error_status"):
                return error_resp(int(js["error_status"]))
            if js.get("error") is None:
                return Resp(204, [], b"")
            return json_resp(200, js["error"])
        if sub == "log":
            if js.get("download_status"):
                return error_resp(int(js["download_status"]))
            try:
                n = int(q.get("maxLogLines", ["5000"])[0])
            except ValueError:
                return error_resp(400, 3, "The parameter maxLogLines is invalid.")
            return json_resp(200, log_entries(js, n))
        # download
        if js.get("download_status"):
            return error_resp(int(js["download_status"]))
        job = js["job"]
        fname = q.get("filename", [None])[0] or "rstudio-connect.%s.%s.%s.%s.%s.log" % (
            job.get("app_id"), job.get("variant_id"), job.get("bundle_id"), job.get("tag"),
            job.get("key"))
        fname = fname.replace("\\", "_").replace('"', "_")
        length, pieces = log_pieces(js)
        return Resp(200, [("Content-Type", "text/plain"),
                          ("Content-Disposition", 'attachment; filename="%s"' % fname)],
                    length=length, pieces=pieces, chunked=js["chunked"])

    # ---- connect-jobs: kill orders and the live log
    def kill(self, guid, key, js):
        job = js["job"]
        if job.get("status") != 0:
            return error_resp(409)
        self.server.state.register_kill(guid, key)

        def as_int(v):
            try:
                return int(v)
            except (TypeError, ValueError):
                return None
        return json_resp(200, {"guid": str(uuid.uuid4()), "app_id": as_int(job.get("app_id")),
                               "app_guid": guid, "job_id": as_int(job.get("id")),
                               "job_key": key, "result": "Order to kill job registered"})

    def tail(self, guid, key, js):
        state = self.server.state
        if js.get("tail_status"):
            status = int(js["tail_status"])
            return not_found_route() if status == 404 else error_resp(status)
        framing = js.get("tail_framing") or state.tail_framing
        replay = js.get("tail_replay")
        replay = state.tail_replay if replay is None else replay
        ctype = {"ndjson": "application/x-ndjson", "sse": "text/event-stream",
                 "concatenated": "application/json"}[framing]

        def frame(entry):
            text = json.dumps(entry, separators=(",", ":"))
            if framing == "ndjson":
                text += "\n"
            elif framing == "sse":
                text = "event: log\ndata: %s\n\n" % text
            return text.encode("utf-8")

        def current():
            cur = state.content.get(guid, {}).get("jobs", {}).get(key)
            return cur, log_entries(cur, 10 ** 9)["entries"] if cur else []

        # Where the replay starts is fixed now, as the request is answered: a line appended
        # after the headers went out (before the body is first written) is a new line.
        with state.lock:
            start = 0 if replay == "all" else max(0, len(current()[1]) - int(replay))

        def pieces():
            sent = start
            idle = 0
            if framing == "sse":
                yield b": stream open\n\n"
            while True:
                with state.lock:
                    cur, entries = current()
                    final = cur is None or cur["job"].get("status") in (2, 3)
                    new, sent = entries[sent:], max(sent, len(entries))
                    if not new and not final:
                        state.cond.wait(0.5)
                        idle += 1
                if new:
                    idle = 0
                    for e in new:
                        f = frame(e)
                        yield f[:len(f) // 2]  # two chunks: the client must reassemble
                        yield f[len(f) // 2:]
                elif framing == "sse" and idle >= 4:
                    idle = 0
                    yield b": ping\n\n"
                if final:
                    return
        return Resp(200, [("Content-Type", ctype), ("Cache-Control", "no-cache")],
                    length=None, pieces=pieces, chunked=True)

    # ---- control API
    def control(self, method, path, body):
        state = self.server.state
        parts = [unquote(p) for p in path.split("/")[2:]]
        obj = json.loads(body.decode("utf-8")) if body.strip() else None
        what = parts[0] if parts else ""
        if what == "health" and method == "GET":
            return json_resp(200, {"ok": True, "port": self.server.server_address[1]})
        if what == "requests" and len(parts) == 1:
            if method == "GET":
                return json_resp(200, state.list_requests())
            if method == "DELETE":
                state.clear_requests()
                return json_resp(200, {"ok": True})
        if what == "faults" and len(parts) == 1:
            if method == "GET":
                return json_resp(200, state.list_faults())
            if method == "DELETE":
                state.clear_faults()
                return json_resp(200, {"ok": True})
            if method == "POST":
                items = obj if isinstance(obj, list) else [obj]
                ids = [state.add_fault(f) for f in items]
                return json_resp(201, {"ok": True, "ids": ids})
        if what == "jobs" and len(parts) == 2 and method == "POST":
            key = state.add_job(parts[1], obj)
            return json_resp(201, {"ok": True, "key": key})
        if what == "jobs" and len(parts) == 3 and method in ("PUT", "PATCH"):
            job = state.update_job(parts[1], parts[2], obj)
            if job is None:
                return json_resp(404, {"ok": False, "error": "no such job"})
            return json_resp(200, {"ok": True, "job": job})
        if what == "jobs" and len(parts) == 4 and parts[3] == "lines" and method == "POST":
            if not isinstance(obj, dict) or not isinstance(obj.get("lines"), list):
                raise BadRequest("body must be {\"lines\": [...]}")
            if not state.append_lines(parts[1], parts[2], obj["lines"]):
                return json_resp(404, {"ok": False, "error": "no such job"})
            return json_resp(200, {"ok": True})
        if what == "kills" and len(parts) == 1 and method == "GET":
            with state.lock:
                return json_resp(200, list(state.kills))
        if what == "jobs" and len(parts) == 3 and method == "DELETE":
            if not state.delete_job(parts[1], parts[2]):
                return json_resp(404, {"ok": False, "error": "no such job"})
            return json_resp(200, {"ok": True})
        if what == "content" and len(parts) == 2 and method in ("PUT", "PATCH"):
            if not isinstance(obj, dict):
                raise BadRequest("body must be an object")
            state.set_content(parts[1], obj)
            return json_resp(200, {"ok": True})
        if what == "content" and len(parts) == 2 and method == "DELETE":
            if not state.delete_content(parts[1]):
                return json_resp(404, {"ok": False, "error": "no such content"})
            return json_resp(200, {"ok": True})
        if what == "api_key" and len(parts) == 1 and method == "PUT":
            if obj is not None and not isinstance(obj, str):
                raise BadRequest("body must be the key (a string) or null")
            with state.lock:
                state.api_key = obj
            return json_resp(200, {"ok": True})
        if what in ("tags", "user") and len(parts) == 1 and method == "PUT":
            with state.lock:
                if what == "tags":
                    if not isinstance(obj, list):
                        raise BadRequest("body must be a list of tags")
                    state.tags = obj
                else:
                    state.user = obj
            return json_resp(200, {"ok": True})
        return json_resp(404, {"ok": False, "error": "unknown control endpoint"})


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr, state, verbose=False):
        if ":" in addr[0]:
            self.address_family = socket.AF_INET6
        self.state = state
        self.verbose = verbose
        super().__init__(addr, Handler)

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (BrokenPipeError, ConnectionResetError, ConnectionAbortedError,
                            socket.timeout, TimeoutError, OSError)) and not self.verbose:
            return
        super().handle_error(request, client_address)


def write_port_file(path, port):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Fake Posit Connect jobs API server.")
    ap.add_argument("--scenario", required=True, help="scenario JSON file")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    ap.add_argument("--port-file", help="write the port here once listening")
    ap.add_argument("--request-log", help="append one JSON line per API request")
    ap.add_argument("--quiet", action="store_true", help="not even the listening line")
    ap.add_argument("--verbose", action="store_true", help="log requests to stderr")
    args = ap.parse_args(argv)

    try:
        with open(args.scenario, encoding="utf-8") as f:
            scenario = json.load(f)
        state = State(scenario)
    except (OSError, ValueError, BadRequest) as e:
        sys.stderr.write("fake_connect: bad scenario %s: %s\n" % (args.scenario, e))
        return 2
    if args.request_log:
        state.request_log = open(args.request_log, "a", encoding="utf-8")

    server = Server((args.host, args.port), state, verbose=args.verbose)
    port = server.server_address[1]
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)

    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                         daemon=True)
    t.start()
    if args.port_file:
        write_port_file(args.port_file, port)
    if not args.quiet:
        host = "[%s]" % args.host if ":" in args.host else args.host
        sys.stdout.write("listening on http://%s:%d\n" % (host, port))
        sys.stdout.flush()
    while not stop.wait(0.5):
        pass
    server.shutdown()
    server.server_close()
    if state.request_log:
        with state.request_log_lock:
            state.request_log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
