#!/usr/bin/env python3
"""Lays out a realistic Connect jobs workload as static files for nginx to serve.

Layout under ROOT (nginx maps the Connect API paths onto it, see bench/nginx.conf):

  lists/<guid>.json             GET /__api__/v1/content/<guid>/jobs             (JSON array)
  logs/<guid>/<key>.log         GET /__api__/v1/content/<guid>/jobs/<key>/download
  errors/<guid>/<key>.json      GET /__api__/v1/content/<guid>/jobs/<key>/error  (204 if absent)
  sets/<set>.guids              the content GUIDs of one set, one per line
  manifest.json                 every job of every set: key, archive folder, log path and size,
                                whether it has an error record (used by run.sh to verify)
  params.json                   the options this tree was made with (run.sh reuses a tree
                                only when they match)

Sets:
  main   --items x --jobs-per-item finalized jobs; log sizes log-normal (median about
         10 KB, a tail of several MB); about one job in seven has an error record.
  idle   --idle-items items with --idle-jobs-per-item small finalized jobs each; run.sh
         archives them once, then times a second cycle that finds nothing new.
  big    one item with one job whose log is --big-log-gb GiB (0 = no such set); written
         fast by repeating a few MiB of realistic blocks.

Log text follows Connect's per-line format "YYYY/MM/DD HH:MM:SS.nnnnnnnnn <text>" with the
session preamble Connect prints (host, R/Python versions, library paths) followed by what the
content itself prints: Shiny/plumber/FastAPI request lines, R warnings and messages, knitr
progress, package installs, and an R or Python error at the end of failing jobs.

Deterministic for a given --seed. Python standard library only.
"""
import argparse
import json
import math
import os
import random
import shutil
import string
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone

ALNUM = string.ascii_letters + string.digits
BASE = datetime(2026, 9, 30, 18, 0, 0, tzinfo=timezone.utc)

R_TAGS = ["run_app", "run_app", "run_app", "render_shiny", "build_report", "build_report",
          "run_api", "packrat_restore"]
PY_TAGS = ["run_python_api", "run_fastapi_app", "run_pyshiny_app", "python_restore",
           "build_jupyter"]

R_PKGS = ["dplyr", "ggplot2", "tidyr", "readr", "purrr", "stringr", "lubridate", "DT",
          "plotly", "leaflet", "shinydashboard", "bslib", "DBI", "odbc", "pool", "glue",
          "jsonlite", "httr", "scales", "forcats", "data.table", "arrow", "sf", "rlang",
          "vctrs", "cli", "htmlwidgets", "reactable", "gt", "knitr", "rmarkdown", "xgboost"]
PY_PKGS = ["pandas", "numpy", "fastapi", "uvicorn", "pydantic", "starlette", "shiny",
           "scikit-learn", "scipy", "matplotlib", "plotly", "sqlalchemy", "psycopg2-binary",
           "requests", "httpx", "anyio", "jinja2", "pyarrow", "polars", "joblib", "click"]
PATHS = ["/", "/session/{h}/dataobj/table?w=&nonce={n}", "/shared/shiny.min.js",
         "/predict", "/api/v1/forecast?region={r}&horizon={k}", "/health", "/items/{k}",
         "/__docs__/", "/openapi.json", "/report/{r}", "/static/css/app.css",
         "/session/{h}/download/export?w=", "/metrics", "/users/{k}/orders"]
REGIONS = ["west", "east", "north", "south", "emea", "apac", "latam", "central"]
COLS = ["revenue", "units", "margin", "customer_id", "order_date", "region", "sku", "qty"]


def rand_key(rng, n=16):
    return "".join(rng.choice(ALNUM) for _ in range(n))


