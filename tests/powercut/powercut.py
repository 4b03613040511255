"""Driving powercutfs (tests/powercut/powercutfs.c) from Python tests; standard library only.

    from powercut import PowercutFS, skip_reason, shim_env

    why = skip_reason()              # None, or why the power-cut tests cannot run here
    with PowercutFS(backing, mountpoint) as fs:
        ... write through mountpoint ...
        fs.arm_durable(3)            # cut right after the 3rd durable point, or
        fs.cut()                     # cut now
    # unmounted: backing holds what a disk would after the cut

Environment: CJA_POWERCUTFS = the built powercutfs, CJA_SYNCFS_SHIM = syncfs_shim.so (both
set by ctest). shim_env() is the environment that makes a program's syncfs(2) reach the
mount (the kernel does not forward syncfs to FUSE; powercutfs.c says why).
"""
import os
import shutil
import socket
import subprocess
import tempfile
import time

# powercut.h: _IO(0xCA, 0x51)
PCFS_IOC_SYNCFS = (0xCA << 8) | 0x51

SKIP_EXIT = 77


def binary():
    return os.environ.get("CJA_POWERCUTFS", "")


def shim():
    return os.environ.get("CJA_SYNCFS_SHIM", "")


def fusermount():
    return shutil.which("fusermount3") or shutil.which("fusermount")


_probe = None


def skip_reason():
    """None when a powercutfs mount works here, else why not (checked once, by mounting)."""
    global _probe
    if _probe is not None:
        return _probe or None
    why = ""
    if not binary() or not os.access(binary(), os.X_OK):
        why = "powercutfs is not built (install libfuse3-dev: scripts/deps.sh lists it)"
    elif not shim() or not os.path.exists(shim()):
        why = "syncfs_shim.so is not built"
    elif not os.path.exists("/dev/fuse"):
        why = "/dev/fuse does not exist"
    elif not os.access("/dev/fuse", os.R_OK | os.W_OK):
        why = "/dev/fuse is not readable and writable by this user"
    elif not fusermount():
        why = "fusermount3 is not installed (apt-get install fuse3)"
    else:
        d = tempfile.mkdtemp(prefix="powercut-probe-")
        try:
            os.mkdir(os.path.join(d, "b"))
            os.mkdir(os.path.join(d, "m"))
            fs = PowercutFS(os.path.join(d, "b"), os.path.join(d, "m"))
            try:
                fs.start()
            except RuntimeError as e:
                why = "cannot mount a FUSE file system here: %s" % e
            else:
                fs.unmount()
        finally:
            shutil.rmtree(d, ignore_errors=True)
    _probe = why
    return why or None


def shim_env(env=None):
    """Environment entries that preload the syncfs shim (into a sanitizer build too)."""
    e = dict(env or {})
    pre = os.environ.get("LD_PRELOAD", "")
    e["LD_PRELOAD"] = (pre + " " if pre else "") + shim()
    # ASan insists on being first among the loaded libraries; the shim has no sanitizer.
    asan = os.environ.get("ASAN_OPTIONS", "")
    e["ASAN_OPTIONS"] = (asan + ":" if asan else "") + "verify_asan_link_order=0"
    return e


class PowercutFS:
    """One powercutfs mount of `backing` at `mountpoint` (the same folder is allowed)."""

    def __init__(self, backing, mountpoint, trace=False, log_dir=None):
        self.backing = backing
        self.mountpoint = mountpoint
        self.trace = trace
        self.dir = tempfile.mkdtemp(prefix="powercut-", dir=log_dir)
        self.control_path = os.path.join(self.dir, "control")
        self.stderr_path = os.path.join(self.dir, "stderr.txt")
        self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.unmount()
        return False

    def start(self, timeout=10.0):
        args = [binary(), "--control=" + self.control_path, self.backing, self.mountpoint,
                "-f"]
        if self.trace:
            args.insert(1, "--trace")
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + timeout
        while not self._mounted():
            if self.proc.poll() is not None:
                raise RuntimeError("powercutfs exited with %d: %s"
                                   % (self.proc.returncode, self.stderr().strip()))
            if time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError("powercutfs did not mount within %.0fs" % timeout)
            time.sleep(0.01)
        return self

    def _mounted(self):
        real = os.path.realpath(self.mountpoint)
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 4 and fields[4] == real and "powercut" in line:
                    return os.path.exists(self.control_path)
        return False

    def stderr(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    # -- control
    def control(self, command):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(30)
            s.connect(self.control_path)
            s.sendall(command.encode() + b"\n")
            out = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                out += chunk
        finally:
            s.close()
        text = out.decode().strip()
        if text.startswith("error"):
            raise RuntimeError("powercutfs %r: %s" % (command, text))
        return text

    def status(self):
        """{"cut": 0|1, "durable": N, "fsync": N, "fsyncdir": N, "syncfs": N, "ops": N,
        "open": N}"""
        return {k: int(v) for k, v in (f.split("=") for f in self.control("status").split())}

    def cut(self):
        return self.control("cut")

    def arm_durable(self, n):
        """Cut right after the nth durable point (counted from the mount)."""
        return self.control("arm-durable %d" % n)

    def arm_before_durable(self, n):
        """Cut when the nth durable point is asked for, before it takes effect."""
        return self.control("arm-before-durable %d" % n)

    def arm_op(self, n):
        """Cut just before the nth modifying operation (counted from the mount)."""
        return self.control("arm-op %d" % n)

    def partial(self, seed):
        """From now on a cut keeps a random part (chosen by seed) of what is pending, as a
        disk that wrote some of it back; seed 0: none (the default)."""
        return self.control("partial %d" % seed)

    def syncfs(self):
        return self.control("syncfs")

    def wait_released(self, timeout=5.0):
        """Waits until every handle is released (the kernel sends the releases of a dead
        process's files on its own time): an unmount before would leave them unreleased."""
        deadline = time.monotonic() + timeout
        while self.status()["open"] and time.monotonic() < deadline:
            time.sleep(0.01)

    # -- end
    def unmount(self, timeout=10.0):
        """Unmounts (lazily if something still holds it) and waits for powercutfs to exit;
        returns its stderr."""
        if self.proc is None:
            return ""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            r = subprocess.run([fusermount(), "-u", self.mountpoint], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
            if r.returncode == 0:
                break
            if time.monotonic() > deadline:
                subprocess.run([fusermount(), "-u", "-z", self.mountpoint],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                break
            time.sleep(0.05)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        rc, self.proc = self.proc.returncode, None
        err = self.stderr()
        shutil.rmtree(self.dir, ignore_errors=True)
        if rc != 0:
            # (a sanitizer's report, say)
            raise RuntimeError("powercutfs exited with %d: %s" % (rc, err[-3000:]))
        return err
