"""The physical floor for one feed file, run in its own process so its peak RSS is its own:
`python -m bench._floor FORMAT FILE REPEATS [KEY ...]` prints one JSON line.

- count:   SELECT count(*) FROM read_csv / read_json  (the floor the ETL is measured against)
- table:   CREATE TABLE AS SELECT * FROM read_... in an in-memory DuckDB (a second reference: the same read with
           every column materialised, as a DuckDB-only ingest would do)
- minimal: the cheapest pipeline the ETL issue's other items allow, in DuckDB alone, every field kept as text and
           nothing checked, typed, masked or located: the file into a database file with one row per natural key
           (KEY: the source fields of the feed's key; item 3, duplicates merged), then that table written as Parquet
           for the readers (item 7, readers never blocked by the writer; core/warehouse.PARQUET). It says how much
           of the ETL's time those two requirements alone cost (null when a key is not a top-level source column).
Each is run REPEATS times (minimal and table: REPEATS - 1, at least once) in a fresh DuckDB; the best time is kept
(the file is in the page cache after the first read, as it is for the pipeline, which runs right after).
"""
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from core.warehouse import PARQUET

# Tolerant like the ETL's reader: every field as text, ragged rows padded, undecodable lines skipped.
CSV_OPTIONS = "all_varchar=true, strict_mode=false, ignore_errors=true, null_padding=true"


def source(fmt: str, path: str) -> str:
    quoted = path.replace("'", "''")
    if fmt == "csv":
        return f"read_csv('{quoted}', {CSV_OPTIONS})"
    return f"read_json('{quoted}')"      # json, jsonl and geojson (DuckDB 2.0 reads a FeatureCollection as rows)


def best(sql: str, repeats: int) -> tuple[float, int]:
    times, rows = [], None
    for _ in range(repeats):
        con = duckdb.connect(":memory:")
        started = time.perf_counter()
        result = con.execute(sql).fetchall()
        times.append(time.perf_counter() - started)
        if sql.startswith("SELECT"):
            rows = result[0][0]
        else:
            rows = con.execute("SELECT count(*) FROM t").fetchall()[0][0]
        con.close()
    return min(times), rows


def minimal(src: str, keys: list[str], repeats: int) -> tuple[float | None, int | None]:
    """Best seconds of the minimal pipeline, over both ways DuckDB can keep one row per key (a window over every
    row is faster for small files, listing the repeated keys first for large ones: 40 against 31 s for the 10M
    hotline), and the rows it kept; (None, None) when a key is not a column."""
    columns = {row[0] for row in duckdb.connect(":memory:").execute(f"DESCRIBE SELECT * FROM {src}").fetchall()}
    if not keys or not set(keys) <= columns:
        return None, None
    by_key = ", ".join('"' + k.replace('"', '""') + '"' for k in keys)
    ways = [[f"CREATE TABLE t AS SELECT * FROM {src} QUALIFY row_number() OVER (PARTITION BY {by_key}) = 1"],
            [f"CREATE TABLE s AS SELECT * FROM {src}",
             f"CREATE TABLE r AS SELECT {by_key} FROM s GROUP BY ALL HAVING count(*) > 1",
             f"CREATE TABLE t AS SELECT * FROM s ANTI JOIN r USING ({by_key}) "
             f"UNION ALL SELECT DISTINCT ON ({by_key}) * FROM s SEMI JOIN r USING ({by_key})"]]
    times, rows = [], None
    for statements in ways * repeats:
        scratch = Path(tempfile.mkdtemp(prefix="floor-minimal-"))
        try:
            con = duckdb.connect(str(scratch / "w.duckdb"))
            started = time.perf_counter()
            for sql in statements:
                con.execute(sql)
            con.execute(f"COPY t TO '{scratch / 't.parquet'}' ({PARQUET})")
            times.append(time.perf_counter() - started)
            rows = con.execute("SELECT count(*) FROM t").fetchall()[0][0]
            con.close()
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return min(times), rows


def main(argv) -> int:
    fmt, path, repeats, keys = argv[0], argv[1], int(argv[2]), argv[3:]
    src = source(fmt, path)
    count_s, count_rows = best(f"SELECT count(*) FROM {src}", repeats)
    table_s, table_rows = best(f"CREATE TABLE t AS SELECT * FROM {src}", max(1, repeats - 1))
    minimal_s, minimal_rows = minimal(src, keys, max(1, repeats - 1))
    threads = duckdb.connect(":memory:").execute("SELECT current_setting('threads')").fetchall()[0][0]
    print(json.dumps({"sql": f"SELECT count(*) FROM {src}", "seconds": count_s, "rows": count_rows,
                      "table_seconds": table_s, "table_rows": table_rows, "minimal_seconds": minimal_s,
                      "minimal_rows": minimal_rows, "threads": threads}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
