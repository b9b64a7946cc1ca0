"""A long soak of /wall in headless Chromium: does the page's memory stay bounded while the wall refreshes?

    python -m bench.wall_soak --minutes 60 [--refresh-seconds 10] [--update-every 5] [--incidents 50000]

1. A small demo city whose feeds END AT THE CURRENT REAL TIME (`python -m demo_city generate --end <now>`),
   loaded through the real ETL into a fresh warehouse under var/bench/soak-<stamp>/.
2. The dashboard as deployed: the Procfile's web command (gunicorn, its workers and threads; `--server dev` runs
   Flask's development server in one process instead), with clock.as_of null (the real clock) and
   dashboard.refresh_seconds 10: the wall's 24-hour windows move, so its figures really change. The server's
   memory is the RSS and PSS summed over its process tree (PSS splits pages the workers share).
3. Every --update-every minutes a later hotline export (`python -m demo_city update`), cut at the real time
   (rows created or updated after "now" are dropped, so each export is a superset of the previous one), is
   written as a new incidents/hotline_12345_update_NNN.csv and loaded with `python -m etl load-all`: a new
   generation is published while the wall refreshes.
4. /wall open in Debian's Chromium (tests.browser.chromium), 1920x1080. Every --sample-seconds: the page's
   Performance.getMetrics (JSHeapUsedSize, JSHeapTotalSize, Nodes, JSEventListeners, Documents, LayoutObjects)
   before and after a forced garbage collection (HeapProfiler.collectGarbage), the resident memory of the
   renderer, GPU and browser processes (SystemInfo.getProcessInfo + /proc/<pid>/status) and of the dashboard
   server, and the _dash-update-component responses seen since the last sample (count, bytes, figure-carrying).
5. A CSV time series and a JSON summary in bench/results/ (rewritten after every sample, so an interrupted run
   still leaves its data). Summary: start / warm-up / end / max of the GC'd heap, the least-squares slope per
   hour after the warm-up, and pass/fail against the bound below. Times and memory are reported; the exit code
   is 0 either way (the bench never asserts).

The bound (stated, then measured): after --warmup-minutes, (a) the GC'd JS heap never exceeds --heap-ratio
(default 1.5) x its value at the end of the warm-up, (b) its slope extrapolated over 24 h stays under
--slope-share (default 0.5) x that warm-up value, and (c) the DOM node count never exceeds --nodes-ratio
(default 1.2) x its warm-up value. A 24-hour soak is `--minutes 1440`.

Finding what grows: --heap-snapshots takes V8 heap snapshots after the warm-up, every --snapshot-every minutes and
at the end (files beside the run) and reports, for each interval, the constructors that grew and the new objects by
the old object holding them (bench/heapsnap.py; `python -m bench.heapsnap A B` compares any two, also by retainer
path). Accelerated: --refresh-seconds 5 (the config's minimum) --update-every 0.5 --rewind-minutes 20 makes nearly
every refresh carry a new figure (about 10 a minute here instead of 1). A control run: --without-asset memory.js
serves that asset empty, so the same code is measured with and without it at the same time. --detached: Playwright
signs in and opens /wall, then disconnects; memory is read from /proc and the heap by attaching for a moment every
--attach-minutes, so DevTools' own buffers (it keeps a record of every response it observes) are not measured.
--server-env NAME=VALUE sets a variable in the server's environment (an allocator's, say).
"""
from __future__ import annotations

import argparse
import csv
import io
import itertools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(ROOT))
from bench import heapsnap
from bench.etl_throughput import code_state, write_config
from demo_city.timefmt import LOCAL_TZ
from tests.browser import CHROMIUM, CHROMIUM_ARGS, DEMO_PASSWORDS, chromium, free_port, signed_in

ENV = dict(os.environ, CITYOPS_PII_KEY="bench-only-key-not-secret", PYTHONPATH=str(ROOT))
MIB = 1024 * 1024
METRICS = ("JSHeapUsedSize", "JSHeapTotalSize", "Nodes", "JSEventListeners", "Documents", "LayoutObjects",
           "Frames")


