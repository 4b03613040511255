#!/usr/bin/env python3
"""Probes: permissions. The service writes as its own user under the unit's UMask=0027 in a
StateDirectoryMode=0750 folder; a member of the service group (not root) can ls and search
what it wrote, and read a job's log; a user outside the group can do none of it, and is
told so. Needs root (throwaway users and a group are made, and removed after); skipped, and
said so, where that is impossible."""
import grp
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (FakeConnect, archiver_binary, archiver_env, jobs_binary,  # noqa: E402
                     make_jobspec, new_guid, read_archive, write_config)

UNIT = os.path.join(os.environ.get("CJA_TESTS_DIR") or os.path.dirname(
    os.path.dirname(os.path.abspath(__file__))), "..", "systemd", "connect-job-archiver.service")


def unit_setting(name):
    with open(UNIT) as f:
        m = re.search(r"^%s=(\S+)" % name, f.read(), re.M)
    return m.group(1) if m else None


def why_not():
    if os.geteuid() != 0:
        return "needs root to make throwaway users"
    for tool in ("useradd", "groupadd", "userdel", "groupdel", "setpriv"):
        if not shutil.which(tool):
            return "%s is not installed" % tool
    return None


SKIP = why_not()


def run(cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@unittest.skipIf(SKIP, "skipped: %s" % SKIP)
class GroupAccess(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        tag = uuid.uuid4().hex[:6]
        cls.group = "cjapg" + tag
        cls.service, cls.member, cls.other = ("cjaps" + tag, "cjapm" + tag, "cjapo" + tag)
        cls.made_users, cls.made_group = [], False
        cls.tmp = tempfile.mkdtemp(prefix="cja-probe-perms-")
        try:
            run(["groupadd", "--system", cls.group])
            cls.made_group = True
            for user, extra in ((cls.service, ["-g", cls.group]),
                                (cls.member, ["-G", cls.group]), (cls.other, [])):
                run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin"]
                    + extra + [user])
                cls.made_users.append(user)
            cls.setup_archive()
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        for user in cls.made_users:
            subprocess.run(["userdel", user], stderr=subprocess.DEVNULL)
        if cls.made_group:
            subprocess.run(["groupdel", cls.group], stderr=subprocess.DEVNULL)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def as_user(cls, user, argv, umask=None, env=None):
        pw = pwd.getpwnam(user)
        cmd = ["setpriv", "--reuid=%d" % pw.pw_uid, "--regid=%d" % pw.pw_gid,
               "--init-groups", "--"]
        if umask is not None:
            cmd += ["sh", "-c", 'umask %s && exec "$@"' % umask, "sh"]
        e = archiver_env(env)
        e["HOME"] = "/nonexistent"
        return subprocess.run(cmd + argv, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, timeout=60, cwd="/")

    @classmethod
    def setup_archive(cls):
        os.chmod(cls.tmp, 0o755)
        cls.guid = new_guid()
        cls.keys = ["permJob%09d" % i for i in range(5)]
        jobs = [make_jobspec(k, log="hello from %s\n" % k,
                             error={"summary": "boom"} if i == 0 else None, exit_code=i % 2)
                for i, k in enumerate(cls.keys)]
        # As systemd makes it: StateDirectory= owned by the service, StateDirectoryMode=.
        state_mode = int(unit_setting("StateDirectoryMode") or "0755", 8)
        cls.umask = unit_setting("UMask") or "0022"
        cls.archive = os.path.join(cls.tmp, "state")
        os.mkdir(cls.archive)
        svc = pwd.getpwnam(cls.service)
        os.chown(cls.archive, svc.pw_uid, svc.pw_gid)
        os.chmod(cls.archive, state_mode)
        conf = os.path.join(cls.tmp, "etc")
        with FakeConnect({cls.guid: jobs}) as fc:
            cls.cfg = write_config(conf, fc.url, cls.archive, content=[(cls.guid, "app")])
            os.chmod(conf, 0o755)
            os.chmod(cls.cfg, 0o644)
            os.chown(os.path.join(conf, "api-key"), svc.pw_uid, svc.pw_gid)
            p = cls.as_user(cls.service, [archiver_binary(), "-c", cls.cfg, "--once"],
                            umask=cls.umask)
            assert p.returncode == 0, p.stderr
            # The readers' config: no key (archive commands need none).
            cls.rcfg = write_config(os.path.join(cls.tmp, "reader"), fc.url, cls.archive,
                                    content=[(cls.guid, "app")], api_key=None)
        os.chmod(os.path.join(cls.tmp, "reader"), 0o755)
        os.chmod(cls.rcfg, 0o644)

    def test_modes_are_the_documented_ones(self):
        gid = grp.getgrnam(self.group).gr_gid
        n = 0
        for root, dirs, files in os.walk(self.archive):
            for d in dirs:
                st = os.stat(os.path.join(root, d))
                self.assertEqual((oct(st.st_mode & 0o7777), st.st_gid), (oct(0o750), gid), d)
            for f in files:
                st = os.lstat(os.path.join(root, f))
                self.assertEqual(st.st_gid, gid, f)
                self.assertEqual(st.st_mode & 0o007, 0, "%s is open to others" % f)
                if f != ".lock":
                    self.assertEqual(oct(st.st_mode & 0o7777), oct(0o640), f)
                    # (the search catalog's files are checked, not counted)
                    n += not os.path.relpath(root, self.archive).startswith(".catalog")
        self.assertEqual(n, 2 * len(self.keys) + 1)  # logs, records, one error record

    def test_member_reads(self):
        ls = self.as_user(self.member, [jobs_binary(), "-c", self.rcfg, "ls", "-o", "json"])
        self.assertEqual(ls.returncode, 0, ls.stderr)
        self.assertEqual(len(ls.stdout.splitlines()), len(self.keys))
        failed = self.as_user(self.member, [jobs_binary(), "-c", self.rcfg, "ls", "--failed"])
        self.assertEqual(failed.returncode, 0, failed.stderr)
        self.assertIn("boom", failed.stdout)
        s = self.as_user(self.member, [jobs_binary(), "-c", self.rcfg, "search", "-c", "hello"])
        self.assertEqual(s.returncode, 0, s.stderr)
        self.assertEqual(len(s.stdout.splitlines()), len(self.keys))
        lg = self.as_user(self.member, [jobs_binary(), "-c", self.rcfg, "log", "app",
                                        self.keys[2]])
        self.assertEqual(lg.returncode, 0, lg.stderr)
        self.assertIn("hello from " + self.keys[2], lg.stdout)
        er = self.as_user(self.member, [jobs_binary(), "-c", self.rcfg, "error", "app",
                                        self.keys[0]])
        self.assertEqual(er.returncode, 0, er.stderr)
        self.assertIn("boom", er.stdout)
        print("PROBE permissions: a member of the group: ls, ls --failed, search, log, error "
              "exit 0", file=sys.stderr)

    def test_others_are_refused(self):
        results = {}
        for name, args in (("ls", ["ls"]), ("search", ["search", "hello"]),
                           ("log", ["log", "app", self.keys[2]])):
            p = self.as_user(self.other, [jobs_binary(), "-c", self.rcfg] + args)
            results[name] = p
            self.assertNotEqual(p.returncode, 0, p.stdout)
            self.assertNotIn("hello from", p.stdout)
            self.assertRegex(p.stderr, r"Permission denied", p.stderr)
            self.assertIn(self.archive, p.stderr)
            self.assertLess(len(p.stderr), 1024, "one clear line")
        print("PROBE permissions: another user: %s" % "; ".join(
            "%s exit %d (%s)" % (k, v.returncode, v.stderr.strip().splitlines()[-1][:120])
            for k, v in results.items()), file=sys.stderr)
        self.assertEqual(results["ls"].returncode, 1)
        self.assertEqual(results["search"].returncode, 2)

    def test_archive_as_read(self):
        # The service's files are what root reads too (the archive is whole).
        arch = read_archive(self.archive)
        self.assertEqual(len(arch.records), len(self.keys))


if __name__ == "__main__":
    unittest.main(verbosity=2)
