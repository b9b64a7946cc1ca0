"""The only module that opens DuckDB.

The ETL writes into its own database file (`etl.duckdb`), which no reader ever opens: a read-write DuckDB
connection locks out every other process. After each committed load the writer publishes immutable Parquet
files as a new generation directory and flips the `CURRENT` pointer with os.replace, so readers switch
atomically and never wait on the writer (../shared/notes/STACK.md). Readers query in-memory views over the
current generation.
"""
import hashlib
import json
import os
import re
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
# Fact tables are published as one Parquet file per month of a time column (a hive partition `month=YYYY-MM`;
# `none` where the time is missing), so a publish rewrites only the months whose rows changed and hard-links the
# others: rewriting all of fct_incident and its history took 30 s after every small load at 10M incidents. The
# column is chosen for where loads change rows: an incident by the month it closed (open ones in `none`, so a
# later export touches the open cases and the current month, not every month some open case was created in);
# readings, history rows and applications by their own time. Each feed's rows of a month are compared by a
# fingerprint (count and sum of row hashes) kept in the manifest: whatever wrote the rows, changed ones are rewritten.
MONTHLY = {"fct_incident": "closed_at", "fct_incident_status": "changed_at", "fct_sensor_reading": "ts",
           "fct_service_case": "decided_at"}
PARTITION = "month"
# Within a month, each source feed has its own file(s), so one feed's load rewrites its own rows only: loading
# Open311 after the hotline rewrote all of the hotline's 7.9M incidents too. A history row's feed is its run's (a
# replay's run is 'replay:<feed>'): over 23.5M rows the fingerprints took 0.98 s cutting it from incident_id,
# 0.49 s with the join, 0.4 s by month alone.
SOURCE = {"fct_incident": "feed_id", "fct_incident_status": "r.feed", "fct_sensor_reading": "feed_id",
          "fct_service_case": "feed_id"}
JOIN = {"fct_incident_status": "LEFT JOIN (SELECT run_id, regexp_replace(feed_id, '^replay:', '') AS feed "
                               "FROM etl_run) r USING (run_id)"}


class WarehouseBusy(Exception):
    """Another process holds the writer database."""


@contextmanager
def writer(warehouse_dir: Path, memory_limit: str = "6GB"):
    warehouse_dir.mkdir(parents=True, exist_ok=True)
    try:
        # A bounded buffer pool (settings: warehouse.writer_memory_limit): beyond it DuckDB spills to
        # etl.duckdb.tmp. Left at its default (80% of RAM), a big load's staging and merge would keep GiBs of blocks
        # cached (ETL memory goal: 8 GiB in all).
        con = duckdb.connect(str(warehouse_dir / WRITER_DB), config={"memory_limit": memory_limit})
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise WarehouseBusy(f"{warehouse_dir / WRITER_DB} is held by another ETL process") from None
        raise
    try:
        con.execute("SET enable_progress_bar = false")      # long merges would draw DuckDB's bar on stderr
        for statement in DDL:
            con.execute(statement)
        yield con
    finally:
        con.close()


# zstd at DuckDB's default level: level 1 writes the 10M hotline's tables 15% faster but 11-13% larger, on every
# reader's disk (docs/PERFORMANCE.md, session 19).
PARQUET = "FORMAT parquet, COMPRESSION zstd"


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


