"""Staging: a load's valid rows and quarantine entries, appended chunk by chunk in short commits to a scratch
database on the writer connection, then merged into the canonical tables in one final transaction (etl/merge.py).

Why: DuckDB keeps every Python or Arrow object scanned inside an open transaction alive until COMMIT
(bench/duckdb_retention.py). A file-long transaction that scans a pandas frame per chunk therefore held the whole
file in memory (12 GiB and more at 8M rows). Appended in its own commit, a chunk's frames are freed at once; the
final transaction only runs SQL over staged tables.

The scratch database is an in-memory DuckDB database: it spills to the writer's temp directory past the writer's
memory_limit (core/warehouse.py), writes no WAL, and vanishes with the process. Crash safety is therefore
unchanged: the canonical tables, the quarantine and the run log change only in the final transaction, and a killed
load leaves nothing staged behind.
"""
import pandas as pd
import pyarrow as pa

from core.schema import ENTITIES

DB = "etl_stage"                 # the scratch database's alias on the writer connection
SEQ = "_seq"                     # read order within the file: among equal versions, the last read wins


def attach(con) -> None:
    """Attach an empty scratch database, once per writer connection."""
    if not _attached(con):
        con.execute(f"ATTACH ':memory:' AS {DB}")


def detach(con) -> None:
    """Free the scratch database at the end of a writer session."""
    if _attached(con):
        con.execute(f"DETACH {DB}")


def _attached(con) -> bool:
    return bool(con.execute("SELECT count(*) FROM duckdb_databases() WHERE database_name = ?", [DB]).fetchall()[0][0])


class Stage:
    """One run's staging tables: `staged` (the entity's columns but lineage, plus read order), `lineage` (the run's
    feed and run id, one row: constant columns would cost 20 bytes a row at 50M readings) and `quarantine`.
    `rows` is the relation of every staged row with its lineage."""

    def __init__(self, con, run_id: int, feed_id: str, entity_name: str):
        self.con = con
        self.entity = ENTITIES[entity_name]
        self.staged = f"{DB}.rows_{int(run_id)}"
        self.lineage = f"{DB}.lineage_{int(run_id)}"
        self.repeated = f"{DB}.repeated_{int(run_id)}"
        self.superseded = f"{DB}.superseded_{int(run_id)}"
        self.quarantine = f"{DB}.quarantine_{int(run_id)}"
        self.rows = f"(SELECT s.*, l.* FROM {self.staged} s CROSS JOIN {self.lineage} l)"
        self.provided: list[str] = list(LINEAGE)   # columns the feed supplies (others stay untouched on update)
        con.execute(f"CREATE OR REPLACE TABLE {self.staged} AS SELECT * EXCLUDE ({', '.join(LINEAGE)}), "
                    f"0::BIGINT AS {SEQ} FROM {self.entity.table} LIMIT 0")
        con.execute(f"CREATE OR REPLACE TABLE {self.lineage} AS SELECT ?::VARCHAR AS feed_id, ?::INTEGER AS run_id",
                    [feed_id, int(run_id)])
        con.execute(f"CREATE OR REPLACE TABLE {self.quarantine} AS SELECT * FROM etl_quarantine LIMIT 0")
        self._columns = [r[0] for r in con.execute(f"DESCRIBE {self.staged}").fetchall()]

    def append_rows(self, rows: pa.Table) -> None:
        if rows.num_rows == 0:
            return
        columns = [c for c in self._columns if c in rows.column_names]
        self.provided += [c for c in columns if c != SEQ and c not in self.provided]
        append(self.con, self.staged, rows.select(columns))

    def append_quarantine(self, frame: pd.DataFrame) -> None:
        append(self.con, self.quarantine, frame)

    def drop(self) -> None:
        for table in (self.staged, self.lineage, self.repeated, self.superseded, self.quarantine):
            self.con.execute(f"DROP TABLE IF EXISTS {table}")


LINEAGE = ("feed_id", "run_id")


def append(con, table: str, rows: pd.DataFrame | pa.Table) -> None:
    """Insert a frame or Arrow table by column name, in its own commit (never call this inside the load's
    transaction). A frame goes as an Arrow table: DuckDB scans it in half the time of the pandas frame (9 against
    20 ms per 250k readings)."""
    if len(rows) == 0:
        return
    con.register("staged_chunk", pa.Table.from_pandas(rows, preserve_index=False)
                 if isinstance(rows, pd.DataFrame) else rows)
    try:
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM staged_chunk")
    finally:
        con.unregister("staged_chunk")
