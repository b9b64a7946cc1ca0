"""Acknowledgements of alarms: written by whichever dashboard worker process the operator's click reaches, read by
every process.

One SQLite file (`<ops.dir>/ops.sqlite`) in WAL mode with a busy timeout: readers never block the writer, writers
from several processes queue for the lock instead of failing (a DuckDB file would lock the other processes out).
Each thread of each process has its own connection (none crosses gunicorn's fork or a thread). The schema is
created on first use.

An acknowledgement is keyed by the alarm's id (query/alarms.py): it holds as long as the id does, and the first
operator's acknowledgement is the one kept. Every attempt, repeated ones included, is written to `ops_audit`
(who, when, what), which is only ever appended to.
"""
import json
import os
import socket
import sqlite3
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

DB_FILE = "ops.sqlite"
BUSY_TIMEOUT_S = 30.0
SCHEMA_VERSION = 1

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS alarm_ack (
        alarm_id TEXT PRIMARY KEY,
        user TEXT NOT NULL,
        at TEXT NOT NULL,              -- when the operator acknowledged (ISO 8601 with offset)
        note TEXT NOT NULL DEFAULT '',
        recorded_at TEXT NOT NULL      -- server clock when the row was written (ISO 8601, UTC)
    )""",
    """CREATE TABLE IF NOT EXISTS ops_audit (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        recorded_at TEXT NOT NULL,     -- server clock (ISO 8601, UTC)
        actor TEXT NOT NULL,           -- who
        action TEXT NOT NULL,          -- what: acknowledge | acknowledge_again (already acknowledged: kept as it was)
        subject TEXT NOT NULL,         -- the alarm id
        at TEXT NOT NULL,              -- when, as the actor's request gave it
        detail TEXT NOT NULL,          -- JSON: note, and for a repeat the acknowledgement that stands
        host TEXT NOT NULL,
        pid INTEGER NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS ops_audit_subject ON ops_audit (subject, seq)",
    """CREATE TABLE IF NOT EXISTS signin_failure (  -- ops/signin.py: recent failed sign-ins, for rate limiting
        key TEXT NOT NULL,             -- 'user:<name>' or 'ip:<address>'
        at REAL NOT NULL               -- epoch seconds
    )""",
    "CREATE INDEX IF NOT EXISTS signin_failure_key ON signin_failure (key, at)",
)

_lock = threading.Lock()
_local = threading.local()
_dir: Path | None = None
_ready: set[Path] = set()


def init(config_or_dir) -> None:
    """Use this config's `ops.dir` (or this directory). Without it, the config the query layer was started with
    (query.store) is used, else the one $CITYOPS_CONFIG names."""
    global _dir
    if isinstance(config_or_dir, (str, Path)):
        _dir = Path(config_or_dir).resolve()
    else:
        _dir = config_or_dir.path(config_or_dir.settings.ops.dir)


def db_path() -> Path:
    if _dir is not None:
        return _dir / DB_FILE
    from query import store
    try:
        config = store.config()
    except KeyError:
        from core.settings import load_config
        init(load_config())             # once: validating every config file takes a while
        return _dir / DB_FILE
    return config.path(config.settings.ops.dir) / DB_FILE


@contextmanager
def _connect():
    """This thread's connection to the database (one per thread and process: a connection never crosses a fork or
    a thread). Kept open: closing the last connection to a WAL database checkpoints it, about 6 ms every call."""
    path = db_path()
    if path not in _ready:
        _create(path)
    key = (path, os.getpid())
    con = getattr(_local, "connections", {}).get(key)
    if con is None:
        con = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=True)
        con.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        _local.__dict__.setdefault("connections", {})[key] = con
    yield con


def _create(path: Path) -> None:
    with _lock:
        if path in _ready:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            con.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            mode = _switch_to_wal(con)
            if mode.lower() != "wal":
                raise RuntimeError(f"{path}: SQLite refused WAL mode (got {mode!r}); is it on a network filesystem?")
            con.execute("BEGIN IMMEDIATE")
            for statement in SCHEMA:
                con.execute(statement)
            con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            con.execute("COMMIT")
        finally:
            con.close()
        _ready.add(path)


def _switch_to_wal(con: sqlite3.Connection) -> str:
    """PRAGMA journal_mode = WAL, retried: while another connection holds a write lock on a database not yet in WAL
    mode, SQLite answers 'database is locked' at once (waiting could deadlock), without calling the busy handler."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            return con.execute("PRAGMA journal_mode = WAL").fetchall()[0][0]
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat()


def acknowledge(alarm_id: str, user: str, at: datetime, note: str = "") -> None:
    """Record that `user` acknowledged the alarm `alarm_id` at `at` (tz-aware). Acknowledging an alarm already
    acknowledged keeps the first acknowledgement and is audited as a repeat."""
    if not isinstance(alarm_id, str) or not alarm_id:
        raise ValueError(f"alarm_id: got {alarm_id!r}; expected a non-empty string")
    if not isinstance(user, str) or not user.strip():
        raise ValueError(f"user: got {user!r}; expected a non-empty string naming the operator")
    if not isinstance(at, datetime) or at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"at: got {at!r}; expected a timezone-aware datetime")
    note = note or ""
    recorded = _utc_now()
    with _connect() as con:
        con.execute("BEGIN IMMEDIATE")
        try:
            inserted = con.execute(
                "INSERT INTO alarm_ack (alarm_id, user, at, note, recorded_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (alarm_id) DO NOTHING", (alarm_id, user, at.isoformat(), note, recorded)).rowcount
            detail = {"note": note}
            if not inserted:
                first = con.execute("SELECT user, at FROM alarm_ack WHERE alarm_id = ?", (alarm_id,)).fetchall()[0]
                detail["standing"] = {"user": first[0], "at": first[1]}
            con.execute(
                "INSERT INTO ops_audit (recorded_at, actor, action, subject, at, detail, host, pid) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (recorded, user, "acknowledge" if inserted else "acknowledge_again", alarm_id, at.isoformat(),
                 json.dumps(detail, ensure_ascii=False), socket.gethostname(), os.getpid()))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise


def acknowledged(alarm_ids: list[str]) -> dict[str, dict]:
    """The acknowledgements among these alarm ids: id -> {"user", "at" (tz-aware datetime), "note"}."""
    ids = sorted({str(i) for i in alarm_ids})
    if not ids:
        return {}
    with _connect() as con:
        rows = con.execute("SELECT alarm_id, user, at, note FROM alarm_ack "
                           "WHERE alarm_id IN (SELECT value FROM json_each(?))", (json.dumps(ids),)).fetchall()
    return {r[0]: {"user": r[1], "at": datetime.fromisoformat(r[2]), "note": r[3]} for r in rows}


def audit(subject: str | None = None, limit: int = 200) -> list[dict]:
    """The newest audit entries (all, or those about one alarm id), newest first."""
    where, params = ("WHERE subject = ?", [subject]) if subject is not None else ("", [])
    with _connect() as con:
        rows = con.execute(f"SELECT seq, recorded_at, actor, action, subject, at, detail, host, pid FROM ops_audit "
                           f"{where} ORDER BY seq DESC LIMIT ?", (*params, int(limit))).fetchall()
    return [{"seq": r[0], "recorded_at": datetime.fromisoformat(r[1]), "actor": r[2], "action": r[3],
             "subject": r[4], "at": datetime.fromisoformat(r[5]), "detail": json.loads(r[6]), "host": r[7],
             "pid": r[8]} for r in rows]
