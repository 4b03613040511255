#!/usr/bin/env python3
"""Content discovery (discover:) end to end against the fake Connect server: each rule
kind alone and combined, child tags, exclude, an administrator's key against a
publisher's, names from Connect, items added, removed and deleted while the service runs,
a listing that fails for a while (nothing dropped), a reload with new rules, 403 and 404
without hammering, the back-off of quiet items, gzip, `connect-jobs content`, and a server
with 5,000 items."""

import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (FakeConnect, make_jobspec, new_guid, read_archive,  # noqa: E402
                     run_archiver, run_jobs, start_archiver, stop_process, wait_for,
                     write_config)

KEY = "cja-discovery-key-77a1"

# Finance (1) > Reports (2) > Quarterly (3); Finance > Dashboards (4); Ops (5) > Reports (6)
TAGS = [{"id": "1", "name": "Finance", "parent_id": None},
        {"id": "2", "name": "Reports", "parent_id": "1"},
        {"id": "3", "name": "Quarterly", "parent_id": "2"},
        {"id": "4", "name": "Dashboards", "parent_id": "1"},
        {"id": "5", "name": "Ops", "parent_id": None},
        {"id": "6", "name": "Reports", "parent_id": "5"}]


def item(key, **fields):
    """A content entry of the scenario with one finalized job (key)."""
    return dict(fields, jobs=[make_jobspec(key, log="log of %s\n" % key)])


class Fleet:
    """Six items with known owners, types, tags and roles; GUIDs by nickname."""

    def __init__(self):
        self.g = {n: new_guid() for n in ("quarterly", "reports", "dash", "opsrep", "alice",
                                          "viewer")}
        self.content = {
            # Tagged Finance/Reports/Quarterly: Connect also lists its ancestors' tags.
            self.g["quarterly"]: item("jobQuarterly0001", title="Quarterly numbers",
                                      app_mode="quarto-static", owner="bob",
                                      tags=["1", "2", "3"]),
            # Only the leaf tag listed (a server that does not add ancestors).
            self.g["reports"]: item("jobReports000001", name="finance-reports",
                                    app_mode="rmd-static", owner="bob", tags=["2"]),
            self.g["dash"]: item("jobDash000000001", title="Finance dashboard",
                                 app_mode="shiny", owner="carol", tags=["1", "4"]),
            self.g["opsrep"]: item("jobOpsReport0001", title="Ops report",
                                   app_mode="shiny", owner="dave", tags=["5", "6"]),
            self.g["alice"]: item("jobAlice00000001", title="Alice's API",
                                  app_mode="python-api", owner="alice"),
            # The key only views it: its jobs cannot be read unless the key is an admin's.
            self.g["viewer"]: item("jobViewer0000001", title="Someone else's",
                                   app_mode="shiny", owner="erin", app_role="viewer"),
        }
        self.keys = {g: c["jobs"][0]["job"]["key"] for g, c in self.content.items()}

    def scenario(self, **extra):
        return dict({"api_key": KEY, "content": self.content, "tags": TAGS}, **extra)


class DiscoveryOnceTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="cja-discovery-")
        self.fleet = Fleet()

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def once(self, rules, user=None, exclude=None, content=None, gzip=False):
        """--once with these rules; returns (archived GUIDs by nickname, the run)."""
        extra = {"gzip": gzip}
        if user is not None:
            extra["user"] = user
        archive = tempfile.mkdtemp(dir=self.tmp)
        with FakeConnect(scenario=self.fleet.scenario(**extra)) as fc:
            discover = {"refresh_seconds": 600, "rules": rules}
            if exclude:
                discover["exclude"] = exclude
            cfg = write_config(self.tmp, fc.url, archive, content=content, api_key=KEY,
                               discover=discover)
            p = run_archiver(["--once", "-c", cfg])
            self.fc_requests = fc.requests(everything=True)
        arch = read_archive(archive)
        names = {g: n for n, g in self.fleet.g.items()}
        got = set()
        for key, j in arch.jobs.items():
            got.add(names[j["record"]["content_guid"]])
        self.arch = arch
        return got, p

    def test_each_rule_kind_alone(self):
        cases = [
            ([{"all": True}], {"quarterly", "reports", "dash", "opsrep", "alice", "viewer"}),
            ([{"owner": "bob"}], {"quarterly", "reports"}),
            ([{"owner": "BOB"}], {"quarterly", "reports"}),  # usernames: case-insensitive
            ([{"type": "shiny"}], {"dash", "opsrep", "viewer"}),
            # A tag selects the items carrying it or any tag below it.
            ([{"tag": "Finance"}], {"quarterly", "reports", "dash"}),
            ([{"tag": "Finance/Reports"}], {"quarterly", "reports"}),
            ([{"tag": "Finance/Reports/Quarterly"}], {"quarterly"}),
            ([{"tag": "Ops/Reports"}], {"opsrep"}),
            ([{"tag": "Reports"}], set()),  # a path from the top, not a name anywhere
        ]
        for rules, want in cases:
            with self.subTest(rules=rules):
                got, p = self.once(rules)
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertEqual(got, want)

    def test_rules_combined_and_excluded(self):
        # Keys of a rule AND; rules OR.
        got, _ = self.once([{"tag": "Finance", "type": "shiny"}])
        self.assertEqual(got, {"dash"})
        got, _ = self.once([{"tag": "Finance", "owner": "bob", "type": "rmd-static"},
                            {"owner": "alice"}])
        self.assertEqual(got, {"reports", "alice"})
        got, _ = self.once([{"all": True}],
                           exclude=[self.fleet.g["dash"], self.fleet.g["viewer"].upper()])
        self.assertEqual(got, {"quarterly", "reports", "opsrep", "alice"})

    def test_publisher_key_sees_only_what_it_owns_or_edits(self):
        got, p = self.once([{"all": True}], user={"username": "pub", "user_role": "publisher"})
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertNotIn("viewer", got)
        self.assertEqual(len(got), 5)
        self.assertIn("not an administrator's", p.stderr)
        # No /v1/user (an old server): the narrower view, never a failure.
        got, p = self.once([{"all": True}], user=None)
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_names_from_connect_in_records(self):
        g = self.fleet.g
        got, p = self.once([{"owner": "bob"}, {"owner": "carol"}],
                           content=[(g["dash"], "my-dash"), g["alice"]])
        self.assertEqual(got, {"quarterly", "reports", "dash", "alice"})
        names = {j["record"]["content_guid"]: j["record"]["content_name"]
                 for j in self.arch.jobs.values()}
        self.assertEqual(names[g["quarterly"]], "Quarterly numbers")  # the title
        self.assertEqual(names[g["reports"]], "finance-reports")  # no title: the name
        self.assertEqual(names[g["dash"]], "my-dash")  # the configured name wins
        self.assertEqual(names[g["alice"]], "Alice's API")  # a listed item, Connect's name
        self.assertRegex(p.stderr, r"content=%s \(Quarterly numbers\) job=jobQuarterly0001: "
                                   r"archived" % g["quarterly"])

    def test_listed_items_get_connect_names_without_discovery(self):
        g = self.fleet.g
        archive = os.path.join(self.tmp, "plain")
        with FakeConnect(scenario=self.fleet.scenario()) as fc:
            cfg = write_config(self.tmp, fc.url, archive, content=[g["alice"], g["dash"]],
                               api_key=KEY)
            p = run_archiver(["--once", "-c", cfg])
            asked = fc.requests(path=r"^/__api__/v1/content/[^/]+\?", everything=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        names = {j["record"]["content_guid"]: j["record"]["content_name"]
                 for j in read_archive(archive).jobs.values()}
        self.assertEqual(names, {g["alice"]: "Alice's API", g["dash"]: "Finance dashboard"})
        self.assertEqual(len(asked), 2)  # once per unnamed item

    def test_gzip_listing(self):
        got, p = self.once([{"all": True}], gzip=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(len(got), 6)
        listing = [r for r in self.fc_requests if r["path"].startswith("/__api__/v1/content?")]
        self.assertEqual(len(listing), 1)

    def test_unknown_tag_is_said(self):
        got, p = self.once([{"tag": "Finance/Nope"}, {"owner": "alice"}])
        self.assertEqual(got, {"alice"})
        self.assertRegex(p.stderr, r"rule 1 \(.*config.yaml:\d+\): Connect has no tag "
                                   r"\"Finance/Nope\"")

    def test_a_failed_listing_fails_once_but_archives_the_listed(self):
        g = self.fleet.g
        archive = os.path.join(self.tmp, "fail")
        scen = self.fleet.scenario(faults=[{"path": r"^/__api__/v1/content$", "kind": "status",
                                            "status": 500, "times": -1}])
        with FakeConnect(scenario=scen) as fc:
            cfg = write_config(self.tmp, fc.url, archive, content=[g["alice"]], api_key=KEY,
                               discover={"rules": [{"all": True}]})
            p = run_archiver(["--once", "-c", cfg])
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("cannot list content", p.stderr)
        self.assertEqual(set(j["record"]["content_guid"]
                             for j in read_archive(archive).jobs.values()), {g["alice"]})

    def test_bad_rules_exit_78_with_place(self):
        cfg = os.path.join(self.tmp, "bad.yaml")
        with open(cfg, "w") as f:
            f.write("server:\n  url: http://127.0.0.1:1\narchive:\n  directory: %s\n"
                    "discover:\n  rules:\n    - tag: Finance\n      colour: red\n" % self.tmp)
        p = run_archiver(["--check-config", "-c", cfg], env={"CONNECT_API_KEY": KEY})
        self.assertEqual(p.returncode, 78)
        self.assertIn("bad.yaml:8:7: unknown key \"colour\" in a discover rule", p.stderr)

    def test_check_config_prints_the_rules(self):
        cfg = write_config(self.tmp, "http://127.0.0.1:1", self.tmp, content=None, api_key=KEY,
                           discover={"refresh_seconds": 120,
                                     "exclude": [self.fleet.g["viewer"]],
                                     "rules": [{"all": True},
                                               {"tag": "Finance/Reports", "type": "shiny"}]})
        p = run_archiver(["--check-config", "-c", cfg])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("discover:           every 120 s, 2 rules, 1 excluded", p.stdout)
        self.assertRegex(p.stdout, r"rule 1 \(line \d+\): all\n")
        self.assertRegex(p.stdout, r"rule 2 \(line \d+\): tag Finance/Reports and type shiny")


class ContentCommandTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="cja-content-")
        self.fleet = Fleet()

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_content_lists_the_watched_and_why(self):
        g = self.fleet.g
        with FakeConnect(scenario=self.fleet.scenario()) as fc:
            cfg = write_config(self.tmp, fc.url, self.tmp, content=[(g["alice"], "alices")],
                               api_key=KEY,
                               discover={"rules": [{"owner": "bob"}, {"tag": "Ops"},
                                                   {"owner": "alice"}]})
            p = run_jobs(["-c", cfg, "content"])
            self.assertEqual(p.returncode, 0, p.stderr)
            lines = p.stdout.splitlines()
            self.assertRegex(lines[0], r"^GUID +NAME +OWNER +TYPE +WHY$")
            rows = {line.split()[0]: line for line in lines[1:]}
            self.assertEqual(set(rows), {g["alice"], g["quarterly"], g["reports"], g["opsrep"]})
            self.assertRegex(rows[g["alice"]], r"alices +alice +python-api +config, rule 3$")
            self.assertRegex(rows[g["quarterly"]], r"Quarterly numbers +bob +quarto-static +rule 1$")
            self.assertRegex(rows[g["opsrep"]], r"Ops report +dave +shiny +rule 2$")
            pj = run_jobs(["-c", cfg, "-o", "json", "content"])
            self.assertEqual(pj.returncode, 0, pj.stderr)
            objs = {o["guid"]: o for o in map(json.loads, pj.stdout.splitlines())}
            self.assertEqual(objs[g["alice"]]["why"], ["config", "rule 3"])
            self.assertEqual(objs[g["reports"]]["name"], "finance-reports")
            self.assertEqual(objs[g["reports"]]["owner"], "bob")
            # The daemon's refresh, once a run: the user, the tags (a rule names one), the list.
            paths = [r["path"] for r in fc.requests(everything=True)]
            self.assertEqual(sorted(paths), sorted(["/__api__/v1/user", "/__api__/v1/tags",
                                                    "/__api__/v1/content?include=tags,owner"] * 2))

    def test_content_without_discovery_and_a_refused_key(self):
        g = self.fleet.g
        with FakeConnect(scenario=self.fleet.scenario()) as fc:
            cfg = write_config(self.tmp, fc.url, self.tmp, content=[g["dash"]], api_key=KEY)
            p = run_jobs(["-c", cfg, "content"])
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertRegex(p.stdout, r"%s +Finance dashboard +carol +shiny +config\n" % g["dash"])
            bad = write_config(self.tmp, fc.url, self.tmp, content=[g["dash"]], api_key="nope",
                               filename="bad.yaml")
            p = run_jobs(["-c", bad, "content"])
            self.assertEqual(p.returncode, 77, p.stderr)


class DiscoveryServiceTest(unittest.TestCase):
    """The service: the set changing while it runs."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="cja-discovery-svc-")
        self.archive = os.path.join(self.tmp, "archive")
        self.fleet = Fleet()

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def archived(self):
        # (a job the running service is writing has its log but no record yet)
        return {j["record"]["content_guid"] for j in read_archive(self.archive).jobs.values()
                if j["record"]}

    def jobs_requests(self, fc, guid):
        return len(fc.requests(path=r"/content/%s/jobs$" % guid))

    def test_added_removed_deleted_forbidden_and_reloaded(self):
        g = self.fleet.g
        with FakeConnect(scenario=self.fleet.scenario()) as fc:
            cfg = write_config(self.tmp, fc.url, self.archive, content=None, api_key=KEY,
                               poll__interval_seconds=1, poll__max_interval_seconds=1,
                               discover={"refresh_seconds": 1, "rules": [{"owner": "bob"}]})
            p = start_archiver(["-c", cfg])
            try:
                wait_for(lambda: self.archived() == {g["quarterly"], g["reports"]}, 15,
                         message="bob's items archived")
                # A new item appears: polled after the next refresh, no restart.
                new = new_guid()
                fc.set_content(new, owner="bob", title="Brand new")
                fc.add_job(new, make_jobspec("jobBrandNew000001", log="new\n"))
                wait_for(lambda: new in self.archived(), 15, message="the new item archived")

                # An item leaves the set (its owner changes): no longer polled.
                fc.set_content(g["reports"], owner="zed")
                left = re.compile(r"\(\d+ new, [1-9]\d* no longer\)")
                wait_for(lambda: left.search(p.read_stderr()), 10, message="item left")
                time.sleep(1.5)
                n = self.jobs_requests(fc, g["reports"])
                time.sleep(2.5)
                self.assertEqual(self.jobs_requests(fc, g["reports"]), n)

                # Content deleted on the server: its job list answers 404 code 4 while a
                # listing still has it (said once, not polled again), then it leaves the
                # listing and the set.
                fc.set_content(g["quarterly"], status=404)
                wait_for(lambda: "no longer exists on the server" in p.read_stderr(), 10,
                         message="404 said")
                time.sleep(2)
                n = self.jobs_requests(fc, g["quarterly"])
                time.sleep(2.5)
                self.assertEqual(self.jobs_requests(fc, g["quarterly"]), n)
                self.assertEqual(p.read_stderr().count("no longer exists on the server"), 1)
                n_left = len(left.findall(p.read_stderr()))
                fc.delete_content(g["quarterly"])
                wait_for(lambda: len(left.findall(p.read_stderr())) > n_left, 10,
                         message="the deleted item left the set")

                # 403 on a job list: said once, then polled at the ceiling only.
                fc.set_content(new, status=403)
                wait_for(lambda: "polled every 1 s until that changes" in p.read_stderr(), 10,
                         message="403 said")
                time.sleep(3)
                self.assertEqual(p.read_stderr().count("until that changes"), 1)

                # The listing fails for a while: nothing dropped, said once.
                fc.add_fault(path=r"^/__api__/v1/content$", kind="status", status=503,
                             times=-1)
                wait_for(lambda: "cannot list content" in p.read_stderr(), 10,
                         message="listing failure said")
                fc.set_content(new, status=None)
                fc.add_job(new, make_jobspec("jobDuringOutage01", log="still\n"))
                wait_for(lambda: (read_archive(self.archive).jobs.get("jobDuringOutage01") or
                                  {}).get("record"), 10,
                         message="polled through the outage")
                self.assertEqual(p.read_stderr().count("cannot list content"), 1)
                fc.clear_faults()
                wait_for(lambda: "listing content works again" in p.read_stderr(), 10,
                         message="recovered")

                # Reload with new rules: alice's item joins.
                cfg = write_config(self.tmp, fc.url, self.archive, content=None, api_key=KEY,
                                   poll__interval_seconds=1, poll__max_interval_seconds=1,
                                   discover={"refresh_seconds": 1,
                                             "rules": [{"owner": "alice"}]})
                p.send_signal(signal.SIGHUP)
                wait_for(lambda: g["alice"] in self.archived(), 15, message="reloaded rules")
            finally:
                self.assertEqual(stop_process(p), 0, p.read_stderr()[-3000:])
            # Every job once: each archived key is in the archive exactly one time.
            keys = list(read_archive(self.archive).jobs)
            self.assertEqual(len(keys), len(set(keys)))

    def test_quiet_items_back_off_and_come_back(self):
        g = self.fleet.g
        with FakeConnect(scenario=self.fleet.scenario()) as fc:
            cfg = write_config(self.tmp, fc.url, self.archive, content=[g["alice"]],
                               api_key=KEY, poll__interval_seconds=1,
                               poll__max_interval_seconds=4)
            p = start_archiver(["-c", cfg, "-v"])
            try:
                wait_for(lambda: g["alice"] in self.archived(), 10, message="archived")
                t0 = time.monotonic()
                n0 = self.jobs_requests(fc, g["alice"])
                time.sleep(9)
                polls = self.jobs_requests(fc, g["alice"]) - n0
                # Without back-off: 9 polls; with it: 1, 2, 4, 4 s apart.
                self.assertLessEqual(polls, 5, polls)
                self.assertGreaterEqual(polls, 2, polls)
                # A new job: archived within the ceiling (plus slack), then polls speed up.
                fc.add_job(g["alice"], make_jobspec("jobAfterQuiet001", log="x\n"))
                t0 = time.monotonic()
                wait_for(lambda: (read_archive(self.archive).jobs.get("jobAfterQuiet001") or
                                  {}).get("record"), 10,
                         message="archived after the quiet spell")
                self.assertLess(time.monotonic() - t0, 4 + 2.5)
            finally:
                self.assertEqual(stop_process(p), 0)


class ScaleTest(unittest.TestCase):
    def test_five_thousand_items(self):
        tmp = tempfile.mkdtemp(prefix="cja-discovery-scale-")
        try:
            content = {new_guid(): {"title": "item %d" % i, "owner": "u%d" % (i % 50),
                                    "app_mode": "shiny" if i % 3 else "rmd-static"}
                       for i in range(5000)}
            with FakeConnect(scenario={"api_key": KEY, "content": content,
                                       "gzip": True}) as fc:
                archive = os.path.join(tmp, "archive")
                cfg = write_config(tmp, fc.url, archive, content=None, api_key=KEY,
                                   poll__interval_seconds=3600,
                                   discover={"rules": [{"type": "rmd-static"}]})
                t0 = time.monotonic()
                p = start_archiver(["-c", cfg])
                try:
                    wait_for(lambda: "discovery: 5000 items listed" in p.read_stderr(), 60,
                             message="the listing")
                    took = time.monotonic() - t0
                    with open("/proc/%d/status" % p.pid) as f:
                        hwm = int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1))
                finally:
                    self.assertEqual(stop_process(p), 0)
                body = [r for r in fc.requests(everything=True)
                        if r["path"].startswith("/__api__/v1/content?")][0]["body_bytes"]
            self.assertIn("1667 selected by the rules; watching 1667", p.read_stderr())
            print("5,000 items: listed and applied in %.2f s, peak RSS %d KiB, listing %d "
                  "bytes gzip" % (took, hwm, body), file=sys.stderr)
            # Generous (ASan doubles memory): the listing is streamed, not held.
            self.assertLess(hwm, 200 * 1024)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
