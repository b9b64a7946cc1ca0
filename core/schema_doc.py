"""Render docs/SCHEMA.md from core/schema.py, so the document cannot drift: `python -m core.schema_doc`."""
import sys
from pathlib import Path

from core.schema import ADMIN_LEVELS, ENTITIES, SQL_TYPES

INTRO = """# The canonical warehouse schema

Generated from `core/schema.py` by `python -m core.schema_doc` (a test checks it is current).

Every feed maps onto these tables; the dashboard reads them from the published Parquet generation
(`var/warehouse/published/gen-NNNNNN/<table>.parquet`; fact tables as `<table>/month=YYYY-MM/*.parquet`),
never from the ETL's database.

- Times are `TIMESTAMPTZ`: instants. Feeds give local times (their `source.timezone`) or offsets; readers
  see them in the city's timezone (`city.timezone`).
- Ids are stable across reloads: an incident's id is `<feed id>:<the feed's case number>`; other ids are the
  source's own. Reloading a file changes nothing; a later version of a record replaces the stored one.
- Personal data never enters: names are dropped, phone numbers become `caller_hash` (keyed HMAC-SHA256),
  addresses are cut to street level, free text loses phone and ID-card numbers (etl/mask.py). The same
  masking applies to the raw records kept in quarantine.
"""


def render() -> str:
    out = [INTRO]
    for entity in ENTITIES.values():
        out.append(f"## `{entity.table}` ({entity.name})\n\n{entity.doc}\n"
                   f"{'Primary key' if entity.key_index else 'Key (unique as merged, no index)'}: "
                   f"`{', '.join(entity.key)}`.\n\n| column | type | required | from feeds | meaning |\n|---|---|---|---|---|")
        for c in entity.columns:
            if c.name == "caller_phone":
                continue
            out.append(f"| `{c.name}` | {SQL_TYPES[c.type]} | {'yes' if c.required else ''} | "
                       f"{'mapped' if c.mappable else 'derived'} | {c.doc} |")
        out.append("")
    out.append("""## `fct_incident_status`

The status history of each incident: one row per (incident, status, time). Built from every version of a
record the ETL has seen: `received` at `created_at`, `dispatched` at `dispatched_at`, `closed` at `closed_at`,
and any other status (`in_progress`) at `updated_at`. Re-reading a version adds nothing (each event is stored once).

| column | type | meaning |
|---|---|---|
| `incident_id` | VARCHAR | the incident |
| `status` | VARCHAR | received, dispatched, in_progress, closed |
| `changed_at` | TIMESTAMPTZ | when it entered that status |
| `run_id` | INTEGER | ETL run that first saw it |
""")
    out.append("## The administrative hierarchy\n\n"
               + " > ".join(f"`dim_{level}`" for level in ADMIN_LEVELS)
               + """ (city > district > street (街道) > grid cell (网格)).

| column | type | meaning |
|---|---|---|
| `<level>_id` | VARCHAR | the boundary file's id property |
| parent ids | VARCHAR | `city_id` / `district_id` / `street_id`: the unit containing this one's representative point |
| `name_en`, `name_zh` | VARCHAR | names (the id when the file has none) |
| `area_km2` | DOUBLE | area, computed in an equal-area projection |
| `centroid_lat`, `centroid_lon` | DOUBLE | a point inside the unit (for labels and fly-to) |
| `geometry_wkb` | BLOB | exact geometry, WGS84, repaired with make_valid when the source is invalid |
| `geojson_simplified` | VARCHAR | simplified (~40 m) GeoJSON for the browser |
""")
    out.append("""## ETL bookkeeping

`etl_run`: one row per file load (and per boundary load, and per quarantine replay with `feed_id = replay:<feed>`): `run_id, feed_id, file, file_sha256, started_at,
finished_at, status (running, ok, failed, aborted), rows_read, rows_inserted, rows_updated, rows_merged,
rows_quarantined, duration_s, pid, error`. Row accounting holds for every ok run:
`rows_read = rows_inserted + rows_updated + rows_merged + rows_quarantined`.

`etl_quarantine`: every record that failed a check: `run_id, feed_id, file, line` (CSV: physical line, header = 1;
JSON: array index), `record_key, reason, raw_json` (the source record, masked).
""")
    return "\n".join(out)


def main() -> int:
    target = Path(__file__).resolve().parent.parent / "docs" / "SCHEMA.md"
    target.write_text(render(), encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
