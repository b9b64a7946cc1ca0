"""Where one feed's load spends its time, stage by stage, without a profiler's per-call overhead.

    python -m bench.stage_times --incidents 1000000 [--sensors N] --feed hotline_12345

Builds the same cached demo city and a fresh warehouse as bench.etl_throughput (loading the sensors feed first
when the feed is sensor_readings), then runs `etl.jobs.load_one` in this process with the pipeline's stage
functions wrapped by timers. Each stage's time is exclusive (nested stages are subtracted from their parent), so
the shares of the main thread's stages add up to the wall time of the load; the file is read one chunk ahead in a
thread of its own (etl/readahead.py), whose stages are listed apart as overlapped. cProfile
(bench.etl_throughput --profile) inflates stages made of many small Python calls (per-row masking, CSV records);
these timers do not.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

from bench.etl_throughput import (
    PYTHON,
    RESULTS,
    ROOT,
    checked,
    city_params,
    ensure_city,
    feed_files,
    measured,
    write_config,
)
from demo_city.generate import Params

_totals: dict[str, float] = {}
_calls: dict[str, int] = {}
_local = threading.local()       # each thread's stack of [name, started, child_seconds]
OVERLAPPED = " (own thread, overlapped)"


def _stack() -> list[list]:
    if not hasattr(_local, "stack"):
        _local.stack = []
    return _local.stack


def _enter(name):
    _stack().append([name, time.perf_counter(), 0.0])


def _leave():
    """Exclusive time of a stage. Stages timed in another thread than the main one (etl/readahead.py's reader)
    run beside the main thread's: they are reported apart and not counted in the wall's shares."""
    stack = _stack()
    name, started, children = stack.pop()
    elapsed = time.perf_counter() - started
    if threading.current_thread() is not threading.main_thread():
        name += OVERLAPPED
    _totals[name] = _totals.get(name, 0.0) + elapsed - children
    _calls[name] = _calls.get(name, 0) + 1
    if stack:
        stack[-1][2] += elapsed


def timed(name, fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        _enter(name)
        try:
            return fn(*args, **kwargs)
        finally:
            _leave()
    return wrapper


def timed_iter(name, fn):
    """A generator function whose every next() is timed as `name`."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        it = iter(fn(*args, **kwargs))
        while True:
            _enter(name)
            try:
                item = next(it)
            except StopIteration:
                return
            finally:
                _leave()
            yield item
    return wrapper


RAW_RECORDS = "quarantine: raw_records (mask column-wise)"
STAGES = {
    # module attribute: stage name (most specific names first in the report's reading)
    ("etl.extract", "read"): "extract: read + parse CSV/JSON into string frames",
    ("etl.transform", "to_canonical"): "transform: strip, map values, parse types",
    ("etl.validate", "check"): "validate: rules + inside-city test",
    ("etl.mask", "phone_hash"): "mask: phone_hash (HMAC per value)",
    ("etl.mask", "street_level"): "mask: street_level (regex per row)",
    ("etl.mask", "scrub"): "mask: scrub (3 regexes per row)",
    ("etl.mask", "raw_records"): RAW_RECORDS,
    ("etl.chunk_work", "_quarantine"): "quarantine: frame, json",
    ("etl.chunk_work", "derive"): "derive: ids, SLA, department",
    ("etl.chunk_work", "_h3"): "derive: h3 cells (per distinct coordinate)",
    ("etl.staging", "append"): "stage: append a chunk (own commit)",
    ("etl.pipeline", "_merge_staged"): "final: dedupe into staging, quarantine",
    ("etl.merge", "merge_staged"): "final: merge (UPDATE + INSERT)",
    ("etl.merge", "_history"): "final: status history (INSERT OR IGNORE)",
    ("etl.merge", "_count"): "final: counts (anti join, join)",
    ("etl.derived", "callers"): "final: callers of the merged incidents",
    ("etl.derived", "refresh_previous_same"): "final: previous_same_at (repeat complaints)",
    ("etl.pipeline", "commit_run"): "final: run log + COMMIT",
    ("etl.pipeline", "_stage_chunk"): "stage: counts",
    ("etl.pipeline", "file_sha256"): "file sha256",
    ("etl.pipeline", "load_file"): "load_file rest (run log, staging tables)",
    ("core.warehouse", "publish"): "publish: Parquet of every table",
    ("etl.jobs", "Session"): "session: read boundaries, Locator",
    ("etl.boundaries", "load"): "boundaries load (first run only)",
}


MEMORY_TRACE: list[dict] = []


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _malloc_in_use_mib() -> float | None:
    """glibc's bytes in use (mallinfo2: arena + mmap), whoever allocated them (Python, pandas, DuckDB)."""
    import ctypes

    class MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                    "fsmblks", "uordblks", "fordblks", "keepcost")]
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = MallInfo2
        info = libc.mallinfo2()
        return round((info.uordblks + info.hblkhd) / 2 ** 20)
    except (OSError, AttributeError):
        return None


def trace_memory() -> None:
    """After every chunk: process RSS and DuckDB's own accounting (duckdb_memory()), to see which one grows."""
    import pyarrow

    from etl import pipeline
    inner = pipeline._stage_chunk

    def wrapper(*args, **kwargs):
        result = inner(*args, **kwargs)
        import gc
        gc.collect()
        con = args[0].con          # the run's staging.Stage holds the writer connection
        tags = con.execute("SELECT tag, memory_usage_bytes FROM duckdb_memory() WHERE memory_usage_bytes > 0"
                           ).fetchall()
        MEMORY_TRACE.append({"rows": args[1].counts["read"], "rss_mib": _rss_mib(),
                             "duckdb_mib": {t: round(b / 2 ** 20) for t, b in tags if b >= 2 ** 20},
                             "malloc_in_use_mib": _malloc_in_use_mib(),
                             "arrow_mib": round(pyarrow.total_allocated_bytes() / 2 ** 20),
                             "python_blocks": sys.getallocatedblocks()})
        return result
    pipeline._stage_chunk = wrapper


