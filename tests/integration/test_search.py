#!/usr/bin/env python3
"""connect-jobs ls and search over an archive written by the real archiver (against the fake
Connect server) and over files written by hand where a case needs it: every filter alone and
combined, time-zone edges at midnight UTC, every grep option, context at a job's start and
end, the same output whatever the parallelism, damaged files, crash temporaries, gzip files
of other tools, a line longer than any buffer, and the exit statuses."""
import gzip
import json
import os
import shutil
import sys
import tempfile
import unittest
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (FakeConnect, make_job, make_jobspec, new_guid, run_archiver,  # noqa: E402
                     run_jobs, write_config)

ERROR = {"code": "E42", "summary": "Error in library(shiny): there is no package",
         "help_url": "https://docs.posit.co/connect/user/troubleshooting/"}


def log_text(day, lines):
    return "".join("%s %02d:00:%02d.000000001 [%s] %s\n" % (day, i // 60, i % 60,
                                                             "stderr" if "rror" in t else "stdout",
                                                             t)
                   for i, t in enumerate(lines))


# (key, item, start, exit_code, tag, error, log lines)
JOBS = [
    ("lateA00000000001", "a", "2024-11-25T23:59:59Z", 0, "run_app", None,
     ["start A1", "Error in library(x)", "middle", "end A1"]),
    ("midnightA0000001", "a", "2024-11-26T00:00:00Z", 1, "build_report", ERROR,
     ["Error in library(shiny)", "two", "three", "four", "last Error here"]),
    ("quietA0000000001", "a", "2024-11-27T12:00:00Z", 0, "run_app", None,
     ["nothing", "to", "see"]),
    ("morningB0000001", "b", "2024-11-26T06:00:00Z", 0, "run_app", None,
     ["ERROR upper", "error lower", "errors plural", "xError glued", "Error"]),
    ("oldB00000000001", "b", "2024-11-20T08:00:00Z", 2, "build_report", None,
     ["first", "Error in mutate", "after"]),
]


def write_record(day_dir, guid, key, start, log=None, exit_code=0, tag="run_app", error=None,
                 **extra):
    """A job filed by hand: <key>.json (and <key>.log.gz when log is bytes: gzip'd here, or
    written as is when already_gz)."""
    os.makedirs(day_dir, exist_ok=True)
    rec = {"job": make_job(key, 2, start, exit_code=exit_code, tag=tag), "error": error,
           "content_guid": guid, "content_name": None, "archived_at": "2024-12-01T00:00:00Z",
           "log_bytes": None, "log_sha256": None}
    rec.update(extra)
    with open(os.path.join(day_dir, key + ".json"), "w") as f:
        json.dump(rec, f)
    return rec


class SearchTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="cja-search-")
        cls.a, cls.b = new_guid(), new_guid()
        specs = {cls.a: [], cls.b: []}
        for key, item, start, ec, tag, err, lines in JOBS:
            day = start[:10].replace("-", "/")
            specs[cls.a if item == "a" else cls.b].append(
                make_jobspec(key, start_time=start, exit_code=ec, tag=tag, error=err,
                             log=log_text(day, lines)))
        cls.archive = os.path.join(cls.tmp, "archive")
        with FakeConnect(specs) as fc:
            cls.cfg = write_config(cls.tmp, fc.url, cls.archive,
                                   content=[(cls.a, "sales"), cls.b])
            p = run_archiver(["--config", cls.cfg, "--once"])
            assert p.returncode == 0, p.stderr
        # Crash leftovers: temporaries and a lock file are never read.
        day = os.path.join(cls.archive, cls.a, "2024", "11", "26")
        with open(os.path.join(day, ".midnightA0000001.json.XXXXXX.tmp"), "w") as f:
            f.write("{not json")
        with open(os.path.join(day, ".crashed0000001.log.gz.tmp"), "wb") as f:
            f.write(gzip.compress(b"Error in a temporary\n")[:10])

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def cj(self, *args, expect=0, tz="UTC", archive=None):
        argv = ["-c", self.cfg] + (["--archive", archive] if archive else []) + list(args)
        p = run_jobs(argv, env={"TZ": tz})
        self.assertEqual(p.returncode, expect, "%s: %s" % (args, p.stderr[-2000:]))
        return p

    def keys(self, *args, tz="UTC"):
        p = self.cj("ls", "-o", "json", *args, tz=tz)
        return [json.loads(ln)["key"] for ln in p.stdout.splitlines()]

    def hits(self, *args, expect=0, archive=None):
        p = self.cj("search", "-o", "json", *args, expect=expect, archive=archive)
        return [json.loads(ln) for ln in p.stdout.splitlines()]

    # -- filters
    def test_ls_all_oldest_first_and_reverse(self):
        order = ["oldB00000000001", "lateA00000000001", "midnightA0000001", "morningB0000001",
                 "quietA0000000001"]
        self.assertEqual(self.keys(), order)
        self.assertEqual(self.keys("-r"), order[::-1])
        p = self.cj("ls", "--utc")
        lines = p.stdout.splitlines()
        self.assertRegex(lines[0], r"^START +CONTENT +KEY +TAG +STATUS +EXIT +LOG +ERROR$")
        self.assertIn("sales", lines[2])
        self.assertIn(self.b, lines[1])  # no name: the GUID
        self.assertIn(ERROR["summary"], lines[3])

    def test_each_filter_alone(self):
        self.assertEqual(self.keys("--content", "sales"),
                         ["lateA00000000001", "midnightA0000001", "quietA0000000001"])
        self.assertEqual(self.keys("--content", self.b.upper()),
                         ["oldB00000000001", "morningB0000001"])
        self.assertEqual(self.keys("--failed"), ["oldB00000000001", "midnightA0000001"])
        self.assertEqual(self.keys("--tag", "build_report"),
                         ["oldB00000000001", "midnightA0000001"])
        self.assertEqual(self.keys("--key", "quietA0000000001"), ["quietA0000000001"])
        self.assertEqual(self.keys("--since", "2024-11-27"), ["quietA0000000001"])
        self.assertEqual(self.keys("--until", "2024-11-20"), ["oldB00000000001"])

    def test_filters_combined(self):
        self.assertEqual(self.keys("--content", "sales", "--failed"), ["midnightA0000001"])
        self.assertEqual(self.keys("--content", "sales", "--content", self.b, "--tag", "run_app",
                                   "--since", "2024-11-26"),
                         ["morningB0000001", "quietA0000000001"])
        self.assertEqual(self.keys("--failed", "--since", "2024-11-21"), ["midnightA0000001"])
        self.assertEqual(self.keys("--key", "oldB00000000001", "--content", "sales"), [])
        hits = self.hits("--content", "sales", "--failed", "Error")
        self.assertEqual({h["key"] for h in hits}, {"midnightA0000001"})

    def test_midnight_utc_edges(self):
        # UTC days: 23:59:59 is the 25th, 00:00:00 the 26th.
        self.assertEqual(self.keys("--since", "2024-11-25", "--until", "2024-11-25"),
                         ["lateA00000000001"])
        self.assertEqual(self.keys("--since", "2024-11-26", "--until", "2024-11-26"),
                         ["midnightA0000001", "morningB0000001"])
        # Instants are exact, and --until includes its second.
        self.assertEqual(self.keys("--since", "2024-11-26T00:00:00Z", "--until",
                                   "2024-11-26T00:00:00Z"), ["midnightA0000001"])
        self.assertEqual(self.keys("--until", "2024-11-25T23:59:59Z", "--since",
                                   "2024-11-25T23:59:59Z"), ["lateA00000000001"])
        self.assertEqual(self.keys("--since", "2024-11-25T18:59:59-05:00", "--until",
                                   "2024-11-25T19:00:00-05:00"),
                         ["lateA00000000001", "midnightA0000001"])
        # A day is local: in New York the 25th runs to 05:00Z on the 26th, across two UTC
        # folders, and both are read.
        self.assertEqual(self.keys("--since", "2024-11-25", "--until", "2024-11-25",
                                   tz="America/New_York"),
                         ["lateA00000000001", "midnightA0000001"])
        self.assertEqual(self.keys("--since", "2024-11-26", "--until", "2024-11-26",
                                   tz="Asia/Tokyo"),
                         ["lateA00000000001", "midnightA0000001", "morningB0000001"])

    def test_bad_filter_values(self):
        p = self.cj("ls", "--since", "last week", expect=2)
        self.assertIn("--since", p.stderr)
        p = self.cj("ls", "--content", "nope", expect=2)
        self.assertIn("sales", p.stderr)  # the known names
        self.cj("search", "--until", "2024-13-01", "x", expect=2)

    # -- grep options
    def test_hit_fields_and_text(self):
        hits = self.hits("--content", "sales", "Error in library")
        self.assertEqual([(h["key"], h["line_number"]) for h in hits],
                         [("lateA00000000001", 2), ("midnightA0000001", 1)])
        h = hits[1]
        self.assertEqual(h["content_guid"], self.a)
        self.assertEqual(h["content_name"], "sales")
        self.assertEqual(h["start_time"], "2024-11-26T00:00:00Z")
        self.assertTrue(h["line"].endswith("[stderr] Error in library(shiny)"))
        p = self.cj("search", "--color=never", "Error in mutate")
        self.assertEqual(p.stdout, "2024-11-20 08:00:00 %s oldB00000000001:2:"
                                   "2024/11/20 00:00:01.000000001 [stderr] Error in mutate\n"
                                   % self.b)

    def test_regex_fixed_case_word_invert(self):
        key = ["--key", "morningB0000001"]
        n = lambda *a: [h["line_number"] for h in self.hits(*key, *a)]  # noqa: E731
        self.assertEqual(n("rror\\b"), [2, 4, 5])
        self.assertEqual(n("-i", "error$"), [5])
        self.assertEqual(n("-w", "Error"), [5])
        self.assertEqual(n("-i", "-w", "error"), [1, 2, 5])
        self.hits(*key, "-F", "r.*", expect=1)
        self.assertEqual(n("r.*"), [1, 2, 3, 4, 5])
        self.hits(*key, "-v", "-i", "error", expect=1)
        self.assertEqual(n("-v", "plural|glued"), [1, 2, 5])
        self.assertEqual(n("-e", "upper", "-e", "plural"), [1, 3])
        self.assertEqual(n("-F", "-e", "r.*", "-e", "lower"), [2])
        self.hits(*key, "-e", "-i", expect=1)  # -e takes a pattern that starts with '-'
        self.cj("search", "a(b", expect=2)  # a bad regex is a usage error

    def test_count_list_max(self):
        p = self.cj("search", "-c", "Error")
        self.assertEqual([ln.rsplit(":", 1)[1] for ln in p.stdout.splitlines()],
                         ["1", "1", "2", "2"])
        p = self.cj("search", "-l", "Error")
        paths = p.stdout.splitlines()
        self.assertEqual(len(paths), 4)
        self.assertTrue(all(os.path.isfile(x) and x.endswith(".log.gz") for x in paths))
        self.assertTrue(paths[0].endswith("/2024/11/20/oldB00000000001.log.gz"))
        hits = self.hits("-m", "1", "-i", "error")
        self.assertEqual([h["key"] for h in hits], ["oldB00000000001", "lateA00000000001",
                                                    "midnightA0000001", "morningB0000001"])
        self.cj("search", "-m", "0", "Error", expect=1)

    def test_context_stays_inside_a_job(self):
        # "start A1" is line 1 of its job and "end A1" the last: context stops at the job's
        # edges and the next job's group is separated by "--".
        p = self.cj("search", "--color=never", "--content", "sales", "-C", "2",
                    "-e", "end A1", "-e", "Error in library\\(shiny")
        out = p.stdout.splitlines()
        self.assertEqual(len(out), 3 + 1 + 3, p.stdout)
        self.assertRegex(out[0], r"lateA00000000001-2-.*Error in library\(x\)")
        self.assertRegex(out[2], r"lateA00000000001:4:.*end A1$")
        self.assertEqual(out[3], "--")
        self.assertRegex(out[4], r"midnightA0000001:1:")
        self.assertRegex(out[6], r"midnightA0000001-3-.*three$")
        p = self.cj("search", "--color=never", "--key", "midnightA0000001", "-B", "1", "-A", "0",
                    "last Error")
        self.assertEqual(len(p.stdout.splitlines()), 2)

    def test_color(self):
        p = self.cj("search", "--color=always", "--key", "oldB00000000001", "mutate")
        self.assertIn("\x1b[", p.stdout)
        p = self.cj("search", "--color=auto", "--key", "oldB00000000001", "mutate")
        self.assertNotIn("\x1b[", p.stdout)  # not a terminal
        self.cj("search", "--color=sometimes", "x", expect=2)

    def test_same_output_whatever_the_parallelism(self):
        outs = {j: self.cj("search", "--color=never", "-j", j, "-C", "1", "e").stdout
                for j in ("1", "2", "4", "16")}
        self.assertGreater(len(outs["1"].splitlines()), 15)
        for j in ("2", "4", "16"):
            self.assertEqual(outs[j], outs["1"], "-j %s" % j)

    def test_names_among_many_items_whatever_the_guid_case(self):
        # The config's names are looked up among many items, a GUID written in either case
        # (another name than the records' "sales", which would be shown without one).
        others = [new_guid() for _ in range(40)]
        cfg = write_config(os.path.join(self.tmp, "many"), "http://127.0.0.1:1", self.archive,
                           content=others[:20] + [(self.a.upper(), "SALES"), self.b]
                           + others[20:])
        for args in (["ls", "--utc"], ["ls", "-o", "json"], ["search", "-o", "json", "e"]):
            want = self.cj(*args).stdout
            self.assertIn("sales", want)
            p = run_jobs(["-c", cfg] + args, env={"TZ": "UTC"})
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(p.stdout, want.replace("sales", "SALES"), args)

    def test_exit_statuses(self):
        self.cj("search", "Error", expect=0)
        self.cj("search", "no such text anywhere", expect=1)
        self.cj("search", expect=2)
        self.cj("search", "--bogus", "x", expect=2)
        self.cj("search", "x", archive=os.path.join(self.tmp, "missing"), expect=2)


