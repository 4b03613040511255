#!/usr/bin/env python3
"""The service under a real systemd: installed the way README "Operating it" tells, driven
through systemctl.

    tests/systemd/test_systemd.py            (as root; builds the .deb with scripts/package.sh
                                              unless CJA_DEB_BUILT=1 says it is built)

It boots a throw-away systemd 252 in systemd-nspawn over an overlayfs of this machine's / (the
container sees every file here, has only loopback, and every change it makes is discarded),
inside a private mount namespace so that no mount outlives the test. The checkout (the
built .deb in build-pkg/ included) is bound into the container at its own path
(systemd-nspawn --bind), as an overlay with a tmpfs upper layer: the README's commands see
it as they would here and may write in it (the source install builds in it), the host's
checkout is never written, and the checkout may be anywhere, under /tmp too (the
container's /tmp is its own tmpfs, so the overlay of / alone does not show it there). Then, for the Debian
package and again for the source install (after purging the package), it runs the README's
install block as written ("$EDITOR FILE" lines become writes of the test's config and key),
serves a fake Connect on the container's loopback, and checks: enable --now -> active,
STATUS text, the watchdog armed, jobs archived byte-exact, journal entries with
CONTENT_GUID/CONTENT_NAME/JOB_KEY fields, reload keeps the main PID, a bad config on reload
changes nothing, the key nowhere in status or journal, stop -> result success and no
temporaries, a broken config at start -> failed after one attempt with file:line:col in
systemctl status, a missing key file -> failed after one attempt, a watchdog timeout
(SIGSTOP under WatchdogSec=2) -> killed and restarted with nothing lost or duplicated; and
that the purge leaves no config, statoverride or unit behind.

A command inside that cannot start (no such folder, nsenter refused) fails the test at once
with its output, whatever it was run for; a boot that does not finish says what
`systemctl is-system-running` said last.

Where it cannot run (not root, no systemd-nspawn or nsenter, no overlayfs), it prints
"skipped: <why>" and exits 77, which scripts/test.sh reports as skipped. CJA_KEEP_MACHINE=1
leaves the container's console log in /var/tmp for a post-mortem.
"""

import ctypes
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

from harness import (FakeConnect, assert_no_temporaries, make_jobspec,  # noqa: E402
                     new_guid, new_key, read_archive, served_log)

EXIT_SKIP = 77
UNIT = "connect-job-archiver.service"
ARCHIVE = "/var/lib/connect-job-archiver"
ETC = "/etc/connect-job-archiver"
CLONE_NEWNET = 0x40000000
CONTAINER_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                 "LANG": "C.UTF-8", "HOME": "/root", "TERM": "dumb", "SYSTEMD_PAGER": "",
                 "SYSTEMD_COLORS": "0", "DEBIAN_FRONTEND": "noninteractive"}
T0 = time.monotonic()
# Machine.run's exit status when the command's folder is missing in the container.
EXIT_NO_CWD = 125


def log(msg):
    print("[%6.1fs] %s" % (time.monotonic() - T0, msg), flush=True)


def skip(why):
    print("skipped: " + why, flush=True)
    sys.exit(EXIT_SKIP)


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.0f s waiting for %s" % (timeout, what))
        time.sleep(0.1)


def preflight():
    if os.geteuid() != 0:
        skip("needs root (systemd-nspawn, mounts)")
    for tool in ("systemd-nspawn", "nsenter", "unshare", "mount", "umount"):
        if shutil.which(tool) is None:
            skip("%s is not installed (apt-get install systemd-container util-linux)" % tool)
    with open("/proc/filesystems") as f:
        if "overlay" not in f.read():
            subprocess.run(["modprobe", "overlay"], stderr=subprocess.DEVNULL)
            with open("/proc/filesystems") as f2:
                if "overlay" not in f2.read():
                    skip("the kernel has no overlayfs")
    if not os.path.exists("/lib/systemd/systemd"):
        skip("systemd is not installed (nothing to boot)")


def nspawn_escape(path):
    """A path in a systemd-nspawn --bind= argument (":" separates its fields)."""
    return path.replace("\\", "\\\\").replace(":", "\\:")


def overlay_escape(path):
    """A path in overlayfs's lowerdir= option ("," and ":" are separators there)."""
    return path.replace("\\", "\\\\").replace(":", "\\:").replace(",", "\\,")


