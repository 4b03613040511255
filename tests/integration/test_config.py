#!/usr/bin/env python3
"""The config as the operator meets it: --check-config's summary, and what is refused at
load (exit 78 with file:line:col), at start and on reload."""
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (FakeConnect, make_jobspec, new_guid, read_archive,  # noqa: E402
                     run_archiver, start_archiver, stop_process, wait_for, write_config)

SECRET = "s3cr3t-KEY-0123456789abcdefABCDEF"
GUID1 = "38400000-8cf0-11bd-b23e-10b96e4ef00d"
GUID2 = "0b8f3a5e-2f4d-4c47-9b0e-5c1f6e2a9d11"


def write(path, text, mode=0o600):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


class SummaryTest(unittest.TestCase):
    """--check-config's summary (moved here from the unit tests with config_print_summary,
    which now lives in main.c)."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="cja-config-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def check_config(self, yaml, env=None):
        cfg = write(os.path.join(self.tmp, "config.yaml"), yaml, 0o644)
        p = run_archiver(["--check-config", "-c", cfg], env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertNotIn(SECRET, p.stdout + p.stderr)
        return cfg, p.stdout

    def test_summary(self):
        key = write(os.path.join(self.tmp, "api-key"), SECRET + "\n")
        ca = write(os.path.join(self.tmp, "ca.pem"), "-----BEGIN CERTIFICATE-----\n", 0o644)
        cfg, out = self.check_config(
            "server:\n"
            "  url: https://connect.example.com/\n"
            "  api_key_file: %s\n"
            "  ca_file: %s\n"
            "  timeout_seconds: 12\n"
            "  max_concurrent_requests: 4\n"
            "archive:\n"
            "  directory: /srv/archive\n"
            "  compression_level: 9\n"
            "  retention_days: 90\n"
            "  min_free_mb: 500\n"
            "poll:\n"
            "  interval_seconds: 120\n"
            "metrics_file: /m/cja.prom\n"
            "content:\n"
            "  - %s\n"
            "  - guid: %s\n"
            "    name: sales-dashboard\n" % (key, ca, GUID1, GUID2))
        self.assertEqual(out,
                         "config file:        %s\n"
                         "server url:         https://connect.example.com\n"
                         "api key:            from file %s (not shown)\n"
                         "tls:                verified against %s\n"
                         "timeout:            12 s\n"
                         "max concurrent:     4 requests\n"
                         "archive directory:  /srv/archive\n"
                         "compression level:  9\n"
                         "retention:          90 days\n"
                         "min free space:     500 MB\n"
                         "poll interval:      120 s (quiet items back off to 600 s)\n"
                         "metrics file:       /m/cja.prom\n"
                         "content:            2 items\n"
                         "  %s  (no name, Connect's)\n"
                         "  %s  sales-dashboard\n"
                         "discover:           off (only the content above)\n"
                         % (cfg, key, ca, GUID1, GUID2))

    def test_summary_defaults_and_key_from_the_environment(self):
        cfg, out = self.check_config(
            "server:\n"
            "  url: https://connect.example.com\n"
            "  verify_tls: off\n"
            "archive:\n"
            "  directory: /var/lib/cja\n"
            "content:\n"
            "  - %s\n" % GUID1, env={"CONNECT_API_KEY": SECRET})
        self.assertEqual(out,
                         "config file:        %s\n"
                         "server url:         https://connect.example.com\n"
                         "api key:            from environment variable $CONNECT_API_KEY "
                         "(not shown)\n"
                         "tls:                certificates NOT verified (verify_tls: false)\n"
                         "timeout:            30 s\n"
                         "max concurrent:     8 requests\n"
                         "archive directory:  /var/lib/cja\n"
                         "compression level:  6\n"
                         "retention:          keep forever\n"
                         "min free space:     100 MB\n"
                         "poll interval:      60 s (quiet items back off to 600 s)\n"
                         "metrics file:       (none)\n"
                         "content:            1 item\n"
                         "  %s  (no name, Connect's)\n"
                         "discover:           off (only the content above)\n" % (cfg, GUID1))

    def test_summary_system_ca_store(self):
        _, out = self.check_config(
            "server:\n"
            "  url: https://connect.example.com\n"
            "archive:\n"
            "  directory: /var/lib/cja\n"
            "content:\n"
            "  - %s\n" % GUID1, env={"CONNECT_API_KEY": SECRET})
        self.assertIn("tls:                verified against the system CA store\n", out)


def closed_port():
    """A loopback port with nothing listening (bound, then closed)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def line_col(path, key):
    """The 1-based line and column of `key:` in a YAML file."""
    with open(path) as f:
        for n, line in enumerate(f, 1):
            col = line.find(key + ":")
            if col >= 0:
                return n, col + 1
    raise AssertionError("%s not in %s" % (key, path))


