"""Chunks worked on in worker processes (etl/workers.py) give exactly what the loader gives alone, fail as it
fails, and never outlive it.

Real processes: `python -m etl` subprocesses with `etl.workers: 2` and `workers_from_chunks: 0` (every file through
workers) over a demo city, against the same files loaded with `workers: 0` into another warehouse.
"""
import os
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from core.settings import load_config
from etl import jobs, pipeline, workers
from tests.conftest import PYTHON, ROOT, edit_yaml, make_city, run
from tests.test_etl_crash import _digest, _published_files, _settings_for

CITY = ["--incidents", "30000", "--days", "90", "--sensors", "48", "--service-cases", "4000"]
MARK = f"CITYOPS_WORKER_TEST={uuid.uuid4().hex}"          # in the environment of every process these tests start
ENV = dict(os.environ, CITYOPS_PII_KEY="worker-test-key", PYTHONUNBUFFERED="1",
           CITYOPS_WORKER_TEST=MARK.split("=", 1)[1])


@pytest.fixture(scope="module", autouse=True)
def _no_process_left():
    """Whatever a failing test left running is killed at the end of the module."""
    yield
    for pid in _marked_processes():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _with_workers(settings: Path, count: int) -> Path:
    # small chunks: many of them, so that order, read-ahead and the per-worker limit are all exercised
    edit_yaml(settings, lambda d: d["etl"].update(workers=count, workers_from_chunks=0, chunk_rows=2000))
    for feed in (settings.parent / "feeds").glob("*.yaml"):      # every feed through them, readings included
        edit_yaml(feed, lambda d: d["source"].pop("workers", None))
    return settings


def _etl(settings, *args, check=True):
    return run("-m", "etl", "--config", str(settings), *args, env=ENV, check=check)


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    root = tmp_path_factory.mktemp("workers")
    settings, city_dir = make_city(root, CITY)
    return root, settings, city_dir


@pytest.fixture(scope="module")
def alone(city):
    """The reference: every file loaded by the loader alone."""
    root, _, _ = city
    settings = _with_workers(_settings_for(root, "alone"), 0)
    _etl(settings, "load-all")
    return _digest(settings)


def _marked_processes() -> list[int]:
    """Processes (other than this one) started with this module's MARK in their environment."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if MARK.encode() in environ.read_bytes().split(b"\0"):
                found.append(int(environ.parent.name))
        except OSError:
            continue
    return [pid for pid in found if pid != os.getpid()]


def _gone(timeout: float = 15) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := _marked_processes()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def _described(pids: list[int]) -> list[str]:
    out = []
    for pid in pids:
        try:
            out.append(f"{pid}: " + Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:200])
        except OSError:
            out.append(f"{pid}: gone")
    return out


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    return out


def test_workers_load_exactly_what_the_loader_alone_loads(city, alone):
    root, _, _ = city
    settings = _with_workers(_settings_for(root, "two"), 2)
    result = _etl(settings, "load-all")
    assert "failed" not in result.stdout, result.stdout
    assert _digest(settings) == alone
    assert not _gone(), "workers left running after the load"


def test_a_feed_error_in_a_worker_fails_the_file_as_it_does_without_workers(city, tmp_path):
    root, _, city_dir = city
    messages = {}
    for count in (0, 2):
        settings = _with_workers(_settings_for(root, f"broken-{count}"), count)
        edit_yaml(settings.parent / "feeds" / "hotline_12345.yaml",
                  lambda d: d["fields"].update(source_key="no_such_column"))
        result = _etl(settings, "load", "--feed", "hotline_12345",
                      str(city_dir / "incidents" / "hotline_12345.csv"), check=False)
        output = result.stdout + result.stderr
        messages[count] = [line for line in output.splitlines() if "no field" in line]
        assert messages[count] and "failed" in result.stdout, output
    assert messages[0] == messages[2]
    assert not _gone()


def test_a_worker_killed_mid_load_fails_that_file_and_a_rerun_is_exact(city, alone):
    root, _, city_dir = city
    settings = _with_workers(_settings_for(root, "worker-killed"), 2)
    _etl(settings, "load", "--feed", "sensors", str(city_dir / "iot" / "sensors.geojson"))
    published = _published_files(settings)
    hotline = str(city_dir / "incidents" / "hotline_12345.csv")
    loader = subprocess.Popen([PYTHON, "-m", "etl", "--config", str(settings), "load", "--feed", "hotline_12345",
                               hotline], cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    victim = None
    while victim is None and loader.poll() is None:       # the loader's server forks the workers
        victim = next((w for server in _children(loader.pid) for w in _children(server)), None)
        time.sleep(0.005)
    assert victim is not None, "the load ended before a worker could be seen"
    os.kill(victim, signal.SIGKILL)
    out, err = loader.communicate(timeout=120)
    assert loader.returncode != 0 or "failed" in out, out + err
    assert "ETL worker" in out + err and "stopped without finishing its chunk" in out + err, out + err
    assert "Traceback" not in err, err
    assert _published_files(settings) == published, "a failed load must not publish"
    assert not _gone()

    _etl(settings, "load-all")
    assert _digest(settings) == alone, "the rerun after a killed worker must give exactly a clean load's rows"


# The loader stops (as if stuck) at its first staged chunk: its workers then wait, idle, for chunks.
STALL_AT_FIRST_STAGE = """
import time
from etl import pipeline
def _stall(*args, **kwargs):
    print("stalled", flush=True)
    time.sleep(120)