class Machine:
    """A systemd booted by systemd-nspawn over an overlay of /, with a tmpfs upper layer."""

    def __init__(self):
        self.name = "cja-test-%d-%s" % (os.getpid(), secrets.token_hex(3))
        self.dir = tempfile.mkdtemp(prefix="cja-nspawn-", dir="/var/tmp")
        self.root = os.path.join(self.dir, "root")
        self.layer = os.path.join(self.dir, "layer")
        self.console = os.path.join(self.dir, "console.log")
        self.checkout = os.path.join(self.dir, "checkout")
        self.mounts = []
        self.nspawn = None
        self.pid1 = None

    def _mount(self, *args):
        target = args[-1]
        subprocess.run(["mount"] + list(args), check=True)
        self.mounts.append(target)

    def boot(self, timeout=60):
        os.makedirs("/run/systemd/nspawn", exist_ok=True)
        self._mount("-t", "tmpfs", "tmpfs", "/run/systemd/nspawn")
        os.makedirs(self.root)
        os.makedirs(self.layer)
        self._mount("-t", "tmpfs", "-o", "mode=0755", "tmpfs", self.layer)
        os.makedirs(os.path.join(self.layer, "upper"))
        os.makedirs(os.path.join(self.layer, "work"))
        self._mount("-t", "overlay", "overlay", "-o",
                    "lowerdir=/,upperdir=%s/upper,workdir=%s/work" % (self.layer, self.layer),
                    self.root)
        # The checkout at its own path, writable through an upper layer on the same tmpfs:
        # an overlay of it here, bound into the container (a bind's mount point is made
        # with its parents, in the container's own /tmp too).
        os.makedirs(os.path.join(self.layer, "checkout-upper"))
        os.makedirs(os.path.join(self.layer, "checkout-work"))
        os.makedirs(self.checkout)
        self._mount("-t", "overlay", "overlay", "-o",
                    "lowerdir=%s,upperdir=%s/checkout-upper,workdir=%s/checkout-work"
                    % (overlay_escape(ROOT), self.layer, self.layer), self.checkout)
        bind = "%s:%s" % (nspawn_escape(self.checkout), nspawn_escape(ROOT))
        with open(self.console, "wb") as out:
            self.nspawn = subprocess.Popen(
                ["systemd-nspawn", "-q", "-D", self.root, "--private-network", "--register=no",
                 "--keep-unit", "-M", self.name, "--bind=" + bind,
                 "-b", "systemd.firstboot=off"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)

        def find_pid1():
            if self.nspawn.poll() is not None:
                raise AssertionError("systemd-nspawn exited with %s:\n%s"
                                     % (self.nspawn.returncode, self.console_tail()))
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    with open("/proc/%s/stat" % pid) as f:
                        st = f.read()
                except OSError:
                    continue
                comm = st[st.index("(") + 1:st.rindex(")")]
                ppid = int(st[st.rindex(")") + 2:].split()[1])
                if ppid == self.nspawn.pid and comm == "systemd":
                    return int(pid)
            return None
        self.pid1 = wait_for(find_pid1, 20, "the container's PID 1")

        # is-system-running exits non-zero until the boot is over ("starting"), and may
        # print nothing while systemd cannot answer yet; what it said last goes into the
        # timeout's message.
        last = {}

        def booted():
            p = self.run("systemctl is-system-running", check=False, timeout=10, cwd="/")
            last.update(rc=p.returncode, out=p.stdout.strip(), err=p.stderr.strip())
            return p.stdout.strip() in ("running", "degraded")
        try:
            wait_for(booted, timeout, "the container to finish booting")
        except AssertionError as e:
            raise AssertionError("%s; `systemctl is-system-running` said last: exit %s, %r%s"
                                 % (e, last.get("rc"), last.get("out"),
                                    ", stderr %r" % last["err"] if last.get("err") else ""))
        # The checkout is where the commands run: it must be there, with this tree in it.
        p = self.run("test -f README.md && test -f tests/systemd/test_systemd.py", check=False)
        if p.returncode != 0:
            raise AssertionError("the checkout %s is not visible in the container" % ROOT)

    def console_tail(self, n=40):
        try:
            with open(self.console, "rb") as f:
                return b"".join(f.readlines()[-n:]).decode("utf-8", "replace")
        except OSError:
            return ""

    def run(self, cmd, input=None, check=True, timeout=60, cwd=ROOT):
        """Runs a shell command inside (in every namespace of PID 1), in the folder cwd;
        CompletedProcess. A command that could not be started there (cwd missing in the
        container, nsenter failing) raises whatever check says: it was never run."""
        script = ("cd %s 2>/dev/null || { echo %s >&2; exit %d; }\n%s"
                  % (shlex.quote(cwd), shlex.quote("no folder %s in the container" % cwd),
                     EXIT_NO_CWD, cmd))
        p = subprocess.run(["nsenter", "-t", str(self.pid1), "-a", "--", "sh", "-c", script],
                           input=input, env=CONTAINER_ENV, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, errors="replace",
                           timeout=timeout)
        if p.returncode == EXIT_NO_CWD and p.stderr.startswith("no folder %s in" % cwd):
            raise AssertionError("in the container, `%s` could not run: %s"
                                 % (cmd, p.stderr.strip()))
        if p.returncode != 0 and p.stderr.startswith("nsenter:"):
            raise AssertionError("cannot enter the container to run `%s`: %s"
                                 % (cmd, p.stderr.strip()))
        if check and p.returncode != 0:
            raise AssertionError("in the container, `%s` exited %d:\n%s%s"
                                 % (cmd, p.returncode, p.stdout[-3000:], p.stderr[-3000:]))
        return p

    def path(self, p):
        """The host's path of the container's file p (through the overlay)."""
        return os.path.join(self.root, p.lstrip("/"))

    def enter_network(self):
        """Moves this process into the container's network namespace, so that the fake
        Connect started from here listens on the container's loopback."""
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open("/proc/%d/ns/net" % self.pid1, os.O_RDONLY | os.O_CLOEXEC)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                e = ctypes.get_errno()
                raise OSError(e, "setns(CLONE_NEWNET): " + os.strerror(e))
        finally:
            os.close(fd)

    def shutdown(self):
        if self.nspawn is not None and self.nspawn.poll() is None:
            if self.pid1:
                try:
                    self.run("systemctl poweroff --no-block", check=False, timeout=10)
                except Exception:  # noqa: BLE001 - the kill below still ends it
                    pass
            try:
                self.nspawn.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.nspawn.pid, signal.SIGKILL)
                self.nspawn.wait(10)
        for target in reversed(self.mounts):
            subprocess.run(["umount", "-l", target], stderr=subprocess.DEVNULL)
        self.mounts = []
        if os.environ.get("CJA_KEEP_MACHINE"):
            log("console log kept in " + self.console)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


