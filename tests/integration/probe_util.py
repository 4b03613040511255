"""Helpers of the test_probes_*.py files: run a program with its wall time and peak RSS.

The peak is the child's own VmHWM (/proc/PID/status), sampled every few milliseconds
until it exits: exec gives the program a fresh address space, so the figure is the
program's alone (wait4's ru_maxrss would count the vforking Python's pages too). VmHWM
only grows, so a sample taken after the peak sees it; a program that peaks in its last
milliseconds can be under-read, which the bounds below leave room for.

Under AddressSanitizer the RSS is not the program's own (shadow memory, the quarantine of
freed blocks): the quarantine is cut to 16 MiB for these runs and the bounds multiplied by
ASAN_RSS_FACTOR, which still tells "bounded" from "holds the whole 500 MB".
"""

import os
import subprocess
import sys
import time

from harness import archiver_binary, archiver_env, binary_has_asan, jobs_binary

ASAN_RSS_FACTOR = 3


class Measured:
    """returncode, stdout, stderr (text unless binary), peak_kb, seconds."""

    def __init__(self, returncode, stdout, stderr, peak_kb, seconds):
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.peak_kb = peak_kb
        self.seconds = seconds

    def __repr__(self):
        return "rc=%s peak=%d KiB %.2f s" % (self.returncode, self.peak_kb, self.seconds)


def vm_hwm_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def probe_env(env=None):
    """archiver_env(env), with the ASan quarantine cut so that RSS means something."""
    e = archiver_env(env)
    asan = e.get("ASAN_OPTIONS", "")
    e["ASAN_OPTIONS"] = (asan + ":" if asan else "") + "quarantine_size_mb=16"
    return e


def run_measured(argv, env=None, timeout=60, stdin=None, cwd=None, preexec_fn=None,
                 out_path=None, text=True, interval=0.005):
    """Runs argv to its end; returns Measured. stdout and stderr go to files (a chatty
    program never blocks on a pipe): out_path (default a temporary file) for stdout.
    On timeout the program is killed and AssertionError raised."""
    import tempfile
    tmpdir = tempfile.mkdtemp(prefix="cja-probe-run-")
    out_path = out_path or os.path.join(tmpdir, "stdout")
    err_path = os.path.join(tmpdir, "stderr")
    stdin_f = open(stdin, "rb") if isinstance(stdin, str) else subprocess.DEVNULL
    try:
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            t0 = time.monotonic()
            p = subprocess.Popen(argv, env=probe_env(env), cwd=cwd, stdin=stdin_f,
                                 stdout=out, stderr=err, preexec_fn=preexec_fn)
            peak = 0
            while True:
                pid, status = os.waitpid(p.pid, os.WNOHANG)
                if pid:
                    break
                v = vm_hwm_kb(p.pid)
                if v:
                    peak = max(peak, v)
                if time.monotonic() - t0 > timeout:
                    p.kill()
                    p.wait()
                    with open(err_path, "rb") as f:
                        tail = f.read()[-2000:].decode("utf-8", "replace")
                    raise AssertionError("%s ran longer than %.0f s (killed); stderr: %s"
                                         % (" ".join(argv[:4]), timeout, tail))
                time.sleep(interval)
            seconds = time.monotonic() - t0
            p.returncode = os.waitstatus_to_exitcode(status)
        with open(out_path, "rb") as f:
            so = f.read()
        with open(err_path, "rb") as f:
            se = f.read()
        if text:
            so = so.decode("utf-8", "replace")
            se = se.decode("utf-8", "replace")
        return Measured(p.returncode, so, se, peak, seconds)
    finally:
        if stdin_f is not subprocess.DEVNULL:
            stdin_f.close()
        for name in ("stdout", "stderr"):
            try:
                os.unlink(os.path.join(tmpdir, name))
            except OSError:
                pass
        try:
            os.rmdir(tmpdir)
        except OSError:
            pass


def jobs_measured(args, **kw):
    return run_measured([jobs_binary()] + list(args), **kw)


def archiver_measured(args, **kw):
    return run_measured([archiver_binary()] + list(args), **kw)


def rss_limit_kb(mb, binary=None):
    """The bound for a plain build, loosened under AddressSanitizer."""
    b = binary or jobs_binary()
    return mb * 1024 * (ASAN_RSS_FACTOR if binary_has_asan(b) else 1)


def report(name, m, extra=""):
    """One line of numbers on stderr, for the lead's report."""
    print("PROBE %s: %s%s" % (name, m, (" " + extra) if extra else ""), file=sys.stderr)
