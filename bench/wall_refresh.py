"""The wall's refresh cost against a loaded demo city: server time and bytes per refresh, cached and uncached,
as ratios to baselines measured in the same run.

    python -m bench.wall_refresh --incidents 1000000 [--repeats 20] [--cold-repeats 3] [--generations 3]

1. A demo city of N incidents (cached under var/bench/cities/ like bench.etl_throughput), loaded once through the
   real ETL (`python -m etl load-all`) into var/bench/wall/<city>/warehouse (kept: a rerun reuses it; --reload
   loads again). Each run works on a copy (published Parquet hard-linked), since the run publishes generations.
2. The dashboard in a subprocess (Flask's server, as tests/browser.py), clock.as_of pinned at the city's end, the
   configured cache type (--cache, default simple).
3. Requests made with `requests`, exactly as the browser's Dash renderer makes them: the page's layout
   (POST _dash-update-component for `_pages_content`, /wall), then the callbacks fired by `wall-refresh.n_intervals`
   (found in /_dash-dependencies, their State filled from the layout and from earlier responses, as the renderer
   does). One "refresh" is all of them (today: the map/tiles/ages callback and the alarms callback). Cases:
   - cold_refresh:   a fresh server, the refresh as its first request (stale signatures): every query uncached,
                     the whole figure, tiles and alarm panel built and sent (--cold-repeats servers)
   - cold_layout:    a fresh server, the page's layout as its first request (a screen opening)
   - warm_layout:    the layout again
   - steady:         refresh with the cache warm and nothing changed (the page sends no_update)
   - warm_changed:   refresh with the cache warm but the browser's signatures stale: the figure is sent
   - new_generation: refresh right after the ETL published a new generation (a later hotline export loaded with
                     `python -m etl load`): cache cold for that generation, the figure sent if it changed
   - after_generation: steady refreshes after that one
   Also: /healthz, which the page polls (assets/connection.js) between refreshes.
4. Baselines in the same run: a static asset over HTTP (the server's floor), /healthz over HTTP, and
   `SELECT count(*) FROM fct_incident` through core.warehouse.Reader in this process (best of --repeats).
5. In-process breakdown (Flask request context, this process, same warehouse): wall_map, the figure's signature,
   tiles, alarms and panel ages, cold (cache cleared) and warm.
6. A table on stdout, JSON in bench/results/. Times are reported, never asserted.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests
import yaml

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
RESULTS = Path(__file__).resolve().parent / "results"
WALLS = ROOT / "var" / "bench" / "wall"
sys.path.insert(0, str(ROOT))
from bench.etl_throughput import OUTCOME, city_key, ensure_city, machine, measured, write_config
from bench.wall_soak import rss_mib, start_server, ui_state
from demo_city.generate import Params
from tests.browser import free_port

ENV = dict(os.environ, CITYOPS_PII_KEY="bench-only-key-not-secret", PYTHONPATH=str(ROOT))
REFRESH_INPUT = ("wall-refresh", "n_intervals")
PAGE_INPUT = ("_pages_location", "pathname")


def log(msg: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def stats(values: list[float]) -> dict:
    if not values:
        return {}
    s = sorted(values)
    return {"n": len(s), "min": s[0], "median": statistics.median(s), "p90": s[min(len(s) - 1, int(0.9 * len(s)))],
            "max": s[-1]}


# --- the warehouse ------------------------------------------------------------------------------------------------

def loaded_warehouse(p: Params, city: Path, reload: bool, rss_limit_mib: float) -> tuple[Path, dict]:
    """var/bench/wall/<city>/warehouse, loaded once through the real ETL (load-all)."""
    home = WALLS / city_key(p)
    pristine = home / "warehouse"
    info_path = home / "load.json"
    if info_path.is_file() and (pristine / "published" / "CURRENT").is_file() and not reload:
        info = json.loads(info_path.read_text())
        info["cached"] = True
        return pristine, info
    shutil.rmtree(pristine, ignore_errors=True)
    info_path.unlink(missing_ok=True)
    settings = settings_for(home / "load", city, pristine, p.end, "null")
    log(f"loading {city.name} through the ETL (load-all) ...")
    result = measured([PYTHON, "-m", "etl", "--config", str(settings), "load-all"], ENV, rss_limit_mib)
    feeds = [{"feed": m["feed"], "status": m["status"], "read": int(m["read"].replace(",", "")),
              "seconds": float(m["seconds"])} for m in OUTCOME.finditer(result["stdout"])]
    info = {"seconds": result["seconds"], "rss_mib": result["rss_mib"], "cpu_s": result["cpu_s"], "rc": result["rc"],
            "killed": result["killed"], "feeds": feeds, "at": datetime.now(UTC).isoformat(timespec="seconds")}
    if result["rc"] != 0 or result["killed"]:
        info["error"] = (result["stderr"] + result["stdout"])[-2000:]
        (home / "load-failed.json").write_text(json.dumps(info, indent=1))
        raise SystemExit(f"ETL load failed (rc {result['rc']}, killed {result['killed']}, peak RSS "
                         f"{result['rss_mib']:,.0f} MiB after {result['seconds']:.0f}s):\n{info['error']}")
    info_path.write_text(json.dumps(info, indent=1))
    info["cached"] = False
    return pristine, info


def working_copy(pristine: Path, work: Path) -> None:
    """A copy the run may publish into: the writer database copied, published Parquet hard-linked."""
    shutil.rmtree(work, ignore_errors=True)

    def link_or_copy(src, dst):
        if "/published/" in src:
            try:
                os.link(src, dst)
                return dst
            except OSError:
                pass
        return shutil.copy2(src, dst)
    shutil.copytree(pristine, work, copy_function=link_or_copy)


def settings_for(root: Path, city: Path, warehouse: Path, as_of: str, cache: str, redis_url: str | None = None) -> Path:
    settings = write_config(root, city)
    data = yaml.safe_load(settings.read_text(encoding="utf-8"))
    data["warehouse"]["dir"] = str(warehouse)
    data["clock"] = {"as_of": as_of}
    data["cache"]["type"] = cache
    if redis_url:
        data["cache"]["redis_url"] = redis_url
    data["cache"]["dir"] = str(root / "var" / "cache")
    data["ops"] = {"dir": str(root / "var" / "ops")}
    settings.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return settings


# --- speaking Dash's protocol ---------------------------------------------------------------------------------------

def parse_outputs(output: str) -> list[dict]:
    parts = output[2:-2].split("...") if output.startswith("..") else [output]
    return [{"id": part.rsplit(".", 1)[0], "property": part.rsplit(".", 1)[1]} for part in parts]


def walk(tree, props: dict) -> None:
    """Every component's props by id, from a layout (or a callback's children) as Dash serialises it."""
    if isinstance(tree, list):
        for item in tree:
            walk(item, props)
    elif isinstance(tree, dict):
        p = tree.get("props")
        if isinstance(p, dict) and "type" in tree:
            if isinstance(p.get("id"), str):
                props.setdefault(p["id"], {}).update(p)
            for value in p.values():
                if isinstance(value, (list, dict)):
                    walk(value, props)


# The wall's kiosk account of config/users.yaml (its demo password is in README.md).
WALL_USER = ("wall", "wall-demo")


class WallClient:
    """What the Dash renderer does for /wall: sign in (the wall's kiosk account), load the page's layout, then fire
    the refresh callbacks."""

    def __init__(self, base: str):
        self.base = base
        self.http = requests.Session()
        signin = self.http.post(base + "/login", data=dict(zip(("username", "password"), WALL_USER)),
                                allow_redirects=False, timeout=60)
        if signin.status_code not in (302, 303, 404):           # 404: a build without sign-in
            raise RuntimeError(f"sign-in as {WALL_USER[0]} failed: HTTP {signin.status_code}")
        self.deps = self.http.get(base + "/_dash-dependencies", timeout=60).json()
        self.page_cb = next(c for c in self.deps if any((i["id"], i["property"]) == PAGE_INPUT for i in c["inputs"]))
        self.refresh_cbs = [c for c in self.deps if not c.get("clientside_function")
                            and any((i["id"], i["property"]) == REFRESH_INPUT for i in c["inputs"])]
        self.props: dict[str, dict] = {}
        self.n = 0

    def _post(self, cb: dict, inputs: list[dict], changed: list[str]) -> tuple[float, bytes, dict]:
        outputs = parse_outputs(cb["output"])
        body = {"output": cb["output"], "outputs": outputs if cb["output"].startswith("..") else outputs[0],
                "inputs": inputs, "changedPropIds": changed, "parsedChangedPropsIds": changed}
        if cb["state"]:
            body["state"] = [self._value(s) for s in cb["state"]]
        started = time.perf_counter()
        r = self.http.post(self.base + "/_dash-update-component", json=body, timeout=600)
        seconds = time.perf_counter() - started
        if r.status_code not in (200, 204):
            raise RuntimeError(f"{cb['output'][:80]}: HTTP {r.status_code}: {r.text[:500]}")
        data = r.json() if r.status_code == 200 and r.content else {}
        for id_, values in (data.get("response") or {}).items():
            for prop, value in values.items():
                self.props.setdefault(id_, {})[prop] = value
                if prop == "children":
                    walk(value, self.props)
        return seconds, r.content, data

    def _value(self, dep: dict) -> dict:
        return {"id": dep["id"], "property": dep["property"],
                "value": self.props.get(dep["id"], {}).get(dep["property"])}

    def layout(self, path: str = "/wall") -> dict:
        inputs = [{"id": i["id"], "property": i["property"],
                   "value": path if i["property"] == "pathname" else ""} for i in self.page_cb["inputs"]]
        seconds, raw, _ = self._post(self.page_cb, inputs, [f"{i['id']}.{i['property']}" for i in inputs])
        return {"seconds": seconds, "bytes": len(raw), "gzip_bytes": len(gzip.compress(raw, 6)), "requests": 1}

    def refresh(self) -> dict:
        """One tick of wall-refresh: every server callback it fires (the renderer sends them concurrently; here
        one after another, so the time is their sum)."""
        self.n += 1
        out = {"seconds": 0.0, "bytes": 0, "gzip_bytes": 0, "requests": 0, "updated": [], "callbacks": []}
        for cb in self.refresh_cbs:
            inputs = [{"id": i["id"], "property": i["property"], "value": self.n} if (i["id"], i["property"]) ==
                      REFRESH_INPUT else self._value(i) for i in cb["inputs"]]
            seconds, raw, data = self._post(cb, inputs, [".".join(REFRESH_INPUT)])
            updated = [f"{i}.{p}" for i, v in (data.get("response") or {}).items() for p in v]
            out["seconds"] += seconds
            out["bytes"] += len(raw)
            out["gzip_bytes"] += len(gzip.compress(raw, 6))
            out["requests"] += 1
            out["updated"] += updated
            out["callbacks"].append({"output": cb["output"][:60], "seconds": seconds, "bytes": len(raw)})
        return out

    def stale(self) -> None:
        """Forget what the browser holds (signatures): the next refresh sends everything again."""
        for id_, values in self.props.items():
            if id_.endswith("signature"):
                values["data"] = "stale"

    def get(self, path: str) -> dict:
        started = time.perf_counter()
        r = self.http.get(self.base + path, timeout=60)
        seconds = time.perf_counter() - started
        r.raise_for_status()
        return {"seconds": seconds, "bytes": len(r.content), "gzip_bytes": len(gzip.compress(r.content, 6))}

    def generation(self) -> str | None:
        return self.http.get(self.base + "/healthz", timeout=60).json().get("generation")


def summary(rows: list[dict]) -> dict:
    out = {"seconds": stats([r["seconds"] for r in rows]), "bytes": stats([r["bytes"] for r in rows]),
           "gzip_bytes": stats([r["gzip_bytes"] for r in rows]), "requests": rows[0].get("requests", 1) if rows else 0}
    if rows and "updated" in rows[0]:
        out["updated"] = sorted({u for r in rows for u in r["updated"]})
        out["callbacks"] = [{"output": c["output"], "seconds": stats([r["callbacks"][i]["seconds"] for r in rows]),
                             "bytes": stats([r["callbacks"][i]["bytes"] for r in rows])}
                            for i, c in enumerate(rows[0]["callbacks"])]
    return out


# --- the run --------------------------------------------------------------------------------------------------------

def clear_shared_cache(settings: Path) -> None:
    """A cold start needs an empty cache: a restarted server keeps a redis or filesystem cache's entries."""
    data = yaml.safe_load(settings.read_text(encoding="utf-8"))
    cache = data.get("cache", {})
    if cache.get("type") == "filesystem":
        shutil.rmtree(cache["dir"], ignore_errors=True)
    elif cache.get("type") == "redis":
        import redis
        client = redis.Redis.from_url(cache["redis_url"])
        for key in client.scan_iter(f"cityops:{data['city']['id']}:*"):     # dashboard/cache.cache_config's prefix
            client.delete(key)


# bench.wall_soak's server options for Flask's server in one process, as tests/browser.py runs the dashboard.
FLASK_SERVER = argparse.Namespace(server="dev", rewind_minutes=0, server_tracemalloc=None, server_env=None,
                                  gunicorn_arg=None)


class Server:
    def __init__(self, settings: Path, root: Path):
        self.settings, self.root = settings, root
        self.proc = None

    def start(self) -> str:
        self.stop()
        clear_shared_cache(self.settings)
        started = time.perf_counter()
        self.proc, self.base, _ = start_server(self.settings, self.root, free_port(), FLASK_SERVER)
        self.start_seconds = time.perf_counter() - started
        return self.base

    def rss(self) -> float | None:
        return rss_mib(self.proc.pid) if self.proc else None

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None


def baseline_count(warehouse: Path, tz: str, repeats: int) -> dict:
    from core.warehouse import Reader
    reader = Reader(warehouse, tz)
    rows = reader.rows("SELECT count(*) FROM fct_incident")[0][0]       # also opens the views
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        reader.rows("SELECT count(*) FROM fct_incident")
        times.append(time.perf_counter() - started)
    return {"rows": rows, "seconds": stats(times)}


def publish_update(settings: Path, city: Path, root: Path, hours: int, client: WallClient,
                   rss_limit_mib: float | None = None) -> dict:
    """A later hotline export (demo_city update, --hours) loaded with `python -m etl load`: a new generation.
    demo_city update once held the whole hotline CSV as Python lists (21 GB at 10M incidents, killed by the kernel
    on 2026-11-26); it now streams it, and still runs under the --rss-limit-mib watchdog like generation and load."""
    before = client.generation()
    out = root / f"hotline_12345_update_h{hours}.csv"
    gen = measured([PYTHON, "-m", "demo_city", "update", "--city", str(city), "--out", str(out), "--hours", str(hours)],
                   ENV, rss_limit_mib)
    if gen["rc"] or gen["killed"]:
        raise SystemExit(f"demo_city update failed (rc {gen['rc']}, killed past {rss_limit_mib} MiB: {gen['killed']}, "
                         f"peak {gen['rss_mib']:,.0f} MiB; --generations 0 skips this step): {gen['stderr'][-2000:]}")
    # The ETL quarantines timestamps after its clock ("in the future"): it loads the export with its clock moved on
    # to the export's end, while the server's clock stays pinned at the city's end (closures and status changes of
    # the loaded cases then show; cases created after the server's now do not).
    etl_root = root / "etl-clock"
    shutil.rmtree(etl_root, ignore_errors=True)
    shutil.copytree(settings.parent, etl_root / "config")
    etl_settings = etl_root / "config" / settings.name
    data = yaml.safe_load(etl_settings.read_text(encoding="utf-8"))
    moved = datetime.fromisoformat(str(data["clock"]["as_of"])) + timedelta(hours=hours)
    data["clock"]["as_of"] = moved.isoformat()
    etl_settings.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    load = measured([PYTHON, "-m", "etl", "--config", str(etl_settings), "load", "--feed", "hotline_12345", str(out)],
                    ENV, rss_limit_mib)
    match = OUTCOME.search(load["stdout"])
    after = client.generation()
    if load["rc"] or after == before:
        raise SystemExit(f"etl load of {out.name} did not publish (rc {load['rc']}): "
                         f"{(load['stderr'] + load['stdout'])[-2000:]}")
    return {"hours": hours, "generation": after, "update_seconds": gen["seconds"], "load_command_seconds": load["seconds"],
            "load_seconds": float(match["seconds"]) if match else None, "load_rss_mib": load["rss_mib"],
            "rows": int(match["read"].replace(",", "")) if match else None,
            "counts": {k: int(match[k].replace(",", "")) for k in ("inserted", "updated", "merged", "quarantined")}
            if match else None}


def in_process(settings: Path, visible: list[str] | None, repeats: int, cold_repeats: int) -> dict:
    """Where a refresh's server time goes: the page's own functions in a Flask request context."""
    from core.settings import load_config
    from dashboard import alarm_panel, shell
    from dashboard.app import create_app
    from query import store
    app = create_app(load_config(settings))
    wall = next(m for name, m in list(sys.modules.items())
                if name.endswith("wall") and hasattr(m, "wall_map") and hasattr(m, "refresh"))
    cache = store._shared["cache"]
    steps = [("wall_map (queries + go.Figure)", lambda s: s.__setitem__("fig", wall.wall_map("en", visible)))]

    def to_json(s):
        if hasattr(wall, "_figure_json"):             # the page's own: JSON text and its sha1
            s["json"] = wall._figure_json(s["fig"])[0]
        else:
            import hashlib

            import plotly.io as pio
            s["json"] = pio.to_json(s["fig"], validate=False)
            hashlib.sha1(s["json"].encode()).hexdigest()
    steps += [("figure JSON + sha1 (signature)", to_json)]
    if hasattr(wall, "wall_figure"):          # what a refresh calls: the figure cached per generation and minute
        steps.append(("wall_figure (cached build)", lambda s: wall.wall_figure("en", visible)))
    steps += [("wall_tiles", lambda s: wall.wall_tiles("en")),
              ("alarms (alarm_panel.current)", lambda s: s.__setitem__("pairs", alarm_panel.current(shell.now()))),
              ("alarm panel + ticker", lambda s: (alarm_panel.panel("en", shell.now(), s["pairs"]),
                                                 alarm_panel.ticker("en", s["pairs"])))]
    if hasattr(wall, "_ages"):
        steps.append(("panel ages (freshness)", lambda s: wall._ages("en")))
    out = {}
    with app.server.test_request_context("/wall"):
        if visible is None:
            visible = [layer.id for layer in store.config().layers if layer.visible]
        for phase in ("cold", "warm"):
            runs = cold_repeats if phase == "cold" else repeats
            times: dict[str, list[float]] = {name: [] for name, _ in steps}
            for _ in range(runs):
                if phase == "cold":
                    cache.clear()
                    getattr(wall, "_figures", {}).clear()
                state: dict = {}
                for name, fn in steps:
                    started = time.perf_counter()
                    fn(state)
                    times[name].append(time.perf_counter() - started)
            out[phase] = {name: statistics.median(v) for name, v in times.items()}
        out["figure_json_bytes"] = len(state["json"])
        # A live clock (clock.as_of null): "now" moves between refreshes. Simulated by moving the pinned clock on
        # with real time; the queries' cache keys then change at every refresh.
        from core import clock
        pinned = clock.now
        start, t0 = pinned(store.config()), time.monotonic()
        inner = getattr(getattr(cache, "cache", None), "_cache", None)
        entries_before = len(inner) if inner is not None else None
        clock.now = lambda config: start + timedelta(seconds=time.monotonic() - t0 + 1)
        try:
            times = {name: [] for name, _ in steps}
            for _ in range(repeats):
                live: dict = {}
                for name, fn in steps:
                    started = time.perf_counter()
                    fn(live)
                    times[name].append(time.perf_counter() - started)
            out["live_clock"] = {name: statistics.median(v) for name, v in times.items()}
            if inner is not None:
                out["live_clock_cache"] = {"refreshes": repeats, "entries_added": len(inner) - entries_before,
                                           "entries_per_refresh": (len(inner) - entries_before) / repeats}
        finally:
            clock.now = pinned
        figure = json.loads(state["json"])
        out["trace_json_bytes"] = {d.get("uid", str(i)): len(json.dumps(d)) for i, d in enumerate(figure["data"])}
        out["trace_types"] = {d.get("uid", str(i)): d.get("type") for i, d in enumerate(figure["data"])}
        out["layout_json_bytes"] = len(json.dumps(figure["layout"]))
    return out


def run(args) -> dict:
    host = machine()
    host["ui_sources"] = ui_state()
    p = Params(seed=args.seed, incidents=args.incidents, days=args.days, sensors=args.sensors,
               service_cases=args.service_cases)
    log(f"city of {p.incidents:,} incidents ...")
    city, generation_info = ensure_city(p, args.rss_limit_mib)
    pristine, load_info = loaded_warehouse(p, city, args.reload, args.rss_limit_mib)
    root = WALLS / city_key(p) / "run"
    work = root / "warehouse"
    working_copy(pristine, work)
    settings = settings_for(root, city, work, p.end, args.cache, args.redis_url)
    report = {"bench": "wall_refresh", "at": datetime.now(UTC).isoformat(timespec="seconds"),
              "machine": host, "args": vars(args),
              "city": {"dir": str(city), "params": {"incidents": p.incidents, "days": p.days, "sensors": p.sensors,
                                                    "service_cases": p.service_cases, "seed": p.seed, "end": p.end},
                       "generation": generation_info, "load": load_info},
              "cache": args.cache, "cases": {}}
    server = Server(settings, root)
    cases = report["cases"]
    try:
        # Baselines.
        log("baselines ...")
        base = server.start()
        client = WallClient(base)
        static = [client.get("/assets/cityops.css") for _ in range(args.repeats)]
        health = [client.get("/healthz") for _ in range(args.repeats)]
        count = baseline_count(work, "Asia/Shanghai", args.repeats)
        report["baselines"] = {"static_asset": summary(static), "healthz": summary(health),
                               "count_fct_incident": count, "server_start_seconds": server.start_seconds}
        log(f"fct_incident {count['rows']:,} rows; count(*) {count['seconds']['median'] * 1000:.1f} ms, "
            f"/healthz {report['baselines']['healthz']['seconds']['median'] * 1000:.1f} ms")

        # Cold: a fresh server per repeat, the layout (a screen opening) or the refresh as its first request.
        # The refresh's State is what a browser holds after that layout (its language and layers), with stale
        # signatures, so everything is built and sent.
        import copy
        log("cold layout (baseline server) ...")
        cold_layout, cold_refresh = [client.layout()], []
        held = copy.deepcopy(client.props)
        for i in range(args.cold_repeats):
            log(f"cold refresh {i + 1}/{args.cold_repeats} ...")
            client = WallClient(server.start())
            client.props = copy.deepcopy(held)
            client.stale()
            cold_refresh.append(client.refresh())
            if i < args.cold_repeats - 1:
                log(f"cold layout {i + 2}/{args.cold_repeats} ...")
                cold_layout.append(WallClient(server.start()).layout())
        cases["cold_refresh"] = summary(cold_refresh)
        cases["cold_layout"] = summary(cold_layout)

        # Warm: the last server, its cache filled by the layout.
        log("warm ...")
        cases["warm_layout"] = summary([client.layout() for _ in range(args.repeats)])
        client.refresh()                                  # settle the signatures
        cases["steady"] = summary([client.refresh() for _ in range(args.repeats)])
        changed = []
        for _ in range(args.repeats):
            client.stale()
            changed.append(client.refresh())
        cases["warm_changed"] = summary(changed)
        client.refresh()

        # New generations: the ETL publishes while the server runs.
        fresh, after, publishes = [], [], []
        for g in range(args.generations):
            hours = args.update_hours * (g + 1)
            log(f"new generation {g + 1}/{args.generations} (update --hours {hours}) ...")
            publishes.append(publish_update(settings, city, root, hours, client, args.rss_limit_mib))
            fresh.append(client.refresh())
            after += [client.refresh() for _ in range(max(3, args.repeats // 4))]
        if fresh:
            cases["new_generation"] = summary(fresh)
            cases["new_generation"]["each"] = [{"seconds": r["seconds"], "bytes": r["bytes"], "updated": r["updated"]}
                                               for r in fresh]
            cases["after_generation"] = summary(after)
        report["publishes"] = publishes
        report["server_rss_mib_end"] = server.rss()
    finally:
        server.stop()
    if args.in_process:
        log("in-process breakdown ...")
        visible = None
        report["in_process"] = in_process(settings, visible, max(3, args.repeats // 4), max(3, args.cold_repeats))
    ratios(report)
    report["load_average_end"] = os.getloadavg()
    if not args.keep_run:
        shutil.rmtree(work, ignore_errors=True)
    return report


def ratios(report: dict) -> None:
    b = report["baselines"]
    floors = {"count": b["count_fct_incident"]["seconds"]["median"], "healthz": b["healthz"]["seconds"]["median"],
              "static": b["static_asset"]["seconds"]["median"]}
    for case in report["cases"].values():
        median = case["seconds"]["median"]
        case["ratio"] = {f"to_{k}": median / v for k, v in floors.items() if v}


def table(report: dict) -> str:
    lines = [(f"{'case':<18} {'n':>3} {'median ms':>10} {'p90 ms':>9} {'max ms':>9} {'bytes':>11} {'gzip':>9} "
              f"{'x count(*)':>10} {'x healthz':>9} {'x static':>9}  outputs sent")]
    lines.append("-" * len(lines[0]))
    b = report["baselines"]
    for name, row in [("static asset", b["static_asset"]), ("/healthz", b["healthz"])]:
        lines.append(f"{name:<18} {row['seconds']['n']:>3} {row['seconds']['median'] * 1e3:>10.1f} "
                     f"{row['seconds']['p90'] * 1e3:>9.1f} {row['seconds']['max'] * 1e3:>9.1f} "
                     f"{row['bytes']['median']:>11,.0f} {row['gzip_bytes']['median']:>9,.0f}")
    c = b["count_fct_incident"]["seconds"]
    lines.append(f"{'count(*) reader':<18} {c['n']:>3} {c['median'] * 1e3:>10.1f} {c['p90'] * 1e3:>9.1f} "
                 f"{c['max'] * 1e3:>9.1f}")
    for name, row in report["cases"].items():
        s, r = row["seconds"], row["ratio"]
        updated = ",".join(sorted({u.split(".")[0] for u in row.get("updated", [])})) if "updated" in row else "-"
        lines.append(f"{name:<18} {s['n']:>3} {s['median'] * 1e3:>10.1f} {s['p90'] * 1e3:>9.1f} {s['max'] * 1e3:>9.1f} "
                     f"{row['bytes']['median']:>11,.0f} {row['gzip_bytes']['median']:>9,.0f} "
                     f"{r['to_count']:>9.0f}x {r['to_healthz']:>8.1f}x {r['to_static']:>8.0f}x  {updated[:60]}")
    ip = report.get("in_process")
    if ip:
        lines.append("")
        lines.append(f"{'in-process step':<32} {'cold ms':>9} {'warm ms':>9} {'live clock ms':>13}")
        for name in ip["cold"]:
            live = ip.get("live_clock", {}).get(name)
            lines.append(f"{name:<32} {ip['cold'][name] * 1e3:>9.1f} {ip['warm'][name] * 1e3:>9.1f} "
                         + (f"{live * 1e3:>13.1f}" if live is not None else f"{'-':>13}"))
        total = {k: sum(ip[k].values()) * 1e3 for k in ("cold", "warm", "live_clock") if k in ip}
        lines.append(f"{'sum':<32} {total.get('cold', 0):>9.1f} {total.get('warm', 0):>9.1f} "
                     f"{total.get('live_clock', 0):>13.1f}")
        if ip.get("live_clock_cache"):
            lines.append(f"live clock: {ip['live_clock_cache']['entries_per_refresh']:.1f} new cache entries per refresh")
        lines.append(f"figure JSON {ip['figure_json_bytes']:,} bytes; per trace: "
                     + ", ".join(f"{k} {v:,}" for k, v in ip["trace_json_bytes"].items()))
    return "\n".join(lines)


def main(argv=None) -> int:
    d = Params()
    ap = argparse.ArgumentParser(prog="python -m bench.wall_refresh", description=__doc__.split("\n\n")[0])
    ap.add_argument("--incidents", type=int, default=1_000_000)
    ap.add_argument("--sensors", type=int, default=d.sensors)
    ap.add_argument("--days", type=int, default=d.days)
    ap.add_argument("--service-cases", type=int, default=d.service_cases)
    ap.add_argument("--seed", type=int, default=d.seed)
    ap.add_argument("--cache", choices=["simple", "filesystem", "redis", "null"], default="simple",
                    help="the server's cache type (redis needs a running redis-server)")
    ap.add_argument("--redis-url", help="cache.redis_url for --cache redis (default: the config's)")
    ap.add_argument("--repeats", type=int, default=20, help="samples of each warm case (default 20)")
    ap.add_argument("--cold-repeats", type=int, default=3, help="fresh servers for the cold cases (default 3)")
    ap.add_argument("--generations", type=int, default=2, help="new generations published during the run")
    ap.add_argument("--update-hours", type=int, default=6, help="demo_city update --hours (x1, x2, ...)")
    ap.add_argument("--reload", action="store_true", help="load the city again even if a loaded warehouse exists")
    ap.add_argument("--no-in-process", dest="in_process", action="store_false")
    ap.add_argument("--keep-run", action="store_true", help="keep the run's warehouse copy")
    ap.add_argument("--rss-limit-mib", type=float, default=12 * 1024,
                    help="kill generation/load past this resident memory (default 12288; shared machine)")
    args = ap.parse_args(argv)
    report = run(args)
    print(table(report))
    c = report["city"]
    g, l = c["generation"], c["load"]
    print(f"\ncity {c['params']['incidents']:,} incidents: generated in {g['seconds']:.0f}s"
          f"{' (cached)' if g.get('cached') else ''}, loaded in {l['seconds']:.0f}s{' (cached)' if l.get('cached') else ''}"
          f" (peak {l['rss_mib']:,.0f} MiB); fct_incident {report['baselines']['count_fct_incident']['rows']:,} rows")
    for pub in report.get("publishes", []):
        print(f"publish: update --hours {pub['hours']} {pub['rows']:,} rows, etl load {pub['load_command_seconds']:.1f}s "
              f"-> {pub['generation']}")
    print(f"load average start {report['machine']['load_average_start']}, end {report['load_average_end']}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = RESULTS / f"wall_refresh-{stamp}-i{args.incidents}-{args.cache}.json"
    out.write_text(json.dumps(report, indent=1, default=str))
    print(f"results: {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