def rfc3339(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


class Clock:
    """Connect's line prefix: 'YYYY/MM/DD HH:MM:SS.nnnnnnnnn ', time moving forward."""

    def __init__(self, start, rng):
        self.sec = int(start.timestamp())
        self.ns = rng.randrange(10 ** 9)
        self.rng = rng
        self._cache_sec = None
        self._cache_str = ""

    def tick(self, mean_ms):
        step = int(self.rng.expovariate(1.0 / (mean_ms * 1e6))) if mean_ms > 0 else 0
        self.ns += step
        if self.ns >= 10 ** 9:
            self.sec += self.ns // 10 ** 9
            self.ns %= 10 ** 9

    def prefix(self):
        if self.sec != self._cache_sec:
            self._cache_sec = self.sec
            self._cache_str = time.strftime("%Y/%m/%d %H:%M:%S", time.gmtime(self.sec))
        return "%s.%09d " % (self._cache_str, self.ns)


def preamble(rng, clk, job, lang):
    host = job["hostname"]
    lines = [
        "[rsc-session] Content GUID: %s" % job["content_guid"],
        "[rsc-session] Content ID: %s" % job["content_id"],
        "[rsc-session] Bundle ID: %s" % job["bundle_id"],
        "[rsc-session] Job Key: %s" % job["key"],
        "Running on host: %s" % host,
        "Process ID: %s" % job["pid"],
        "Linux distribution: Ubuntu 22.04.4 LTS (jammy)",
        "Running as user: uid=999(rstudio-connect) gid=999(rstudio-connect) groups=999(rstudio-connect)",
        "Connect version: 2025.09.0",
        "LANG: C.UTF-8",
        "Working directory: /opt/rstudio-connect/mnt/app",
    ]
    if lang == "R":
        rv = rng.choice(["4.3.3", "4.4.1", "4.4.2", "4.5.0"])
        lib = "/opt/rstudio-connect/mnt/app/packrat/lib/x86_64-pc-linux-gnu/%s" % rv
        lines += [
            "Using R %s" % rv,
            "R.home(): /opt/R/%s/lib/R" % rv,
            "Content will use associated Packrat library",
            "Adding Packrat library to R_LIBS and .libPaths: %s" % lib,
            "R_LIBS: %s" % lib,
            ".libPaths(): %s, /opt/R/%s/lib/R/library" % (lib, rv),
            "shiny version: 1.9.1",
            "httpuv version: 1.6.15",
            "rmarkdown version: 2.28",
            "knitr version: 1.48",
            "jsonlite version: 1.8.9",
            "RJSONIO version: (none)",
            "htmltools version: 0.5.8.1",
            "reticulate version: (none)",
            "Using pandoc: /opt/rstudio-connect/ext/pandoc/2.16",
        ]
    else:
        pv = rng.choice(["3.10.14", "3.11.9", "3.12.6"])
        lines += [
            "Using Python %s" % pv,
            "Python executable: /opt/python/%s/bin/python3" % pv,
            "Content will use associated Python environment",
            "Using environment /opt/rstudio-connect/mnt/python-environments/pip/%s/%s" % (
                pv, rand_key(rng, 22)),
            "Determining session server location ...",
            "Working directory: /opt/rstudio-connect/mnt/app",
            "Bootstrapping environment using Python %s (main, Sep  3 2024, 14:26:51) [GCC 11.4.0] at /opt/python/%s/bin/python3" % (pv, pv),
        ]
    out = []
    for text in lines:
        clk.tick(0.4)
        out.append(clk.prefix() + text)
    return out


def ip(rng):
    return "10.%d.%d.%d" % (rng.randrange(0, 32), rng.randrange(256), rng.randrange(1, 255))


def fill_path(rng, p):
    return p.format(h=rand_key(rng, 32).lower(), n=rng.randrange(10 ** 8), r=rng.choice(REGIONS),
                    k=rng.randrange(1, 5000))


def body_line(rng, kind, clk):
    """One line of what the content prints, by kind of content."""
    r = rng.random()
    if kind == "shiny":
        if r < 0.35:
            return '[1] "%s selected %s: %s rows"' % (
                rng.choice(["user", "filter", "input$region", "observer"]), rng.choice(REGIONS),
                format(rng.randrange(1, 2000000), ","))
        if r < 0.5:
            return ("`summarise()` has grouped output by '%s'. You can override using the "
                    "`.groups` argument." % rng.choice(COLS))
        if r < 0.6:
            return "Joining with `by = join_by(%s)`" % rng.choice(COLS)
        if r < 0.7:
            return "Warning in min(x, na.rm = TRUE) : no non-missing arguments to min; returning Inf"
        if r < 0.78:
            return "Warning: Error in %s: object '%s' not found" % (
                rng.choice(["filter", "mutate", "renderPlot", "ggplot", "left_join"]),
                rng.choice(COLS))
        if r < 0.85:
            return "  %d: <reactive:%s> [/opt/rstudio-connect/mnt/app/server.R#%d]" % (
                rng.randrange(1, 120), rng.choice(COLS), rng.randrange(10, 900))
        if r < 0.92:
            return "Loading required package: %s" % rng.choice(R_PKGS)
        return "session %s: %d ms to render plot (%dx%d)" % (
            rand_key(rng, 8).lower(), rng.randrange(20, 4000), rng.randrange(300, 1600),
            rng.randrange(200, 1000))
    if kind == "plumber":
        if r < 0.85:
            return 'INFO [%s] %s "%s %s" %d %.3fs' % (
                time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(clk.sec)), ip(rng), rng.choice(["GET", "GET", "POST"]),
                fill_path(rng, rng.choice(PATHS)), rng.choice([200] * 18 + [404, 500]),
                rng.expovariate(20))
        return "WARN model cache miss for %s, refitting (%d obs)" % (
            rng.choice(REGIONS), rng.randrange(100, 10 ** 6))
    if kind == "uvicorn":
        if r < 0.88:
            return 'INFO:     %s:%d - "%s %s HTTP/1.1" %d %s' % (
                ip(rng), rng.randrange(30000, 65000), rng.choice(["GET", "GET", "POST", "PUT"]),
                fill_path(rng, rng.choice(PATHS)),
                *rng.choice([(200, "OK")] * 16 + [(404, "Not Found"), (422, "Unprocessable Entity"),
                                                   (500, "Internal Server Error"), (307, "Temporary Redirect")]))
        return "WARNING:root:slow query took %.2f s: SELECT %s FROM orders WHERE region = '%s'" % (
            rng.expovariate(1), ", ".join(rng.sample(COLS, 3)), rng.choice(REGIONS))
    if kind == "report":
        if r < 0.5:
            pct = rng.randrange(0, 101)
            bar = "." * (pct * 70 // 100)
            return "  |%-70s| %3d%% [%s-%d]" % (bar, pct, rng.choice(COLS), rng.randrange(1, 60))
        if r < 0.65:
            return "label: %s-%d (with options) " % (rng.choice(COLS), rng.randrange(1, 60))
        if r < 0.75:
            return "List of %d" % rng.randrange(1, 9)
        if r < 0.85:
            return " $ %s: chr \"%s\"" % (rng.choice(COLS), rand_key(rng, rng.randrange(4, 30)))
        return "Quitting from lines %d-%d [%s] (report.Rmd)" % (
            rng.randrange(1, 300), rng.randrange(300, 600), rng.choice(COLS))
    if kind == "restore":
        if rng.random() < 0.5:
            p = rng.choice(R_PKGS)
            return rng.choice([
                "* installing *binary* package '%s' ..." % p,
                "* DONE (%s)" % p,
                "** testing if installed package can be loaded from final location",
                "Installing %s (%d.%d.%d) ..." % (p, rng.randrange(0, 5), rng.randrange(0, 20),
                                                 rng.randrange(0, 10)),
                "trying URL 'https://packagemanager.posit.co/cran/__linux__/jammy/latest/src/contrib/%s_%d.%d.tar.gz'" % (
                    p, rng.randrange(0, 5), rng.randrange(0, 20)),
                "Content type 'binary/octet-stream' length %d bytes (%.1f MB)" % (
                    rng.randrange(10 ** 4, 10 ** 7), rng.random() * 10),
            ])
        p = rng.choice(PY_PKGS)
        return rng.choice([
            "Collecting %s==%d.%d.%d" % (p, rng.randrange(0, 3), rng.randrange(0, 30), rng.randrange(0, 10)),
            "  Downloading %s-%d.%d.%d-cp311-cp311-manylinux_2_17_x86_64.whl (%.1f MB)" % (
                p, rng.randrange(0, 3), rng.randrange(0, 30), rng.randrange(0, 10), rng.random() * 40),
            "  Using cached %s-%d.%d-py3-none-any.whl (%d kB)" % (p, rng.randrange(0, 3),
                                                              rng.randrange(0, 30), rng.randrange(5, 900)),
            "Requirement already satisfied: %s in /opt/rstudio-connect/mnt/python-environments/pip/3.11.9/lib/python3.11/site-packages (from -r requirements.txt (line %d))" % (
                p, rng.randrange(1, 40)),
        ])
    # pyshiny
    if r < 0.6:
        return "INFO:     %s:%d - \"GET /session/%s/dataobj/%s HTTP/1.1\" 200 OK" % (
            ip(rng), rng.randrange(30000, 65000), rand_key(rng, 32).lower(), rng.choice(COLS))
    if r < 0.8:
        return "INFO:     ('%s', %d) - \"WebSocket /websocket/\" [accepted]" % (
            ip(rng), rng.randrange(30000, 65000))
    return "/opt/rstudio-connect/mnt/app/app.py:%d: FutureWarning: The default of observed=False is deprecated" % rng.randrange(10, 400)


KIND_OF_TAG = {"run_app": "shiny", "render_shiny": "report", "build_report": "report",
               "run_api": "plumber", "packrat_restore": "restore", "run_python_api": "uvicorn",
               "run_fastapi_app": "uvicorn", "run_pyshiny_app": "pyshiny",
               "python_restore": "restore", "build_jupyter": "report"}

START_LINES = {
    "shiny": ["Using Shiny bookmarking base directory /opt/rstudio-connect/mnt/bookmarks",
              "Shiny application starting ...", "", "Listening on http://127.0.0.1:%d"],
    "plumber": ["Plumber API starting ...", "Running plumber API at http://127.0.0.1:%d",
                "Running swagger Docs at http://127.0.0.1:%d/__docs__/"],
    "uvicorn": ["INFO:     Started server process [%d]", "INFO:     Waiting for application startup.",
                "INFO:     Application startup complete.",
                "INFO:     Uvicorn running on http://127.0.0.1:%d (Press CTRL+C to quit)"],
    "pyshiny": ["INFO:     Started server process [%d]", "INFO:     Application startup complete.",
                "INFO:     Uvicorn running on http://127.0.0.1:%d (Press CTRL+C to quit)"],
    "report": ["processing file: report.Rmd", "output file: report.knit.md"],
    "restore": ["Bundle requested R version 4.4.1; using /opt/R/4.4.1/bin/R which has version 4.4.1",
                "Performing manifest.json to packrat transformation.",
                "Installing packages from requirements.txt"],
}

R_ERROR_TAIL = ["Error in {f}(...) : object '{c}' not found",
                "Calls: <Anonymous> ... withVisible -> eval -> eval -> {f} -> {f}.data.frame",
                "In addition: Warning message:",
                "In readRDS(\"data/cache.rds\") : cannot open compressed file 'data/cache.rds', probable reason 'No such file or directory'",
                "Execution halted"]
PY_ERROR_TAIL = ["Traceback (most recent call last):",
                 "  File \"/opt/rstudio-connect/mnt/app/app.py\", line {n}, in <module>",
                 "    df = load_orders(region=\"{c}\")",
                 "  File \"/opt/rstudio-connect/mnt/app/data.py\", line {m}, in load_orders",
                 "    return pd.read_parquet(path)[COLUMNS]",
                 "KeyError: \"['{c}'] not in index\"",
                 "ERROR:    Application startup failed. Exiting."]


def make_log(rng, job, start, target, failed):
    """Returns the log text (bytes) of one job, about `target` bytes long."""
    tag = job["tag"]
    kind = KIND_OF_TAG[tag]
    lang = "Python" if tag in PY_TAGS else "R"
    clk = Clock(start, rng)
    lines = preamble(rng, clk, job, lang)
    port = rng.randrange(30000, 60000)
    for text in START_LINES[kind]:
        clk.tick(5)
        lines.append(clk.prefix() + (text % port if "%d" in text else text))
    size = sum(len(x) + 1 for x in lines)
    mean_ms = rng.choice([20, 200, 2000])
    while size < target:
        clk.tick(mean_ms)
        line = clk.prefix() + body_line(rng, kind, clk)
        lines.append(line)
        size += len(line) + 1
    if failed:
        tail = R_ERROR_TAIL if lang == "R" else PY_ERROR_TAIL
        f, c = rng.choice(["filter", "mutate", "summarise", "left_join"]), rng.choice(COLS)
        for text in tail:
            clk.tick(1)
            lines.append(clk.prefix() + text.format(f=f, c=c, n=rng.randrange(5, 200),
                                                    m=rng.randrange(5, 200)))
    lines.append("")
    return "\n".join(lines).encode()


def log_size(rng, median, sigma, cap):
    return max(200, min(int(rng.lognormvariate(math.log(median), sigma)), cap))


def job_object(rng, guid, content_id, bundle_id, idx, start, failed):
    tag = rng.choice(R_TAGS if rng.random() < 0.7 else PY_TAGS)
    key = rand_key(rng)
    dur = int(rng.expovariate(1 / 3600.0)) + 1
    end = None if rng.random() < 0.04 else rfc3339(start + timedelta(seconds=dur))
    return {
        "id": str(41000000 + idx), "ppid": str(rng.randrange(1000, 4000000)),
        "pid": str(rng.randrange(1000, 4000000)), "key": key, "remote_id": None,
        "app_id": content_id, "content_id": content_id, "content_guid": guid,
        "variant_id": "0", "bundle_id": bundle_id, "start_time": rfc3339(start),
        "end_time": end,
        "last_heartbeat_time": rfc3339(start + timedelta(seconds=max(0, dur - 3))),
        "queued_time": None, "queue_name": None, "tag": tag,
        "exit_code": (1 if failed else 0) if end is not None else None,
        "status": 2, "hostname": rng.choice(["connect01", "connect02"]), "cluster": None,
        "image": None, "run_as": "rstudio-connect",
    }


def error_record(rng, lang):
    if lang == "R":
        summary = rng.choice(["Error in library(shiny): there is no package called 'shiny'",
                              "The application exited during initialization.",
                              "Error in filter(): object 'region' not found"])
    else:
        summary = rng.choice(["ModuleNotFoundError: No module named 'pandas'",
                              "Application startup failed: KeyError: 'region'",
                              "The process exited with status 1."])
    return {"code": "E%d" % rng.randrange(1000, 9999), "summary": summary,
            "help_url": "https://docs.posit.co/connect/user/troubleshooting/"}


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def make_set(root, name, rng, n_items, n_jobs, sizer, id_base):
    """Writes one set of items; returns its manifest entry."""
    items = []
    guids = []
    for i in range(n_items):
        guid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        content_id = str(id_base + i)
        bundle_id = str(300000 + id_base + i)
        jobs, records = [], []
        keys = set()
        for j in range(n_jobs):
            start = BASE - timedelta(seconds=rng.randrange(0, 30 * 86400))
            failed = rng.random() < 1 / 7
            job = job_object(rng, guid, content_id, bundle_id, (id_base + i) * 1000 + j,
                             start, failed)
            while job["key"] in keys:
                job["key"] = rand_key(rng)
            keys.add(job["key"])
            data = make_log(rng, job, start, sizer(rng), failed)
            logrel = "logs/%s/%s.log" % (guid, job["key"])
            write(os.path.join(root, logrel), data)
            if failed:
                lang = "Python" if job["tag"] in PY_TAGS else "R"
                write(os.path.join(root, "errors", guid, job["key"] + ".json"),
                      json.dumps(error_record(rng, lang)).encode())
            jobs.append((start, job))
            records.append({"key": job["key"], "folder": start.strftime("%Y/%m/%d"),
                            "log": logrel, "log_bytes": len(data), "error": failed})
        # Connect lists the newest job first.
        jobs.sort(key=lambda sj: sj[0], reverse=True)
        write(os.path.join(root, "lists", guid + ".json"),
              json.dumps([j for _, j in jobs], indent=2).encode())
        items.append({"guid": guid, "name": "%s-%03d" % (name, i), "jobs": records})
        guids.append(guid)
    write(os.path.join(root, "sets", name + ".guids"), ("\n".join(guids) + "\n").encode())
    return {"items": items}


def make_big(root, rng, gib):
    """One item with one finalized job whose log is `gib` GiB: the preamble, then realistic
    1 MiB blocks (Shiny and uvicorn lines) in a random order until the size is reached."""
    guid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    start = BASE - timedelta(days=2)
    job = job_object(rng, guid, "90000", "390000", 90000000, start, False)
    job["tag"] = "run_app"
    target = int(gib * (1 << 30))
    head = make_log(rng, job, start, 0, False)
    blocks = []
    for b in range(16):
        kind = "shiny" if b % 2 == 0 else "plumber"
        clk = Clock(start + timedelta(hours=b), rng)
        lines, size = [], 0
        while size < (1 << 20):
            clk.tick(50)
            line = clk.prefix() + body_line(rng, kind, clk)
            lines.append(line)
            size += len(line) + 1
        blocks.append(("\n".join(lines) + "\n").encode())
    logrel = "logs/%s/%s.log" % (guid, job["key"])
    path = os.path.join(root, logrel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    written = 0
    with open(path, "wb") as f:
        f.write(head)
        written += len(head)
        while written < target:
            blk = blocks[rng.randrange(len(blocks))]
            blk = blk[:target - written] if written + len(blk) > target else blk
            f.write(blk)
            written += len(blk)
    write(os.path.join(root, "lists", guid + ".json"), json.dumps([job], indent=2).encode())
    write(os.path.join(root, "sets", "big.guids"), (guid + "\n").encode())
    return {"items": [{"guid": guid, "name": "big-000", "jobs": [
        {"key": job["key"], "folder": start.strftime("%Y/%m/%d"), "log": logrel,
         "log_bytes": written, "error": False}]}]}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root")
    ap.add_argument("--items", type=int, default=40)
    ap.add_argument("--jobs-per-item", type=int, default=50)
    ap.add_argument("--idle-items", type=int, default=1000)
    ap.add_argument("--idle-jobs-per-item", type=int, default=5)
    ap.add_argument("--big-log-gb", type=float, default=0.0,
                    help="size in GiB of the single log of the 'big' set (0: no big set)")
    ap.add_argument("--median-kb", type=float, default=10.0)
    ap.add_argument("--sigma", type=float, default=1.8,
                    help="log-normal sigma of the log sizes (1.8: ~0.5%% over 1 MB)")
    ap.add_argument("--max-mb", type=float, default=16.0)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()

    params = {k: v for k, v in vars(a).items() if k != "root"}
    params["version"] = 1
    if os.path.exists(a.root):
        shutil.rmtree(a.root)
    os.makedirs(a.root)
    t0 = time.time()
    manifest = {"params": params, "sets": {}}

    median, cap = int(a.median_kb * 1024), int(a.max_mb * (1 << 20))
    rng = random.Random("%d/main" % a.seed)
    manifest["sets"]["main"] = make_set(
        a.root, "main", rng, a.items, a.jobs_per_item,
        lambda r: log_size(r, median, a.sigma, cap), 50000)
    if a.idle_items > 0:
        rng = random.Random("%d/idle" % a.seed)
        manifest["sets"]["idle"] = make_set(
            a.root, "idle", rng, a.idle_items, a.idle_jobs_per_item,
            lambda r: log_size(r, 3000, 0.8, 64 * 1024), 60000)
    if a.big_log_gb > 0:
        rng = random.Random("%d/big" % a.seed)
        manifest["sets"]["big"] = make_big(a.root, rng, a.big_log_gb)

    with open(os.path.join(a.root, "manifest.json"), "w") as f:
        json.dump(manifest, f)
    with open(os.path.join(a.root, "params.json"), "w") as f:
        json.dump(params, f, sort_keys=True)
    for name, s in manifest["sets"].items():
        jobs = [j for it in s["items"] for j in it["jobs"]]
        sizes = sorted(j["log_bytes"] for j in jobs)
        print("gen_tree: set %s: %d items, %d jobs, %d with error, logs %.1f MB "
              "(median %d B, max %d B)" % (
                  name, len(s["items"]), len(jobs), sum(j["error"] for j in jobs),
                  sum(sizes) / 1e6, sizes[len(sizes) // 2] if sizes else 0,
                  sizes[-1] if sizes else 0), file=sys.stderr)
    print("gen_tree: wrote %s in %.1f s" % (a.root, time.time() - t0), file=sys.stderr)


if __name__ == "__main__":
    main()
