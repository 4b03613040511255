#!/usr/bin/env python3
"""The search catalog: the daemon writes it as it archives, and connect-jobs ls and search
print byte-identical output with it and without it (CJA_CATALOG=0: a full scan), for random
literals (-F, -i, -w, several -e, -v, -c, -l) and generated EREs (alternations, brackets,
repetitions, groups, anchors, back-references, in the C and C.UTF-8 locales) over a generated
archive; a selective regex reads only the jobs that can match (CJA_CATALOG_STATS=1); a
catalog truncated or with a byte flipped anywhere in it changes nothing; reindex rebuilds
it."""
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (FakeConnect, make_jobspec, new_guid, read_archive,  # noqa: E402
                     run_archiver, run_jobs, start_archiver, write_config)
from test_search_ere import Gen  # noqa: E402

WORDS = ["alpha", "Bravo", "charlie", "DELTA", "echo", "foxtrot", "golf", "hotel", "india",
         "juliet", "kilo", "Lima", "mike", "november", "oscar", "papa"]


def gen_log(rng, i, big=False):
    lines = []
    n = 3000 if big else rng.randint(1, 40)
    for k in range(n):
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 6)))
        lines.append("2026/09/0%d 10:00:%02d.%09d [stdout] %s req-%06d\n"
                     % (1 + i % 3, k % 60, k, words, rng.randint(0, 999999)))
    return "".join(lines)


NOTICE = re.compile(rb"^connect-jobs: the catalog does not cover (\d+) day folders? "
                    rb"\(missing, changed since, or damaged\): read from (its|their) records; "
                    rb"'connect-jobs reindex' rebuilds it\n", re.M)


def split_notice(stderr):
    """stderr without the catalog's notice, and the notices' folder counts."""
    return NOTICE.sub(b"", stderr), [int(m.group(1)) for m in NOTICE.finditer(stderr)]


class CatalogTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rng = random.Random(int(os.environ.get("CJA_CATALOG_SEED", "23")))
        cls.rng = rng
        cls.tmp = tempfile.mkdtemp(prefix="cja-catalog-")
        cls.archive = os.path.join(cls.tmp, "archive")
        items = {}
        cls.logs = []
        for g in range(3):
            specs = []
            for i in range(25):
                log = gen_log(rng, i, big=(g == 0 and i == 0))
                if g == 1 and i in (3, 17):
                    # What the selective regex of test_regex_prunes finds, in two jobs only.
                    log += "2026/09/01 10:00:59.000000001 [stdout] token barbaz%d done\n" % (7 * i)
                cls.logs.append(log)
                specs.append(make_jobspec("job%02d%010d" % (g, i),
                                          start_time="2026-09-0%dT10:%02d:00Z" % (1 + i % 3, i),
                                          exit_code=i % 4 == 0, log=log))
            items[new_guid()] = specs
        cls.fc = FakeConnect(items)
        cls.fc.start()
        cls.cfg = write_config(cls.tmp, cls.fc.url, cls.archive,
                               content=[(g, None) for g in items])
        # Small segments: sealed every 20 jobs, merged by 8, so every kind of file is there.
        # A unit per member (CJA_CATALOG_UNIT_BYTES=1), so that the counts of jobs read below
        # are those of the jobs that can match; the kill test seals with the default units.
        p = run_archiver(["--config", cls.cfg, "--once"],
                         env={"CJA_CATALOG_SEAL_JOBS": "20", "CJA_CATALOG_UNIT_BYTES": "1"})
        assert p.returncode == 0, p.stderr
        cls.catdir = os.path.join(cls.archive, ".catalog")

    @classmethod
    def tearDownClass(cls):
        cls.fc.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def cj(self, args, catalog=True):
        env = {} if catalog else {"CJA_CATALOG": "0"}
        return run_jobs(["--archive", self.archive] + args, env=env, text=False)

    def same(self, args, covered=True):
        """The same output with the catalog as without; covered: the catalog covers every
        folder (no notice), False: it says it does not, once, on stderr."""
        a, b = self.cj(args), self.cj(args, catalog=False)
        err, notices = split_notice(a.stderr)
        self.assertEqual((a.returncode, a.stdout, err), (b.returncode, b.stdout, b.stderr),
                         args)
        # (A pattern refused ends before any folder is read: nothing to say.)
        if covered is not None and not (b.returncode == 2 and not b.stdout):
            self.assertEqual(len(notices), 0 if covered else 1, (args, a.stderr))
        return a

    def queries(self, n=30):
        rng = random.Random(7)
        out = []
        for _ in range(n):
            log = rng.choice(self.logs)
            line = rng.choice(log.splitlines())
            start = rng.randrange(0, max(1, len(line) - 12))
            lit = line[start:start + rng.randint(3, 12)]
            opts = rng.choice([[], ["-F"], ["-i"], ["-w"], ["-c"], ["-l"], ["-F", "-i"], ["-v", "-c"],
                               ["-L"], ["-x"], ["-o"], ["-q"], ["-i", "-w"]])
            out.append(opts + ["-e", lit])
        out.append(["-e", "absent-zzz-string"])
        out.append(["-e", "req-0", "-e", "no-such-thing"])
        out.append(["-i", "-e", "BRAVO CHARLIE"])
        out.append(["-i", "-e", "KILO"])
        out.append(["-L", "-e", "absent-zzz-string"])
        out.append(["-e", "alpha.*golf"])
        out.append(["-C", "2", "-e", "hotel india"])
        return out

    def ere_queries(self, n=90):
        """Generated EREs made of the archive's own text, so that many of them match."""
        rng = random.Random(int(os.environ.get("CJA_CATALOG_ERE_SEED", "11")))
        lines = [ln for log in self.logs for ln in log.splitlines()]

        def piece():
            line = rng.choice(lines)
            a = rng.randrange(len(line))
            t = line[a:a + rng.randint(1, 7)]
            if rng.random() < 0.3:
                t = t.swapcase()
            return re.sub(r"([][\\.*+?{}()|^$])", r"\\\1", t)

        def atom(depth, groups):
            k = rng.random()
            if k < 0.45:
                return piece()
            if k < 0.5:
                return rng.choice(WORDS)
            if k < 0.6:
                return rng.choice(["[a-z]", "[0-9]", "[aeiou]", "[^ ]", "[[:digit:]]", "[A-Fa-f]",
                                   "[kK]", "[-0-9]", "\\w", "\\s", "\\W", "[[:alpha:]]", "[st]"])
            if k < 0.65:
                return "."
            if k < 0.72:
                return rng.choice(["^", "$", "\\<", "\\>", "\\b", "\\B"])
            if k < 0.75 and groups[0] > 0:
                return "\\%d" % rng.randint(1, groups[0])
            if depth < 3:
                groups[0] += 1
                return "(" + alt(depth + 1, groups) + ")"
            return piece()

        def branch(depth, groups):
            out = ""
            for _ in range(rng.randint(1, 4)):
                out += atom(depth, groups)
                if rng.random() < 0.3:
                    out += rng.choice(["*", "+", "?", "{2}", "{1,3}", "{0,2}", "{2,}", "{1}"])
            return out

        def alt(depth, groups):
            parts = [branch(depth, groups)]
            while rng.random() < 0.35:
                parts.append(branch(depth, groups) if rng.random() < 0.9 else "")
            return "|".join(parts)

        gen = Gen(rng)
        out = []
        for k in range(n):
            pats = [alt(0, [0]) if k % 6 else gen.pattern()]
            while rng.random() < 0.2:
                pats.append(alt(0, [0]))
            opts = rng.choice([[], [], ["-i"], ["-w"], ["-x"], ["-c"], ["-l"], ["-o"], ["-i", "-w"],
                               ["-i", "-c"], ["-v", "-c"], ["-L"]])
            loc = "C.UTF-8" if k % 2 else "C"
            out.append((loc, opts + [a for p in pats for a in ("-e", p)]))
        out.append(("C", ["-e", "(foo|bar)baz[0-9]+"]))
        out.append(("C.UTF-8", ["-i", "-e", "(alpha|bravo) (golf|hotel)"]))
        out.append(("C", ["-e", "req-0{3}[1-9]"]))
        out.append(("C", ["-e", "\\[stdout\\] (kilo|lima)+ "]))
        return out

    def test_daemon_wrote_the_catalog(self):
        names = os.listdir(self.catdir)
        self.assertIn("open", names)
        self.assertTrue(any(n.endswith(".cat") for n in names), names)

    def test_ls_identical(self):
        for args in (["ls"], ["ls", "--failed"], ["ls", "-r", "-o", "json"],
                     ["ls", "--since", "2026-09-02", "--until", "2026-09-02"]):
            self.same(args)

    def test_search_identical(self):
        for q in self.queries():
            self.same(["search", "--color=never"] + q)

    def test_search_ere_identical(self):
        matched = 0
        for loc, q in self.ere_queries():
            args = ["search", "--color=never"] + q
            env = {"LC_ALL": loc}
            a = run_jobs(["--archive", self.archive] + args, env=env, text=False)
            b = run_jobs(["--archive", self.archive] + args, env=dict(env, CJA_CATALOG="0"),
                         text=False)
            self.assertEqual((a.returncode, a.stdout, a.stderr),
                             (b.returncode, b.stdout, b.stderr), (loc, args))
            matched += a.returncode == 0
        # The generated patterns are not all trivial misses.
        self.assertGreater(matched, 20)

    def stats(self, args):
        p = run_jobs(["--archive", self.archive, "search", "--color=never"] + args,
                     env={"CJA_CATALOG_STATS": "1"}, text=True)
        m = re.search(r"catalog: (\d+) of (\d+) jobs read", p.stderr)
        self.assertIsNotNone(m, p.stderr)
        return p, int(m.group(1)), int(m.group(2))

    def test_regex_prunes(self):
        p, read, seen = self.stats(["-e", "(foo|bar)baz[0-9]+"])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.count("barbaz"), 2, p.stdout)
        self.assertEqual(seen, 75)
        self.assertEqual(read, 2)
        p, read, seen = self.stats(["-i", "-e", "TOKEN (foo|bar)BAZ", "-e", "absent-zzz"])
        self.assertEqual((p.returncode, read, seen), (0, 2, 75), p.stderr)
        p, read, seen = self.stats(["-e", "x(yz|zy)w+q"])
        self.assertEqual((p.returncode, read, seen), (1, 0, 75), p.stderr)
        # Broad or unplannable patterns read every job.
        for args in (["-e", "req-[0-9]+"], ["-e", "(ab)?.*"], ["-v", "-e", "barbaz"],
                     ["-e", "barbaz", "-e", "[0-9]"]):
            p, read, seen = self.stats(args)
            self.assertEqual((read, seen), (75, 75), (args, p.stderr))

    def test_damaged_catalog_identical(self):
        files = sorted(os.listdir(self.catdir))
        saved = {n: open(os.path.join(self.catdir, n), "rb").read() for n in files}
        rng = random.Random(5)
        qs = self.queries(6)
        noticed = 0
        try:
            for name, data in saved.items():
                for _ in range(4):
                    path = os.path.join(self.catdir, name)
                    cut = rng.random() < 0.5
                    if cut:
                        damaged = data[:rng.randrange(len(data))]
                    else:
                        off = rng.randrange(len(data))
                        damaged = data[:off] + bytes([data[off] ^ 0x41]) + data[off + 1:]
                    with open(path, "wb") as f:
                        f.write(damaged)
                    # A damage the reader sees leaves folders uncovered, and it says so: a sealed
                    # file cut short always (a flipped byte in a posting list is found only
                    # when the list is read, and then its file's jobs are all read).
                    a = self.same(["ls"], covered=None)
                    uncovered = split_notice(a.stderr)[1]
                    if cut and name.endswith(".cat"):
                        self.assertEqual(len(uncovered), 1, (name, a.stderr))
                        noticed += 1
                    for q in qs:
                        self.same(["search", "--color=never"] + q,
                                  covered=None if "-q" in q else not uncovered)
                    with open(path, "wb") as f:
                        f.write(data)
            self.assertGreater(noticed, 0)
            self.same(["ls"])  # whole again: no notice
        finally:
            for name, data in saved.items():
                with open(os.path.join(self.catdir, name), "wb") as f:
                    f.write(data)

    def test_reindex(self):
        p = run_jobs(["--archive", self.archive, "reindex"], env={"CJA_CATALOG_UNIT_BYTES": "1"})
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("catalog: 75 jobs", p.stderr)
        for q in self.queries(10):
            self.same(["search", "--color=never"] + q)