pipeline._stage_chunk = _stall
import runpy
runpy.run_module("etl", run_name="__main__")
"""


# The loader stops (as if stuck) before it sends its workers their job.
STALL_BEFORE_THE_JOB = """
import time
from core.settings import load_config
from etl import jobs, pipeline, workers
_send = workers._send
def _stall(pipe, message, *args):
    if not isinstance(message, bool):      # the job (a chunk's message is its `first` flag)
        print("stalled", flush=True)
        time.sleep(120)
    return _send(pipe, message, *args)
workers._send = _stall
import runpy
runpy.run_module("etl", run_name="__main__")
"""


@pytest.mark.parametrize("moment", ["waiting for their job", "busy", "idle"])
def test_kill_9_of_the_loader_leaves_no_worker_running(city, moment):
    """Waiting for their job: started, nothing received yet (such a worker once waited forever). Busy: 0.2 s into
    the load, mid-chunk. Idle: done with what they hold and waiting for more."""
    root, _, city_dir = city
    settings = _with_workers(_settings_for(root, f"loader-killed-{moment.split()[0]}"), 2)
    hooks = {"waiting for their job": STALL_BEFORE_THE_JOB, "idle": STALL_AT_FIRST_STAGE}
    start = ["-c", hooks[moment]] if moment in hooks else ["-m", "etl"]
    loader = subprocess.Popen([PYTHON, *start, "--config", str(settings), "load", "--feed", "sensor_readings",
                               str(city_dir / "iot" / "readings.csv")], cwd=ROOT, env=ENV,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    seen = []
    while not seen and loader.poll() is None:
        seen = [w for server in _children(loader.pid) for w in _children(server)]
        time.sleep(0.005)
    assert seen, "the load ended before its workers could be seen"
    try:
        if moment == "busy":
            time.sleep(0.2)
        else:
            lines = iter(loader.stdout.readline, "")
            assert any(line.strip() == "stalled" for line in lines), "the loader ended before it stalled"
            time.sleep(1)                # the workers finish what they hold and wait for more
    finally:
        loader.send_signal(signal.SIGKILL)
        loader.wait(timeout=30)
    left = _gone()
    assert not left, f"workers (or their server) outlived a loader killed with SIGKILL: {_described(left)}"


def test_tables_cross_in_shared_memory_unchanged():
    frame = pd.DataFrame({
        "text": pd.array(["a", None, "丙", ""], dtype="string"),
        "when": pd.to_datetime(["2026-01-01 00:00:00.000001", None, "2026-11-27 12:00:00.5",
                                "1970-01-01 00:00:00.0"], utc=True).as_unit("us"),
        "number": [1.5, np.nan, -0.0, 1e300],
        "count": pd.array([1, None, 3, 4], dtype="Int64"),
        "flag": [None, None, None, None],
    })
    table = pa.Table.from_pandas(frame, preserve_index=False)
    back = workers._mapped(workers._shared(table))
    assert back.equals(table) and back.schema.metadata == table.schema.metadata
    pd.testing.assert_frame_equal(back.to_pandas(), frame)


def test_results_arrive_in_the_order_chunks_were_read():
    """Three workers, more chunks than they hold at once, through a stand-in job that echoes its chunk."""
    job = _Echo()
    chunks = (pd.DataFrame({"n": [i] * 3}) for i in range(23))
    results = list(workers.checked(job, ((c, i) for i, c in enumerate(chunks)), 3))
    assert [extra for _, extra in results] == list(range(23))
    assert [int(r.rows.column("n")[0].as_py()) for r, _ in results] == list(range(23))
    assert [r.first for r, _ in results] == [True] + [False] * 22


class _Echo:
    def run(self, raw, first=False):
        return _Echoed(pa.Table.from_pandas(raw, preserve_index=False), first)


@dataclass
class _Echoed:
    rows: pa.Table
    first: bool


@pytest.mark.parametrize(("chunk_rows", "expected"), [(100_000, 0), (4_000, 2)])
def test_workers_are_used_for_files_of_several_chunks(city, monkeypatch, chunk_rows, expected):
    """The hotline file (24,000 rows) in one chunk stays in the loader; in six, two workers take it. The choice is
    made from the share of the file the first chunk took; the load itself runs in this process (workers 0) so that
    the choice can be seen."""
    root, _, city_dir = city
    settings = _settings_for(root, f"rule-{chunk_rows}")
    edit_yaml(settings, lambda d: d["etl"].update(workers=2, workers_from_chunks=3, chunk_rows=chunk_rows))
    chosen = []

    def record(job, chunks, workers):
        chosen.append(workers)
        return checked(job, chunks, 0)
    checked = workers.checked
    monkeypatch.setattr(pipeline.etl_workers, "checked", record)
    monkeypatch.setenv("CITYOPS_PII_KEY", "worker-test-key")
    outcome = jobs.load_one(load_config(settings), "hotline_12345", city_dir / "incidents" / "hotline_12345.csv",
                            report=lambda line: None)
    assert outcome.status == "ok" and outcome.counts["read"] >= 20_000
    assert chosen == [expected]
