"""Acknowledgements (ops/acks.py): one SQLite file shared by every dashboard process, surviving restarts.

Real files and real separate processes (subprocess), as the dashboard's gunicorn workers would be.
"""
import json
import os
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from core.settings import load_config
from ops import acks
from tests.conftest import ROOT, edit_yaml, run

TZ = ZoneInfo("Asia/Shanghai")
AT = datetime(2026, 11, 20, 15, 0, tzinfo=TZ)


@pytest.fixture
def settings(config_copy, tmp_path):
    """A config whose ops.dir is a fresh relative folder (resolved against the project root = tmp_path)."""
    edit_yaml(config_copy, lambda d: d.update(ops={"dir": "var/ops-test"}))
    acks.init(load_config(config_copy))
    yield config_copy
    acks._dir = None


def _env(settings):
    return {**os.environ, "CITYOPS_CONFIG": str(settings)}


def _in_other_process(settings, code: str) -> str:
    """Run code in a fresh interpreter that finds the ops folder through $CITYOPS_CONFIG alone."""
    return run("-c", "import json; from datetime import datetime; from ops import acks; " + code,
               env=_env(settings)).stdout


def test_the_database_is_where_settings_say_and_in_wal_mode(settings, tmp_path):
    acks.acknowledge("sensor:S1:critical:2026-11-20T06:20:00Z", "ana", AT)
    path = tmp_path / "var" / "ops-test" / "ops.sqlite"
    assert acks.db_path() == path and path.is_file()
    with sqlite3.connect(path) as con:
        assert con.execute("PRAGMA journal_mode").fetchall() == [("wal",)]
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"alarm_ack", "ops_audit"} <= tables


def test_acknowledge_and_read_back(settings):
    acks.acknowledge("urgent:hotline:1", "ana", AT, "called the crew")
    acks.acknowledge("spike:D01:2026-11-20T06:40:00Z", "bo", AT + timedelta(minutes=2))
    got = acks.acknowledged(["urgent:hotline:1", "spike:D01:2026-11-20T06:40:00Z", "urgent:hotline:2"])
    assert got == {"urgent:hotline:1": {"user": "ana", "at": AT, "note": "called the crew"},
                   "spike:D01:2026-11-20T06:40:00Z": {"user": "bo", "at": AT + timedelta(minutes=2), "note": ""}}
    assert got["urgent:hotline:1"]["at"].utcoffset() == timedelta(hours=8)
    assert acks.acknowledged([]) == {}


def test_first_acknowledgement_stands_and_every_attempt_is_audited(settings):
    acks.acknowledge("deadline:x:overdue:2026-11-20T06:00:00Z", "ana", AT, "first")
    acks.acknowledge("deadline:x:overdue:2026-11-20T06:00:00Z", "bo", AT + timedelta(minutes=1), "second")
    assert acks.acknowledged(["deadline:x:overdue:2026-11-20T06:00:00Z"])[
        "deadline:x:overdue:2026-11-20T06:00:00Z"]["user"] == "ana"
    log = acks.audit("deadline:x:overdue:2026-11-20T06:00:00Z")
    assert [(e["actor"], e["action"]) for e in log] == [("bo", "acknowledge_again"), ("ana", "acknowledge")]
    assert log[0]["detail"] == {"note": "second", "standing": {"user": "ana", "at": AT.isoformat()}}
    assert log[1]["at"] == AT and log[1]["pid"] == os.getpid() and log[1]["recorded_at"].tzinfo is not None


@pytest.mark.parametrize("args,field", [
    (("", "ana", AT), "alarm_id"),
    (("a:1", " ", AT), "user"),
    (("a:1", "ana", datetime(2026, 11, 20, 15, 0)), "at"),
])
def test_bad_arguments_are_refused_and_nothing_is_written(settings, args, field):
    with pytest.raises(ValueError, match=f"^{field}:"):
        acks.acknowledge(*args)
    assert acks.audit() == []