# ------------------------------------------------------------------------------------------
# The README's install blocks

def readme_blocks():
    """The two shell blocks of README "Operating it" that the test runs: [package, source]."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    blocks = re.findall(r"<!-- tests/systemd/test_systemd.py runs this block[^>]*-->\n"
                        r"```sh\n(.*?)```", text, re.S)
    if len(blocks) != 2:
        raise AssertionError("README.md: expected 2 tested install blocks, found %d"
                             % len(blocks))
    return [b.replace("\\\n", " ") for b in blocks]


def run_readme_block(m, block, files):
    """Runs each line of block in the container; "$EDITOR FILE" writes files[FILE] into
    the existing FILE (keeping its owner and mode, as an editor does); "scripts/package.sh"
    was run on this machine before the boot."""
    for line in block.splitlines():
        cmd = re.sub(r"\s+#.*$", "", line).strip()
        if not cmd:
            continue
        ed = re.match(r"^\$EDITOR\s+(\S+)$", cmd)
        if ed:
            if not os.path.exists(m.path(ed.group(1))):
                raise AssertionError("README: %s does not exist when it is to be edited"
                                     % ed.group(1))
            m.run("cat > %s" % ed.group(1), input=files[ed.group(1)])
            continue
        if cmd.startswith("scripts/package.sh"):
            continue
        t = time.monotonic()
        m.run(cmd, timeout=300)
        log("  $ %s  (%.1f s)" % (cmd, time.monotonic() - t))


# ------------------------------------------------------------------------------------------
# systemd queries

def show(m, *props):
    p = m.run("systemctl show %s %s" % (UNIT, " ".join("-p " + x for x in props)))
    out = {}
    for line in p.stdout.splitlines():
        k, _, v = line.partition("=")
        out[k] = v
    return out


def wait_state(m, want, timeout=30, what=None):
    def ok():
        s = show(m, "ActiveState", "SubState")
        return s if s["ActiveState"] == want else None
    return wait_for(ok, timeout, what or "%s to be %s" % (UNIT, want))


def journal_json(m, *args):
    p = m.run("journalctl -o json --no-pager %s" % " ".join(args), check=False)
    entries = []
    for line in p.stdout.splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            pass
    return entries


# ------------------------------------------------------------------------------------------
# The scenario and the archive

class Scenario:
    def __init__(self, tag):
        self.key = "cja-%s-key-%s" % (tag, secrets.token_hex(12))
        self.g1, self.g2 = new_guid(), new_guid()
        self.specs = {}  # key -> (guid, spec) of every job that must end up archived
        jobs1 = [self.job(self.g1, "line one\nline two: caf\u00e9 \u2713\n" * 50),
                 self.job(self.g1, os.urandom(150000)),
                 self.job(self.g1, "failed job\n",
                          error={"code": 14, "error": "boom", "payload": None})]
        jobs2 = [self.job(self.g2, "second item\n" * 1000)]
        self.active = make_jobspec(new_key(), status=0, log="still running\n")
        jobs1.append(self.active)
        self.content = {self.g1: jobs1, self.g2: jobs2}

    def job(self, guid, log_data, **kw):
        spec = make_jobspec(new_key(), log=log_data, **kw)
        self.specs[spec["job"]["key"]] = (guid, spec)
        return spec

    def config(self, url, interval=1):
        return ("server:\n  url: %s\n  timeout_seconds: 5\n"
                "archive:\n  directory: %s\n  min_free_mb: 0\n"
                "poll:\n  interval_seconds: %d\n"
                "content:\n  - guid: %s\n    name: sales-dashboard\n  - %s\n"
                % (url, ARCHIVE, interval, self.g1, self.g2))


def check_archive(m, sc, expect_keys=None):
    """Every expected job archived once, byte-exact, and nothing else; returns the archive."""
    arch = read_archive(m.path(ARCHIVE))
    want = set(expect_keys if expect_keys is not None else sc.specs)
    got = set(arch.jobs)
    assert got == want, "archived %s, expected %s" % (sorted(got), sorted(want))
    for key in want:
        guid, spec = sc.specs[key]
        j = arch.jobs[key]
        assert j["dir"].startswith(guid + "/"), j["dir"]
        assert j["record"] is not None, "%s: no record" % key
        assert j["record"]["job"] == spec["job"], "%s: record differs" % key
        assert j["log"] == served_log(spec), "%s: log differs" % key
        assert (j["error"] is None) == (spec.get("error") is None), key
        records = [f for f in j["files"] if f.endswith(key + ".json")]
        assert len(records) == 1, records
    assert_no_temporaries(m.path(ARCHIVE))
    return arch


def archived_count(m):
    try:
        return len(read_archive(m.path(ARCHIVE)).records)
    except AssertionError:
        return 0  # a file being written: look again


# ------------------------------------------------------------------------------------------
# The checks, for one install

def exercise(m, sc, fc, files, flavour):
    key_path = ETC + "/api-key"

    # enable --now -> active, with STATUS text and the watchdog armed.
    s = wait_state(m, "active", 30)
    assert m.run("systemctl is-enabled " + UNIT).stdout.strip() == "enabled"
    props = show(m, "MainPID", "StatusText", "WatchdogUSec", "WatchdogTimestampMonotonic",
                 "Type", "NRestarts", "User")
    assert props["Type"] == "notify", props
    assert props["User"] == "connect-job-archiver", props
    assert props["WatchdogUSec"] == "1min", props
    assert int(props["WatchdogTimestampMonotonic"]) > 0, props
    log("%s: active (%s), MainPID %s, watchdog %s" % (flavour, s["SubState"],
                                                      props["MainPID"], props["WatchdogUSec"]))

    # Jobs archived byte-exact; STATUS says so.
    wait_for(lambda: archived_count(m) >= len(sc.specs), 30, "the jobs to be archived")
    check_archive(m, sc)
    status = wait_for(lambda: (lambda t: t if re.search(r"\b%d jobs archived" % len(sc.specs),
                                                        t) else None)(
        show(m, "StatusText")["StatusText"]), 15, "STATUS to count the jobs")
    assert "watching 2 items" in status, status
    log("%s: %d jobs archived byte-exact; STATUS=%s" % (flavour, len(sc.specs), status))

    # Journal-native: structured entries with the job's fields.
    k1 = next(k for k, (g, _) in sc.specs.items() if g == sc.g1)
    entries = journal_json(m, "-u", UNIT, "CONTENT_GUID=" + sc.g1, "JOB_KEY=" + k1)
    assert entries, "no journal entry with CONTENT_GUID=%s JOB_KEY=%s" % (sc.g1, k1)
    e = entries[-1]
    assert e.get("CONTENT_NAME") == "sales-dashboard", e
    assert e.get("PRIORITY") == "6", e
    assert e.get("SYSLOG_IDENTIFIER") == "connect-job-archiver", e
    assert e.get("_SYSTEMD_UNIT") == UNIT, e
    assert "job=%s" % k1 in e.get("MESSAGE", ""), e
    assert not e["MESSAGE"].startswith("<"), e
    # A line without fields comes through the stream: prefix read as the priority.
    start = [x for x in journal_json(m, "-u", UNIT, "SYSLOG_IDENTIFIER=connect-job-archiver")
             if x.get("MESSAGE", "").startswith("watching 2 content items")]
    assert start and start[-1].get("PRIORITY") == "5", start[-1:]
    g2_lines = journal_json(m, "-u", UNIT, "CONTENT_GUID=" + sc.g2)
    assert g2_lines and all("CONTENT_NAME" not in x for x in g2_lines), g2_lines[:2]
    assert all(x.get("CONTENT_GUID") == sc.g2 for x in g2_lines)

    # Reload keeps the main PID and applies the new config (a third item).
    pid = show(m, "MainPID")["MainPID"]
    g3 = new_guid()
    spec3 = make_jobspec(new_key(), log="third item\n")
    sc.specs[spec3["job"]["key"]] = (g3, spec3)
    fc.add_job(g3, spec3)
    m.run("cat > %s/config.yaml" % ETC,
          input=sc.config(fc.url) + "  - %s\n" % g3)
    m.run("systemctl reload " + UNIT)
    wait_for(lambda: archived_count(m) >= len(sc.specs), 20, "the new item's job")
    assert show(m, "MainPID")["MainPID"] == pid, "reload changed the main PID"
    assert show(m, "ActiveState")["ActiveState"] == "active"

    # A bad config on reload changes nothing: logged with its place, same PID, still polling
    # the old list (a job added now is archived).
    good = m.run("cat %s/config.yaml" % ETC).stdout
    m.run("cat > %s/config.yaml" % ETC,
          input=good.replace("  interval_seconds: 1", "  interval_seconds: 1\n  bogus: 2"))
    m.run("systemctl reload " + UNIT)
    bad_line = next(i for i, l in enumerate(good.replace(
        "  interval_seconds: 1", "  interval_seconds: 1\n  bogus: 2").splitlines(), 1)
        if "bogus" in l)
    want = "%s/config.yaml:%d:3:" % (ETC, bad_line)
    wait_for(lambda: any(want in x.get("MESSAGE", "") for x in journal_json(
        m, "-u", UNIT, "-p", "err")), 15, "the reload's error in the journal")
    spec4 = sc.job(sc.g2, "after the bad reload\n")
    fc.add_job(sc.g2, spec4)
    wait_for(lambda: archived_count(m) >= len(sc.specs), 20, "a job after the bad reload")
    assert show(m, "MainPID")["MainPID"] == pid, "a bad reload changed the main PID"
    assert show(m, "ActiveState")["ActiveState"] == "active"
    m.run("cat > %s/config.yaml" % ETC, input=good)
    m.run("systemctl reload " + UNIT)
    log("%s: reload kept MainPID %s; bad reload logged %s... and changed nothing"
        % (flavour, pid, want))

    # The watchdog: frozen by SIGSTOP under WatchdogSec=2, killed and restarted; nothing
    # archived is lost or duplicated, and what arrived meanwhile is archived after.
    dropin = "/etc/systemd/system/%s.d" % UNIT
    m.run("mkdir -p %s && printf '[Service]\\nWatchdogSec=2\\nRestartSec=1\\n' > %s/test.conf"
          % (dropin, dropin))
    m.run("systemctl daemon-reload && systemctl restart " + UNIT)
    wait_state(m, "active", 30)
    before = read_archive(m.path(ARCHIVE))
    pid = show(m, "MainPID")["MainPID"]
    n0 = int(show(m, "NRestarts")["NRestarts"])
    m.run("kill -STOP " + pid)
    spec5 = sc.job(sc.g1, "while frozen\n")
    fc.add_job(sc.g1, spec5)
    t = time.monotonic()

    def restarted():
        p = show(m, "NRestarts", "MainPID", "ActiveState")
        return (p if int(p["NRestarts"]) > n0 and p["MainPID"] not in ("0", pid)
                and p["ActiveState"] == "active" else None)
    p = wait_for(restarted, 30, "systemd to kill and restart the frozen daemon")
    elapsed = time.monotonic() - t
    wd = [x.get("MESSAGE", "") for x in journal_json(m, "-u", UNIT)]
    assert any("Watchdog timeout" in x for x in wd), wd[-10:]
    assert any("Failed with result 'watchdog'" in x for x in wd), wd[-10:]
    wait_for(lambda: archived_count(m) >= len(sc.specs), 20, "the job added while frozen")
    after = check_archive(m, sc)
    for rel, data in before.items():
        assert after.get(rel) == data, "%s changed or vanished after the restart" % rel
    log("%s: watchdog killed the frozen PID %s in %.1f s, restarted as %s (NRestarts %s); "
        "nothing lost or rewritten" % (flavour, pid, elapsed, p["MainPID"], p["NRestarts"]))
    m.run("rm -r %s && systemctl daemon-reload" % dropin)

    # Stop: result success, exit 0, no temporaries.
    m.run("systemctl stop " + UNIT, timeout=40)
    p = show(m, "Result", "ExecMainStatus", "ActiveState")
    assert p == {"Result": "success", "ExecMainStatus": "0", "ActiveState": "inactive"}, p
    check_archive(m, sc)

    # A broken config at start: failed after one attempt, the place in systemctl status.
    good = m.run("cat %s/config.yaml" % ETC).stdout
    m.run("cat > %s/config.yaml" % ETC,
          input=good.replace("content:\n", "content:\n  - not-a-guid\n"))
    bad_line = good.splitlines().index("content:") + 2
    m.run("systemctl start %s" % UNIT, check=False)
    wait_state(m, "failed", 15)
    time.sleep(1.5)  # a restart would have been scheduled by now (RestartSec=5 -> activating)
    p = show(m, "ActiveState", "Result", "ExecMainStatus", "NRestarts")
    assert p["ActiveState"] == "failed" and p["ExecMainStatus"] == "78", p
    assert p["NRestarts"] == "0", p
    st = m.run("systemctl status --no-pager -n 20 %s" % UNIT, check=False).stdout
    assert "%s/config.yaml:%d:5:" % (ETC, bad_line) in st, st
    log("%s: broken config -> failed (status 78, NRestarts %s), status shows %s/config.yaml:%d:5"
        % (flavour, p["NRestarts"], ETC, bad_line))
    m.run("cat > %s/config.yaml && systemctl reset-failed %s" % (ETC, UNIT), input=good)

    # No key file: systemd cannot load the credential; failed after one attempt too.
    m.run("mv %s %s.away" % (key_path, key_path))
    m.run("systemctl start %s" % UNIT, check=False)
    wait_state(m, "failed", 15)
    time.sleep(1.5)
    p = show(m, "ActiveState", "ExecMainStatus", "NRestarts")
    assert p["ActiveState"] == "failed" and p["ExecMainStatus"] == "243", p
    assert p["NRestarts"] == "0", p
    m.run("mv %s.away %s && systemctl reset-failed %s" % (key_path, key_path, UNIT))
    log("%s: missing key file -> failed (status 243/CREDENTIALS), not restarted" % flavour)

    # The key never shows: not in systemctl status, not anywhere in the journal.
    st = m.run("systemctl status --no-pager -l -n 200 %s" % UNIT, check=False).stdout
    assert sc.key not in st
    everything = m.run("journalctl -o export --no-pager", check=False).stdout
    assert len(everything) > 1000
    assert sc.key not in everything, "the API key is in the journal"
    check_archive(m, sc)
    assert sc.key not in str(read_archive(m.path(ARCHIVE)))


def setup_scenario(m, tag):
    sc = Scenario(tag)
    fc = FakeConnect(sc.content, api_key=sc.key).start()
    files = {ETC + "/config.yaml": sc.config(fc.url), ETC + "/api-key": sc.key + "\n"}
    return sc, fc, files


def test_package(m, deb_version):
    block = readme_blocks()[0]
    sc, fc, files = setup_scenario(m, "deb")
    try:
        run_readme_block(m, block, files)
        assert m.run("dpkg-query -W -f='${Version}' connect-job-archiver").stdout == deb_version
        mode = m.run("stat -c '%%a %%U:%%G' %s %s/config.yaml" % (ETC, ETC)).stdout.split("\n")
        assert mode[:2] == ["750 root:connect-job-archiver", "640 root:connect-job-archiver"], mode
        assert m.run("test -f /usr/share/man/man8/connect-job-archiver.8.gz", check=False
                     ).returncode == 0
        exercise(m, sc, fc, files, "package")

        # Purge: the program, the unit, the config and the key go; the archive stays.
        p = m.run("apt-get purge -y connect-job-archiver", timeout=120)
        assert "the archive in %s is kept" % ARCHIVE in p.stdout + p.stderr, p.stderr
        for gone in (ETC, "/usr/bin/connect-job-archiver", "/lib/systemd/system/" + UNIT,
                     "/etc/systemd/system/multi-user.target.wants/" + UNIT):
            assert not os.path.lexists(m.path(gone)), "%s is left after purge" % gone
        assert m.run("dpkg-statoverride --list '%s*'" % ETC, check=False).stdout == ""
        assert os.path.isdir(m.path(ARCHIVE))
        assert m.run("getent passwd connect-job-archiver", check=False).returncode == 0
        log("package: purge removed program, unit, %s and key; archive and user kept" % ETC)
        m.run("rm -rf %s" % ARCHIVE)
        m.run("systemctl daemon-reload && systemctl reset-failed", check=False)
    finally:
        fc.stop()


def test_source(m):
    block = readme_blocks()[1]
    sc, fc, files = setup_scenario(m, "src")
    try:
        # A fresh checkout has no build folder; this one's belongs to the developer.
        m.run("rm -rf build")
        run_readme_block(m, block, files)
        assert m.run("command -v connect-job-archiver").stdout.strip() == \
            "/usr/bin/connect-job-archiver"
        assert os.path.exists(m.path("/usr/lib/systemd/system/" + UNIT))
        assert not os.path.exists(m.path("/usr/etc/connect-job-archiver")), "wrote to /usr/etc"
        mode = m.run("stat -c '%%a %%U:%%G' %s %s/config.yaml" % (ETC, ETC)).stdout.split("\n")
        assert mode[:2] == ["750 root:connect-job-archiver", "640 root:connect-job-archiver"], mode
        exercise(m, sc, fc, files, "source")
    finally:
        fc.stop()


def build_deb():
    if os.environ.get("CJA_DEB_BUILT") != "1":
        log("building the package: scripts/package.sh")
        subprocess.run([os.path.join(ROOT, "scripts", "package.sh")], check=True,
                       stdout=subprocess.DEVNULL)
    debs = [f for f in os.listdir(os.path.join(ROOT, "build-pkg")) if f.endswith(".deb")]
    if len(debs) != 1:
        raise AssertionError("build-pkg/ holds %s, expected one .deb" % debs)
    return debs[0].split("_")[1]


def main():
    preflight()
    if os.environ.get("CJA_SYSTEMD_UNSHARED") != "1":
        # Every mount lives in a private mount namespace and dies with it.
        env = dict(os.environ, CJA_SYSTEMD_UNSHARED="1")
        os.execvpe("unshare", ["unshare", "--mount", "--propagation", "private",
                               sys.executable, os.path.abspath(__file__)] + sys.argv[1:], env)
    # A SIGTERM (scripts/test.sh ending its other stages after a failure) still shuts the
    # container down: SystemExit runs the finally below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    version = build_deb()
    m = Machine()
    ok = False
    try:
        t = time.monotonic()
        m.boot()
        log("booted %s in %.1f s (PID 1 = %d)" % (m.name, time.monotonic() - t, m.pid1))
        m.enter_network()
        test_package(m, version)
        test_source(m)
        ok = True
    except Exception:  # noqa: BLE001 - report, then clean up and fail
        traceback.print_exc()
        if m.pid1:
            print(m.run("systemctl status --no-pager -n 30 " + UNIT, check=False).stdout)
        print("console (last lines):\n" + m.console_tail())
    finally:
        m.shutdown()
    log("%s in %.1f s" % ("passed" if ok else "FAILED", time.monotonic() - T0))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