class DamagedArchiveTest(unittest.TestCase):
    """Files written by hand: damaged, foreign, huge."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="cja-search-hand-")
        self.archive = os.path.join(self.tmp, "archive")
        self.g = new_guid()
        self.day = os.path.join(self.archive, self.g, "2024", "11", "26")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def job(self, key, start, gz, log_bytes):
        write_record(self.day, self.g, key, start, log_bytes=log_bytes)
        with open(os.path.join(self.day, key + ".log.gz"), "wb") as f:
            f.write(gz)

    def search(self, *args, expect):
        p = run_jobs(["--archive", self.archive, "search", "-o", "json"] + list(args))
        self.assertEqual(p.returncode, expect, p.stderr)
        return p, [json.loads(ln) for ln in p.stdout.splitlines()]

    def test_corrupt_and_truncated_reported_and_the_search_goes_on(self):
        good = b"alpha Error one\nbeta\n"
        self.job("aaaaaaaaaaaaaaa1", "2024-11-26T01:00:00Z", gzip.compress(good), len(good))
        big = b"".join(b"line %d Error here\n" % i for i in range(200000))
        gz = gzip.compress(big)
        self.job("truncated000001", "2024-11-26T02:00:00Z", gz[: len(gz) // 2], len(big))
        bad = bytearray(gzip.compress(b"x Error y\n" * 1000))
        bad[len(bad) // 2] ^= 0xFF
        self.job("corrupt0000001", "2024-11-26T03:00:00Z", bytes(bad), 10000)
        self.job("notgzip0000001", "2024-11-26T04:00:00Z", b"plain text Error\n", 17)
        self.job("zzzzzzzzzzzzzz9", "2024-11-26T05:00:00Z", gzip.compress(good), len(good))
        with open(os.path.join(self.day, "brokenrecord01.json"), "w") as f:
            f.write("{\"job\": ")
        p, hits = self.search("Error", expect=2)
        keys = [h["key"] for h in hits]
        self.assertEqual(keys[0], "aaaaaaaaaaaaaaa1")
        self.assertEqual(keys[-1], "zzzzzzzzzzzzzz9")
        for name in ("truncated000001.log.gz", "corrupt0000001.log.gz", "notgzip0000001.log.gz",
                     "brokenrecord01.json"):
            self.assertIn(os.path.join(self.day, name), p.stderr)
        self.assertIn("truncated", p.stderr)
        # What a truncated file held before its end was searched, as grep does.
        self.assertIn("truncated000001", keys)
        # ls still lists the rest, and says a record was unreadable.
        p = run_jobs(["--archive", self.archive, "ls"])
        self.assertEqual(p.returncode, 1)
        self.assertIn("brokenrecord01.json", p.stderr)

    def test_multi_member_gzip_from_other_tools(self):
        # `cat a.gz b.gz`, gzip -1 and zlib's own members, with a line split across members.
        parts = [b"first Error\nsplit ", b"line Error\n", b"third\nlast Error\n"]
        members = gzip.compress(parts[0], 1) + gzip.compress(parts[1], 9)
        co = zlib.compressobj(6, zlib.DEFLATED, 31)
        members += co.compress(parts[2]) + co.flush()
        log = b"".join(parts)
        self.job("multimember0001", "2024-11-26T01:00:00Z", members, len(log))
        p, hits = self.search("Error", expect=0)
        self.assertEqual([(h["line_number"], h["line"]) for h in hits],
                         [(1, "first Error"), (2, "split line Error"), (4, "last Error")])
        # A big multi-member file takes the streaming path.
        big = [b"".join(b"m%d line %d\n" % (m, i) for i in range(100000)) for m in range(4)]
        self.job("multimember0002", "2024-11-26T02:00:00Z",
                 b"".join(gzip.compress(x) for x in big), sum(map(len, big)))
        p, hits = self.search("-F", "m3 line 99999", expect=0)
        self.assertEqual([h["line_number"] for h in hits], [400000])

    def test_huge_single_line(self):
        # Longer than every buffer (4 MiB decoded whole, 256 KiB chunks).
        line = b"x" * (12 * 1024 * 1024) + b" NEEDLE"
        log = b"before\n" + line + b"\nafter NEEDLE\n"
        self.job("hugeline000001", "2024-11-26T01:00:00Z", gzip.compress(log, 1), len(log))
        p = run_jobs(["--archive", self.archive, "search", "-c", "NEEDLE"])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(p.stdout.strip().endswith(":2"), p.stdout)
        p, hits = self.search("after", expect=0)
        self.assertEqual([h["line_number"] for h in hits], [3])

    def test_invalid_utf8_in_json(self):
        log = b"caf\xe9 Error\n"
        self.job("latin1000000001", "2024-11-26T01:00:00Z", gzip.compress(log), len(log))
        p, hits = self.search("Error", expect=0)
        self.assertEqual(hits[0]["line"], "caf\ufffd Error")

    def test_symlinks_are_not_followed(self):
        outside = os.path.join(self.tmp, "outside")
        write_record(outside, self.g, "outside0000001", "2024-11-26T01:00:00Z", log_bytes=6)
        with open(os.path.join(outside, "outside0000001.log.gz"), "wb") as f:
            f.write(gzip.compress(b"Error\n"))
        os.makedirs(os.path.join(self.archive, self.g, "2024", "11"))
        os.symlink(outside, self.day)
        p, hits = self.search("Error", expect=1)
        self.assertEqual(hits, [])


class ManyDatesTest(unittest.TestCase):
    """More jobs than the search keeps ahead of its output (4,096), over many dates: the
    search starts on the first dates while later ones are still being read, and the output
    is still every job once, by start time, whatever the parallelism."""

    def test_streamed_by_date_in_order(self):
        tmp = tempfile.mkdtemp(prefix="cja-search-many-")
        self.addCleanup(shutil.rmtree, tmp, True)
        archive = os.path.join(tmp, "archive")
        guids = [new_guid() for _ in range(3)]
        want = []
        for n in range(5000):
            g = guids[n % 3]
            day = 1 + n % 25
            # Start times interleave across items and dates; keys do not sort like them.
            start = "2024-10-%02dT%02d:%02d:%02dZ" % (day, n % 24, (n * 7) % 60, n % 60)
            key = "k%05dz%s" % ((n * 7919) % 100000, g[:4])
            d = os.path.join(archive, g, "2024", "10", "%02d" % day)
            log = ("boot %d\nneedle %s\n" % (n, key)).encode()
            write_record(d, g, key, start, log_bytes=len(log))
            with open(os.path.join(d, key + ".log.gz"), "wb") as f:
                f.write(gzip.compress(log, 1))
            want.append((start, key, g))
        want.sort()
        outs = {}
        for j in ("1", "2", "5"):
            p = run_jobs(["--archive", archive, "search", "-j", j, "-o", "json", "-F", "needle"])
            self.assertEqual(p.returncode, 0, p.stderr[-2000:])
            outs[j] = p.stdout
        hits = [json.loads(ln) for ln in outs["1"].splitlines()]
        self.assertEqual([(h["start_time"], h["key"], h["content_guid"]) for h in hits], want)
        self.assertEqual(outs["2"], outs["1"])
        self.assertEqual(outs["5"], outs["1"])


if __name__ == "__main__":
    unittest.main()
