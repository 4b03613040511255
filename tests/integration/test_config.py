#!/usr/bin/env python3
"""The config as the operator meets it: --check-config's summary, and what is refused at
load (exit 78 with file:line:col), at start and on reload."""
import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import run_archiver  # noqa: E402

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
                         "poll interval:      120 s\n"
                         "metrics file:       /m/cja.prom\n"
                         "content:            2 items\n"
                         "  %s  (no name)\n"
                         "  %s  sales-dashboard\n" % (cfg, key, ca, GUID1, GUID2))

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
                         "poll interval:      60 s\n"
                         "metrics file:       (none)\n"
                         "content:            1 item\n"
                         "  %s  (no name)\n" % (cfg, GUID1))

    def test_summary_system_ca_store(self):
        _, out = self.check_config(
            "server:\n"
            "  url: https://connect.example.com\n"
            "archive:\n"
            "  directory: /var/lib/cja\n"
            "content:\n"
            "  - %s\n" % GUID1, env={"CONNECT_API_KEY": SECRET})
        self.assertIn("tls:                verified against the system CA store\n", out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