def log(msg: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {msg}", flush=True)


def run(args: list[str], **kw) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=ROOT, env=ENV, capture_output=True, text=True, check=False, **kw)
    if result.returncode != 0:
        raise SystemExit(f"{args[:4]} exited {result.returncode}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return result


def rss_mib(pid: int | None) -> float | None:
    return _proc_mib(pid, "status", "VmRSS:")


def pss_mib(pid: int) -> float | None:
    """Proportional set size: shared pages split among their users, so a process tree's sum is not double-counted."""
    return _proc_mib(pid, "smaps_rollup", "Pss:")


def _proc_mib(pid: int | None, name: str, field: str) -> float | None:
    """A kB field of /proc/<pid>/<name> in MiB (None: no such process or field)."""
    if not pid:
        return None
    try:
        for line in Path(f"/proc/{pid}/{name}").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def now_local() -> datetime:
    """Now in the demo city's local time (demo_city writes local timestamps at a fixed UTC+8)."""
    return datetime.now(LOCAL_TZ)


def ui_state() -> dict:
    """A digest of the code a refresh runs (it changes under active development) and what differs from HEAD."""
    import hashlib
    digest = hashlib.sha256()
    dirs = ("dashboard", "dashboard/pages", "query", "layers", "ops")
    for path in sorted(q for d in dirs for q in (ROOT / d).glob("*.py")):
        digest.update(str(path.relative_to(ROOT)).encode() + path.read_bytes())
    status = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", *dirs, "config"],
                            capture_output=True, text=True, check=False).stdout
    return {"sha256": digest.hexdigest()[:16], "uncommitted": [l.strip() for l in status.splitlines() if l.strip()]}


# --- the city, the server ----------------------------------------------------------------------------------------

def make_city(root: Path, args) -> tuple[Path, Path, str]:
    city = root / "city"
    end = now_local().replace(microsecond=0).isoformat()
    log(f"generating a city of {args.incidents:,} incidents ending at {end} ...")
    run([PYTHON, "-m", "demo_city", "generate", "--out", str(city), "--incidents", str(args.incidents),
         "--days", str(args.days), "--sensors", str(args.sensors), "--service-cases", str(args.service_cases),
         "--end", end])
    settings = write_config(root, city)
    data = yaml.safe_load(settings.read_text(encoding="utf-8"))
    data["clock"] = {"as_of": None}
    data["dashboard"]["refresh_seconds"] = args.refresh_seconds
    data["ops"] = {"dir": str(root / "var" / "ops")}
    data["cache"]["dir"] = str(root / "var" / "cache")
    settings.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    t0 = time.perf_counter()
    run([PYTHON, "-m", "etl", "--config", str(settings), "load-all"])
    log(f"loaded in {time.perf_counter() - t0:.1f}s")
    return settings, city, end


def start_server(settings: Path, root: Path, port: int, args) -> tuple[subprocess.Popen, str, Path]:
    """The dashboard as `--server` says: "gunicorn" runs the Procfile's web command (workers, threads and all),
    "dev" runs Flask's development server in one process (needed for --server-tracemalloc)."""
    patch = ""
    if args.rewind_minutes:
        # Accelerated: the pages' "now" steps back 0 .. rewind-1 minutes in turn, one step per refresh period, so
        # (nearly) every refresh sends a different figure instead of one a minute. Data and publishing are real.
        patch = ("import time, datetime as _dt; from dashboard import shell; _now = shell.now; "
                 f"shell.now = lambda: _now() - _dt.timedelta(minutes=int(time.time() // {args.refresh_seconds}) "
                 f"% {args.rewind_minutes})\n")
    if args.server == "gunicorn":
        (root / "soak_wsgi.py").write_text(patch + "from dashboard.wsgi import server  # noqa: E402,F401\n")
        command = [PYTHON, "-m", *procfile_web(port), "--pythonpath", str(root), *(args.gunicorn_arg or ())]
        command[command.index("dashboard.wsgi:server")] = "soak_wsgi:server"
    else:
        code = patch + ("from dashboard.app import create_app; app = create_app(); "
                        f"app.run(host='127.0.0.1', port={port}, debug=False)")
        if args.server_tracemalloc:
            code = tracemalloc_prelude(root, args.server_tracemalloc) + code
        command = [PYTHON, "-c", code]
    env = {**ENV, "CITYOPS_CONFIG": str(settings)}
    for item in args.server_env or ():
        name, _, value = item.partition("=")
        env[name] = value
    log_path = root / "server.log"
    out = open(log_path, "w")  # noqa: SIM115 - the server's log, open for the server's life
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(base + "/healthz", timeout=5).read()
            return proc, base, log_path
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"dashboard did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.3)


def procfile_web(port: int) -> list[str]:
    """The Procfile's web command, bound to 127.0.0.1:port instead of every interface."""
    line = next(l for l in (ROOT / "Procfile").read_text().splitlines() if l.startswith("web:"))
    words = shlex.split(line.split(":", 1)[1])
    words[words.index("--bind") + 1] = f"127.0.0.1:{port}"
    return words


