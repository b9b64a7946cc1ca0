"""A load never blocks readers, and a load killed at any moment (kill -9) loses nothing and publishes nothing half.

Real processes on real files: `python -m etl load-all` runs as a subprocess over a demo city big enough to take a
few seconds; readers (threads sharing one core.warehouse.Reader, and a separate process) query the published
generation meanwhile; the loader is killed with SIGKILL at several moments. The reference is a clean load of the
same files into a fresh warehouse.
"""
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import duckdb
import pytest

from core.schema import ENTITIES, PUBLISHED_TABLES
from core.settings import load_config
from core.warehouse import Reader
from tests.conftest import PYTHON, ROOT, edit_yaml, make_city, run

BIG_CITY = ["--incidents", "30000", "--days", "90", "--sensors", "48", "--service-cases", "10000"]
ENV = dict(os.environ, CITYOPS_PII_KEY="crash-test-key", PYTHONUNBUFFERED="1")   # same caller hashes everywhere
# one statement, so one generation (UNION ALL of counts: 7x cheaper than scalar subqueries, which matters on 2 cores)
COUNTS_SQL = " UNION ALL ".join(f"SELECT '{t}', count(*) FROM {t}" for t in PUBLISHED_TABLES)
OK_LINE = re.compile(r"^(\S+)\s+(\S+)\s+(ok|unchanged|failed)\s.* in ([\d.]+)s")

# A reader in its own process: prints "ready" after its first answer, then records every distinct answer in order,
# the time of every query and every error, until the stop file appears.
READER_PROCESS = r"""
import json, sys, time
from pathlib import Path
from core.settings import load_config
from core.warehouse import Reader
config = load_config(sys.argv[1])
stop, sql, READ_PAUSE = Path(sys.argv[2]), sys.argv[3], 0.1
reader = Reader(config.warehouse_dir, config.settings.city.timezone)
answers, times, errors, slowest = [], [], [], 0.0
while not stop.exists():
    started = time.time()
    try:
        counts = sorted(list(r) for r in reader.rows(sql))
        if not answers or answers[-1] != counts:
            answers.append(counts)
        times.append(started)
        if len(times) == 1:
            print("ready", flush=True)
    except Exception as exc:
        errors.append(repr(exc))
    slowest = max(slowest, time.time() - started)
    time.sleep(READ_PAUSE)
print(json.dumps({"answers": answers, "times": times, "errors": errors, "slowest": slowest}), flush=True)
"""


def _settings_for(root: Path, name: str) -> Path:
    """Another config over the same city, with a warehouse of its own."""
    shutil.copytree(root / "config", root / name / "config")
    settings = root / name / "config" / "settings.yaml"
    edit_yaml(settings, lambda d: d["warehouse"].update(dir=str(root / name / "warehouse")))
    return settings


def _etl(settings, *args):
    return run("-m", "etl", "--config", str(settings), *args, env=ENV)


def _reader(settings) -> Reader:
    config = load_config(settings)
    return Reader(config.warehouse_dir, config.settings.city.timezone)


def _counts(reader) -> list[list]:
    return sorted(list(r) for r in reader.rows(COUNTS_SQL))


def _digest(settings) -> dict:
    """What a clean load must reproduce: every published table's rows (lineage run ids aside, since killed runs
    consume ids) and, from the run log, the rows each file contributed."""
    reader = _reader(settings)
    out = {}
    for table in PUBLISHED_TABLES:
        if table == "etl_run":
            continue
        columns = [r[0] for r in reader.rows(f"DESCRIBE SELECT * FROM {table}") if r[0] != "run_id"]
        out[table] = tuple(reader.rows(f"SELECT count(*), coalesce(sum(hash(row({', '.join(columns)}))), 0) "
                                       f"FROM {table}")[0])
    out["ok runs"] = sorted(reader.rows(
        "SELECT feed_id, file, rows_read, rows_inserted, rows_updated, rows_merged, rows_quarantined "
        "FROM etl_run WHERE status = 'ok'"))
    return out