WARNING = ("<4>TLS certificates are not verified (verify_tls: false): anyone on the network "
           "path can pose as Connect and read the API key")


class LoadChecksTest(unittest.TestCase):
    """Issue 14: TLS settings and the server URL are checked when the config is read, at
    start, by --check-config and on reload; the job list's bare 404 and curl's own words."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="cja-config-")
        self.archive = os.path.join(self.tmp, "archive")
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            stop_process(p, signal.SIGKILL)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def start(self, cfg):
        p = start_archiver(["-c", cfg], output_dir=self.tmp)
        self.procs.append(p)
        return p

    def assert_refused(self, cfg, pattern, secret=None, env=None):
        """--check-config, --once and the service all exit 78 with the message."""
        for args in (["--check-config"], ["--once"], []):
            p = run_archiver(["-c", cfg] + args, env=env, timeout=30)
            self.assertEqual(p.returncode, 78, (args, p.stderr))
            self.assertRegex(p.stderr, pattern)
            if secret:
                self.assertNotIn(secret, p.stdout + p.stderr)
        self.assertFalse(os.path.exists(self.archive))

    def test_missing_ca_file_is_a_config_error(self):
        ca = os.path.join(self.tmp, "no-such-ca.pem")
        cfg = write_config(self.tmp, "https://connect.example.com", self.archive,
                           content=[new_guid()], server__ca_file=ca)
        line, col = line_col(cfg, "ca_file")
        self.assert_refused(cfg, r"^<3>%s:%d:%d: server\.ca_file: cannot read %s: No such file "
                                 r"or directory\n$" % (re.escape(cfg), line, col, re.escape(ca)))

    def test_ca_file_directory_is_a_config_error(self):
        cfg = write_config(self.tmp, "https://connect.example.com", self.archive,
                           content=[new_guid()], server__ca_file=self.tmp)
        line, col = line_col(cfg, "ca_file")
        self.assert_refused(cfg, r"%s:%d:%d: server\.ca_file: %s is not a regular file"
                                 % (re.escape(cfg), line, col, re.escape(self.tmp)))

    def test_credentials_in_the_url_are_refused_unseen(self):
        cfg = write_config(self.tmp, "https://archiver:hunter2@connect.example.com",
                           self.archive, content=[new_guid()])
        line, _ = line_col(cfg, "url")
        self.assert_refused(cfg, r"%s:%d:\d+: server\.url: credentials in the URL "
                                 r"\(user:password@\) are refused and not shown"
                                 % (re.escape(cfg), line), secret="hunter2")
        # From the environment, too.
        cfg = write_config(self.tmp, None, self.archive, content=[new_guid()],
                           filename="env.yaml")
        self.assert_refused(cfg, r"env\.yaml: \$CONNECT_SERVER: credentials in the URL",
                            secret="hunter2",
                            env={"CONNECT_SERVER": "https://a:hunter2@connect.example.com"})

    def test_api_path_in_the_url_is_refused_with_a_hint(self):
        cfg = write_config(self.tmp, "https://connect.example.com/__api__/", self.archive,
                           content=[new_guid()])
        self.assert_refused(cfg, r"server\.url: \"https://connect\.example\.com/__api__/\" "
                                 r"contains /__api__: give the server's URL without /__api__")

    def test_unverified_tls_warns_at_start_and_at_every_reload(self):
        g = new_guid()
        with FakeConnect({g: [make_jobspec("firstJob00000001", log="one\n")]}) as fc:
            cfg = write_config(self.tmp, fc.url, self.archive, content=[g],
                               server__verify_tls=False)
            p = run_archiver(["-c", cfg, "--once"], timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(p.stderr.count(WARNING), 1, p.stderr)

            p = self.start(cfg)
            wait_for(lambda: "watching 1 content items" in p.read_stderr(), 10,
                     message="the service started")
            self.assertEqual(p.read_stderr().count(WARNING), 1)
            for n in (2, 3):
                p.send_signal(signal.SIGHUP)
                wait_for(lambda: p.read_stderr().count("reloaded: watching") == n - 1, 10,
                         message="reload %d" % (n - 1))
                self.assertEqual(p.read_stderr().count(WARNING), n, p.read_stderr())
            # Once verification is on again, the warning stops.
            write_config(self.tmp, fc.url, self.archive, content=[g])
            p.send_signal(signal.SIGHUP)
            wait_for(lambda: p.read_stderr().count("reloaded: watching") == 3, 10,
                     message="the reload that turns verification on")
            self.assertEqual(p.read_stderr().count(WARNING), 3)
            self.assertEqual(stop_process(p), 0)

    def test_reload_with_missing_ca_file_keeps_the_running_config(self):
        g = new_guid()
        ca = os.path.join(self.tmp, "ca.pem")
        with open(ca, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\n")
        with FakeConnect({g: [make_jobspec("firstJob00000001", log="one\n")]}) as fc:
            cfg = write_config(self.tmp, fc.url, self.archive, content=[g], server__ca_file=ca)
            p = self.start(cfg)
            wait_for(lambda: "firstJob00000001" in read_archive(self.archive).jobs, 10,
                     message="the first job archived")
            os.unlink(ca)
            p.send_signal(signal.SIGHUP)
            line, col = line_col(cfg, "ca_file")
            wait_for(lambda: "keeping the running one" in p.read_stderr(), 10,
                     message="the refused reload")
            self.assertRegex(p.read_stderr(),
                             r"<3>%s:%d:%d: server\.ca_file: cannot read %s: No such file or "
                             r"directory\n<3>the new configuration is invalid; keeping the "
                             r"running one" % (re.escape(cfg), line, col, re.escape(ca)))
            self.assertIsNone(p.poll())
            fc.add_job(g, make_jobspec("afterBadReload01", log="still\n"))
            wait_for(lambda: "afterBadReload01" in read_archive(self.archive).jobs, 10,
                     message="archiving goes on with the old config")
            self.assertEqual(stop_process(p), 0)

    def test_bare_404_on_the_job_list_names_the_missing_api(self):
        g = new_guid()
        with FakeConnect({g: []}) as fc:
            # A wrong path prefix: the fake answers unknown routes as Connect does, with a
            # plain-text 404.
            cfg = write_config(self.tmp, fc.url + "/rsconnect", self.archive, content=[g])
            p = run_archiver(["-c", cfg, "--once"], timeout=60)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("cannot list jobs: HTTP 404: no jobs API at %s/rsconnect/__api__/v1: a "
                      "wrong URL or path prefix, or a Connect older than 2022.10; will retry "
                      "next cycle" % fc.url, p.stderr)

    def test_curl_error_text_is_printed_as_written(self):
        cfg = write_config(self.tmp, "http://127.0.0.1:%d" % closed_port(), self.archive,
                           content=[new_guid()])
        p = run_archiver(["-c", cfg, "--once"], timeout=120)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("Couldn't connect to server", p.stderr)
        self.assertNotIn("\\x27", p.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
