"""What-if: the hotline load with extract, map, validate and mask as one DuckDB query (a prototype, not the ETL).

    python -m bench.sql_prototype --incidents 1000000 [--check]

Builds the same cached demo city as bench.etl_throughput and times, on its hotline CSV, in one process:
  floor      SELECT count(*) FROM read_csv(...)                   (as bench/_floor.py)
  sql        read_csv -> trim/null, strptime + time zone, value maps (joins), numbers, reasons (first failing
             rule), HMAC-SHA256 phone hash (sha256 over the key pads: same digest as etl/mask.py), street level and
             scrub (regexp_replace) -> a staged table
  geo        lat/lon out as numpy: inside-city test, district/street/grid sjoin, H3 cells (geo/locate.py as is),
             back in as Arrow
  merge      INSERT of the valid rows into fct_incident + status history into fct_incident_status (same DDL)
The prototype does NOT keep physical line numbers (it uses the row ordinal), does not reproduce GBK fallback
decoding or every quarantine reason, and its scrub regexes are RE2 approximations (no look-behind). --check
compares its rows with the real ETL's on a small city so the gap is visible. Times are reported, never asserted.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from bench._floor import CSV_OPTIONS
from bench.etl_throughput import PYTHON, RESULTS, ROOT, checked, city_params, ensure_city, measured, write_config
from demo_city.generate import Params

FEED = "hotline_12345"
KEY = b"bench-only-key-not-secret"
NULLS = ("", "None", "nan", "NaN", "null", "<NA>")


def q(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def hmac_sql(expr: str, key: bytes) -> str:
    """HMAC-SHA256(key, expr) as hex, from DuckDB's sha256: H((K^opad) || H((K^ipad) || m))."""
    k = key.ljust(64, b"\0") if len(key) <= 64 else __import__("hashlib").sha256(key).digest().ljust(64, b"\0")
    ipad = bytes(b ^ 0x36 for b in k).hex()
    opad = bytes(b ^ 0x5C for b in k).hex()
    return f"sha256(unhex('{opad}') || unhex(sha256(unhex('{ipad}') || encode({expr}))))"