def test_visible_to_another_process_and_both_ways(settings):
    feed = "feed:open311:warning:2026-11-19T06:59:59Z"
    acks.acknowledge(feed, "ana", AT, "ETL team told")
    out = _in_other_process(settings, "print(json.dumps({k: [v['user'], v['at'].isoformat(), v['note']] for k, v in "
                                      f"acks.acknowledged(['{feed}', 'x']).items()}}));"
                                      f"acks.acknowledge('urgent:hotline:9', 'bo', datetime.fromisoformat('{AT}'))")
    assert json.loads(out) == {feed: ["ana", AT.isoformat(), "ETL team told"]}
    assert acks.acknowledged(["urgent:hotline:9"])["urgent:hotline:9"]["user"] == "bo"


def test_survives_reopening_and_a_restart(settings):
    acks.acknowledge("sensor:S2:warning:2026-11-20T06:40:00Z", "ana", AT)
    acks._ready.clear()                                 # as a fresh process: the schema step runs again
    acks.init(load_config(settings))
    assert "sensor:S2:warning:2026-11-20T06:40:00Z" in acks.acknowledged(["sensor:S2:warning:2026-11-20T06:40:00Z"])
    out = _in_other_process(settings, "print(json.dumps(sorted(acks.acknowledged("
                                      "['sensor:S2:warning:2026-11-20T06:40:00Z']))))")
    assert json.loads(out) == ["sensor:S2:warning:2026-11-20T06:40:00Z"]
    assert len(acks.audit()) == 1, "reopening must not rewrite or duplicate anything"


WORKER = """
import sys, time
from datetime import datetime, timezone
from pathlib import Path
from ops import acks
name, go = sys.argv[1], Path(sys.argv[2])
acks.db_path()                                         # read the config now; the database does not exist yet
(go.parent / f"ready-{name}").touch()
while not go.exists():
    time.sleep(0.0005)
start = time.time()                                    # both create the schema and write at the same time
at = datetime.now(timezone.utc)
for i in range(150):
    acks.acknowledge(f"shared:{i}", name, at, "race")     # both processes acknowledge these
    acks.acknowledge(f"{name}:{i}", name, at)              # and these only this one
print(start, time.time())
"""


def test_concurrent_acknowledgements_from_two_processes(settings, tmp_path):
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, name, str(go)], cwd=ROOT, env=_env(settings),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for name in ("w1", "w2")]
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready-{name}").exists() for name in ("w1", "w2")):   # both up and waiting
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "a worker did not start"
        time.sleep(0.01)
    assert not acks.db_path().exists()
    go.touch()
    results = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, results):
        assert p.returncode == 0, err[-2000:]
    spans = [tuple(map(float, out.split())) for out, _ in results]
    assert max(s for s, _ in spans) < min(e for _, e in spans), ("the two processes did not overlap", spans)
    shared = acks.acknowledged([f"shared:{i}" for i in range(150)])
    assert len(shared) == 150 and {v["user"] for v in shared.values()} <= {"w1", "w2"}
    for name in ("w1", "w2"):
        assert len(acks.acknowledged([f"{name}:{i}" for i in range(150)])) == 150
    log = acks.audit(limit=10_000)
    assert len(log) == 600
    first = [e for e in log if e["subject"].startswith("shared:") and e["action"] == "acknowledge"]
    again = [e for e in log if e["subject"].startswith("shared:") and e["action"] == "acknowledge_again"]
    assert len(first) == 150 and len(again) == 150, "exactly one acknowledgement of each shared alarm stands"
    assert {e["subject"]: e["actor"] for e in first} == {k: v["user"] for k, v in shared.items()}
    assert len({e["pid"] for e in log}) == 2 and datetime.now(timezone.utc) - log[0]["recorded_at"] < timedelta(
        minutes=10)


HOLDER = """
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute(sys.argv[2])
con.execute("CREATE TABLE IF NOT EXISTS someone_elses (x)")
print("held", flush=True)
time.sleep(1.0)
con.execute("COMMIT")
"""


@pytest.mark.parametrize("begin", ["BEGIN IMMEDIATE", "BEGIN EXCLUSIVE"])
def test_first_use_waits_for_another_process_holding_the_database(settings, begin):
    """Another process holds the new database file exclusively while this one first opens it: wait, not fail."""
    path = acks.db_path()
    path.parent.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), begin], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        acks.acknowledge("urgent:hotline:1", "ana", AT)
        assert time.monotonic() - started > 0.3, "the lock was not held: the test proves nothing"
    finally:
        holder.wait(30)
    assert acks.acknowledged(["urgent:hotline:1"])["urgent:hotline:1"]["user"] == "ana"
