#!/usr/bin/env python3
"""Tests of the fake Connect server (tests/fake_connect.py) and of the harness helpers.
They need no archiver binary. Run: python3 test_fake_connect.py (from tests/integration)."""

import gzip
import hashlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import (FakeConnect, assert_no_temporaries, find_temporaries,  # noqa: E402
                     generated_log_bytes, load_fixture, make_job, make_jobspec, new_guid,
                     new_key, read_archive, wait_for, write_config)

KEY = "secret"
AUTH = {"Authorization": "Key " + KEY}
BROKEN = (ConnectionResetError, ConnectionAbortedError, BrokenPipeError,
          http.client.IncompleteRead, http.client.RemoteDisconnected)


def jobs_path(guid, key=None, sub=None):
    p = "/__api__/v1/content/%s/jobs" % guid
    if key is not None:
        p += "/" + key
    if sub is not None:
        p += "/" + sub
    return p


def raw_exchange(port, path, headers=AUTH, timeout=10.0):
    """Sends one GET on a raw socket and reads until EOF or an error.
    Returns (bytes received, exception or None)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        req = "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n" % path
        for k, v in headers.items():
            req += "%s: %s\r\n" % (k, v)
        req += "Connection: close\r\n\r\n"
        s.sendall(req.encode("latin-1"))
        data = bytearray()
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    return bytes(data), None
                data += b
        except OSError as e:
            return bytes(data), e
    finally:
        s.close()


def read_text(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Base(unittest.TestCase):
    content = None
    scenario = None

    @classmethod
    def setUpClass(cls):
        cls.guid = new_guid()
        cls.fc = FakeConnect(cls.make_content(cls.guid)).start()

    @classmethod
    def tearDownClass(cls):
        err = cls.fc.server_stderr()
        rc = cls.fc.stop()
        # A clean SIGTERM exit, and no traceback from any request.
        assert rc == 0, "fake server exit status %r" % rc
        assert "Traceback" not in err, err

    @classmethod
    def make_content(cls, guid):
        return {guid: []}

    def setUp(self):
        self.fc.clear_faults()
        self.fc.clear_requests()

    def conn(self, timeout=10.0):
        return http.client.HTTPConnection("127.0.0.1", self.fc.port, timeout=timeout)

    def get(self, path, key=None, headers=None):
        return self.fc.get(path, key=key, headers=headers)


# --------------------------------------------------------------------------------------


class TestShapes(Base):
    LOG = "2024/11/25 22:17:43.386988748 [stdout] Running on host: dogfood02\n" \
          "2024/11/25 22:17:45.068555326 [stderr] Listening on http://127.0.0.1:33545\n"
    BIN = bytes(range(256)) * 3 + b"\xff\xfe no trailing newline"
    ERR = {"code": "E_EXIT", "summary": "The process exited with status 1.",
           "help_url": "https://docs.posit.co/connect/"}

    @classmethod
    def make_content(cls, guid):
        cls.fixture = load_fixture("jobs-list.connectapi-2025.01.0.json")
        specs = [{"job": j} for j in cls.fixture]
        specs[2]["log"] = cls.LOG
        specs[2]["error"] = cls.ERR
        specs[3]["log_b64"] = __import__("base64").b64encode(cls.BIN).decode()
        specs[4]["download_status"] = 404
        specs[4]["error_status"] = 404
        cls.gone = new_guid()
        return {guid: specs, cls.gone: {"status": 404, "jobs": [{"job": cls.fixture[0]}]}}

    def test_list_is_bare_array_exactly_as_given(self):
        st, h, body = self.get(jobs_path(self.guid))
        self.assertEqual(st, 200)
        self.assertEqual(h["content-type"], "application/json")
        self.assertEqual(int(h["content-length"]), len(body))
        got = json.loads(body)
        self.assertEqual(got, self.fixture)
        # key order preserved too
        self.assertEqual([list(j) for j in got], [list(j) for j in self.fixture])

    def test_single_job(self):
        job = self.fixture[1]
        st, h, body = self.get(jobs_path(self.guid, job["key"]))
        self.assertEqual(st, 200)
        self.assertEqual(json.loads(body), job)

    def test_download_text(self):
        job = self.fixture[2]
        st, h, body = self.get(jobs_path(self.guid, job["key"], "download"))
        self.assertEqual(st, 200)
        self.assertEqual(body, self.LOG.encode())
        self.assertEqual(h["content-type"], "text/plain")
        self.assertEqual(int(h["content-length"]), len(body))
        self.assertNotIn("transfer-encoding", h)
        self.assertEqual(h["content-disposition"],
                         'attachment; filename="rstudio-connect.%s.%s.%s.%s.%s.log"'
                         % (job["app_id"], job["variant_id"], job["bundle_id"], job["tag"],
                            job["key"]))
        st, h, _ = self.get(jobs_path(self.guid, job["key"], "download") + "?filename=x.log")
        self.assertEqual(h["content-disposition"], 'attachment; filename="x.log"')

    def test_download_binary_b64(self):
        st, h, body = self.get(jobs_path(self.guid, self.fixture[3]["key"], "download"))
        self.assertEqual(st, 200)
        self.assertEqual(body, self.BIN)

    def test_download_default_generated_log(self):
        key = self.fixture[0]["key"]
        st, h, body = self.get(jobs_path(self.guid, key, "download"))
        self.assertEqual(st, 200)
        self.assertEqual(len(body), 2048)
        self.assertEqual(body, generated_log_bytes(key, 2048, self.fixture[0]["start_time"]))
        self.assertTrue(body.endswith(b"\n"))
        self.assertIn(b"[rsc-session] Job Key: " + key.encode(), body)

    def test_error_200(self):
        st, h, body = self.get(jobs_path(self.guid, self.fixture[2]["key"], "error"))
        self.assertEqual(st, 200)
        self.assertEqual(h["content-type"], "application/json")
        self.assertEqual(json.loads(body), self.ERR)

    def test_error_204_empty_and_keepalive(self):
        c = self.conn()
        c.request("GET", jobs_path(self.guid, self.fixture[1]["key"], "error"), headers=AUTH)
        r = c.getresponse()
        self.assertEqual(r.status, 204)
        self.assertEqual(r.read(), b"")
        self.assertIsNone(r.getheader("Content-Length"))
        self.assertIsNone(r.getheader("Transfer-Encoding"))
        # the same connection serves the next request
        c.request("GET", jobs_path(self.guid), headers=AUTH)
        r = c.getresponse()
        self.assertEqual(r.status, 200)
        json.loads(r.read())
        c.close()
        reqs = self.fc.requests()
        self.assertEqual(len(reqs), 2)
        self.assertEqual(reqs[0]["conn"], reqs[1]["conn"])

    def assertConnect404(self, st, h, body):
        self.assertEqual(st, 404)
        self.assertEqual(h["content-type"], "application/json")
        self.assertEqual(json.loads(body),
                         {"code": 4, "error": "The requested object does not exist.",
                          "payload": None})

    def test_unknown_guid_and_key(self):
        self.assertConnect404(*self.get(jobs_path(new_guid())))
        self.assertConnect404(*self.get(jobs_path(self.guid, "nosuchkey")))
        for sub in ("download", "error", "log"):
            self.assertConnect404(*self.get(jobs_path(self.guid, "nosuchkey", sub)))

    def test_content_status_404(self):
        self.assertConnect404(*self.get(jobs_path(self.gone)))
        self.assertConnect404(*self.get(jobs_path(self.gone, self.fixture[0]["key"],
                                                  "download")))

    def test_download_and_error_status(self):
        key = self.fixture[4]["key"]
        self.assertConnect404(*self.get(jobs_path(self.guid, key, "download")))
        self.assertConnect404(*self.get(jobs_path(self.guid, key, "error")))
        st, _, _ = self.get(jobs_path(self.guid, key))
        self.assertEqual(st, 200)

    def test_unknown_route_plain_text(self):
        for path in ("/", "/__api__/v1/contents", "/__api__/applications/%s/jobs" % self.guid,
                     "/__api__/v1/content/%s/jobs/" % self.guid,
                     jobs_path(self.guid, self.fixture[0]["key"], "metrics"),
                     jobs_path(self.guid, self.fixture[0]["key"], "download") + "/x"):
            st, h, body = self.get(path)
            self.assertEqual(st, 404, path)
            self.assertEqual(h["content-type"], "text/plain; charset=utf-8", path)
            self.assertEqual(body, b"404 page not found\n", path)

    def test_content_api_shapes(self):
        self.fc.set_tags([{"id": "1", "name": "Finance", "parent_id": None},
                          {"id": "2", "name": "Reports", "parent_id": "1"}])
        self.fc.set_content(self.guid, title="A title", owner="alice", tags=["1", "2"])
        try:
            st, _, body = self.get("/__api__/v1/content?include=tags,owner")
            self.assertEqual(st, 200)
            items = {o["guid"]: o for o in json.loads(body)}
            me = items[self.guid]
            self.assertEqual((me["title"], me["owner"]["username"]), ("A title", "alice"))
            self.assertEqual([t["name"] for t in me["tags"]], ["Finance", "Reports"])
            self.assertEqual(me["app_role"], "owner")
            # Without include, no tags or owner; an untagged item has no "tags" key at all.
            st, _, body = self.get("/__api__/v1/content")
            self.assertTrue(all("tags" not in o and "owner" not in o for o in json.loads(body)))
            st, _, body = self.get("/__api__/v1/content/%s" % self.guid)
            self.assertEqual((st, json.loads(body)["guid"]), (200, self.guid))
            st, _, body = self.get("/__api__/v1/tags")
            self.assertEqual([t["id"] for t in json.loads(body)], ["1", "2"])
            st, _, body = self.get("/__api__/v1/user")
            self.assertEqual(json.loads(body)["user_role"], "administrator")
            self.fc.set_user(None)
            self.assertEqual(self.get("/__api__/v1/user")[0], 404)
            st, _, _ = self.get("/__api__/v1/content", key="wrong")
            self.assertEqual(st, 401)
        finally:
            self.fc.set_content(self.guid, title=None, owner="publisher1", tags=[])
            self.fc.set_tags([])
            self.fc.set_user({"username": "archiver", "user_role": "administrator"})

    def test_log_entries(self):
        key = self.fixture[2]["key"]
        st, h, body = self.get(jobs_path(self.guid, key, "log"))
        self.assertEqual(st, 200)
        self.assertEqual(json.loads(body), {"entries": [
            {"source": "stdout", "timestamp": "2024-11-25T22:17:43.386988748Z",
             "data": "Running on host: dogfood02"},
            {"source": "stderr", "timestamp": "2024-11-25T22:17:45.068555326Z",
             "data": "Listening on http://127.0.0.1:33545"}]})
        st, h, body = self.get(jobs_path(self.guid, key, "log") + "?maxLogLines=1")
        self.assertEqual([e["data"] for e in json.loads(body)["entries"]],
                         ["Listening on http://127.0.0.1:33545"])
        # generated log: default keeps the last 5000 lines
        gkey = self.fixture[5]["key"]
        self.fc.update_job(self.guid, gkey, {"job": {}, "log_size": 2_000_000})
        st, h, body = self.get(jobs_path(self.guid, gkey, "log"))
        entries = json.loads(body)["entries"]
        self.assertEqual(len(entries), 5000)
        _, _, full = self.get(jobs_path(self.guid, gkey, "download"))
        last = full.rstrip(b"\n").split(b"\n")[-1].decode()
        self.assertTrue(last.endswith(entries[-1]["data"]), (last, entries[-1]))
        self.assertIn(entries[-1]["source"], ("stdout", "stderr"))


class TestAuth(Base):
    @classmethod
    def make_content(cls, guid):
        return {guid: [make_jobspec("AuthJob000000001", log="x\n")]}

    def assert401(self, headers):
        c = self.conn()
        c.putrequest("GET", jobs_path(self.guid), skip_accept_encoding=True)
        for k, v in headers:
            c.putheader(k, v)
        c.endheaders()
        r = c.getresponse()
        body = r.read()
        c.close()
        self.assertEqual(r.status, 401, headers)
        self.assertEqual(r.getheader("Content-Type"), "application/json")
        obj = json.loads(body)
        self.assertEqual(obj["code"], 24)
        self.assertIsInstance(obj["error"], str)
        self.assertIsNone(obj["payload"])

    def test_rejected(self):
        for headers in ([], [("Authorization", "Key wrong")],
                        [("Authorization", "Bearer " + KEY)],
                        [("Authorization", "key " + KEY)],
                        [("Authorization", "Key  " + KEY)],
                        [("Authorization", "Key " + KEY + "x")],
                        [("Authorization", "Key")],
                        [("Authorization", "Key " + KEY), ("Authorization", "Key " + KEY)],
                        [("X-Api-Key", KEY)]):
            self.assert401(headers)
        for sub in (None, "download", "error", "log"):
            st, _, _ = self.get(jobs_path(self.guid, "AuthJob000000001", sub), key="nope")
            self.assertEqual(st, 401)

    def test_accepted_and_recorded(self):
        st, _, _ = self.get(jobs_path(self.guid))
        self.assertEqual(st, 200)
        st, _, _ = self.get(jobs_path(self.guid), key=False)
        self.assertEqual(st, 401)
        reqs = self.fc.requests()
        self.assertEqual([(r["status"], r["auth_ok"]) for r in reqs],
                         [(200, True), (401, False)])

    def test_urllib_without_proxy(self):
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        req = urllib.request.Request(self.fc.url + jobs_path(self.guid), headers=AUTH)
        with opener.open(req, timeout=10) as r:
            self.assertEqual(json.loads(r.read())[0]["key"], "AuthJob000000001")
        req = urllib.request.Request(self.fc.url + jobs_path(self.guid))
        with self.assertRaises(urllib.error.HTTPError) as cm:
            opener.open(req, timeout=10)
        self.assertEqual(cm.exception.code, 401)


class TestFaults(Base):
    SIZE = 100_000

    @classmethod
    def make_content(cls, guid):
        cls.key = "FaultJob00000001"
        return {guid: [make_jobspec(cls.key, log_size=cls.SIZE, error={"code": "E"})]}

    def dl(self):
        return jobs_path(self.guid, self.key, "download")

    def full(self):
        return generated_log_bytes(self.key, self.SIZE, "2024-11-25T22:17:42Z")

    def test_status_retry_after_then_ok(self):
        self.fc.add_fault(path=r"/jobs$", kind="status", status=503, retry_after="2", times=2)
        c = self.conn()
        for _ in range(2):
            c.request("GET", jobs_path(self.guid), headers=AUTH)
            r = c.getresponse()
            body = r.read()
            self.assertEqual(r.status, 503)
            self.assertEqual(r.getheader("Retry-After"), "2")
            self.assertEqual(r.getheader("Content-Type"), "application/json")
            obj = json.loads(body)
            self.assertEqual(sorted(obj), ["code", "error", "payload"])
        c.request("GET", jobs_path(self.guid), headers=AUTH)  # same connection still OK
        r = c.getresponse()
        self.assertEqual(r.status, 200)
        r.read()
        c.close()
        reqs = self.fc.requests()
        self.assertEqual([r["fault"] for r in reqs], ["status", "status", None])
        self.assertEqual([r["status"] for r in reqs], [503, 503, 200])
        self.assertEqual(len({r["conn"] for r in reqs}), 1)
        self.assertEqual(self.fc.faults()[0]["remaining"], 0)

    def test_status_http_date_and_raw_body_and_429(self):
        date = "Wed, 21 Oct 2015 07:28:00 GMT"
        self.fc.add_faults([
            {"path": "download$", "kind": "status", "status": 429, "retry_after": date},
            {"path": "error$", "kind": "status", "status": 502, "body": "<html>bad gw</html>"},
        ])
        st, h, body = self.get(self.dl())
        self.assertEqual((st, h["retry-after"]), (429, date))
        self.assertEqual(json.loads(body)["code"], 277)
        st, h, body = self.get(jobs_path(self.guid, self.key, "error"))
        self.assertEqual((st, body), (502, b"<html>bad gw</html>"))
        self.assertTrue(h["content-type"].startswith("text/plain"))
        self.assertNotIn("retry-after", h)

    def test_reset_after_bytes(self):
        self.fc.add_fault(path="download$", kind="reset", after_bytes=1000)
        data, err = raw_exchange(self.fc.port, self.dl())
        self.assertIsInstance(err, ConnectionResetError)  # an RST, not a FIN
        head, _, body = data.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200 OK"), head)
        self.assertIn(b"Content-Length: %d" % self.SIZE, head)
        self.assertLessEqual(len(body), 1000)
        self.assertTrue(self.full().startswith(body))
        # http.client sees a broken transfer
        self.fc.add_fault(path="download$", kind="reset")
        c = self.conn()
        with self.assertRaises(BROKEN):
            c.request("GET", self.dl(), headers=AUTH)
            c.getresponse().read()
        c.close()
        reqs = self.fc.requests()
        self.assertEqual([r["fault"] for r in reqs], ["reset", "reset"])
        self.assertEqual(reqs[0]["body_bytes"], 1000)
        # and the server is fine afterwards
        st, _, body = self.get(self.dl())
        self.assertEqual((st, body), (200, self.full()))

    def test_reset_before_headers(self):
        self.fc.add_fault(path="download$", kind="reset", before_headers=True)
        data, err = raw_exchange(self.fc.port, self.dl())
        self.assertEqual(data, b"")
        self.assertIsInstance(err, ConnectionResetError)
        self.assertIsNone(self.fc.requests()[0]["status"])

    def test_close_without_response(self):
        self.fc.add_fault(path="jobs$", kind="close")
        data, err = raw_exchange(self.fc.port, jobs_path(self.guid))
        self.assertEqual((data, err), (b"", None))
        c = self.conn()
        self.fc.add_fault(path="jobs$", kind="close")
        with self.assertRaises(http.client.RemoteDisconnected):
            c.request("GET", jobs_path(self.guid), headers=AUTH)
            c.getresponse()
        c.close()

    def test_truncate(self):
        self.fc.add_fault(path="download$", kind="truncate")
        c = self.conn()
        c.request("GET", self.dl(), headers=AUTH)
        r = c.getresponse()
        self.assertEqual(r.status, 200)
        self.assertEqual(int(r.getheader("Content-Length")), self.SIZE)
        with self.assertRaises(http.client.IncompleteRead) as cm:
            r.read()
        self.assertEqual(len(cm.exception.partial), self.SIZE // 2)
        self.assertEqual(cm.exception.partial, self.full()[:self.SIZE // 2])
        c.close()
        self.fc.add_fault(path="download$", kind="truncate", after_bytes=10)
        data, err = raw_exchange(self.fc.port, self.dl())
        self.assertIsNone(err)  # a clean FIN
        self.assertEqual(len(data.partition(b"\r\n\r\n")[2]), 10)

    def test_garbage(self):
        self.fc.add_fault(path="jobs$", kind="garbage")
        st, h, body = self.get(jobs_path(self.guid))
        self.assertEqual((st, h["content-type"], body), (200, "application/json",
                                                          b'{"not": json'))
        with self.assertRaises(ValueError):
            json.loads(body)
        self.fc.add_fault(path="error$", kind="garbage", body="[1,2")
        self.assertEqual(self.get(jobs_path(self.guid, self.key, "error"))[2], b"[1,2")
        self.assertEqual(json.loads(self.get(jobs_path(self.guid))[2])[0]["key"], self.key)

    def test_stream_and_gzip_bomb(self):
        self.fc.add_fault(path="jobs$", kind="stream", head="[", fill="[", size=1000,
                          end="]")
        st, h, body = self.get(jobs_path(self.guid))
        self.assertEqual((st, h["transfer-encoding"], len(body)), (200, "chunked", 1000))
        self.assertEqual(body, b"[" * 999 + b"]")
        self.fc.add_fault(path="jobs$", kind="gzip_bomb", size=5 << 20)
        st, h, body = self.get(jobs_path(self.guid))
        self.assertEqual((st, h["content-encoding"]), (200, "gzip"))
        self.assertLess(len(body), 64 * 1024)
        self.assertEqual(gzip.decompress(body), bytes(5 << 20))
        self.assertEqual(json.loads(self.get(jobs_path(self.guid))[2])[0]["key"], self.key)

    def test_slow(self):
        self.fc.add_fault(path="jobs$", kind="slow", delay=0.6)
        t = time.monotonic()
        st, _, body = self.get(jobs_path(self.guid))
        self.assertGreaterEqual(time.monotonic() - t, 0.55)
        self.assertEqual(st, 200)
        # a client timeout shorter than the delay
        self.fc.add_fault(path="jobs$", kind="slow", delay=2)
        c = self.conn(timeout=0.3)
        with self.assertRaises((socket.timeout, TimeoutError)):
            c.request("GET", jobs_path(self.guid), headers=AUTH)
            c.getresponse()
        c.close()

    def test_trickle(self):
        self.fc.add_fault(path="download$", kind="trickle", bytes_per_sec=200_000)
        t = time.monotonic()
        st, _, body = self.get(self.dl())
        took = time.monotonic() - t
        self.assertEqual((st, body), (200, self.full()))
        self.assertGreaterEqual(took, 0.4)
        self.assertLess(took, 3)
        # a client that gives up mid-trickle does not upset the server
        self.fc.clear_requests()
        self.fc.add_fault(path="download$", kind="trickle", bytes_per_sec=2000)
        c = self.conn(timeout=5)
        c.request("GET", self.dl(), headers=AUTH)
        r = c.getresponse()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.read(100), self.full()[:100])
        c.close()
        rec = wait_for(lambda: [q for q in self.fc.requests() if q["t_end"]], 5,
                       message="the trickling request to end")[0]
        self.assertLess(rec["body_bytes"], 2000)
        self.assertEqual(rec["fault"], "trickle")
        self.assertTrue(self.fc.health()["ok"])

    def test_chunked_broken(self):
        for mode in ("malformed", "close"):
            self.fc.add_fault(path="download$", kind="chunked_broken", mode=mode)
            c = self.conn()
            c.request("GET", self.dl(), headers=AUTH)
            r = c.getresponse()
            self.assertEqual(r.getheader("Transfer-Encoding"), "chunked")
            with self.assertRaises(http.client.IncompleteRead) as cm:
                r.read()
            self.assertEqual(cm.exception.partial, self.full()[:self.SIZE // 2], mode)
            c.close()
            data, err = raw_exchange(self.fc.port, self.dl())  # fault used up: whole body
            self.assertNotIn(b"zz-not-hex", data)
        self.fc.add_fault(path="download$", kind="chunked_broken", after_bytes=5)
        data, err = raw_exchange(self.fc.port, self.dl())
        self.assertTrue(data.endswith(b"5\r\n" + self.full()[:5] + b"\r\nzz-not-hex\r\nbroken\r\n"),
                        data[-80:])

    def test_times_skip_method_forever(self):
        self.fc.add_fault(path="jobs$", kind="status", status=500, skip=1, times=2)
        sts = [self.get(jobs_path(self.guid))[0] for _ in range(4)]
        self.assertEqual(sts, [200, 500, 500, 200])
        self.fc.clear_faults()
        self.fc.add_fault(path="jobs$", kind="status", status=500, method="POST")
        self.assertEqual(self.get(jobs_path(self.guid))[0], 200)
        self.fc.clear_faults()
        self.fc.add_fault(path="nomatch", kind="status", status=500, times=-1)
        self.fc.add_fault(path="/error$", kind="status", status=503, times=-1)
        self.assertEqual([self.get(jobs_path(self.guid, self.key, "error"))[0]
                          for _ in range(5)], [503] * 5)
        self.assertEqual(self.get(jobs_path(self.guid))[0], 200)
        f = self.fc.faults()
        self.assertEqual([x["remaining"] for x in f], [-1, -1])
        self.fc.clear_faults()
        self.assertEqual(self.fc.faults(), [])
        self.assertEqual(self.get(jobs_path(self.guid, self.key, "error"))[0], 200)

    def test_bad_fault_rejected(self):
        with self.assertRaises(RuntimeError):
            self.fc.add_fault(path="x", kind="nonsense")
        with self.assertRaises(RuntimeError):
            self.fc.add_fault(path="(", kind="reset")

    def test_fault_recorded_with_id(self):
        fid = self.fc.add_fault(path="jobs$", kind="garbage")
        self.get(jobs_path(self.guid))
        r = self.fc.requests()[0]
        self.assertEqual((r["fault"], r["fault_id"]), ("garbage", fid))


class TestScenarioFaultsAndControl(unittest.TestCase):
    def test_scenario_faults_add_update_delete_request_log(self):
        g = new_guid()
        faults = [{"path": "jobs$", "kind": "status", "status": 503, "retry_after": "1"}]
        with FakeConnect({g: [make_jobspec("FirstJob00000001", status=0)]},
                         faults=faults) as fc:
            self.assertEqual(fc.get(jobs_path(g))[0], 503)
            st, _, body = fc.get(jobs_path(g))
            self.assertEqual([j["key"] for j in json.loads(body)], ["FirstJob00000001"])
            self.assertEqual(json.loads(body)[0]["status"], 0)
            # add jobs while running, to existing and new content
            fc.add_job(g, make_jobspec("SecondJob0000002", log="two\n"))
            g2 = new_guid()
            fc.add_job(g2, make_job("BareJob000000003"))
            keys = [j["key"] for j in json.loads(fc.get(jobs_path(g))[2])]
            self.assertEqual(keys, ["FirstJob00000001", "SecondJob0000002"])
            self.assertEqual(fc.get(jobs_path(g, "SecondJob0000002", "download"))[2],
                             b"two\n")
            self.assertEqual(fc.get(jobs_path(g2))[0], 200)
            # update: job fields
            job = fc.update_job(g, "FirstJob00000001", status=2, exit_code=1)
            self.assertEqual((job["status"], job["exit_code"]), (2, 1))
            got = json.loads(fc.get(jobs_path(g, "FirstJob00000001"))[2])
            self.assertEqual((got["status"], got["exit_code"]), (2, 1))
            # update: spec-level
            fc.update_job(g, "FirstJob00000001", {"job": {}, "error": {"code": "X"},
                                                  "download_status": 404})
            self.assertEqual(fc.get(jobs_path(g, "FirstJob00000001", "error"))[0], 200)
            self.assertEqual(fc.get(jobs_path(g, "FirstJob00000001", "download"))[0], 404)
            # delete (Connect swept it); content status
            fc.delete_job(g, "FirstJob00000001")
            self.assertEqual(fc.get(jobs_path(g, "FirstJob00000001"))[0], 404)
            with self.assertRaises(RuntimeError):
                fc.update_job(g, "FirstJob00000001", status=2)
            fc.set_content(g2, status=404)
            self.assertEqual(json.loads(fc.get(jobs_path(g2))[2])["code"], 4)
            fc.set_content(g2, status=None)
            self.assertEqual(fc.get(jobs_path(g2))[0], 200)
            # request list and the --request-log file agree, once the server has finished
            # recording the last response (the client may see it before t_end is set)
            wait_for(lambda: all(r["t_end"] is not None for r in fc.requests()), 5,
                     message="every request recorded")
            reqs = fc.requests()
            self.assertEqual(reqs[0]["fault"], "status")
            self.assertEqual(reqs[0]["status"], 503)
            for r in reqs:
                self.assertEqual(set(r), {"method", "path", "status", "auth_ok", "fault",
                                          "fault_id", "t", "t_end", "conn", "body_bytes",
                                          "user_agent"})
                self.assertLessEqual(r["t"], r["t_end"])
            self.assertEqual([r["t"] for r in reqs], sorted(r["t"] for r in reqs))
            with open(fc.request_log_path) as f:
                logged = [json.loads(line) for line in f]
            self.assertEqual(sorted(r["t"] for r in logged), [r["t"] for r in reqs])
            self.assertEqual(len(fc.requests(path=r"/download$")), 2)
            fc.clear_requests()
            self.assertEqual(fc.requests(), [])
            self.assertTrue(fc.health()["ok"])

    def test_cli_listening_line_port_file_and_signals(self):
        d = tempfile.mkdtemp()
        sc = os.path.join(d, "s.json")
        with open(sc, "w") as f:
            json.dump({"api_key": "k", "content": {}}, f)
        for sig in (signal.SIGTERM, signal.SIGINT):
            pf = os.path.join(d, "port%d" % sig)
            p = subprocess.Popen([sys.executable, harness.FAKE_CONNECT, "--scenario", sc,
                                  "--port-file", pf], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
            line = p.stdout.readline()
            self.assertRegex(line, r"^listening on http://127\.0\.0\.1:\d+\n$")
            port = int(line.rsplit(":", 1)[1])
            with open(pf) as f:
                self.assertEqual(int(f.read()), port)
            self.assertEqual([n for n in os.listdir(d) if ".tmp" in n], [])
            p.send_signal(sig)
            out, err = p.communicate(timeout=5)
            self.assertEqual(p.returncode, 0, err)
            self.assertEqual(err, "")

    def test_bad_scenario_exits_2(self):
        d = tempfile.mkdtemp()
        sc = os.path.join(d, "s.json")
        with open(sc, "w") as f:
            f.write('{"content": {"g": {"jobs": [{"nojob": 1}]}}}')
        p = subprocess.run([sys.executable, harness.FAKE_CONNECT, "--scenario", sc],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 2)
        self.assertIn("bad scenario", p.stderr)

    def test_api_key_null_disables_auth(self):
        g = new_guid()
        with FakeConnect({g: []}, api_key=None) as fc:
            self.assertEqual(fc.get(jobs_path(g), key=False)[0], 200)


class TestLargeAndChunked(Base):
    BIG = 200 * 1024 * 1024
    BIGKEY = "BigLogJob0000001"

    @classmethod
    def make_content(cls, guid):
        cls.chunked_guid = new_guid()
        return {
            guid: [make_jobspec(cls.BIGKEY, log_size=cls.BIG),
                   make_jobspec("SmallJob00000001", log="small\n", chunked=True)],
            cls.chunked_guid: [dict(make_jobspec(cls.BIGKEY, log_size=cls.BIG),
                                    chunked=True)],
        }

    def stream(self, guid):
        c = self.conn(timeout=30)
        c.request("GET", jobs_path(guid, self.BIGKEY, "download"), headers=AUTH)
        r = c.getresponse()
        self.assertEqual(r.status, 200)
        h = hashlib.sha256()
        n = 0
        head = b""
        peak = 0
        while True:
            b = r.read(1 << 20)
            if not b:
                break
            if n == 0:
                head = b[:65536]
            h.update(b)
            n += len(b)
            if (n >> 20) % 16 == 0:
                peak = max(peak, rss_kb(self.fc.pid))
        c.close()
        return r, n, h.hexdigest(), head, peak

    def test_big_generated_log_deterministic_bounded_memory(self):
        r1, n1, h1, head1, peak1 = self.stream(self.guid)
        self.assertEqual(n1, self.BIG)
        self.assertEqual(int(r1.getheader("Content-Length")), self.BIG)
        r2, n2, h2, head2, peak2 = self.stream(self.chunked_guid)
        self.assertEqual(r2.getheader("Transfer-Encoding"), "chunked")
        self.assertIsNone(r2.getheader("Content-Length"))
        self.assertEqual((n2, h2), (n1, h1))  # same bytes, whatever the framing
        small = generated_log_bytes(self.BIGKEY, 65536, "2024-11-25T22:17:42Z")
        self.assertEqual(head1[:-1], small[:-1])
        self.assertLess(max(peak1, peak2), 80 * 1024, "server RSS %d kB" % max(peak1, peak2))
        reqs = self.fc.requests(path="download$")
        self.assertEqual([r["body_bytes"] for r in reqs], [self.BIG, self.BIG])

    def test_chunked_small_framing(self):
        data, err = raw_exchange(self.fc.port, jobs_path(self.guid, "SmallJob00000001",
                                                         "download"))
        self.assertIsNone(err)
        head, _, body = data.partition(b"\r\n\r\n")
        self.assertIn(b"Transfer-Encoding: chunked", head)
        self.assertNotIn(b"Content-Length", head)
        self.assertEqual(body, b"6\r\nsmall\n\r\n0\r\n\r\n")

    def test_client_disconnect_mid_download(self):
        for _ in range(3):
            s = socket.create_connection(("127.0.0.1", self.fc.port))
            s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Key %s\r\n\r\n"
                       % (jobs_path(self.guid, self.BIGKEY, "download"), KEY)).encode())
            s.recv(100000)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.close()
        wait_for(lambda: all(r["t_end"] for r in self.fc.requests()), 10,
                 message="aborted downloads to finish")
        self.assertTrue(self.fc.health()["ok"])
        self.assertEqual(self.get(jobs_path(self.guid))[0], 200)
        for r in self.fc.requests(path="download$"):
            self.assertLess(r["body_bytes"], self.BIG)

    def test_concurrent_clients(self):
        results = []

        def worker(i):
            st, _, body = self.get(jobs_path(self.guid, "SmallJob00000001", "download"))
            results.append((st, body))
        ts = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(20)
        self.assertEqual(results, [(200, b"small\n")] * 16)


class TestHarnessHelpers(unittest.TestCase):
    def test_write_config(self):
        d = tempfile.mkdtemp()
        p = write_config(d, "http://127.0.0.1:9", os.path.join(d, "a"),
                         content=["g-1", ("g-2", "sales dash"), {"guid": "g-3"}],
                         server__timeout_seconds=3, archive={"compression_level": 1},
                         poll__interval_seconds=None, metrics_file=os.path.join(d, "m"))
        text = read_text(p)
        self.assertIn('  url: "http://127.0.0.1:9"\n', text)
        self.assertIn('  api_key_file: "%s/api-key"\n' % d, text)
        self.assertIn("  timeout_seconds: 3\n", text)
        self.assertIn("  compression_level: 1\n", text)
        self.assertNotIn("interval_seconds", text)
        self.assertNotIn("poll:", text)
        self.assertIn('content:\n  - "g-1"\n  - guid: "g-2"\n    name: "sales dash"\n'
                      '  - guid: "g-3"\n', text)
        self.assertEqual(os.stat(os.path.join(d, "api-key")).st_mode & 0o777, 0o600)
        self.assertEqual(read_text(os.path.join(d, "api-key")), "secret\n")
        d2 = tempfile.mkdtemp()
        p = write_config(d2, None, "/x", content=None, api_key_env="MY_KEY", bogus=1)
        text = read_text(p)
        self.assertIn('api_key_env: "MY_KEY"', text)
        self.assertNotIn("url:", text)
        self.assertNotIn("content", text)
        self.assertIn("bogus: 1\n", text)
        self.assertFalse(os.path.exists(os.path.join(d2, "api-key")))

    def test_read_archive_and_temporaries(self):
        d = tempfile.mkdtemp()
        day = os.path.join(d, "g1", "2024", "11", "25")
        os.makedirs(day)
        with open(os.path.join(day, "k1.log.gz"), "wb") as f:
            f.write(gzip.compress(b"log line\n"))
        with open(os.path.join(day, "k1.error.json"), "w") as f:
            json.dump({"code": "E"}, f)
        with open(os.path.join(day, "k1.json"), "w") as f:
            json.dump({"job": {"key": "k1"}, "error": {"code": "E"}}, f)
        with open(os.path.join(day, "k2.json"), "w") as f:
            json.dump({"job": {"key": "k2"}, "error": None, "log_bytes": None}, f)
        a = read_archive(d)
        self.assertEqual(sorted(a), ["g1/2024/11/25/k1.error.json", "g1/2024/11/25/k1.json",
                                     "g1/2024/11/25/k1.log.gz", "g1/2024/11/25/k2.json"])
        self.assertEqual(a.logs["g1/2024/11/25/k1.log.gz"], b"log line\n")
        self.assertEqual(a.jobs["k1"]["log"], b"log line\n")
        self.assertEqual(a.jobs["k1"]["error"], {"code": "E"})
        self.assertEqual(a.jobs["k2"]["record"]["log_bytes"], None)
        self.assertIsNone(a.jobs["k2"]["log"])
        self.assertEqual(a.jobs["k1"]["dir"], "g1/2024/11/25")
        assert_no_temporaries(d)
        for name in (".k3.json.XXXXXX", "k3.json.tmp", "k3.log.gz.part", "k4.txt"):
            open(os.path.join(day, name), "w").close()
        self.assertEqual(find_temporaries(d), sorted(
            "g1/2024/11/25/" + n for n in
            (".k3.json.XXXXXX", "k3.json.tmp", "k3.log.gz.part", "k4.txt")))
        with self.assertRaises(AssertionError):
            assert_no_temporaries(d)
        assert_no_temporaries(d, allow=[r"k3", r"k4\.txt$"])
        with open(os.path.join(day, "bad.log.gz"), "wb") as f:
            f.write(b"not gzip")
        with self.assertRaises(AssertionError):
            read_archive(d)

    def test_misc(self):
        self.assertRegex(new_guid(), r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-"
                                     r"[0-9a-f]{12}$")
        self.assertRegex(new_key(), r"^[A-Za-z0-9]{16}$")
        j = make_job("K", status=0)
        self.assertIsNone(j["end_time"])
        self.assertIsNone(j["exit_code"])
        self.assertIsInstance(j["id"], str)
        j = make_job("K", start_time="2006-01-02T15:04:05-07:00", end_time=None,
                     content_guid="g")
        self.assertEqual((j["status"], j["end_time"], j["exit_code"]), (2, None, 0))
        self.assertEqual(j["content_guid"], "g")
        self.assertEqual(make_job("K", status=3)["skip_reason"][:1], "A")
        env = harness.archiver_env({"CONNECT_API_KEY": "x", "HOME": None})
        self.assertEqual(env["CONNECT_API_KEY"], "x")
        self.assertNotIn("HOME", env)
        self.assertNotIn("http_proxy", harness.archiver_env())


if __name__ == "__main__":
    unittest.main(verbosity=2)