def build_sql(path: Path, feed, catalog, tz: str, now: str) -> tuple[str, dict]:
    """The staging query and the small value-map tables it joins."""
    from core.schema import ENTITIES
    types = {c.name: c.type for c in ENTITIES[feed.entity].columns}
    maps, joins, cols, reasons = {}, [], [], []
    text = {}
    for name in feed.fields:
        spec = feed.spec(name)
        src = spec.fields()[0]
        nulls = ", ".join(q(v) for v in NULLS + tuple(spec.null_if))
        text[name] = f"(CASE WHEN trim(s.\"{src}\") IN ({nulls}) THEN NULL ELSE trim(s.\"{src}\") END)"
    for name in feed.fields:
        spec, t, kind = feed.spec(name), text[name], types[name]
        if spec.map is not None:
            table = catalog.value_map(spec.map) if isinstance(spec.map, str) else spec.map
            maps[f"map_{name}"] = pa.table({"k": list(table), "v": list(table.values())})
            joins.append(f"LEFT JOIN map_{name} m_{name} ON m_{name}.k = {t}")
            cols.append(f"m_{name}.v AS {name}")
            reasons.append((f"{t} IS NOT NULL AND m_{name}.v IS NULL", f"'unknown {name} ''' || {t} || ''''"))
        elif kind == "timestamp":
            fmt = spec.format or "%Y-%m-%dT%H:%M:%S%z"
            parsed = f"try_strptime({t}, {q(fmt)})"
            if "%z" not in fmt:
                parsed = f"timezone({q(tz)}, {parsed})"
            cols.append(f"{parsed} AS {name}")
            reasons.append((f"{t} IS NOT NULL AND {parsed} IS NULL", f"'unparseable {name} ''' || {t} || ''''"))
        elif kind in ("float", "int"):
            cols.append(f"TRY_CAST({t} AS DOUBLE) AS {name}")
            reasons.append((f"{t} IS NOT NULL AND TRY_CAST({t} AS DOUBLE) IS NULL",
                            f"'not a number in {name} ''' || {t} || ''''"))
        else:
            cols.append(f"{t} AS {name}")
    reason = "CASE " + " ".join(f"WHEN {c} THEN {r}" for c, r in reasons) + " ELSE NULL END"
    staged = (f"SELECT {', '.join(cols)}, {reason} AS _parse_reason "
              f"FROM read_csv({q(str(path))}, {CSV_OPTIONS}) s " + " ".join(joins))
    # masking, derived columns and the record rules, over the typed columns
    digits = "right(regexp_replace(caller_phone, '[^0-9]', '', 'g'), 11)"
    street = ("CASE WHEN regexp_matches(address, '[\\x{4e00}-\\x{9fff}]') THEN coalesce(nullif(regexp_extract("
              "address, '^(.*?(?:街道|镇|乡|大道|路|街|巷))', 1), ''), trim(regexp_replace(address, "
              "'[0-9０-９]+\\s*[号栋幢座楼层室单元户#-]*', '', 'g'))) ELSE trim(regexp_replace(regexp_replace(address, "
              "'^\\s*\\d+[A-Za-z]?(?:[-/]\\d+[A-Za-z]?)?\\s+', ''), '(?i)\\b(?:apt|apartment|unit|suite|ste|#)\\s*"
              "[\\w-]+', '', 'g'), ' ,') END")
    scrub = "description"
    for pattern, token in (
            ("[1-9]\\d{5}(?:19|20)\\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\\d|3[01])\\d{3}[\\dXx]", "[id]"),
            ("(?:\\+?86[- ]?)?1[3-9]\\d{9}", "[phone]"),
            ("(?:\\+?\\d{1,3}[-. ]?)?\\(?\\d{3}\\)?[-. ]?\\d{3,4}[-. ]?\\d{4}", "[phone]")):
        scrub = f"regexp_replace({scrub}, '(^|[^0-9]){pattern}([^0-9]|$)', '\\1{token}\\2', 'g')"
    sla = {k: c.sla_hours for k, c in catalog.categories.items()}
    dept = {k: c.department for k, c in catalog.categories.items()}
    maps["cat_info"] = pa.table({"k": list(sla), "sla": [float(v) for v in sla.values()],
                                 "dept": [dept[k] for k in sla]})
    rules = [("source_key IS NULL", "'missing source_key'"), ("category IS NULL", "'missing category'"),
             ("status IS NULL", "'missing status'"), ("created_at IS NULL", "'missing created_at'"),
             *[(f"{c} > TIMESTAMPTZ {q(now)} + INTERVAL 10 MINUTE", f"'{c} in the future'")
               for c in ("created_at", "dispatched_at", "closed_at", "updated_at")],
             ("dispatched_at < created_at", "'dispatched before created'"),
             ("closed_at < created_at", "'closed before created'"),
             ("satisfaction <> round(satisfaction)", "'not a number in satisfaction'"),
             ("satisfaction < 1 OR satisfaction > 5", "'satisfaction outside 1-5'"),
             ("status NOT IN ('received', 'dispatched', 'in_progress', 'closed')",
              "'unknown status ''' || status || ''''"),
             ("(lat IS NULL) <> (lon IS NULL)", "'only one of latitude and longitude given'")]
    rule = "CASE " + " ".join(f"WHEN {c} THEN {r}" for c, r in rules) + " ELSE NULL END"
    sql = f"""
        CREATE TEMP TABLE staged AS
        SELECT row_number() OVER () AS _row,
               r.* EXCLUDE (caller_phone, address, description, department, due_at, satisfaction, _parse_reason),
               CAST(round(satisfaction) AS INTEGER) AS satisfaction,
               {q(feed.id + ':')} || source_key AS incident_id,
               coalesce(department, ci.dept) AS department,
               coalesce(due_at, created_at + to_hours(CAST(ci.sla AS BIGINT))) AS due_at,
               CASE WHEN {digits} <> '' THEN substr({hmac_sql(digits, KEY)}, 1, 24) END AS caller_hash,
               {street} AS address, {scrub} AS description,
               coalesce(_parse_reason, {rule}) AS _reason
        FROM ({staged}) r LEFT JOIN cat_info ci ON ci.k = r.category"""
    return sql, maps


def _strings(series) -> pa.Array:
    return pa.array(series.astype(object).where(series.notna(), None).tolist(), pa.string())