def publish(con: duckdb.DuckDBPyConnection, warehouse_dir: Path, keep: int = 3,
            changed: set[str] | None = None) -> str:
    """Write the published tables as Parquet into a new generation and make it current.

    changed: the tables written since the current generation was made. The others are hard-linked from it, so a
    publish costs what the load changed rather than the warehouse's size (rewriting 4M readings took seconds after
    every small load). None: write every table."""
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
    before = _manifest(root / previous) if previous else {}
    counts = _link_unchanged(root / previous if previous else None, staging, changed, before)
    months = {t: m for t, m in before.get("months", {}).items() if t in counts}
    for table in PUBLISHED_TABLES:
        if table in counts:
            continue
        if table in MONTHLY:
            months[table] = _write_monthly(con, table, staging, root / previous if previous else None,
                                           before.get("months", {}).get(table, {}))
            counts[table] = sum(n for parts in months[table].values() for n, _ in parts.values())
            continue
        con.execute(f"COPY (SELECT * FROM {table}) TO '{_sql_path(staging / table)}.parquet' ({PARQUET})")
        counts[table] = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
    manifest = {"generation": name, "published_at": time.time(), "rows": counts, "last_load": _last_load(con),
                "months": months}
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=1))
    _fsync_dir(staging)
    os.rename(staging, root / name)
    tmp_pointer = root / f".{POINTER}.tmp"
    tmp_pointer.write_text(name)
    os.replace(tmp_pointer, root / POINTER)
    _fsync_dir(root)
    _collect_garbage(root, name, keep)
    return name


def _manifest(generation_dir: Path) -> dict:
    try:
        return json.loads((generation_dir / "manifest.json").read_text())
    except (FileNotFoundError, ValueError):
        return {}


def _link_unchanged(previous: Path | None, staging: Path, changed: set[str] | None, before: dict) -> dict[str, int]:
    """Hard-link the previous generation's files of the tables not in `changed`; their row counts."""
    if changed is None or previous is None or "rows" not in before:
        return {}
    linked = {}
    for table in PUBLISHED_TABLES:
        if table in changed or table not in before["rows"]:
            continue
        if _linked(previous / _file_name(table), staging / _file_name(table)):
            linked[table] = before["rows"][table]
    return linked


def _linked(source: Path, target: Path) -> bool:
    """Hard-link source to target; False, leaving no target, where that fails (gone, or a filesystem without hard
    links): the caller writes it anew instead."""
    try:
        _link(source, target)
        return True
    except OSError:
        if target.is_dir():
            shutil.rmtree(target, ignore_errors=True)
        else:
            target.unlink(missing_ok=True)
        return False


def _link(source: Path, target: Path) -> None:
    """Hard-link a file, or a directory's files (a monthly table, or one of its months)."""
    if source.is_dir():
        target.mkdir(parents=True)
        for child in source.iterdir():
            _link(child, target / child.name)
    else:
        os.link(source, target)


def _file_name(table: str) -> str:
    return table if table in MONTHLY else f"{table}.parquet"


def _month_key_sql(table: str) -> str:
    """A row's UTC month as the integer yyyymm (NULL without a time). Microseconds since the epoch make the UTC
    wall time without a time-zone lookup (0.21 s against timezone('UTC', ...)'s 0.51 s over 4M readings; epoch_ms
    would round 23:59:59.9995 up). An integer, not 'YYYY-MM' text: at 50M readings the fingerprints take 0.24 s
    instead of 0.76 s and the partitioned write 4.4 s instead of 5.3 s."""
    wall = f"make_timestamp(epoch_us({MONTHLY[table]}))"
    return f"(year({wall}) * 100 + month({wall}))"


def _month_name(key: int | None) -> str:
    """A month's partition value: 'YYYY-MM', or 'none' for rows without a time."""
    return "none" if key is None else f"{key // 100:04d}-{key % 100:02d}"