def _published_files(settings) -> dict[str, str]:
    """The pointer and the sha256 of every file of the generation it points at."""
    root = load_config(settings).warehouse_dir / "published"
    generation = (root / "CURRENT").read_text()
    files = {"CURRENT": generation}
    for path in sorted(p for p in (root / generation).rglob("*") if p.is_file()):      # monthly tables: folders
        files[str(path.relative_to(root / generation))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files


def _writer_state(settings) -> dict:
    """Read-only look into the writer database between loads: the run log, and each feed table's rows against
    what the committed runs say they inserted (no row of an uncommitted load may remain)."""
    config = load_config(settings)
    con = duckdb.connect(str(config.warehouse_dir / "etl.duckdb"), read_only=True)
    try:
        runs = con.execute("SELECT run_id, feed_id, status, pid, rows_inserted FROM etl_run").df()
        tables = {}
        for feed in config.feeds.values():
            table = ENTITIES[feed.entity].table
            tables.setdefault(table, 0)
            tables[table] += int(runs[(runs.feed_id == feed.id) & (runs.status == "ok")].rows_inserted.sum())
        stored = {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in tables}
    finally:
        con.close()
    return {"runs": runs, "expected_rows": tables, "stored_rows": stored}


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    root = tmp_path_factory.mktemp("crash")
    settings, city = make_city(root, BIG_CITY)
    # Many chunks per file: a kill mid-file then lands between chunk merges, where only the file's transaction
    # keeps the merged chunks invisible.
    edit_yaml(settings, lambda d: d["etl"].update(chunk_rows=5000))
    return root, settings, city


@pytest.fixture(scope="module")
def clean(city):
    """The reference: all files loaded by one uninterrupted load-all into a fresh warehouse; per-file seconds."""
    root, _, _ = city
    settings = _settings_for(root, "clean")
    result = _etl(settings, "load-all")
    seconds = {m.group(1): float(m.group(4)) for m in map(OK_LINE.match, result.stdout.splitlines()) if m}
    assert seconds.get("sensor_readings", 0) >= 0.3, result.stdout     # big enough to be caught mid-file
    return _digest(settings), seconds


def _first_state(root, city_dir, name) -> Path:
    """A warehouse with a first published generation: the boundaries and the sensor register only."""
    settings = _settings_for(root, name)
    _etl(settings, "load", "--feed", "sensors", str(city_dir / "iot" / "sensors.geojson"))
    return settings


def test_readers_see_the_old_or_the_new_generation_never_an_error(city, clean, tmp_path):
    root, _, city_dir = city
    settings = _first_state(root, city_dir, "readers")
    old = _counts(_reader(settings))

    stop_file, stop = tmp_path / "stop", threading.Event()
    process = subprocess.Popen([PYTHON, "-c", READER_PROCESS, str(settings), str(stop_file), COUNTS_SQL],
                               cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    shared = _reader(settings)
    threads = [dict(answers=[], times=[], errors=[], slowest=0.0) for _ in range(2)]

    def read_loop(log):
        while not stop.is_set():
            started = time.time()
            try:
                counts = _counts(shared)
                if not log["answers"] or log["answers"][-1] != counts:
                    log["answers"].append(counts)
                log["times"].append(started)
            except Exception as exc:     # noqa: BLE001 - any error is a failure, counted below
                log["errors"].append(repr(exc))
            log["slowest"] = max(log["slowest"], time.time() - started)
            time.sleep(0.1)

    workers = [threading.Thread(target=read_loop, args=(log,)) for log in threads]
    try:
        for w in workers:
            w.start()
        assert process.stdout.readline().strip() == "ready", process.stderr.read()
        load_started = time.time()
        loader = subprocess.run([PYTHON, "-m", "etl", "--config", str(settings), "load-all"], cwd=ROOT, env=ENV,
                                capture_output=True, text=True, timeout=300)
        load_ended = time.time()
        assert loader.returncode == 0, loader.stderr[-3000:]
        time.sleep(0.5)                  # let every reader query the new generation
    finally:
        stop.set()
        stop_file.touch()
        for w in workers:
            w.join(timeout=30)
        out, err = process.communicate(timeout=60)
    logs = [*threads, json.loads(out.splitlines()[-1])]

    new = _counts(_reader(settings))
    assert _digest(settings) == clean[0], "the loaded warehouse differs from a clean load of the same files"
    assert new != old
    for name, log in zip(("thread 1", "thread 2", "process"), logs):
        assert not log["errors"], (name, log["errors"][:5])
        during = sum(load_started <= t <= load_ended for t in log["times"])
        assert during >= 20, f"{name} made only {during} queries while the load ran"
        assert log["answers"] == [old, new], (name, log["answers"])     # whole generations, in order
        assert log["slowest"] < 5, (name, log["slowest"])


def _kill_when(settings, trigger, tmp_path, hook: str = "", name: str = "") -> dict:
    """Run load-all and SIGKILL it as soon as trigger(elapsed seconds, stdout lines so far) is true.
    With `hook`, the loader runs `python -c hook` first (used to die at one exact instruction)."""
    args = ["-m", "etl"] if not hook else ["-c", hook + "\nimport runpy\nrunpy.run_module('etl', run_name='__main__')"]
    stderr = open(tmp_path / f"stderr-{time.monotonic_ns()}", "w+")
    process = subprocess.Popen([PYTHON, *args, "--config", str(settings), "load-all"], cwd=ROOT, env=ENV,
                               stdout=subprocess.PIPE, stderr=stderr, text=True, bufsize=1)
    lines = []
    threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True).start()
    started = time.monotonic()
    killed = False
    while process.poll() is None:
        if not hook and trigger(time.monotonic() - started, list(lines)):
            os.kill(process.pid, signal.SIGKILL)
            killed = True
            break
        time.sleep(0.001)
    process.wait(timeout=60)            # reaped: its pid is gone when the next load looks for it
    stderr.seek(0)
    errors = stderr.read()
    stderr.close()
    assert process.returncode == -signal.SIGKILL, (
        f"{name}: the loader was not killed (exit {process.returncode}, trigger fired: {killed})\n"
        + "".join(lines) + errors[-3000:])
    return {"pid": process.pid, "lines": lines}


# Dies between renaming the finished generation into place and flipping CURRENT to it.
DIE_BEFORE_POINTER_FLIP = """
import os, signal
_replace = os.replace
def _die_before_flip(src, dst, *a, **k):
    if str(dst).endswith("/CURRENT"):
        os.kill(os.getpid(), signal.SIGKILL)
    return _replace(src, dst, *a, **k)
os.replace = _die_before_flip
"""


def test_kill_9_at_any_moment_loses_nothing(city, clean, tmp_path):
    root, _, city_dir = city
    reference, seconds = clean
    settings = _first_state(root, city_dir, "killed")
    published = _published_files(settings)
    first_counts = _counts(_reader(settings))
    staging = load_config(settings).warehouse_dir / "published" / ".gen-000002.tmp"

    # trigger factories, each called as its load starts. Moments are events of the load, not times: a fast
    # machine finished the rest of the load-all before a kill at "3 s" came.
    def after(delay):
        return lambda: lambda elapsed, lines: elapsed >= delay

    def into(feed, previous):
        # `feed` starts right after `previous`'s line; kill a quarter into its clean duration (several chunks
        # staged, and well before its end even if this run is faster than the clean one)
        def factory():
            seen = {}

            def trigger(elapsed, lines):
                if "at" not in seen and any(line.startswith(previous + " ") for line in lines):
                    seen["at"] = elapsed
                return "at" in seen and elapsed >= seen["at"] + seconds[feed] / 4
            return trigger
        return factory

    def between(previous):
        # right after `previous` committed: the next load has begun, nothing of it is committed yet
        return lambda: lambda elapsed, lines: any(line.startswith(previous + " ") for line in lines)

    def writing_generation():
        # the staging directory of the next generation, created by this run (a killed one may have left one)
        started = time.time()

        def trigger(elapsed, lines):
            try:
                return staging.stat().st_mtime >= started
            except FileNotFoundError:
                return False
        return trigger

    moments = [("0.5 s", after(0.5), ""), ("mid-readings", into("sensor_readings", "sensors"), ""),
               ("mid-hotline", into("hotline_12345", "sensor_readings"), ""),
               ("between two loads", between("hotline_12345"), ""),
               ("writing the new generation", writing_generation, ""),
               ("before the pointer flip", lambda: None, DIE_BEFORE_POINTER_FLIP)]
    left_running = {}
    for name, trigger, hook in moments:
        killed = _kill_when(settings, trigger(), tmp_path, hook, name)
        assert _published_files(settings) == published, f"killed at {name}: the published generation changed"
        assert _counts(_reader(settings)) == first_counts, f"killed at {name}"
        state = _writer_state(settings)
        assert state["stored_rows"] == state["expected_rows"], f"killed at {name}: rows of an uncommitted load"
        runs = state["runs"]
        assert set(runs[runs.status == "running"].pid) <= {killed["pid"]}, runs
        left_running[name] = set(runs[runs.status == "running"].run_id)
        if name.startswith("mid-"):
            assert left_running[name], f"killed at {name}: the kill should have hit an open load"
        if name == "writing the new generation":
            assert staging.exists() and (runs.status != "running").all(), "everything committed, not published"

    _etl(settings, "load-all")
    assert _digest(settings) == reference, "after the kills, the rerun must give exactly the rows of a clean load"
    runs = _reader(settings).df("SELECT run_id, status, error FROM etl_run")
    killed_runs = set().union(*left_running.values())
    assert set(runs[runs.status == "aborted"].run_id) == killed_runs, runs[runs.status != "ok"]
    assert (runs[runs.run_id.isin(killed_runs)].error == "process ended before commit").all()
    assert not (runs.status == "running").any()
    assert not list((load_config(settings).warehouse_dir / "published").glob(".gen-*.tmp"))