def run_prototype(city: Path, settings: Path) -> dict:
    from core import clock
    from core.schema import DDL
    from core.settings import load_config
    from etl.jobs import pending_files
    from geo import boundaries as geo_boundaries
    from geo.locate import Locator, h3_cells
    config = load_config(settings)
    feed = config.feeds[FEED]
    path = pending_files(config, feed)[0]
    sql, maps = build_sql(path, feed, config.catalog, feed.source.timezone, clock.now(config).isoformat())
    times = {}
    con = duckdb.connect(":memory:")
    started = time.perf_counter()
    floor_rows = con.execute(f"SELECT count(*) FROM read_csv({q(str(path))}, {CSV_OPTIONS})").fetchall()[0][0]
    times["floor"] = time.perf_counter() - started

    db_dir = settings.parent.parent / "proto-db"      # inside the run's temp root, removed with it
    db_dir.mkdir(exist_ok=True)
    con = duckdb.connect(str(db_dir / "proto.duckdb"))
    for statement in DDL:
        con.execute(statement)
    locator = Locator(geo_boundaries.read_all(config.settings.city.boundaries, config.path))
    started = time.perf_counter()
    for name, table in maps.items():
        con.register(name, table)
    con.execute(sql)
    times["sql: read, map, validate, mask"] = time.perf_counter() - started

    started = time.perf_counter()
    coords = con.execute("SELECT lat, lon FROM staged WHERE _reason IS NULL ORDER BY _row").fetchnumpy()
    rows = con.execute("SELECT _row FROM staged WHERE _reason IS NULL ORDER BY _row").fetchnumpy()["_row"]
    lat = np.asarray(coords["lat"].filled(np.nan) if hasattr(coords["lat"], "filled") else coords["lat"], float)
    lon = np.asarray(coords["lon"].filled(np.nan) if hasattr(coords["lon"], "filled") else coords["lon"], float)
    has = ~(np.isnan(lat) | np.isnan(lon))
    inside = np.zeros(len(lat), dtype=bool)
    inside[has] = locator.inside_city(lat[has], lon[has])
    places = locator.assign(lat, lon)
    cells = h3_cells(lat, lon)
    geo = pa.table({"_row": rows, "_outside": has & ~inside,
                    **{c: _strings(places[c]) for c in places.columns},
                    **{c: _strings(cells[c]) for c in cells.columns}})
    con.register("geo", geo)
    times["geo: inside city, sjoin, h3 (python)"] = time.perf_counter() - started

    started = time.perf_counter()
    columns = [c for c in con.execute("SELECT * FROM fct_incident LIMIT 0").description]
    names = [c[0] for c in columns]
    select = ", ".join(f"g.{n}" if n in ("district_id", "street_id", "grid_id", "h3_r7", "h3_r8", "h3_r9")
                       else ("'" + FEED + "' AS feed_id" if n == "feed_id" else ("1 AS run_id" if n == "run_id"
                             else f"s.{n}")) for n in names)
    con.execute("BEGIN TRANSACTION")
    con.execute(f"CREATE TEMP TABLE good AS SELECT {select} FROM staged s JOIN geo g USING (_row) "
                "WHERE NOT g._outside QUALIFY row_number() OVER (PARTITION BY s.incident_id "
                "ORDER BY coalesce(s.updated_at, greatest(s.created_at, s.dispatched_at, s.closed_at)) DESC) = 1")
    con.execute(f"INSERT INTO fct_incident ({', '.join(names)}) SELECT * FROM good")
    con.execute("INSERT OR IGNORE INTO fct_incident_status "
                "SELECT incident_id, 'received', created_at, run_id FROM good WHERE created_at IS NOT NULL UNION ALL "
                "SELECT incident_id, 'dispatched', dispatched_at, run_id FROM good WHERE dispatched_at IS NOT NULL "
                "UNION ALL SELECT incident_id, 'closed', closed_at, run_id FROM good WHERE closed_at IS NOT NULL")
    con.execute("COMMIT")
    times["merge: insert + status history (empty target)"] = time.perf_counter() - started
    counts = con.execute("SELECT (SELECT count(*) FROM staged), (SELECT count(*) FROM staged WHERE _reason IS NOT "
                         "NULL), (SELECT count(*) FROM geo WHERE _outside), (SELECT count(*) FROM fct_incident)"
                         ).fetchall()[0]
    sample = con.execute("SELECT incident_id, category, department, status, created_at, due_at, caller_hash, address, "
                         "description, district_id, h3_r9 FROM fct_incident").df()
    con.close()
    return {"path": str(path), "floor_rows": floor_rows, "times": times,
            "counts": dict(zip(("read", "failed_rules", "outside_city", "inserted"), counts)), "sample": sample}


