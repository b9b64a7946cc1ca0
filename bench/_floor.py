"""The physical floor for one feed file, run in its own process so its peak RSS is its own:
`python -m bench._floor FORMAT FILE REPEATS` prints one JSON line.

- count:  SELECT count(*) FROM read_csv / read_json  (the floor the ETL is measured against)
- table:  CREATE TABLE AS SELECT * FROM read_... in an in-memory DuckDB (a second reference: the same read with
          every column materialised, as a DuckDB-only ingest would do)
Each is run REPEATS times in a fresh in-memory DuckDB; the best time is kept (the file is in the page cache after
the first read, as it is for the pipeline, which runs right after).
"""
import json
import sys
import time

import duckdb

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


def main(argv) -> int:
    fmt, path, repeats = argv[0], argv[1], int(argv[2])
    src = source(fmt, path)
    count_s, count_rows = best(f"SELECT count(*) FROM {src}", repeats)
    table_s, table_rows = best(f"CREATE TABLE t AS SELECT * FROM {src}", max(1, repeats - 1))
    threads = duckdb.connect(":memory:").execute("SELECT current_setting('threads')").fetchall()[0][0]
    print(json.dumps({"sql": f"SELECT count(*) FROM {src}", "seconds": count_s, "rows": count_rows,
                      "table_seconds": table_s, "table_rows": table_rows, "threads": threads}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