def _write_monthly(con, table: str, staging: Path, previous: Path | None, before: dict) -> dict[str, dict]:
    """Write a fact table as one directory per month holding one file per source feed, linking the files whose
    fingerprint is unchanged from the previous generation; {month: {file stem: [rows, fingerprint]}}."""
    groups, now = {}, {}
    for month, part, source, rows, fingerprint in con.execute(
            f"SELECT {_month_key_sql(table)}, {_part_sql(table)}, any_value({SOURCE[table]}), count(*), "
            f"sum(hash(t))::VARCHAR FROM {table} t {JOIN.get(table, '')} GROUP BY 1, 2").fetchall():
        name, stem = _month_name(month), _file_stem(source)
        now.setdefault(name, {})[stem] = [rows, fingerprint]
        groups[name, stem] = part
    (staging / table).mkdir()
    if not now:      # no rows: an empty file keeps the table's columns readable
        (staging / table / f"{PARTITION}=none").mkdir()
        con.execute(f"COPY (SELECT * FROM {table} LIMIT 0) TO "
                    f"'{_sql_path(staging / table / f'{PARTITION}=none' / 'empty.parquet')}' (FORMAT parquet)")
        return {}
    for name in now:
        (staging / table / f"{PARTITION}={name}").mkdir()
    todo = [(name, stem) for name, stem in groups
            if previous is None or _parts(before, name).get(stem) != now[name][stem]
            or not _linked_files(previous / table / f"{PARTITION}={name}", staging / table / f"{PARTITION}={name}",
                                 stem)]
    if todo:
        _write_parts(con, table, staging, {groups[p]: p for p in todo}, everything=len(todo) == len(groups))
    return now


def _parts(before: dict, month: str) -> dict:
    """A month's files in an earlier manifest ({} where it kept one fingerprint for the whole month)."""
    parts = before.get(month)
    return parts if isinstance(parts, dict) else {}


def _file_stem(source: str | None) -> str:
    """A source feed's file name within a month: its id (ids are [a-z][a-z0-9_]*), else a digest of the value."""
    if source is not None and re.fullmatch(r"[a-z][a-z0-9_]{0,63}", source):
        return source
    return "_" + hashlib.sha256(repr(source).encode()).hexdigest()[:16]


def _linked_files(previous: Path, staging: Path, stem: str) -> bool:
    """Hard-link one source's files of a month from the previous generation; False (none left) where that fails."""
    files = list(previous.glob(f"{stem}.*.parquet"))
    done = []
    try:
        for source in files:
            os.link(source, staging / source.name)
            done.append(staging / source.name)
    except OSError:
        for target in done:
            target.unlink(missing_ok=True)
        return False
    return bool(files)


def _part_sql(table: str) -> str:
    """One integer per (month, source feed): the written partition. One partition column, not two: against month
    alone (7.5-8.0 s for the 10M hotline's 7.9M incidents), month and feed took 1.3-1.9 s more, this 0.5-0.7 s."""
    return f"hash({_month_key_sql(table)}, {SOURCE[table]})"


def _write_parts(con, table: str, staging: Path, parts: dict[int, tuple[str, str]], everything: bool) -> None:
    """Write these groups of rows (their _part_sql values) into their month's directory as `<stem>.<n>.parquet`:
    written aside, one directory per value, then moved into place. The values are integers from the fingerprint
    query (COPY takes no ?)."""
    where = "" if everything else f"WHERE {_part_sql(table)} IN ({', '.join(str(int(p)) for p in parts)})"
    aside = staging / f".{table}.parts"
    con.execute(f"""COPY (SELECT t.*, {_part_sql(table)} AS part FROM {table} t {JOIN.get(table, '')} {where})
                    TO '{_sql_path(aside)}' ({PARQUET}, PARTITION_BY (part))""")
    for part_dir in aside.iterdir():
        name, stem = parts[int(part_dir.name.removeprefix("part="))]
        for written in part_dir.iterdir():
            os.rename(written, staging / table / f"{PARTITION}={name}" / f"{stem}.{written.name}")
    shutil.rmtree(aside)


def table_source(generation_dir: Path, table: str) -> str:
    """SQL reading a published table of a generation: its Parquet file, or a monthly table's files (a generation
    published before monthly tables existed has one file for them too: readers keep working across the upgrade)."""
    if table in MONTHLY and (generation_dir / table).is_dir():
        files = _sql_path(generation_dir / table / "*" / "*.parquet")
        return f"(SELECT * EXCLUDE ({PARTITION}) FROM read_parquet('{files}', hive_partitioning = true))"
    return f"read_parquet('{_sql_path(generation_dir / f'{table}.parquet')}')"


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
                    self._con.execute(f"CREATE OR REPLACE VIEW {table} AS SELECT * FROM {table_source(gen_dir, table)}")
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