BLOCK = 256 * 1024


def big_log(rng, tag, size):
    """A log of about size bytes whose marks sit where members split: a line cut by a
    member's end (the mark across it), a line over three members (its mark at its end, in
    the third), and a mark in the last member only."""
    out, n = [], 0

    def line(text):
        nonlocal n
        out.append(text)
        n += len(text)

    k = 0
    while n < size:
        for boundary in (BLOCK, 2 * BLOCK):
            if n + 20 < boundary <= n + 200:
                # The boundary falls inside "crossmark-...": its trigrams are in neither
                # member alone.
                pad = boundary - n - 14
                line("x" * max(pad, 0) + " [stdout] crossmark-%s-%d done\n" % (tag, boundary))
        if 3 * BLOCK - 1000 < n < 3 * BLOCK:
            # One line of 600 KiB: it starts in a member and ends two members later.
            line("longline " + "y" * (600 * 1024) + " longmark-%s\n" % tag)
        k += 1
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 6)))
        line("2026/09/01 10:00:%02d.%09d [stdout] %s req-%06d\n"
             % (k % 60, k, words, rng.randint(0, 999999)))
    line("2026/09/01 11:00:00.000000000 [stdout] latemark-%s the end\n" % tag)
    line("no newline at the end latemark-%s" % tag)
    return "".join(out)