def main(argv=None) -> int:
    defaults = Params()
    ap = argparse.ArgumentParser(prog="python -m bench.sql_prototype", description=__doc__.split("\n\n")[0])
    ap.add_argument("--incidents", type=int, default=1_000_000)
    ap.add_argument("--sensors", type=int, default=defaults.sensors)
    ap.add_argument("--readings", type=int)
    ap.add_argument("--days", type=int, default=defaults.days)
    ap.add_argument("--service-cases", type=int, default=defaults.service_cases)
    ap.add_argument("--seed", type=int, default=defaults.seed)
    ap.add_argument("--check", action="store_true", help="also load the file with the real ETL and compare rows")
    args = ap.parse_args(argv)
    p = city_params(args)
    city, _ = ensure_city(p)
    root = Path(tempfile.mkdtemp(prefix="proto-", dir=ROOT / "var" / "bench"))
    os.environ["CITYOPS_PII_KEY"] = KEY.decode()
    try:
        settings = write_config(root, city)
        result = run_prototype(city, settings)
        if args.check:
            result["check"] = compare(settings, result)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    t = result["times"]
    floor = t.pop("floor")
    total = sum(t.values())
    print(f"{FEED} prototype on {Path(result['path']).name}: {result['floor_rows']:,} rows; counts {result['counts']}")
    print(f"{'step':<48} {'seconds':>8} {'x floor':>8}")
    print(f"{'floor: SELECT count(*) FROM read_csv':<48} {floor:>8.2f} {1:>7.1f}x")
    for name, seconds in t.items():
        print(f"{name:<48} {seconds:>8.2f} {seconds / floor:>7.1f}x")
    print(f"{'total':<48} {total:>8.2f} {total / floor:>7.1f}x")
    if "check" in result:
        print("check against the real ETL:", json.dumps(result["check"], indent=1))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"sql_prototype-{datetime.now():%Y%m%d-%H%M%S}-i{p.incidents}.json"
    out.write_text(json.dumps({"rows": result["floor_rows"], "floor_s": floor, "steps": t, "total_s": total,
                               "ratio": total / floor, "counts": result["counts"], "check": result.get("check")},
                              indent=1, default=str))
    print(f"results: {out.relative_to(ROOT)}")
    return 0


def compare(settings: Path, result: dict) -> dict:
    """Load the same file with the real ETL and compare column by column on the incidents both kept."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    checked(measured([PYTHON, "-m", "etl", "--config", str(settings), "load", "--feed", FEED, result["path"]], env),
            "etl load")
    warehouse = settings.parent.parent / "var" / "warehouse"
    gen = (warehouse / "published" / "CURRENT").read_text().strip()
    con = duckdb.connect(":memory:")
    real = con.execute(f"SELECT * FROM read_parquet('{warehouse}/published/{gen}/fct_incident.parquet')").df()
    proto = result["sample"]
    both = real.merge(proto, on="incident_id", suffixes=("_etl", "_sql"))
    out = {"etl_rows": len(real), "sql_rows": len(proto), "common": len(both)}
    for col in ("category", "department", "status", "created_at", "due_at", "caller_hash", "address", "description",
                "district_id", "h3_r9"):
        a, b = both[f"{col}_etl"], both[f"{col}_sql"]
        same = (a == b) | (a.isna() & b.isna())
        out[f"{col}_equal"] = float(same.mean()) if len(both) else None
        if len(both) and not same.all():
            i = np.flatnonzero(~same.to_numpy())[0]
            out[f"{col}_example"] = [str(a.iloc[i]), str(b.iloc[i])]
    return out


if __name__ == "__main__":
    sys.exit(main())
