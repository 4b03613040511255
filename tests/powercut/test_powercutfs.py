#!/usr/bin/env python3
"""powercutfs's own tests: each durability rule, proven by a cut.

Every test writes through a fresh mount, cuts the power, unmounts, and looks at the backing
folder, which must show exactly what a disk would after the cut, taking the strict POSIX
view: file data is durable after fsync/fdatasync of the file, a name (create, rename,
unlink, mkdir, rmdir) after fsync of its directory, everything after a syncfs (the ioctl the
syncfs shim sends; the kernel forwards no syncfs to FUSE, and a bare syncfs(2) here makes
nothing durable). Exits 77 with "skipped: <why>" where no FUSE mount can be made.
"""
import ctypes
import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from powercut import PCFS_IOC_SYNCFS, SKIP_EXIT, PowercutFS, shim, skip_reason  # noqa: E402


def fsync_path(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write(path, data, sync=False, mode="wb"):
    with open(path, mode) as f:
        f.write(data)
        f.flush()
        if sync:
            os.fsync(f.fileno())


def read(path):
    with open(path, "rb") as f:
        return f.read()


class PowercutTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="test-powercutfs-")
        self.b = os.path.join(self.tmp, "backing")
        self.m = os.path.join(self.tmp, "mnt")
        os.mkdir(self.b)
        os.mkdir(self.m)
        self.fs = None

    def tearDown(self):
        if self.fs:
            self.fs.unmount()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def mount(self, mountpoint=None):
        self.fs = PowercutFS(self.b, mountpoint or self.m).start()
        return self.fs

    def cut(self):
        """Cut, unmount; returns the powercutfs stderr."""
        self.fs.cut()
        err = self.fs.unmount()
        self.fs = None
        return err

    def M(self, *p):
        return os.path.join(self.m, *p)

    def B(self, *p):
        return os.path.join(self.b, *p)

    def durable_file(self, name, data):
        """A file whose data and name are durable."""
        write(self.M(name), data, sync=True)
        fsync_path(os.path.dirname(self.M(name)) or self.m)

    def listing(self):
        out = []
        for root, dirs, files in os.walk(self.b):
            for n in dirs + files:
                out.append(os.path.relpath(os.path.join(root, n), self.b))
        return sorted(out)

    # -- file data
    def test_unsynced_write_is_lost(self):
        self.mount()
        self.durable_file("f", b"old")
        write(self.M("f"), b"new data, never synced")
        self.assertEqual(read(self.M("f")), b"new data, never synced")
        self.cut()
        self.assertEqual(read(self.B("f")), b"old")

    def test_appended_unsynced_write_is_lost(self):
        self.mount()
        self.durable_file("f", b"line 1\n")
        write(self.M("f"), b"line 2\n", mode="ab")
        self.cut()
        self.assertEqual(read(self.B("f")), b"line 1\n")

    def test_fsynced_write_is_kept(self):
        self.mount()
        self.durable_file("f", b"old")
        write(self.M("f"), b"new", sync=True)
        self.cut()
        self.assertEqual(read(self.B("f")), b"new")

    def test_fdatasync_keeps_data(self):
        self.mount()
        self.durable_file("f", b"old")
        with open(self.M("f"), "wb") as f:
            f.write(b"fdatasynced")
            f.flush()
            os.fdatasync(f.fileno())
        self.cut()
        self.assertEqual(read(self.B("f")), b"fdatasynced")

    def test_name_durable_without_data_is_empty(self):
        # The classic bug: a new file's name made durable, its data never synced.
        self.mount()
        write(self.M("f"), b"data never synced")
        fsync_path(self.m)
        self.cut()
        self.assertEqual(read(self.B("f")), b"")

    def test_truncate_is_reverted(self):
        self.mount()
        self.durable_file("f", b"hello")
        os.truncate(self.M("f"), 2)
        self.assertEqual(read(self.M("f")), b"he")
        self.cut()
        self.assertEqual(read(self.B("f")), b"hello")

    def test_open_truncate_is_reverted(self):
        self.mount()
        self.durable_file("f", b"hello")
        write(self.M("f"), b"")
        self.cut()
        self.assertEqual(read(self.B("f")), b"hello")

    def test_chmod_is_reverted(self):
        self.mount()
        self.durable_file("f", b"x")
        os.chmod(self.M("f"), 0o640)
        fsync_path(self.M("f"))
        os.chmod(self.M("f"), 0o600)
        self.cut()
        self.assertEqual(os.stat(self.B("f")).st_mode & 0o777, 0o640)

    # -- names
    def test_create_without_dir_fsync_is_lost(self):
        self.mount()
        write(self.M("f"), b"data", sync=True)
        self.cut()
        self.assertFalse(os.path.exists(self.B("f")))

    def test_create_with_dir_fsync_is_kept(self):
        self.mount()
        self.durable_file("f", b"data")
        self.cut()
        self.assertEqual(read(self.B("f")), b"data")

    def test_rename_without_dir_fsync_is_reverted(self):
        self.mount()
        self.durable_file("a", b"content")
        os.rename(self.M("a"), self.M("b"))
        fsync_path(self.M("b"))  # the file's fsync does not make its new name durable
        self.cut()
        self.assertEqual(self.listing(), ["a"])
        self.assertEqual(read(self.B("a")), b"content")

    def test_rename_after_dir_fsync_is_kept(self):
        self.mount()
        self.durable_file("a", b"content")
        os.rename(self.M("a"), self.M("b"))
        fsync_path(self.m)
        self.cut()
        self.assertEqual(self.listing(), ["b"])
        self.assertEqual(read(self.B("b")), b"content")

    def test_rename_over_is_reverted(self):
        self.mount()
        self.durable_file("a", b"new")
        self.durable_file("b", b"old")
        os.rename(self.M("a"), self.M("b"))
        self.cut()
        self.assertEqual(read(self.B("a")), b"new")
        self.assertEqual(read(self.B("b")), b"old")

    def test_renamed_name_carries_the_durable_content(self):
        # Made durable at the dir fsync: the name, with what fsync had made durable then...
        self.mount()
        write(self.M(".t.tmp"), b"v1", sync=True)
        os.rename(self.M(".t.tmp"), self.M("t"))
        fsync_path(self.m)
        # ...and not what was written after without an fsync.
        write(self.M("t"), b"v2 unsynced")
        self.cut()
        self.assertEqual(self.listing(), ["t"])
        self.assertEqual(read(self.B("t")), b"v1")

    def test_renamed_unsynced_temporary_is_empty(self):
        # write, rename, fsync the folder, but no fsync of the file: an empty final name.
        self.mount()
        write(self.M(".t.tmp"), b"v1")
        os.rename(self.M(".t.tmp"), self.M("t"))
        fsync_path(self.m)
        self.cut()
        self.assertEqual(self.listing(), ["t"])
        self.assertEqual(read(self.B("t")), b"")

    def test_rename_noreplace(self):
        self.mount()
        self.durable_file("a", b"a")
        self.durable_file("b", b"b")
        libc = ctypes.CDLL(None, use_errno=True)
        AT_FDCWD, RENAME_NOREPLACE = -100, 1
        r = libc.renameat2(AT_FDCWD, self.M("a").encode(), AT_FDCWD, self.M("b").encode(),
                           RENAME_NOREPLACE)
        self.assertEqual((r, ctypes.get_errno()), (-1, 17))  # EEXIST
        r = libc.renameat2(AT_FDCWD, self.M("a").encode(), AT_FDCWD, self.M("c").encode(),
                           RENAME_NOREPLACE)
        self.assertEqual(r, 0)
        fsync_path(self.m)
        self.cut()
        self.assertEqual(self.listing(), ["b", "c"])

    def test_unlink_is_reverted(self):
        self.mount()
        self.durable_file("f", b"keep me")
        os.unlink(self.M("f"))
        self.cut()
        self.assertEqual(read(self.B("f")), b"keep me")

    def test_unlink_after_dir_fsync_is_kept(self):
        self.mount()
        self.durable_file("f", b"x")
        os.unlink(self.M("f"))
        fsync_path(self.m)
        self.cut()
        self.assertEqual(self.listing(), [])

    def test_link_needs_dir_fsync(self):
        self.mount()
        self.durable_file("f", b"x")
        os.link(self.M("f"), self.M("g"))
        self.cut()
        self.assertEqual(self.listing(), ["f"])

    def test_hard_link_after_dir_fsync(self):
        self.mount()
        self.durable_file("f", b"x")
        os.link(self.M("f"), self.M("g"))
        fsync_path(self.m)
        self.cut()
        self.assertEqual(self.listing(), ["f", "g"])
        self.assertEqual(os.stat(self.B("f")).st_ino, os.stat(self.B("g")).st_ino)

    def test_symlink(self):
        self.mount()
        os.symlink("target/there", self.M("lost"))
        os.symlink("target/here", self.M("kept"))
        fsync_path(self.m)
        os.symlink("x", self.M("later"))
        self.cut()
        self.assertEqual(self.listing(), ["kept", "lost"])
        self.assertEqual(os.readlink(self.B("kept")), "target/here")

    # -- folders
    def test_mkdir_without_parent_fsync_is_lost(self):
        self.mount()
        os.mkdir(self.M("d"))
        self.durable_file("d/f", b"x")  # d's own entries are durable, d's name is not
        self.cut()
        self.assertEqual(self.listing(), [])

    def test_mkdir_with_parent_fsync_is_kept_but_empty(self):
        self.mount()
        os.mkdir(self.M("d"), 0o750)
        fsync_path(self.m)
        write(self.M("d", "f"), b"x", sync=True)  # d not fsynced: f's name is lost
        self.cut()
        self.assertEqual(self.listing(), ["d"])
        self.assertEqual(os.stat(self.B("d")).st_mode & 0o777, 0o750)

    def test_nested_folders_each_need_their_parent_fsynced(self):
        self.mount()
        os.makedirs(self.M("a", "b", "c"))
        write(self.M("a", "b", "c", "f"), b"deep", sync=True)
        for d in ("a/b/c", "a/b", "a"):
            fsync_path(self.M(d))
        # not the root: a's name is not durable, so nothing is
        self.cut()
        self.assertEqual(self.listing(), [])

    def test_nested_folders_all_fsynced(self):
        self.mount()
        os.makedirs(self.M("a", "b", "c"))
        write(self.M("a", "b", "c", "f"), b"deep", sync=True)
        for d in ("a/b/c", "a/b", "a", ""):
            fsync_path(self.M(d))
        self.cut()
        self.assertEqual(read(self.B("a", "b", "c", "f")), b"deep")

    def test_rmdir_is_reverted(self):
        self.mount()
        os.mkdir(self.M("d"))
        fsync_path(self.m)
        os.rmdir(self.M("d"))
        self.cut()
        self.assertEqual(self.listing(), ["d"])

    def test_removed_tree_comes_back(self):
        self.mount()
        os.mkdir(self.M("d"))
        self.durable_file("d/f", b"x")
        fsync_path(self.m)
        shutil.rmtree(self.M("d"))
        self.cut()
        self.assertEqual(self.listing(), ["d", "d/f"])
        self.assertEqual(read(self.B("d", "f")), b"x")

    # -- syncfs
    def syncfs_ioctl(self, path):
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.ioctl(fd, PCFS_IOC_SYNCFS)
        finally:
            os.close(fd)

    def test_syncfs_keeps_everything(self):
        self.mount()
        self.durable_file("old", b"old")
        os.makedirs(self.M("a", "b"))
        write(self.M("a", "b", "f"), b"deep")
        write(self.M("g"), b"top")
        os.rename(self.M("old"), self.M("renamed"))
        write(self.M("renamed"), b"rewritten")
        self.syncfs_ioctl(self.m)
        write(self.M("h"), b"after the syncfs")
        self.cut()
        self.assertEqual(self.listing(), ["a", "a/b", "a/b/f", "g", "renamed"])
        self.assertEqual(read(self.B("a", "b", "f")), b"deep")
        self.assertEqual(read(self.B("renamed")), b"rewritten")

    def test_syncfs_ioctl_on_a_file(self):
        self.mount()
        write(self.M("f"), b"data")
        self.syncfs_ioctl(self.M("f"))
        self.cut()
        self.assertEqual(read(self.B("f")), b"data")

    def test_bare_syncfs_reaches_nothing(self):
        # What FUSE forwards: syncfs(2) on a FUSE mount never reaches the daemon (no
        # FUSE_SYNCFS outside virtiofs), so by itself it makes nothing durable here.
        self.mount()
        write(self.M("f"), b"data")
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(self.m, os.O_RDONLY)
        try:
            self.assertEqual(libc.syncfs(fd), 0)
        finally:
            os.close(fd)
        os.sync()
        self.assertEqual(self.fs.status()["durable"], 0)
        self.cut()
        self.assertEqual(self.listing(), [])

    def test_shim_makes_syncfs_reach_the_mount(self):
        self.mount()
        write(self.M("f"), b"data")
        code = ("import ctypes, os, sys\n"
                "fd = os.open(sys.argv[1], os.O_RDONLY)\n"
                "sys.exit(ctypes.CDLL(None, use_errno=True).syncfs(fd))\n")
        env = dict(os.environ, LD_PRELOAD=shim())
        subprocess.run([sys.executable, "-c", code, self.m], env=env, check=True)
        self.assertEqual(self.fs.status()["syncfs"], 1)
        # on another file system, the shim's syncfs is the plain one
        subprocess.run([sys.executable, "-c", code, self.tmp], env=env, check=True)
        self.cut()
        self.assertEqual(read(self.B("f")), b"data")

    def test_shim_syncfs_after_the_cut_is_eio(self):
        self.mount()
        fd = os.open(self.m, os.O_RDONLY)
        try:
            self.fs.cut()
            code = ("import ctypes, sys\n"
                    "libc = ctypes.CDLL(None, use_errno=True)\n"
                    "r = libc.syncfs(int(sys.argv[1]))\n"
                    "sys.exit(ctypes.get_errno() if r else 0)\n")
            env = dict(os.environ, LD_PRELOAD=shim())
            p = subprocess.run([sys.executable, "-c", code, str(fd)], env=env, pass_fds=(fd,))
            self.assertEqual(p.returncode, 5)  # EIO
        finally:
            os.close(fd)

    # -- the cut itself
    def test_after_the_cut_everything_is_eio(self):
        self.mount()
        self.durable_file("f", b"x")
        f = open(self.M("f"), "rb")
        try:
            self.fs.cut()
            for op in (lambda: os.stat(self.M("f")), lambda: os.listdir(self.m),
                       lambda: open(self.M("g"), "wb"), lambda: os.pread(f.fileno(), 1, 0),
                       lambda: os.mkdir(self.M("d")), lambda: os.fsync(f.fileno())):
                with self.assertRaises(OSError) as cm:
                    op()
                self.assertEqual(cm.exception.errno, 5)
        finally:
            f.close()
        self.assertEqual(self.fs.status()["cut"], 1)
        self.fs.unmount()
        self.fs = None
        self.assertEqual(self.listing(), ["f"])

    def test_arm_durable_cuts_after_the_nth(self):
        self.mount()
        fs = self.fs
        fs.arm_durable(2)
        write(self.M("a"), b"a", sync=True)       # durable point 1
        fsync_path(self.m)                        # 2: the cut follows it
        with self.assertRaises(OSError):
            write(self.M("b"), b"b", sync=True)
        self.assertEqual(fs.status()["cut"], 1)
        self.fs.unmount()
        self.fs = None
        self.assertEqual(self.listing(), ["a"])

    def test_arm_before_durable_cuts_before_the_nth(self):
        self.mount()
        self.fs.arm_before_durable(2)
        write(self.M("a"), b"a", sync=True)       # durable point 1
        with self.assertRaises(OSError) as cm:
            fsync_path(self.m)                    # 2: cut before it takes effect
        self.assertEqual(cm.exception.errno, 5)
        self.fs.unmount()
        self.fs = None
        self.assertEqual(self.listing(), [])

    def test_arm_op_cuts_before_the_nth(self):
        self.mount()
        self.fs.arm_op(3)
        self.syncfs_ioctl(self.m)
        os.mkdir(self.M("d1"))  # op 1
        os.mkdir(self.M("d2"))  # op 2
        with self.assertRaises(OSError):
            os.mkdir(self.M("d3"))
        self.assertEqual(self.fs.status()["cut"], 1)

    # -- partial cuts: a random part of what is pending survives
    def test_partial_cut_keeps_a_consistent_part(self):
        seen = set()
        big = os.urandom(5 * 4096 + 100)
        for seed in range(1, 25):
            shutil.rmtree(self.b)
            os.mkdir(self.b)
            self.mount()
            self.durable_file("a", b"A")
            self.durable_file("d", b"old")
            os.rename(self.M("a"), self.M("b"))   # pending: a rename
            write(self.M("c"), big)               # pending: a new name, its data
            write(self.M("d"), b"new")            # pending: data
            os.mkdir(self.M("e"))                 # pending: a folder
            self.fs.partial(seed)
            err = self.cut()
            self.assertIn("partial cut", err)
            names = sorted(os.listdir(self.b))
            # The rename is atomic: exactly one of the two names, with the durable data.
            self.assertEqual(len({"a", "b"} & set(names)), 1, (seed, names))
            self.assertEqual(read(self.B("a" if "a" in names else "b")), b"A")
            self.assertIn(read(self.B("d")), (b"old", b"new"))
            if "c" in names:
                c = read(self.B("c"))
                self.assertEqual(c, big[:len(c)], seed)
                self.assertTrue(len(c) % 4096 == 0 or len(c) == len(big), seed)
                seen.add("c:" + ("whole" if c == big else "empty" if not c else "torn"))
            seen.add("renamed" if "b" in names else "not renamed")
            seen.add("d:" + read(self.B("d")).decode())
            seen.add("e" if "e" in names else "no e")
        # Over the seeds, every choice goes both ways.
        for want in ("renamed", "not renamed", "d:old", "d:new", "e", "no e", "c:whole",
                     "c:empty", "c:torn"):
            self.assertIn(want, seen)

    def test_partial_cut_keeps_what_is_durable(self):
        for seed in range(1, 9):
            shutil.rmtree(self.b)
            os.mkdir(self.b)
            self.mount()
            os.mkdir(self.M("d"))
            self.durable_file("d/f", b"kept")
            fsync_path(self.m)
            write(self.M("d", "f"), b"X" * 10000, mode="ab")
            os.unlink(self.M("d", "f"))
            self.fs.partial(seed)
            self.cut()
            if os.path.exists(self.B("d", "f")):
                f = read(self.B("d", "f"))
                self.assertEqual(f, (b"kept" + b"X" * 10000)[:len(f)], seed)
                self.assertTrue(f.startswith(b"kept"), seed)
            self.assertTrue(os.path.isdir(self.B("d")))

    def test_existing_content_is_durable(self):
        os.makedirs(self.B("d"))
        write(self.B("d", "f"), b"on disk before the mount")
        self.mount()
        write(self.M("d", "f"), b"overwritten")
        os.unlink(self.M("d", "f"))
        os.rmdir(self.M("d"))
        self.cut()
        self.assertEqual(read(self.B("d", "f")), b"on disk before the mount")

    def test_mounted_over_its_own_backing_folder(self):
        write(self.B("f"), b"before")
        self.mount(self.b)
        write(self.B("f"), b"through the mount")
        write(self.B("g"), b"new")
        self.assertEqual(read(self.B("f")), b"through the mount")
        self.cut()
        self.assertEqual(self.listing(), ["f"])
        self.assertEqual(read(self.B("f")), b"before")

    def test_big_file(self):
        self.mount()
        data = os.urandom(3 << 20)
        self.durable_file("big", data)
        write(self.M("big"), b"tail" * 1000, mode="ab")
        self.cut()
        self.assertEqual(read(self.B("big")), data)

    def test_unlinked_open_file_leaves_nothing(self):
        self.mount()
        f = open(self.M("f"), "wb")
        os.unlink(self.M("f"))
        f.write(b"x")
        f.flush()
        self.assertEqual(os.listdir(self.m), [])  # no .fuse_hidden file
        f.close()
        self.syncfs_ioctl(self.m)
        self.cut()
        self.assertEqual(self.listing(), [])


if __name__ == "__main__":
    why = skip_reason()
    if why:
        print("skipped: " + why, flush=True)
        sys.exit(SKIP_EXIT)
    unittest.main(verbosity=2)
