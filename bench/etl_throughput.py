"""ETL throughput as a ratio to DuckDB's bare read of the same file, measured in the same run, plus peak memory.

    python -m bench.etl_throughput --incidents 1000000 [--readings N] [--keep DIR]

1. A demo city of the requested size (python -m demo_city generate), cached under var/bench/cities/ keyed by its
   parameters, so a rerun does not regenerate it.
2. A fresh warehouse and a copy of config/ pointing at that city (like tests/conftest.make_city).
3. For every feed file, in the ETL's load order (sensors before readings, hotline before Open311):
   - floor:    SELECT count(*) FROM read_csv/read_json('<file>') in a fresh DuckDB (bench/_floor.py, own process);
               beside it, the same file materialised (CTAS) and the minimal pipeline (one row per natural key in a
               database file, then Parquet: what the issue's merge and non-blocking readers cost on their own)
   - pipeline: python -m etl --config <tmp config> load --feed X FILE, a subprocess: wall time and peak RSS
               (os.wait4 rusage of that child alone). The wall time is the whole command: interpreter start,
               imports, boundaries, load, publish. The load alone is the "in N.Ns" the ETL prints.
4. Without --feeds, every file again by one `python -m etl load-all` into a fresh warehouse (one start-up, one
   publish: how `make run` and the scheduler load), against the sum of the floors.
5. A table on stdout and JSON in bench/results/. Times are reported, never asserted.

Goal (ETL issue): the whole pipeline at no more than 3x the bare read, within 8 GiB.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
CITIES = ROOT / "var" / "bench" / "cities"
RESULTS = Path(__file__).resolve().parent / "results"
GOAL_RATIO = 3.0
GOAL_RSS_MIB = 8 * 1024
HOURS_PER_DAY = 24

sys.path.insert(0, str(ROOT))
from core.schema import LOAD_ORDER  # noqa: E402
from demo_city import VERSION as DEMO_VERSION  # noqa: E402
from demo_city.generate import Params  # noqa: E402

OUTCOME = re.compile(r"^(?P<feed>\S+)\s+\S+\s+(?P<status>\S+)\s+read=(?P<read>[\d,]+) inserted=(?P<inserted>[\d,]+) "
                     r"updated=(?P<updated>[\d,]+) merged=(?P<merged>[\d,]+) quarantined=(?P<quarantined>[\d,]+) "
                     r"in (?P<seconds>[\d.]+)s", re.M)


# --- running a child and measuring it ------------------------------------------------------------------------

def measured(args: list[str], env=None, rss_limit_mib: float | None = None) -> dict:
    """Run a child process; wall seconds, peak memory (MiB), exit code and output.

    Peak memory: the larger of the child's own peak RSS (os.wait4) and the peak sum of PSS over the child and all
    its descendants (the ETL's worker processes are forked by a server the child starts: wait4 sees neither), sampled
    every 0.25 s. PSS divides pages shared between processes among them, so the sum counts each page once.
    With rss_limit_mib, a watchdog kills the child when that sum passes the limit (a shared machine)."""
    out = tempfile.TemporaryFile(mode="w+")
    err = tempfile.TemporaryFile(mode="w+")
    started = time.perf_counter()
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=err, text=True)
    killed = threading.Event()
    done = threading.Event()
    peak = {"tree_pss_mib": 0.0, "processes": 1}
    threading.Thread(target=_watchdog, args=(proc.pid, rss_limit_mib, killed, done, peak), daemon=True).start()
    _, status, usage = os.wait4(proc.pid, 0)
    done.set()
    seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    out.seek(0)
    err.seek(0)
    own = usage.ru_maxrss / 1024
    return {"seconds": seconds, "rss_mib": max(own, peak["tree_pss_mib"]), "own_rss_mib": own,
            "tree_pss_mib": peak["tree_pss_mib"], "processes": peak["processes"],
            "cpu_s": usage.ru_utime + usage.ru_stime,
            "rc": proc.returncode, "stdout": out.read(), "stderr": err.read(), "killed": killed.is_set()}


def _watchdog(pid: int, limit_mib: float | None, killed: threading.Event, done: threading.Event, peak: dict) -> None:
    while not done.wait(0.25):
        tree = _process_tree(pid)
        total = sum(_pss_mib(p) for p in tree)
        if done.is_set():
            return
        peak["tree_pss_mib"] = max(peak["tree_pss_mib"], total)
        peak["processes"] = max(peak["processes"], len(tree))
        if limit_mib and total > limit_mib:
            killed.set()
            try:
                os.kill(pid, signal.SIGKILL)       # its workers stop when its pipes close
            except ProcessLookupError:
                pass
            return


def _process_tree(pid: int) -> list[int]:
    """pid and its descendants, from /proc's parent links."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        tree.append(todo.pop())
        todo += children.get(tree[-1], [])
    return tree


def _pss_mib(pid: int) -> float:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0.0
    return next((int(l.split()[1]) for l in text.splitlines() if l.startswith("Pss:")), 0) / 1024


def checked(result: dict, what: str) -> dict:
    if result["rc"] != 0:
        raise SystemExit(f"{what} exited {result['rc']}\n{result['stdout'][-3000:]}\n{result['stderr'][-3000:]}")
    return result


# --- the city --------------------------------------------------------------------------------------------------

def city_params(args) -> Params:
    days = args.days
    sensors = args.sensors
    if args.readings:
        sensors = max(4, math.ceil(args.readings / (days * HOURS_PER_DAY)))
    return Params(seed=args.seed, incidents=args.incidents, days=days, sensors=sensors,
                  service_cases=args.service_cases)


def city_key(p: Params) -> str:
    return (f"v{DEMO_VERSION}-i{p.incidents}-s{p.sensors}-d{p.days}-c{p.service_cases}-seed{p.seed}-"
            + re.sub(r"[^0-9]", "", p.end))


def ensure_city(p: Params, rss_limit_mib: float | None = None) -> tuple[Path, dict]:
    """The cached city for these parameters, generated once (into a temp dir renamed into place when complete)."""
    city = CITIES / city_key(p)
    info_path = city / "bench-generation.json"
    if info_path.is_file():
        info = json.loads(info_path.read_text())
        info["cached"] = True
        return city, info
    CITIES.mkdir(parents=True, exist_ok=True)
    tmp = CITIES / f".{city.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"generating {city.name} ...", file=sys.stderr, flush=True)
    result = measured([PYTHON, "-m", "demo_city", "generate", "--out", str(tmp), "--seed", str(p.seed),
                       "--incidents", str(p.incidents), "--days", str(p.days), "--sensors", str(p.sensors),
                       "--service-cases", str(p.service_cases), "--end", p.end], rss_limit_mib=rss_limit_mib)
    if result["killed"]:
        shutil.rmtree(tmp, ignore_errors=True)
        raise SystemExit(f"demo_city generate killed: RSS over {rss_limit_mib:,.0f} MiB (--rss-limit-mib)")
    checked(result, "demo_city generate")
    manifest = json.loads((tmp / "manifest.json").read_text())
    records = sum(f["rows"] for f in manifest["files"].values())
    info = {"seconds": result["seconds"], "rss_mib": result["rss_mib"], "records": records,
            "bytes": sum(f.stat().st_size for f in tmp.rglob("*") if f.is_file()),
            "params": vars(p) if hasattr(p, "__dict__") else None}
    (tmp / "bench-generation.json").write_text(json.dumps(info, indent=1))
    os.rename(tmp, city)
    info["cached"] = False
    return city, info


def write_config(root: Path, city: Path, etl: dict | None = None) -> Path:
    """A copy of config/ whose data_dir, boundaries and warehouse point at this city and a fresh warehouse.
    Rewritten before every load: config/ and the code validating it change under active development, and a copy
    taken at the start of a long run can stop matching the code."""
    shutil.rmtree(root / "config", ignore_errors=True)
    shutil.copytree(ROOT / "config", root / "config")
    settings = root / "config" / "settings.yaml"
    data = yaml.safe_load(settings.read_text(encoding="utf-8"))
    data["data_dir"] = str(city)
    data["warehouse"]["dir"] = str(root / "var" / "warehouse")
    for spec in data["city"]["boundaries"].values():
        spec["path"] = str(city / "boundaries" / Path(spec["path"]).name)
    data.setdefault("etl", {}).update(etl or {})
    settings.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return settings


def feed_files(settings: Path, only: list[str] | None) -> list[tuple[str, str, Path, list[str]]]:
    """(feed id, source format, file, the source fields of its natural key) in the ETL's load order."""
    from core.settings import load_config
    from etl.jobs import pending_files
    config = load_config(settings)
    feeds = sorted(config.feeds.values(), key=lambda f: (LOAD_ORDER.index(f.entity), f.id))
    out = []
    for feed in feeds:
        if only and feed.id not in only and not _prerequisite(feed.id, only):
            continue
        for path in pending_files(config, feed):
            out.append((feed.id, feed.source.format, path, _key_fields(feed)))
    return out


def _key_fields(feed) -> list[str]:
    """The source fields of the feed's natural key, for the minimal pipeline's floor: [] when a key field is built
    from several source fields or a constant."""
    fields = [feed.spec(name).source for name in feed.key]
    return fields if all(isinstance(f, str) for f in fields) else []


def _prerequisite(feed_id: str, only: list[str]) -> bool:
    """Readings are validated against known sensors: loading readings needs the sensors feed first."""
    return feed_id == "sensors" and "sensor_readings" in only


# --- measuring -------------------------------------------------------------------------------------------------

def floor(fmt: str, path: Path, repeats: int, keys: list[str]) -> dict:
    result = checked(measured([PYTHON, "-m", "bench._floor", fmt, str(path), str(repeats), *keys]), f"floor {path}")
    data = json.loads(result["stdout"].strip().splitlines()[-1])
    data["rss_mib"] = result["rss_mib"]
    return data


def pipeline(settings: Path, feed_id: str, path: Path, env: dict, profile: Path | None = None,
             rss_limit_mib: float | None = None) -> dict:
    cmd = [PYTHON]
    if profile:
        cmd += ["-m", "cProfile", "-o", str(profile)]
    cmd += ["-m", "etl", "--config", str(settings), "load", "--feed", feed_id, str(path)]
    result = measured(cmd, env, rss_limit_mib)
    base = {k: result[k] for k in ("seconds", "rss_mib", "own_rss_mib", "tree_pss_mib", "processes", "cpu_s")}
    if result["killed"]:
        return {**base, "status": f"killed: RSS over {rss_limit_mib:,.0f} MiB"}
    match = OUTCOME.search(result["stdout"])
    if result["rc"] != 0 or not match or match["status"] != "ok":
        lines = [l for l in (result["stdout"] + result["stderr"]).splitlines() if l.strip()]   # a traceback's end
        return {**base, "status": f"failed (exit {result['rc']}): " + (lines[-1][:300] if lines else "no output")}
    counts = {k: int(match[k].replace(",", "")) for k in ("read", "inserted", "updated", "merged", "quarantined")}
    return {**base, "status": "ok", "load_seconds": float(match["seconds"]), **counts}


def etl_settings(args) -> dict:
    """The etl settings a run overrides (--workers, --workers-from-chunks)."""
    given = {"workers": getattr(args, "workers", None),
             "workers_from_chunks": getattr(args, "workers_from_chunks", None)}
    return {k: v for k, v in given.items() if v is not None}


def load_all(city: Path, env: dict, rss_limit_mib: float | None, etl: dict | None = None) -> dict:
    """Every file of the city by one `python -m etl load-all` into a fresh warehouse: one start-up and one publish,
    as `make run` and the scheduler load."""
    root = Path(tempfile.mkdtemp(prefix="etl-bench-all-", dir=ROOT / "var" / "bench"))
    try:
        settings = write_config(root, city, etl)
        result = measured([PYTHON, "-m", "etl", "--config", str(settings), "load-all"], env, rss_limit_mib)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    outcomes = list(OUTCOME.finditer(result["stdout"]))
    ok = result["rc"] == 0 and not result["killed"] and outcomes and all(m["status"] == "ok" for m in outcomes)
    return {"seconds": result["seconds"], "rss_mib": result["rss_mib"], "cpu_s": result["cpu_s"],
            "own_rss_mib": result["own_rss_mib"], "tree_pss_mib": result["tree_pss_mib"],
            "status": "ok" if ok else f"failed (exit {result['rc']})", "files": len(outcomes),
            "rows": sum(int(m["read"].replace(",", "")) for m in outcomes)}


def machine() -> dict:
    info = {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            "load_average_start": os.getloadavg()}
    try:
        model = [l for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("model name")]
        info["cpu"] = model[0].split(":", 1)[1].strip() if model else None
        mem = [l for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal")]
        info["mem_gib"] = round(int(mem[0].split()[1]) / 1024 ** 2, 1)
    except OSError:
        pass
    import duckdb
    import pandas
    info["duckdb"], info["pandas"] = duckdb.__version__, pandas.__version__
    info.update(code_state())
    return info


def code_state() -> dict:
    """The commit, which measured sources differ from it, and a digest of those sources as they were run."""
    digest = hashlib.sha256()
    for path in sorted(p for d in ("etl", "core", "geo") for p in (ROOT / d).glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    state = {"sources_sha256": digest.hexdigest()[:16]}
    try:
        git = ["git", "-C", str(ROOT)]
        state["commit"] = subprocess.run(git + ["rev-parse", "--short", "HEAD"], capture_output=True,
                                         text=True).stdout.strip() or None
        state["uncommitted"] = subprocess.run(git + ["status", "--porcelain", "--", "etl", "core", "geo"],
                                              capture_output=True, text=True).stdout.split("\n")
        state["uncommitted"] = [l.strip() for l in state["uncommitted"] if l.strip()]
    except OSError:
        pass
    return state


def _num(value, fmt: str, width: int) -> str:
    return f"{value:>{width}{fmt}}" if value is not None else f"{'-':>{width}}"


def table(rows: list[dict], total: dict) -> str:
    head = (f"{'feed':<16} {'file':<24} {'rows':>11} {'floor s':>8} {'pipe s':>8} {'load s':>8} "
            f"{'floor rows/s':>13} {'pipe rows/s':>12} {'ratio':>7} {'ratio load':>10} {'x CTAS':>7} {'x min':>6} "
            f"{'RSS MiB':>8} "
            f"{'floor MiB':>9}")
    lines = [head, "-" * len(head)]
    for r in rows + [total]:
        ratio = f"{r['ratio']:>6.1f}x" if r.get("ratio") is not None else f"{'-':>7}"
        ratio_load = f"{r['ratio_load']:>9.1f}x" if r.get("ratio_load") is not None else f"{'-':>10}"
        ratio_table = f"{r['ratio_table']:>6.1f}x" if r.get("ratio_table") is not None else f"{'-':>7}"
        ratio_minimal = f"{r['ratio_minimal']:>5.1f}x" if r.get("ratio_minimal") is not None else f"{'-':>6}"
        lines.append(
            f"{r['feed']:<16} {r['file'][-24:]:<24} {_num(r['rows'], ',', 11)} {r['floor_s']:>8.2f} "
            f"{r['pipeline_s']:>8.2f} {_num(r.get('load_s'), '.2f', 8)} {r['floor_rows_per_s']:>13,.0f} "
            f"{_num(r.get('pipeline_rows_per_s'), ',.0f', 12)} {ratio} {ratio_load} {ratio_table} {ratio_minimal} {r['rss_mib']:>8,.0f} "
            f"{r['floor_rss_mib']:>9,.0f}" + (f"  {r['status']}" if r.get("status", "ok") != "ok" else ""))
    return "\n".join(lines)


def run(args) -> dict:
    host = machine()
    p = city_params(args)
    city, generation = ensure_city(p, args.rss_limit_mib)
    if args.keep:
        root = Path(args.keep).resolve()
        if root.exists() and any(root.iterdir()):
            raise SystemExit(f"--keep {root}: not empty (the bench needs a fresh warehouse)")
        root.mkdir(parents=True, exist_ok=True)
    else:
        root = Path(tempfile.mkdtemp(prefix="etl-bench-", dir=ROOT / "var" / "bench"))
    env = dict(os.environ, CITYOPS_PII_KEY="bench-only-key-not-secret", PYTHONPATH=str(ROOT))
    try:
        settings = write_config(root, city, etl_settings(args))
        rows = []
        for feed_id, fmt, path, keys in feed_files(settings, args.feeds):
            write_config(root, city, etl_settings(args))
            print(f"{feed_id}: floor ...", file=sys.stderr, flush=True)
            f = floor(fmt, path, args.floor_repeats, keys)
            print(f"{feed_id}: pipeline ...", file=sys.stderr, flush=True)
            prof = None
            if args.profile and feed_id in args.profile:
                RESULTS.mkdir(parents=True, exist_ok=True)
                prof = RESULTS / f"profile-{feed_id}-i{p.incidents}.prof"
            r = pipeline(settings, feed_id, path, env, prof, args.rss_limit_mib)
            ok = r["status"] == "ok"
            n = r.get("read")
            rows.append({
                "feed": feed_id, "file": str(path.relative_to(city)), "bytes": path.stat().st_size,
                "status": r["status"], "rows": n, "floor_rows": f["rows"], "floor_s": f["seconds"],
                "floor_table_s": f["table_seconds"], "floor_minimal_s": f["minimal_seconds"],
                "floor_rss_mib": f["rss_mib"], "duckdb_threads": f["threads"],
                "floor_sql": f["sql"], "pipeline_s": r["seconds"], "load_s": r.get("load_seconds"),
                "rss_mib": r["rss_mib"], "own_rss_mib": r["own_rss_mib"], "tree_pss_mib": r["tree_pss_mib"],
                "processes": r["processes"], "cpu_s": r["cpu_s"],
                "counts": {k: r[k] for k in ("inserted", "updated", "merged", "quarantined")} if ok else None,
                "floor_rows_per_s": f["rows"] / f["seconds"], "pipeline_rows_per_s": n / r["seconds"] if ok else None,
                "ratio": r["seconds"] / f["seconds"] if ok else None,
                "ratio_load": r["load_seconds"] / f["seconds"] if ok else None,
                "ratio_table": r["seconds"] / f["table_seconds"] if ok else None,
                "ratio_minimal": r["seconds"] / f["minimal_seconds"] if ok and f["minimal_seconds"] else None,
                "profiled": bool(prof),
                "profile": str(prof) if prof else None,
            })
            print(f"{feed_id}: {n or 0:,} rows, floor {f['seconds']:.2f}s, pipeline {r['seconds']:.2f}s "
                  f"({r['status']}), RSS {r['rss_mib']:,.0f} MiB", file=sys.stderr, flush=True)
        whole = None
        if not args.feeds:
            print("all files: one load-all ...", file=sys.stderr, flush=True)
            whole = load_all(city, env, args.rss_limit_mib, etl_settings(args))
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    done = [r for r in rows if r["status"] == "ok"]
    fs = sum(r["floor_s"] for r in done)
    ps = sum(r["pipeline_s"] for r in done)
    ls = sum(r["load_s"] for r in done)
    n = sum(r["rows"] for r in done)
    total = {"feed": "ALL", "file": "(feeds that finished)" if len(done) < len(rows) else "", "rows": n,
             "floor_s": fs, "pipeline_s": ps, "load_s": ls,
             "floor_rows_per_s": sum(r["floor_rows"] for r in done) / fs if fs else 0,
             "pipeline_rows_per_s": n / ps if ps else None, "ratio": ps / fs if fs else None,
             "ratio_load": ls / fs if fs else None, "floor_table_s": sum(r["floor_table_s"] for r in done),
             "rss_mib": max(r["rss_mib"] for r in rows), "floor_rss_mib": max(r["floor_rss_mib"] for r in rows),
             "status": "ok" if len(done) == len(rows) else "incomplete"}
    total["ratio_table"] = ps / total["floor_table_s"] if total["floor_table_s"] else None
    keyed = [r for r in done if r["floor_minimal_s"]]    # feeds whose key is a plain source column
    total["floor_minimal_s"] = sum(r["floor_minimal_s"] for r in keyed)
    total["ratio_minimal"] = (sum(r["pipeline_s"] for r in keyed) / total["floor_minimal_s"]
                              if total["floor_minimal_s"] else None)
    if whole is not None:
        whole.update(ratio=whole["seconds"] / fs if fs else None,
                     ratio_table=whole["seconds"] / total["floor_table_s"] if total["floor_table_s"] else None,
                     ratio_minimal=whole["seconds"] / total["floor_minimal_s"] if len(keyed) == len(done) else None)
    return {
        "bench": "etl_throughput", "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": host, "load_average_end": os.getloadavg(),
        "city": {"dir": str(city), "params": {"seed": p.seed, "incidents": p.incidents, "days": p.days,
                                              "sensors": p.sensors, "service_cases": p.service_cases},
                 "generation": generation},
        "goal": {"ratio": GOAL_RATIO, "rss_mib": GOAL_RSS_MIB,
                 "met": total["status"] == "ok" and total["ratio"] <= GOAL_RATIO
                        and total["rss_mib"] <= GOAL_RSS_MIB},
        "kept": str(root) if args.keep else None, "etl_settings": etl_settings(args),
        "feeds": rows, "total": total, "load_all": whole,
    }


def main(argv=None) -> int:
    defaults = Params()
    ap = argparse.ArgumentParser(prog="python -m bench.etl_throughput", description=__doc__.split("\n\n")[0])
    ap.add_argument("--incidents", type=int, default=1_000_000, help="demo incidents (CSV 80%%, Open311 20%%)")
    ap.add_argument("--readings", type=int, help="about this many sensor readings (sets --sensors for --days)")
    ap.add_argument("--sensors", type=int, default=defaults.sensors)
    ap.add_argument("--days", type=int, default=defaults.days)
    ap.add_argument("--service-cases", type=int, default=defaults.service_cases)
    ap.add_argument("--seed", type=int, default=defaults.seed)
    ap.add_argument("--feeds", nargs="+", help="only these feed ids (sensors is added for sensor_readings)")
    ap.add_argument("--floor-repeats", type=int, default=3, help="best of N bare reads (default 3)")
    ap.add_argument("--profile", nargs="+", metavar="FEED",
                    help="run these feeds' loads under cProfile (bench/results/profile-*.prof); "
                         "their times then include the profiler's overhead")
    ap.add_argument("--rss-limit-mib", type=float, default=12 * 1024,
                    help="kill a pipeline run whose RSS passes this (default 12288: a shared machine); 0: no limit")
    ap.add_argument("--workers", type=int, help="etl.workers for the loads (default: config/settings.yaml's)")
    ap.add_argument("--workers-from-chunks", type=float,
                    help="etl.workers_from_chunks for the loads (default: config's)")
    ap.add_argument("--keep", help="build the config and warehouse in DIR (must be empty) and keep them")
    ap.add_argument("--generate-only", action="store_true", help="only generate (or find) the cached city")
    args = ap.parse_args(argv)
    if args.generate_only:
        city, info = ensure_city(city_params(args), args.rss_limit_mib)
        print(json.dumps({"city": str(city), **info}, indent=1))
        return 0
    report = run(args)
    print(table(report["feeds"], report["total"]))
    g = report["city"]["generation"]
    print(f"\ncity {Path(report['city']['dir']).name}: {g['records']:,} records, generated in {g['seconds']:.0f}s "
          f"({'cached' if g['cached'] else 'now'}), peak {g['rss_mib']:,.0f} MiB")
    t = report["total"]
    ratio = f"{t['ratio']:.1f}x" if t["ratio"] is not None else "-"
    print(f"whole pipeline / bare read: {ratio} (goal <= {GOAL_RATIO:.0f}x), "
          f"peak RSS {t['rss_mib']:,.0f} MiB (goal <= {GOAL_RSS_MIB:,} MiB): "
          f"{'met' if report['goal']['met'] else 'not met'}")
    w = report["load_all"]
    if w is not None:
        print(f"one load-all of all {w['files']} files ({w['rows']:,} rows, one start-up and one publish): "
              f"{w['seconds']:.2f}s, {w['ratio']:.1f}x the bare reads, {w['ratio_table']:.1f}x CTAS, "
              + (f"{w['ratio_minimal']:.1f}x the minimal pipelines, " if w.get("ratio_minimal") else "")
              + f"peak RSS {w['rss_mib']:,.0f} MiB ({w['status']})")
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    p = report["city"]["params"]
    out = RESULTS / f"etl_throughput-{stamp}-i{p['incidents']}-s{p['sensors']}-d{p['days']}.json"
    out.write_text(json.dumps(report, indent=1))
    print(f"results: {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
