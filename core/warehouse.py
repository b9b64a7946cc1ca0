"""The only module that opens DuckDB.

The ETL writes into its own database file (`etl.duckdb`), which no reader ever opens: a read-write DuckDB
connection locks out every other process. After each committed load the writer publishes immutable Parquet
files as a new generation directory and flips the `CURRENT` pointer with os.replace, so readers switch
atomically and never wait on the writer (../shared/notes/STACK.md). Readers query in-memory views over the
current generation.
"""
import json
import os
import shutil
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pandas as pd

from core.schema import DDL, PUBLISHED_TABLES

WRITER_DB = "etl.duckdb"
PUBLISHED = "published"
POINTER = "CURRENT"


class WarehouseBusy(Exception):
    """Another process holds the writer database."""


@contextmanager
def writer(warehouse_dir: Path):
    warehouse_dir.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(str(warehouse_dir / WRITER_DB))
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise WarehouseBusy(f"{warehouse_dir / WRITER_DB} is held by another ETL process") from None
        raise
    try:
        for statement in DDL:
            con.execute(statement)
        yield con
    finally:
        con.close()


def _published_dir(warehouse_dir: Path) -> Path:
    return warehouse_dir / PUBLISHED


def current_generation(warehouse_dir: Path) -> str | None:
    try:
        return (_published_dir(warehouse_dir) / POINTER).read_text().strip() or None
    except FileNotFoundError:
        return None


def _sql_literal(text: str) -> str:
    return text.replace("'", "''")


def _sql_path(path: Path) -> str:
    return _sql_literal(str(path))


def publish(con: duckdb.DuckDBPyConnection, warehouse_dir: Path, keep: int = 3) -> str:
    """Write every published table as Parquet into a new generation and make it current."""
    root = _published_dir(warehouse_dir)
    root.mkdir(parents=True, exist_ok=True)
    previous = current_generation(warehouse_dir)
    # Number past every generation on disk, not just the current one: a publish killed between renaming its
    # generation into place and flipping CURRENT leaves a complete gen-N that never became current, and renaming
    # onto it would fail (directory not empty) on every later publish.
    numbers = [int(p.name.split("-")[1]) for p in root.glob("gen-*") if p.is_dir()]
    number = max([*numbers, int(previous.split("-")[1]) if previous else 0]) + 1
    name = f"gen-{number:06d}"
    staging = root / f".{name}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    counts = {}
    for table in PUBLISHED_TABLES:
        con.execute(f"COPY (SELECT * FROM {table}) TO '{_sql_path(staging / table)}.parquet' "
                    "(FORMAT parquet, COMPRESSION zstd)")
        counts[table] = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
    manifest = {"generation": name, "published_at": time.time(), "rows": counts, "last_load": _last_load(con)}
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=1))
    _fsync_dir(staging)
    os.rename(staging, root / name)
    tmp_pointer = root / f".{POINTER}.tmp"
    tmp_pointer.write_text(name)
    os.replace(tmp_pointer, root / POINTER)
    _fsync_dir(root)
    _collect_garbage(root, name, keep)
    return name


def _last_load(con: duckdb.DuckDBPyConnection) -> int:
    return con.execute("SELECT coalesce(max(run_id), 0) FROM etl_run WHERE status = 'ok'").fetchall()[0][0]


def unpublished(con: duckdb.DuckDBPyConnection, warehouse_dir: Path) -> bool:
    """True when the writer holds committed loads that the current generation does not show.

    Each file's load commits on its own and publishing comes after: a load killed in between (or during the
    publish) leaves its files committed and recorded 'ok', so the next run skips them and must still publish.
    The generation's manifest records the last committed load it contains."""
    generation = current_generation(warehouse_dir)
    if generation is None:
        return True
    try:
        manifest = json.loads((_published_dir(warehouse_dir) / generation / "manifest.json").read_text())
    except (FileNotFoundError, ValueError):
        return True
    return manifest.get("last_load", -1) < _last_load(con)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _collect_garbage(root: Path, current: str, keep: int) -> None:
    """Keep the newest `keep` generations; readers still on an older one move on at their next query."""
    generations = sorted(p for p in root.glob("gen-*") if p.is_dir())
    for old in generations[:-keep]:
        if old.name != current:
            shutil.rmtree(old, ignore_errors=True)
    for stale in root.glob(".gen-*.tmp"):
        if stale.name != f".{current}.tmp":
            shutil.rmtree(stale, ignore_errors=True)


class Reader:
    """Read-only access to the current generation, safe to share between threads (one cursor per call)."""

    def __init__(self, warehouse_dir: Path, timezone: str):
        self.warehouse_dir = warehouse_dir
        # A database-wide setting: per-connection SET would not reach the per-thread cursors, and "today" would
        # then be cut at UTC midnight instead of the city's.
        self._con = duckdb.connect(":memory:")
        self._con.execute(f"SET GLOBAL TimeZone = '{_sql_literal(timezone)}'")
        self._lock = threading.Lock()
        self.generation: str | None = None

    def _refresh(self) -> None:
        """Point the views at the current generation (only when a query runs: a cache hit needs no files)."""
        generation = current_generation(self.warehouse_dir)
        if generation == self.generation:
            return
        with self._lock:
            if generation == self.generation:
                return
            gen_dir = _published_dir(self.warehouse_dir) / generation
            # One transaction: a query on another cursor sees all views of one generation, never a mix.
            self._con.execute("BEGIN TRANSACTION")
            try:
                for table in PUBLISHED_TABLES:
                    path = _sql_path(gen_dir / f"{table}.parquet")
                    self._con.execute(f"CREATE OR REPLACE VIEW {table} AS SELECT * FROM read_parquet('{path}')")
                self._con.execute("COMMIT")
            except Exception:
                self._con.execute("ROLLBACK")
                raise
            self.generation = generation

    def current(self) -> str | None:
        """The generation a query would read now (None before the first publish): one small file read."""
        return current_generation(self.warehouse_dir)

    def df(self, sql: str, params: list | dict | None = None) -> pd.DataFrame:
        return self._run(sql, params, lambda result: result.df())

    def rows(self, sql: str, params: list | dict | None = None) -> list[tuple]:
        return self._run(sql, params, lambda result: result.fetchall())

    def _run(self, sql, params, fetch):
        if self.current() is None:
            raise NoData("nothing has been published yet")
        self._refresh()
        cursor = self._con.cursor()
        try:
            return fetch(cursor.execute(sql, params or []))
        finally:
            cursor.close()


class NoData(Exception):
    """The warehouse has no published generation yet."""