def tracemalloc_prelude(root: Path, minutes: float) -> str:
    """Where the server's memory goes: tracemalloc snapshots every N minutes (compared in server_heap_growth),
    and DuckDB's own memory, which tracemalloc does not see."""
    return ("import json, threading, time, tracemalloc; tracemalloc.start(10)\n"
            "def _dump():\n"
            "    for n in range(1, 100000):\n"
            f"        time.sleep({minutes * 60})\n"
            f"        tracemalloc.take_snapshot().dump('{root}/server-%03d.tracemalloc' % n)\n"
            "        from query import store\n"
            "        rows = store.reader()._con.execute('SELECT tag, memory_usage_bytes, temporary_storage_bytes '\n"
            "                                           'FROM duckdb_memory()').fetchall()\n"
            f"        with open('{root}/server-duckdb.jsonl', 'a') as fh:\n"
            "            fh.write(json.dumps({'n': n, 'tags': {t: m for t, m, _ in rows if m}}) + '\\n')\n"
            "threading.Thread(target=_dump, daemon=True).start()\n")


def process_tree(pid: int) -> list[int]:
    """pid and all its descendants (from /proc/*/stat's parent field)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(parents.get(p, []))
    return tree


def server_memory(pid: int) -> dict:
    """The server's process tree (gunicorn: the arbiter and its workers): RSS and PSS summed, and the largest."""
    tree = process_tree(pid)
    rss = [r for r in map(rss_mib, tree) if r is not None]
    pss = [m for m in map(pss_mib, tree) if m is not None]
    return {"server_rss_mib": round(sum(rss), 1) or None, "server_pss_mib": round(sum(pss), 1) or None,
            "server_largest_rss_mib": round(max(rss), 1) if rss else None, "server_processes": len(rss)}


# --- the updates -------------------------------------------------------------------------------------------------

def update_file(city: Path, hours: int, number: int) -> tuple[Path, int]:
    """A later hotline export cut at the real time: rows created/updated after now are dropped."""
    tmp = city / f".update-{hours}.csv"
    if not tmp.exists():          # deterministic for (city, hours): generate once, cut differently each time
        run([PYTHON, "-m", "demo_city", "update", "--city", str(city), "--out", str(tmp), "--hours", str(hours)])
    cut = now_local().strftime("%Y-%m-%d %H:%M:%S")
    text = tmp.read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    head, body = rows[0], rows[1:]
    created, updated = head.index("created_at"), head.index("updated_at")
    kept = [r for r in body if r[created] <= cut and (not r[updated] or r[updated] <= cut)]
    out = city / "incidents" / f"hotline_12345_update_{number:04d}.csv"
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([head] + kept)
    out.write_text(buf.getvalue(), encoding="utf-8")
    return out, len(kept)


def generation(base: str) -> str | None:
    try:
        data = json.loads(urllib.request.urlopen(base + "/healthz", timeout=10).read())
    except (OSError, ValueError):
        return None
    return data.get("generation") if isinstance(data, dict) else None


# --- analysis ----------------------------------------------------------------------------------------------------

def slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (x, y)."""
    if len(points) < 3:
        return None
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else None


def summarize(samples: list[dict], args) -> dict:
    if not samples:
        return {}
    warm = [s for s in samples if s["minute"] >= args.warmup_minutes]
    out = {"samples": len(samples), "minutes_run": samples[-1]["minute"], "warmup_minutes": args.warmup_minutes}
    for key in ("heap_gc_mib", "heap_mib", "nodes_gc", "listeners_gc", "renderer_rss_mib", "gpu_rss_mib",
                "browser_rss_mib", "server_rss_mib", "server_pss_mib", "server_largest_rss_mib"):
        values = [s[key] for s in samples if s.get(key) is not None]
        if not values:
            continue
        entry = {"start": values[0], "end": values[-1], "max": max(values), "min": min(values)}
        after = [(s["minute"] / 60, s[key]) for s in warm if s.get(key) is not None]
        if after:
            entry["at_warmup"] = after[0][1]
            entry["max_after_warmup"] = max(v for _, v in after)
            entry["slope_per_hour"] = slope(after)
        out[key] = entry
    heap, nodes = out.get("heap_gc_mib", {}), out.get("nodes_gc", {})
    if "at_warmup" in heap and heap.get("slope_per_hour") is not None:
        base = heap["at_warmup"]
        checks = {
            "heap_max_within_ratio": heap["max_after_warmup"] <= args.heap_ratio * base,
            "heap_slope_24h_within_share": heap["slope_per_hour"] * 24 <= args.slope_share * base,
            "nodes_max_within_ratio": nodes.get("max_after_warmup", 0) <= args.nodes_ratio * nodes.get("at_warmup", 0),
        }
        out["bound"] = {"heap_gc_max_mib": args.heap_ratio * base,
                        "heap_gc_slope_mib_per_hour": args.slope_share * base / 24,
                        "nodes_max": args.nodes_ratio * nodes.get("at_warmup", 0),
                        "checks": checks, "pass": all(checks.values())}
    else:
        out["bound"] = {"pass": None, "why": "not run past the warm-up"}
    return out


# --- heap snapshots: what grew -------------------------------------------------------------------------------------

def heap_snapshot(cdp, path: Path) -> dict:
    """A V8 heap snapshot (after a forced GC) written to path; returns {constructor: [count, self bytes]}."""
    chunks: list[str] = []

    def listener(event):
        chunks.append(event["chunk"])

    cdp.on("HeapProfiler.addHeapSnapshotChunk", listener)
    try:
        cdp.send("HeapProfiler.enable")
        cdp.send("HeapProfiler.collectGarbage")
        cdp.send("HeapProfiler.takeHeapSnapshot", {"reportProgress": False})
    finally:
        cdp.remove_listener("HeapProfiler.addHeapSnapshotChunk", listener)
    text = "".join(chunks)
    path.write_text(text)
    chunks.clear()
    return heapsnap.Snapshot(path).by_constructor()


def heap_growth(before: dict, after: dict, top: int = 15) -> list[dict]:
    rows = [{"constructor": k, "count": after.get(k, [0, 0])[0] - before.get(k, [0, 0])[0],
             "bytes": after.get(k, [0, 0])[1] - before.get(k, [0, 0])[1]} for k in set(before) | set(after)]
    return sorted(rows, key=lambda r: -r["bytes"])[:top]


# --- the page ----------------------------------------------------------------------------------------------------

def page_metrics(cdp) -> dict:
    """The page's heap and DOM from Performance.getMetrics, before and after a forced garbage collection."""
    cdp.send("Performance.enable")
    raw = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    cdp.send("HeapProfiler.collectGarbage")
    gcd = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    return {"heap_mib": round(raw["JSHeapUsedSize"] / MIB, 2), "heap_total_mib": round(raw["JSHeapTotalSize"] / MIB, 2),
            "heap_gc_mib": round(gcd["JSHeapUsedSize"] / MIB, 2), "nodes": int(raw["Nodes"]),
            "nodes_gc": int(gcd["Nodes"]), "listeners_gc": int(gcd["JSEventListeners"]),
            "documents_gc": int(gcd["Documents"]), "layout_objects": int(raw.get("LayoutObjects", 0))}


def open_wall(page, base: str) -> None:
    page.goto(base + "/wall", wait_until="networkidle", timeout=120_000)
    page.wait_for_selector("#wall-map .maplibregl-canvas, #wall-map canvas", timeout=120_000)


class AttachedWall:
    """/wall driven by Playwright for the whole run: each refresh response is counted and the page's metrics are
    read at every sample. DevTools stays attached, and its Network domain keeps what it records."""
    detached = False

    def __init__(self, stack: ExitStack, root: Path, base: str, args):
        self.args = args
        self.events = {"responses": 0, "bytes": 0, "figures": 0, "errors": 0, "failed": 0}
        self.page_errors: list[str] = []
        # Console messages, counted by kind and text: with DevTools attached, Chromium keeps each message's
        # arguments alive, so a message logged per refresh shows up as heap growth (a heap snapshot diff on
        # 2026-11-27: figure data held by "DevTools console").
        self.console: Counter = Counter()
        browser = stack.enter_context(chromium(root))
        # The wall's own kiosk account, as a command centre signs it in (its session does not expire).
        page = signed_in(browser, base, "wall", viewport={"width": args.width, "height": args.height})
        for name in args.without_asset or ():
            # A control run: the page as it would be without one of dashboard/assets/ (served empty).
            page.route(f"**/assets/{name}*", lambda route: route.fulfill(status=200, body="",
                                                                         content_type="application/javascript"))
        page.on("response", self._on_response)
        page.on("requestfailed", lambda r: self._count("failed") if "_dash-update-component" in r.url else None)
        page.on("pageerror", lambda e: self.page_errors.append(f"{time.time():.0f} {e}"[:500]))
        page.on("console", lambda m: self.console.update([f"{m.type}: {m.text[:160]}"]))
        page.on("crash", lambda *_: self.page_errors.append(f"{time.time():.0f} renderer crashed"))
        open_wall(page, base)
        self.page = page
        self.cdp = page.context.new_cdp_session(page)
        self.bcdp = browser.new_browser_cdp_session()

    def _count(self, key: str, n: int = 1) -> None:
        self.events[key] += n

    def _on_response(self, response) -> None:
        if "_dash-update-component" not in response.url:
            return
        try:
            size = int(response.headers.get("content-length") or len(response.body()))
        except Exception:      # noqa: BLE001 - a body gone with a navigation
            size = 0
        self._count("responses")
        self._count("bytes", size)
        self._count("figures", size > self.args.figure_bytes)
        self._count("errors", response.status >= 400)

    def sample(self, elapsed: float) -> dict:
        out = page_metrics(self.cdp)
        by_type: dict[str, float] = {}
        for proc in self.bcdp.send("SystemInfo.getProcessInfo")["processInfo"]:
            rss = rss_mib(proc["id"])
            if rss is not None:
                by_type[proc["type"].lower()] = by_type.get(proc["type"].lower(), 0) + rss
        out.update(browser_columns(by_type))
        out.update({"responses": self.events["responses"], "bytes": self.events["bytes"],
                    "figures": self.events["figures"], "http_errors": self.events["errors"],
                    "failed_requests": self.events["failed"]})
        for k in self.events:
            self.events[k] = 0
        return out

    def wait(self) -> None:
        self.page.wait_for_timeout(1000)     # pumps Playwright's events (responses) while waiting


