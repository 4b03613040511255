#!/usr/bin/env python3
"""The catalog's cost to the daemon: --once over 400 jobs of 400 kB (160 MB of logs) from the
fake Connect, CJA_CATALOG=0 against the default, alternating, 3 runs each; wall, CPU (user +
system) and peak RSS of the archiver (GNU time). CJA_BINARY: a Release build."""
import os, sys, subprocess, tempfile, shutil, random
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
os.environ.setdefault("CJA_TESTS_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from harness import FakeConnect, make_jobspec, new_guid, write_config
items = {}
for g in range(10):
    items[new_guid()] = [make_jobspec("cat%02d%011d" % (g, i), log_size=400_000) for i in range(40)]
res = {}
with FakeConnect(items) as fc:
    for run in range(3):
        for mode in ("off", "on"):
            tmp = tempfile.mkdtemp(prefix="cja-bcat-")
            cfg = write_config(tmp, fc.url, os.path.join(tmp, "a"), content=list(items))
            env = dict(os.environ, CJA_CATALOG="0" if mode == "off" else "1")
            p = subprocess.run(["/usr/bin/time", "-f", "%e %U %S %M", "-o", tmp + "/t",
                                os.environ.get("CJA_BINARY", "build-rel/connect-job-archiver"), "--once", "-c", cfg],
                               env=env, capture_output=True, text=True)
            assert p.returncode == 0, p.stderr[-2000:]
            w, u, s_, m = open(tmp + "/t").read().split()
            res.setdefault(mode, []).append((float(w), float(u) + float(s_), int(m)))
            shutil.rmtree(tmp)
for mode, v in res.items():
    v.sort(key=lambda x: x[1])
    print(mode, "runs (wall, cpu, rss KiB):", v)
