#!/usr/bin/env python3
"""The fake server's endpoints for connect-jobs, on the wire: /tail in each framing (live,
closing at finalization), its plain-text 404, DELETE kill orders and their 409."""
import http.client
import json
import os
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import FakeConnect, make_jobspec, new_guid, wait_for  # noqa: E402

LOG = "2024/11/27 10:00:01.000000001 [stdout] one\n2024/11/27 10:00:02.500000000 [stderr] two\n"


class FakeJobsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.guid = new_guid()
        cls.fc = FakeConnect({cls.guid: []})
        cls.fc.start()

    @classmethod
    def tearDownClass(cls):
        cls.fc.stop()

    def request(self, method, path, timeout=10):
        conn = http.client.HTTPConnection("127.0.0.1", self.fc.port, timeout=timeout)
        conn.request(method, path, headers={"Authorization": "Key " + self.fc.api_key})
        return conn, conn.getresponse()

    def tail_raw(self, key, framing, replay):
        """Reads /tail while a line is appended and the job finalized; returns the body."""
        self.fc.add_job(self.guid, dict(make_jobspec(key, status=0, log=LOG),
                                        tail_framing=framing, tail_replay=replay))
        conn, resp = self.request("GET", "/__api__/v1/content/%s/jobs/%s/tail"
                                  % (self.guid, key))
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.getheader("Transfer-Encoding"), "chunked")
        out = []
        reader = threading.Thread(target=lambda: out.append(resp.read()))
        reader.start()
        self.fc.control("POST", "jobs/%s/%s/lines" % (self.guid, key), {"lines": ["three"]})
        self.fc.update_job(self.guid, key, status=2)
        reader.join(10)
        self.assertFalse(reader.is_alive(), "the stream did not close at finalization")
        conn.close()
        return out[0].decode("utf-8")

    def test_tail_framings(self):
        body = self.tail_raw("tailNdjson000001", "ndjson", "all")
        entries = [json.loads(ln) for ln in body.splitlines()]
        self.assertEqual([e["data"] for e in entries], ["one", "two", "three"])
        self.assertEqual(entries[1], {"source": "stderr", "timestamp":
                                      "2024-11-27T10:00:02.500000000Z", "data": "two"})
        body = self.tail_raw("tailSse000000001", "sse", 1)
        self.assertTrue(body.startswith(": stream open\n\n"), body)
        data = [json.loads(ln[6:]) for ln in body.splitlines() if ln.startswith("data: ")]
        self.assertEqual([e["data"] for e in data], ["two", "three"])
        self.assertIn("event: log\n", body)
        body = self.tail_raw("tailConcat000001", "concatenated", 0)
        self.assertTrue(body.startswith('{"source":"stdout"'), body)
        self.assertNotIn("\n", body)
        self.assertEqual(body.count('{"source"'), 1)  # only the new line

    def test_tail_missing_route(self):
        self.fc.add_job(self.guid, dict(make_jobspec("tailMissing00001", status=0),
                                        tail_status=404))
        st, h, body = self.fc.get("/__api__/v1/content/%s/jobs/tailMissing00001/tail"
                                  % self.guid)
        self.assertEqual((st, body), (404, b"404 page not found\n"))
        self.assertEqual(h["content-type"], "text/plain; charset=utf-8")

    def test_kill_and_409(self):
        key = "killMe0000000001"
        self.fc.add_job(self.guid, make_jobspec(key, status=0))
        conn, resp = self.request("DELETE", "/__api__/v1/content/%s/jobs/%s" % (self.guid, key))
        order = json.loads(resp.read())
        conn.close()
        self.assertEqual(resp.status, 200)
        self.assertEqual(order["job_key"], key)
        self.assertIsInstance(order["job_id"], int)
        self.assertEqual(order["result"], "Order to kill job registered")
        wait_for(lambda: json.loads(self.fc.get("/__api__/v1/content/%s/jobs/%s"
                                                % (self.guid, key))[2])["status"] == 2,
                 message="the kill to finalize the job")
        conn, resp = self.request("DELETE", "/__api__/v1/content/%s/jobs/%s" % (self.guid, key))
        err = json.loads(resp.read())
        conn.close()
        self.assertEqual((resp.status, err["code"]), (409, 163))
        conn, resp = self.request("DELETE", "/__api__/v1/content/%s/jobs/nope" % self.guid)
        self.assertEqual((resp.status, json.loads(resp.read())["code"]), (404, 4))
        conn.close()
        # DELETE is for jobs only.
        conn, resp = self.request("DELETE", "/__api__/v1/content/%s/jobs" % self.guid)
        self.assertEqual(resp.status, 405)
        conn.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
