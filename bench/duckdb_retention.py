"""Does DuckDB keep Python objects scanned inside an open transaction alive until COMMIT?

    python -m bench.duckdb_retention [--rows 200000] [--batches 3]

Registers a pandas frame per batch, scans it (plain INSERT, SELECT only, CREATE TEMP TABLE AS, or an INSERT of
copied strings), unregisters and deletes it, all inside one BEGIN ... COMMIT, and reports the Python objects
(sys.getallocatedblocks) and Arrow bytes still held before and after COMMIT. This was the pattern of
etl/pipeline.load_file (one transaction per file, frames registered per chunk) until loads staged their chunks in
short commits (etl/staging.py); see docs/PERFORMANCE.md.
"""
import argparse
import gc
import sys
import tempfile
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa

SCANS = {
    "insert": "INSERT INTO t SELECT * FROM batch",
    "select-only": "SELECT count(*), max(a) FROM batch",
    "temp-table": "CREATE OR REPLACE TEMP TABLE staged AS SELECT * FROM batch",
    "copied-strings": "INSERT INTO t SELECT id || '', a || '', b || '' FROM batch",
}


def held() -> tuple[int, float]:
    gc.collect()
    return sys.getallocatedblocks(), pa.total_allocated_bytes() / 2 ** 20


def trial(scan: str, dtype: str, rows: int, batches: int, directory: Path) -> dict:
    path = directory / f"{scan}-{dtype}.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE t (id VARCHAR PRIMARY KEY, a VARCHAR, b VARCHAR)")
    blocks0, arrow0 = held()
    con.execute("BEGIN")
    for i in range(batches):
        frame = pd.DataFrame({"id": [f"hotline_12345:12345-{i}-{j:08d}" for j in range(rows)],
                              "a": [f"湖滨市东门区和溪街道{j}号" for j in range(rows)],
                              "b": [f"desc {j} lorem ipsum" for j in range(rows)]}, dtype=dtype)
        con.register("batch", frame)
        con.execute(SCANS[scan]).fetchall()
        con.unregister("batch")
        del frame
    blocks1, arrow1 = held()
    con.execute("COMMIT")
    blocks2, arrow2 = held()
    con.close()
    return {"scan": scan, "dtype": dtype, "blocks_before_commit": blocks1 - blocks0,
            "blocks_after_commit": blocks2 - blocks0, "arrow_mib_before_commit": arrow1 - arrow0,
            "arrow_mib_after_commit": arrow2 - arrow0}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.duckdb_retention", description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--batches", type=int, default=3)
    args = ap.parse_args(argv)
    print(f"{args.batches} batches of {args.rows:,} rows, 3 text columns, one transaction")
    print(f"{'scan':<16} {'dtype':<8} {'py blocks held before COMMIT':>29} {'after':>8} "
          f"{'arrow MiB before':>17} {'after':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        for dtype in ("object", "string"):
            for scan in SCANS:
                r = trial(scan, dtype, args.rows, args.batches, Path(tmp))
                print(f"{scan:<16} {dtype:<8} {r['blocks_before_commit']:>29,} {r['blocks_after_commit']:>8,} "
                      f"{r['arrow_mib_before_commit']:>17.1f} {r['arrow_mib_after_commit']:>6.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