def instrument() -> None:
    import importlib

    from etl.chunk_work import ChunkJob
    from geo.locate import Locator
    for (module, attr), name in STAGES.items():
        mod = importlib.import_module(module)
        fn = getattr(mod, attr)
        setattr(mod, attr, timed_iter(name, fn) if attr == "read" else timed(name, fn))
    ChunkJob.run = timed("chunk glue (reset_index, Reasons, filters, to Arrow)", ChunkJob.run)
    Locator.assign = timed("derive: district/street/grid lookup (polygon index)", Locator.assign)
    Locator.inside_city = timed("validate: inside-city contains_xy", Locator.inside_city)


def limit_writer_memory(limit: str) -> None:
    """Give the writer DuckDB a memory limit (what-if: core/warehouse.py sets none; DuckDB then may use 80% of RAM)."""
    import duckdb

    import core.warehouse as warehouse

    class _Duckdb:
        def __getattr__(self, name):
            return getattr(duckdb, name)

        @staticmethod
        def connect(*a, **k):
            con = duckdb.connect(*a, **k)
            con.execute(f"SET memory_limit = '{limit}'")
            return con
    warehouse.duckdb = _Duckdb()


def main(argv=None) -> int:
    defaults = Params()
    ap = argparse.ArgumentParser(prog="python -m bench.stage_times", description=__doc__.split("\n\n")[0])
    ap.add_argument("--incidents", type=int, default=1_000_000)
    ap.add_argument("--readings", type=int)
    ap.add_argument("--sensors", type=int, default=defaults.sensors)
    ap.add_argument("--days", type=int, default=defaults.days)
    ap.add_argument("--service-cases", type=int, default=defaults.service_cases)
    ap.add_argument("--seed", type=int, default=defaults.seed)
    ap.add_argument("--feed", default="hotline_12345")
    ap.add_argument("--chunk-rows", type=int, help="etl.chunk_rows for this load (default: the config's)")
    ap.add_argument("--trace-memory", action="store_true", help="RSS and duckdb_memory() after every chunk")
    ap.add_argument("--memory-limit", help="what-if: SET memory_limit on the writer connection (e.g. 2GB)")
    args = ap.parse_args(argv)

    p = city_params(args)
    city, _ = ensure_city(p)
    root = Path(tempfile.mkdtemp(prefix="etl-stages-", dir=ROOT / "var" / "bench"))
    os.environ["CITYOPS_PII_KEY"] = "bench-only-key-not-secret"
    try:
        # No worker processes: the timers see only this process's work.
        settings = write_config(root, city, {"workers": 0, **({"chunk_rows": args.chunk_rows} if args.chunk_rows
                                                               else {})})
        files = feed_files(settings, [args.feed])
        for feed_id, _, path, _ in files:
            if feed_id != args.feed:          # a prerequisite (sensors before readings): loaded as usual
                checked(measured([PYTHON, "-m", "etl", "--config", str(settings), "load", "--feed", feed_id,
                                  str(path)]), f"etl load {feed_id}")
        target = [path for feed_id, _, path, _ in files if feed_id == args.feed][0]

        from core.settings import load_config
        instrument()
        if args.trace_memory:
            trace_memory()
        if args.memory_limit:
            limit_writer_memory(args.memory_limit)
        from etl import jobs
        config = load_config(settings)
        started = time.perf_counter()
        outcome = jobs.load_one(config, args.feed, target, report=lambda line: print(line, file=sys.stderr))
        wall = time.perf_counter() - started
    finally:
        shutil.rmtree(root, ignore_errors=True)

    rows = outcome.counts["read"]
    stages = sorted(_totals.items(), key=lambda kv: -kv[1])
    stages.append(("(untimed: config, writer open, DDL, waiting to read)",
                   wall - sum(v for k, v in _totals.items() if not k.endswith(OVERLAPPED))))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.feed}: {rows:,} rows in {wall:.1f}s ({rows / wall:,.0f} rows/s); "
          f"interpreter start and imports not included; peak RSS {peak:,.0f} MiB"
          + (f" with memory_limit {args.memory_limit}" if args.memory_limit else ""))
    print(f"{'stage':<52} {'seconds':>8} {'share':>6} {'calls':>8}")
    for name, seconds in stages:
        print(f"{name:<52} {seconds:>8.2f} {seconds / wall:>6.1%} {_calls.get(name, ''):>8}")
    for point in MEMORY_TRACE:
        print(f"after {point['rows']:>11,} rows: RSS {point['rss_mib']:>7,.0f} MiB, malloc in use "
              f"{point['malloc_in_use_mib']} MiB, arrow {point['arrow_mib']} MiB, python blocks "
              f"{point['python_blocks']:,}, DuckDB {point['duckdb_mib']}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"stage_times-{datetime.now():%Y%m%d-%H%M%S}-{args.feed}-i{p.incidents}.json"
    out.write_text(json.dumps({"feed": args.feed, "rows": rows, "wall_s": wall, "rss_mib": peak,
                               "memory_limit": args.memory_limit, "memory_trace": MEMORY_TRACE,
                               "city": city.name, "counts": outcome.counts,
                               "stages": [{"stage": n, "seconds": s, "share": s / wall, "calls": _calls.get(n)}
                                          for n, s in stages]}, indent=1))
    print(f"results: {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