class CatalogMembersTest(unittest.TestCase):
    """Logs of many members (over 256 KiB): search decodes only the members that may match,
    and prints what a full scan prints, line numbers, counts and all."""

    @classmethod
    def setUpClass(cls):
        rng = random.Random(int(os.environ.get("CJA_CATALOG_SEED", "23")))
        cls.tmp = tempfile.mkdtemp(prefix="cja-catalog-members-")
        cls.archive = os.path.join(cls.tmp, "archive")
        specs, cls.logs = [], {}
        for i in range(6):
            log = big_log(rng, "j%d" % i, 1_400_000 + 90_000 * i) if i % 2 == 0 else \
                gen_log(rng, i)
            cls.logs["j%d" % i] = log
            specs.append(make_jobspec("big%02d%010d" % (0, i),
                                      start_time="2026-09-01T10:%02d:00Z" % i, log=log))
        guid = new_guid()
        cls.fc = FakeConnect({guid: specs})
        cls.fc.start()
        cls.cfg = write_config(cls.tmp, cls.fc.url, cls.archive, content=[(guid, None)])
        # A seal every 4 jobs: rows in a sealed file and in the open segment.
        p = run_archiver(["--config", cls.cfg, "--once"],
                         env={"CJA_CATALOG_SEAL_JOBS": "4", "CJA_CATALOG_UNIT_BYTES": "1"})
        assert p.returncode == 0, p.stderr

    @classmethod
    def tearDownClass(cls):
        cls.fc.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def search(self, args, env=None):
        return run_jobs(["--archive", self.archive, "search", "--color=never"] + args,
                        env=env, text=False)

    def same(self, args):
        a, b = self.search(args), self.search(args, env={"CJA_CATALOG": "0"})
        self.assertEqual((a.returncode, a.stdout, a.stderr), (b.returncode, b.stdout, b.stderr),
                         args)
        return a

    def members(self, args):
        p = run_jobs(["--archive", self.archive, "search", "--color=never"] + args,
                     env={"CJA_CATALOG_STATS": "1"}, text=True)
        m = re.search(r"catalog: (\d+) of (\d+) jobs read, (\d+) of (\d+) members", p.stderr)
        self.assertIsNotNone(m, p.stderr)
        return p, [int(x) for x in m.groups()]

    def test_late_and_crossing_matches(self):
        for tag in ("j0", "j2", "j4"):
            for pat in ("latemark-" + tag, "crossmark-%s-%d" % (tag, BLOCK),
                        "crossmark-%s-%d" % (tag, 2 * BLOCK), "longmark-" + tag,
                        "longline y", "mark-%s" % tag):
                for opts in ([], ["-H"], ["-c"], ["-o"], ["-m", "1"], ["-l"], ["-i"], ["-w"],
                             ["-h"], ["-C", "1"], ["-A", "2"], ["-B", "1"], ["-x"],
                             ["-F"]):
                    p = self.same(opts + ["-e", pat])
                    if opts in ([], ["-c"], ["-C", "1"]):
                        self.assertEqual(p.returncode, 0, (opts, pat, p.stderr))
        # Several patterns, an ERE, one absent.
        for args in (["-e", "latemark-j0", "-e", "crossmark-j2"], ["-e", "(late|cross)mark-j4"],
                     ["-e", "req-0000[0-9]"], ["-e", "zz-absent-zz"],
                     ["-c", "-e", "latemark-j[0-9]"]):
            self.same(args)
        p = run_jobs(["--archive", self.archive, "-o", "json", "search", "latemark-j2"],
                     text=False)
        q = run_jobs(["--archive", self.archive, "-o", "json", "search", "latemark-j2"],
                     env={"CJA_CATALOG": "0"}, text=False)
        self.assertEqual((p.returncode, p.stdout), (q.returncode, q.stdout))

    def touched(self, tag, mark):
        """The members of job tag that the lines holding mark lie in (a line's newline
        included): what search decodes for it."""
        log, out = self.logs[tag], set()
        for m in re.finditer(re.escape(mark), log):
            start = log.rfind("\n", 0, m.start()) + 1
            end = log.find("\n", m.end())
            end = len(log) if end < 0 else end + 1
            out.update(range(start // BLOCK, (end - 1) // BLOCK + 1))
        return len(out), (len(log) + BLOCK - 1) // BLOCK

    def test_only_candidate_members_decoded(self):
        for tag, mark, want in (("j4", "latemark-j4", 1), ("j0", "longmark-j0", 4),
                                ("j2", "crossmark-j2-%d" % BLOCK, 2),
                                ("j2", "crossmark-j2-%d" % (2 * BLOCK), 2)):
            touched, total = self.touched(tag, mark)
            self.assertEqual(touched, want, (tag, mark))  # the log is as meant
            p, (jobs, seen, dec, members) = self.members(["-e", mark])
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual((jobs, seen, dec, members), (1, 6, touched, total),
                             (mark, p.stderr))

    def test_reindexed_the_same(self):
        p = run_jobs(["--archive", self.archive, "reindex"], env={"CJA_CATALOG_UNIT_BYTES": "1"})
        self.assertEqual(p.returncode, 0, p.stderr)
        for args in (["-e", "latemark-j4"], ["-c", "-e", "crossmark"],
                     ["-e", "longmark-j0"]):
            self.same(args)
        p, (jobs, seen, dec, members) = self.members(["-e", "latemark-j4"])
        self.assertEqual((jobs, dec), (1, 1), p.stderr)


class CatalogKillTest(unittest.TestCase):
    """kill -9 while the catalog is appended, sealed and merged (a seal every 3 jobs, so most
    kills land in one): the catalog left behind answers as a full scan does, and the next run
    archives the rest once."""

    def test_kill_while_sealing_and_merging(self):
        rng = random.Random(int(os.environ.get("CJA_CATALOG_SEED", "23")))
        tmp = tempfile.mkdtemp(prefix="cja-catalog-kill-")
        archive = os.path.join(tmp, "archive")
        items, keys = {}, []
        for g in range(3):
            specs = []
            for i in range(40):
                key = "kill%02d%010d" % (g, i)
                keys.append(key)
                specs.append(make_jobspec(key, start_time="2026-09-0%dT10:%02d:00Z"
                                          % (1 + i % 3, i), log=gen_log(rng, i)))
            items[new_guid()] = specs
        env = {"CJA_CATALOG_SEAL_JOBS": "3"}
        kills = 0
        try:
            with FakeConnect(items) as fc:
                # Slow enough that a run lasts a while: every download trickles a little.
                fc.add_fault(path="/download$", kind="slow", delay=0.02, times=-1)
                cfg = write_config(tmp, fc.url, archive, content=[(g, None) for g in items],
                                   server__max_concurrent_requests=2)
                for round_ in range(8):
                    p = start_archiver(["--config", cfg, "--once"], env=env)
                    time.sleep(rng.uniform(0.1, 0.9))
                    if p.poll() is None:
                        p.send_signal(signal.SIGKILL)
                        kills += 1
                    p.wait()
                    self.assert_catalog_answers_as_a_scan(archive, "after kill %d" % round_)
                p = run_archiver(["--config", cfg, "--once"], env=env)
                self.assertEqual(p.returncode, 0, p.stderr[-3000:])
                got = [j for j in read_archive(archive).jobs]
                self.assertEqual(sorted(got), sorted(keys))
                downloads = [r["path"].split("/")[6] for r in fc.requests(path="/download$")
                             if r["status"] == 200]
                # Each job's log fetched once, or again only when a kill cut its first try.
                self.assertEqual(set(downloads), set(keys))
                self.assert_catalog_answers_as_a_scan(archive, "at the end")
                sealed = [f for f in os.listdir(os.path.join(archive, ".catalog"))
                          if f.endswith(".cat")]
                self.assertTrue(sealed, "no sealed catalog file was written")
            self.assertGreater(kills, 0)
            print("catalog: %d kills -9 during runs sealing every 3 jobs" % kills,
                  file=sys.stderr)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def assert_catalog_answers_as_a_scan(self, archive, when):
        for args in (["ls", "-o", "json"], ["search", "-c", "-F", "juliet"],
                     ["search", "-H", "-i", "-e", "kilo lima"]):
            a = run_jobs(["--archive", archive] + args, text=False)
            b = run_jobs(["--archive", archive] + args, env={"CJA_CATALOG": "0"}, text=False)
            self.assertEqual((a.returncode, a.stdout), (b.returncode, b.stdout),
                             "%s: %s" % (when, args))


if __name__ == "__main__":
    unittest.main(verbosity=2)