class DetachedWall:
    """The control: Chromium started by the bench with a remote-debugging port; Playwright connects to sign in and
    open /wall, then disconnects. Between samples nothing is attached (no DevTools buffers): the processes' memory
    is read from /proc every sample, and the page's heap by connecting for a moment every --attach-minutes."""
    detached = True

    def __init__(self, stack: ExitStack, root: Path, base: str, args):
        from playwright.sync_api import sync_playwright
        self.sync_playwright = sync_playwright
        self.args, self.page_errors, self.console = args, [], Counter()
        port = free_port()
        self.endpoint = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", f"--remote-debugging-port={port}", f"--user-data-dir={root / 'chromium'}",
             f"--window-size={args.width},{args.height}", *CHROMIUM_ARGS, "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stack.callback(self.close)
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(self.endpoint + "/json/version", timeout=5).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("chromium did not open its debugging port") from None
                time.sleep(0.2)
        with self._attached() as page:
            reply = page.context.request.post(base + "/login", form={"username": "wall", "password":
                                                                     DEMO_PASSWORDS["wall"]}, max_redirects=0)
            if reply.status not in (302, 303):
                raise SystemExit(f"sign-in as wall failed: HTTP {reply.status}")
            open_wall(page, base)
        self.next_attach = args.warmup_minutes * 60 if args.attach_minutes else float("inf")
        self.attached_once = False

    @contextmanager
    def _attached(self):
        with self.sync_playwright() as p:
            browser = p.chromium.connect_over_cdp(self.endpoint)
            try:
                yield browser.contexts[0].pages[0]
            finally:
                browser.close()       # connected over CDP: disconnects, the browser and its page go on

    def sample(self, elapsed: float) -> dict:
        by_type: dict[str, float] = {}
        for pid in process_tree(self.proc.pid):
            kind = chromium_process_type(pid)
            rss = rss_mib(pid)
            if kind and rss is not None:
                by_type[kind] = by_type.get(kind, 0) + rss
        out = browser_columns(by_type)
        if elapsed >= self.next_attach or not self.attached_once:
            with self._attached() as page:
                out = {**page_metrics(page.context.new_cdp_session(page)), **out}
            if self.attached_once:
                self.next_attach = max(self.next_attach, elapsed) + self.args.attach_minutes * 60
            self.attached_once = True
        return out

    def wait(self) -> None:
        time.sleep(1)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def chromium_process_type(pid: int) -> str | None:
    """'browser', 'renderer', 'gpu' or 'utility' from a Chromium process's --type= flag (None: not Chromium)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    if b"chrom" not in cmdline.split(b" ", 1)[0].split(b"\0", 1)[0]:
        return None
    # Chromium rewrites its children's command lines into one space-separated string: search, don't split.
    found = re.search(rb"--type=([a-z-]+)", cmdline)
    kind = found.group(1).decode() if found else "browser"
    return {"gpu-process": "gpu"}.get(kind, kind)


def browser_columns(by_type: dict[str, float]) -> dict:
    return {"renderer_rss_mib": round(by_type.get("renderer", 0), 1) or None,
            "gpu_rss_mib": round(by_type.get("gpu", 0), 1) or None,
            "browser_rss_mib": round(by_type.get("browser", 0), 1) or None}


# --- the soak ----------------------------------------------------------------------------------------------------

def soak(args) -> int:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    root = Path(args.keep).resolve() if args.keep else ROOT / "var" / "bench" / f"soak-{stamp}"
    root.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    csv_path = RESULTS / f"wall_soak-{stamp}-m{args.minutes}.csv"
    json_path = RESULTS / f"wall_soak-{stamp}-m{args.minutes}.json"
    report = {"bench": "wall_soak", "at": datetime.now(UTC).isoformat(timespec="seconds"),
              "args": vars(args), "cpus": os.cpu_count(), "load_average_start": os.getloadavg(),
              "code": code_state(), "ui_sources": ui_state(), "root": str(root), "csv": str(csv_path)}
    settings, city, end = make_city(root, args)
    report["city"] = {"dir": str(city), "end": end, "incidents": args.incidents, "days": args.days,
                      "sensors": args.sensors}
    hours = max(2, -(-args.minutes // 60) + 1)
    server, base, server_log = start_server(settings, root, args.port or free_port(), args)
    report["server_log"] = str(server_log)
    samples: list[dict] = []
    updates: list[dict] = []
    etl: dict | None = None
    snapshots: dict = {}
    wall = None
    try:
        with ExitStack() as stack:
            wall = (DetachedWall if args.detached else AttachedWall)(stack, root, base, args)
            report["browser"] = "detached (/proc, attached every --attach-minutes)" if wall.detached else "attached"
            t0 = time.monotonic()
            next_sample = t0
            next_update = t0 + args.update_every * 60
            number = 0
            log(f"soaking {base}/wall for {args.minutes} min; samples every {args.sample_seconds}s -> {csv_path}")
            with open(csv_path, "w", newline="") as fh:
                writer = None
                while True:
                    elapsed = time.monotonic() - t0
                    if etl and etl["proc"].poll() is not None:
                        etl["seconds"] = time.monotonic() - etl.pop("started")
                        proc = etl.pop("proc")
                        etl["rc"] = proc.returncode
                        etl["generation_after"] = generation(base)
                        if proc.returncode:
                            etl["error"] = Path(etl.pop("log")).read_text()[-1500:]
                        updates.append(etl)
                        log(f"update {etl['number']}: {etl['rows']} rows loaded in {etl['seconds']:.1f}s "
                            f"(rc {etl['rc']}), generation {etl['generation_after']}")
                        etl = None
                    if time.monotonic() >= next_update and etl is None and elapsed < args.minutes * 60:
                        number += 1
                        path, rows = update_file(city, hours, number)
                        etl_log = root / f"etl-{number:04d}.log"
                        etl = {"number": number, "minute": round(elapsed / 60, 2), "file": path.name, "rows": rows,
                               "started": time.monotonic(), "log": str(etl_log),
                               "proc": subprocess.Popen([PYTHON, "-m", "etl", "--config", str(settings), "load-all"],
                                                        cwd=ROOT, env=ENV, stdout=open(etl_log, "w"),  # noqa: SIM115
                                                        stderr=subprocess.STDOUT)}
                        next_update += args.update_every * 60
                    if time.monotonic() >= next_sample:
                        s = {"at": datetime.now(UTC).isoformat(timespec="seconds"), "minute": round(elapsed / 60, 2),
                             **dict.fromkeys(SAMPLE_COLUMNS), **wall.sample(elapsed), **server_memory(server.pid),
                             "generation": generation(base), "load1": os.getloadavg()[0]}
                        samples.append(s)
                        if writer is None:
                            writer = csv.DictWriter(fh, fieldnames=list(s))
                            writer.writeheader()
                        writer.writerow(s)
                        fh.flush()
                        report.update(console=dict(wall.console.most_common(20)))
                        report.update(samples_tail=samples[-3:], updates=updates, page_errors=wall.page_errors[-20:],
                                      summary=summarize(samples, args), load_average_now=os.getloadavg())
                        json_path.write_text(json.dumps(report, indent=1, default=str))
                        log(sample_line(s))
                        # After a stall (a loaded machine) go on from now: no burst of catch-up samples.
                        next_sample = max(next_sample + args.sample_seconds, time.monotonic())
                        if args.heap_snapshots and "warmup" not in snapshots and elapsed >= args.warmup_minutes * 60:
                            snapshots["warmup"] = heap_snapshot(wall.cdp, root / "heap-warmup.heapsnapshot")
                            snapshots["files"] = [root / "heap-warmup.heapsnapshot"]
                            snapshots["next"] = elapsed + (args.snapshot_every or 1e9) * 60
                        elif (args.heap_snapshots and "next" in snapshots and elapsed >= snapshots["next"]
                              and elapsed < args.minutes * 60):
                            path = root / f"heap-m{elapsed / 60:05.1f}.heapsnapshot"
                            heap_snapshot(wall.cdp, path)
                            snapshots["files"].append(path)
                            snapshots["next"] += args.snapshot_every * 60
                            log(f"heap snapshot {path.name}")
                        if elapsed >= args.minutes * 60:
                            if args.heap_snapshots and "warmup" in snapshots:
                                end_path = root / "heap-end.heapsnapshot"
                                end_snap = heap_snapshot(wall.cdp, end_path)
                                snapshots["files"].append(end_path)
                                report["heap_growth_after_warmup"] = heap_growth(snapshots["warmup"], end_snap)
                                report["heap_snapshots"] = [str(f) for f in snapshots["files"]]
                            break
                    if server.poll() is not None:
                        wall.page_errors.append(f"server exited {server.returncode}")
                        break
                    wall.wait()
    finally:
        if etl and "proc" in etl:
            etl["proc"].wait()
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
    console, page_errors = (wall.console, wall.page_errors) if wall else (Counter(), [])
    report.update(console=dict(console.most_common(20)))
    report.update(samples_tail=samples[-3:], updates=updates, page_errors=page_errors,
                  summary=summarize(samples, args), load_average_end=os.getloadavg())
    json_path.write_text(json.dumps(report, indent=1, default=str))
    print(json.dumps(report["summary"], indent=1))
    for row in report.get("heap_growth_after_warmup", []):
        print(f"heap growth: {row['constructor'][:60]:<60} {row['count']:>+8} objects {row['bytes']:>+12,} bytes")
    files = report.get("heap_snapshots", [])
    for before, after in itertools.pairwise(files):
        # Who holds what was allocated in between (python -m bench.heapsnap BEFORE AFTER for the whole report).
        held = heapsnap.diff(Path(before), Path(after), top=8)
        report.setdefault("heap_new_objects_by_owner", []).append(
            {"before": Path(before).name, "after": Path(after).name, **{k: held[k] for k in
             ("before_bytes", "after_bytes", "new_reachable", "new_objects_by_old_owner")}})
        print(f"{Path(before).name} -> {Path(after).name}: {held['before_bytes'] / MIB:.2f} -> "
              f"{held['after_bytes'] / MIB:.2f} MiB; new and reachable {held['new_reachable']}")
        for row in held["new_objects_by_old_owner"]:
            print(f"  held by {row['owner_path'][:90]:<90} {row['objects']:>7} objects {row['bytes']:>10,} bytes")
    if args.server_tracemalloc:
        report["server_heap_growth"] = server_heap_growth(root, args.warmup_minutes / args.server_tracemalloc)
        duck = root / "server-duckdb.jsonl"
        report["server_duckdb_memory"] = [json.loads(line) for line in duck.read_text().splitlines()] \
            if duck.exists() else []
        for row in report["server_duckdb_memory"]:
            print(f"server duckdb memory at snapshot {row['n']}: {sum(row['tags'].values()) / MIB:.1f} MiB "
                  f"{ {k: round(v / MIB, 1) for k, v in row['tags'].items()} }")
        for row in report["server_heap_growth"]:
            print(f"server growth: {row['bytes']:>+12,} bytes {row['blocks']:>+8} blocks  {row['where']}")
    if files or args.server_tracemalloc:
        json_path.write_text(json.dumps(report, indent=1, default=str))
    print(f"results: {csv_path.relative_to(ROOT)} {json_path.relative_to(ROOT)}")
    if not args.keep:
        shutil.rmtree(root / "var" / "warehouse", ignore_errors=True)
    return 0


def server_heap_growth(root: Path, warmup_snapshots: float, top: int = 15) -> list[dict]:
    """The server's Python allocations that grew most from the first snapshot after warm-up to the last, by the
    innermost frames of the code that made them."""
    import tracemalloc
    files = sorted(root.glob("server-*.tracemalloc"))
    first = [f for i, f in enumerate(files, start=1) if i >= warmup_snapshots]
    if len(first) < 2:
        return []
    before, after = tracemalloc.Snapshot.load(str(first[0])), tracemalloc.Snapshot.load(str(first[-1]))
    stats = after.compare_to(before, "traceback")
    return [{"bytes": st.size_diff, "blocks": st.count_diff,
             "where": " <- ".join(f"{Path(f.filename).name}:{f.lineno}" for f in st.traceback[:6]),
             "from": first[0].name, "to": first[-1].name} for st in stats[:top]]


SAMPLE_COLUMNS = ("heap_mib", "heap_total_mib", "heap_gc_mib", "nodes", "nodes_gc", "listeners_gc", "documents_gc",
                  "layout_objects", "renderer_rss_mib", "gpu_rss_mib", "browser_rss_mib", "responses", "bytes",
                  "figures", "http_errors", "failed_requests")


def sample_line(s: dict) -> str:
    def f(key: str, spec: str = "6.1f") -> str:
        return "     -" if s.get(key) is None else format(s[key], spec)
    line = (f"min {s['minute']:6.1f}  heap {f('heap_mib')}  gc'd {f('heap_gc_mib')} MiB  nodes {f('nodes_gc', '5d')}  "
            f"renderer {f('renderer_rss_mib', '6.0f')}  server {f('server_rss_mib', '6.0f')} MiB "
            f"(pss {f('server_pss_mib', '6.0f')}, {s['server_processes']} processes)")
    if s.get("responses") is not None:
        line += f"  responses {s['responses']} ({s['figures']} figures, {s['bytes'] / 1024:.0f} KiB)"
    return line + f"  load {s['load1']:.2f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.wall_soak", description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=int, default=60, help="how long to soak (24 h: 1440)")
    ap.add_argument("--refresh-seconds", type=int, default=10, help="dashboard.refresh_seconds (default 10)")
    ap.add_argument("--update-every", type=float, default=5, help="minutes between hotline updates + ETL loads")
    ap.add_argument("--rewind-minutes", type=int, default=0,
                    help="accelerate: the server's clock steps back 0..N-1 minutes in turn, one step per refresh, "
                         "so every refresh carries a new figure (default 0: the real clock, a new figure a minute)")
    ap.add_argument("--sample-seconds", type=int, default=60)
    ap.add_argument("--warmup-minutes", type=float, default=10)
    ap.add_argument("--heap-ratio", type=float, default=1.5, help="bound: GC'd heap max / value after warm-up")
    ap.add_argument("--slope-share", type=float, default=0.5,
                    help="bound: GC'd heap slope x 24 h / value after warm-up")
    ap.add_argument("--nodes-ratio", type=float, default=1.2, help="bound: DOM nodes max / value after warm-up")
    ap.add_argument("--incidents", type=int, default=50_000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--sensors", type=int, default=24)
    ap.add_argument("--service-cases", type=int, default=2_000)
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--figure-bytes", type=int, default=20_000,
                    help="a refresh response larger than this is counted as carrying the figure")
    ap.add_argument("--heap-snapshots", action="store_true",
                    help="V8 heap snapshots after the warm-up and at the end (kept beside the run), and the "
                         "constructors that grew most in between")
    ap.add_argument("--snapshot-every", type=float,
                    help="with --heap-snapshots: also a snapshot every this many minutes after the warm-up; "
                         "each interval's new objects are reported by the object holding them (bench/heapsnap.py)")
    ap.add_argument("--without-asset", action="append", metavar="NAME",
                    help="a control run: serve dashboard/assets/NAME empty to the page (repeatable), e.g. memory.js")
    ap.add_argument("--server-tracemalloc", type=float, metavar="MINUTES",
                    help="trace the dashboard server's Python allocations, a snapshot every MINUTES; the report "
                         "lists what grew most after the warm-up (slows the server)")
    ap.add_argument("--server", choices=("gunicorn", "dev"), default="gunicorn",
                    help="gunicorn: the Procfile's web command, as deployed (default); dev: Flask's development "
                         "server in one process (needed for --server-tracemalloc)")
    ap.add_argument("--gunicorn-arg", action="append", metavar="ARG",
                    help="appended to the Procfile's command (repeatable; a later flag wins), e.g. "
                         "--gunicorn-arg=--max-requests=200 to recycle workers often")
    ap.add_argument("--server-env", action="append", metavar="NAME=VALUE",
                    help="a control: set in the server's environment (repeatable), e.g. MALLOC_ARENA_MAX=2 or "
                         "LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2")
    ap.add_argument("--detached", action="store_true",
                    help="a control: no DevTools attached between samples (Chromium started with a debugging port, "
                         "memory read from /proc); the page's heap is read every --attach-minutes")
    ap.add_argument("--attach-minutes", type=float, default=10,
                    help="with --detached: connect for a moment this often, after the warm-up, to read the heap")
    ap.add_argument("--port", type=int)
    ap.add_argument("--keep", help="build city, config and warehouse in DIR and keep the warehouse")
    args = ap.parse_args(argv)
    if args.server_tracemalloc and args.server != "dev":
        ap.error("--server-tracemalloc needs --server dev (one process to trace)")
    if args.detached and (args.heap_snapshots or args.without_asset):
        ap.error("--heap-snapshots and --without-asset need the attached browser (leave out --detached)")
    return soak(args)


if __name__ == "__main__":
    raise SystemExit(main())
