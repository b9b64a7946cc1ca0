"""Merging valid canonical records into the writer database, idempotently, in SQL.

Rules by entity:
- incidents: a record replaces the stored one only when its version (updated_at, else the latest of its
  event times) is newer; every version read adds its events to the status history (each event once).
- sensor readings: (sensor_id, ts) is the key; a repeat is merged, a late row lands in place.
- service cases and sensors: a record replaces the stored one when any field differs.
Within one load, one row per key takes part: the newest version for incidents, else the last row read.
Counts returned: inserted, updated, merged (duplicates within the load, unchanged or older versions).

A load stages its rows first (etl/staging.py) and merges them here in its final transaction; `merge` does the same
for a frame (replay, tests).
"""
import pandas as pd

from core.schema import ENTITIES
from etl import derived
from etl.staging import SEQ

LINEAGE = ("feed_id", "run_id")
VERSION_TIMES = ("updated_at", "created_at", "dispatched_at", "closed_at")   # what incident versions compare


def _version(alias: str) -> str:
    return (f"coalesce({alias}.updated_at, greatest({alias}.created_at, {alias}.dispatched_at, "
            f"{alias}.closed_at))")


def merge(con, frame: pd.DataFrame, entity_name: str) -> dict[str, int]:
    """Merge a frame of valid records (registered, so only for small frames or inside short transactions)."""
    frame = with_version_times(frame, entity_name)
    columns = [c for c in ENTITIES[entity_name].column_names() if c in frame.columns]
    rows = frame[columns].assign(**{SEQ: range(len(frame))})
    con.register("merge_rows", rows)
    try:
        return merge_staged(con, "merge_rows", f"({dedupe_sql('merge_rows', entity_name)})", entity_name, columns,
                            f"({repeated_sql('merge_rows', entity_name)})")
    finally:
        con.unregister("merge_rows")


def with_version_times(frame: pd.DataFrame, entity_name: str) -> pd.DataFrame:
    """A feed need not map every event time; versions compare what there is."""
    if entity_name == "incidents":
        for name in VERSION_TIMES:
            if name not in frame.columns:
                frame[name] = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[us, UTC]")
    return frame


def dedupe_sql(source: str, entity_name: str) -> str:
    """One row per key of `source`: the newest version for incidents (ties: the last read), else the last read."""
    return f"SELECT * FROM {source} s QUALIFY {_rank(entity_name)} = 1"


def repeated_sql(source: str, entity_name: str) -> str:
    """The keys of `source` read more than once: only their rows need ranking or de-duplicating."""
    return f"SELECT {', '.join(ENTITIES[entity_name].key)} FROM {source} GROUP BY ALL HAVING count(*) > 1"


def superseded_sql(source: str, repeated: str, entity_name: str) -> str:
    """The read order (SEQ, unique in a file) of the rows of `source` that dedupe_sql would drop. Only keys read
    more than once (`repeated`) are ranked: a window over every row of a big file would cost a full sort."""
    key = ", ".join(ENTITIES[entity_name].key)
    return (f"SELECT {SEQ} FROM (SELECT s.{SEQ}, {_rank(entity_name)} AS rank FROM {source} s "
            f"SEMI JOIN {repeated} d USING ({key})) WHERE rank > 1")


def _rank(entity_name: str) -> str:
    order = f"{_version('s')} DESC NULLS FIRST, s.{SEQ} DESC" if entity_name == "incidents" else f"s.{SEQ} DESC"
    partition = ", ".join(f"s.{k}" for k in ENTITIES[entity_name].key)
    return f"row_number() OVER (PARTITION BY {partition} ORDER BY {order})"


def merge_staged(con, rows: str, batch: str, entity_name: str, columns: list[str], repeated: str) -> dict[str, int]:
    """Merge `batch` (one row per key, dedupe_sql) into the entity's table; `rows` holds every valid row read
    (duplicates included: their count and, for incidents, their events), `repeated` its keys read more than once
    (repeated_sql). `columns`: those the feed supplies; the others are left as stored."""
    entity = ENTITIES[entity_name]
    table, key = entity.table, list(entity.key)
    join = " AND ".join(f"t.{k} = b.{k}" for k in key)
    newer = _newer(entity_name, columns)
    total = _count(con, f"SELECT count(*) FROM {rows}")
    counts = {"inserted": _count(con, f"SELECT count(*) FROM {batch} b ANTI JOIN {table} t ON {join}"),
              "updated": _count(con, f"SELECT count(*) FROM {batch} b JOIN {table} t ON {join} WHERE {newer}")
              if newer != "false" else 0}
    counts["merged"] = total - counts["inserted"] - counts["updated"]
    empty = entity_name == "incidents" and not _count(con, f"SELECT count(*) FROM (SELECT 1 FROM {table} LIMIT 1)")
    if entity_name == "incidents":
        _history(con, rows, repeated)
        callers = None if empty else derived.callers(con, batch, columns)
    names = ", ".join(columns)
    values = ", ".join(f"b.{c}" for c in columns)
    if empty and set(derived.INPUTS) <= set(columns):
        # A first load writes previous_same_at with the rows: updating every row after the insert cost more than
        # the insert itself (and most of the COMMIT: updates go through the WAL), 12 against 21 s at 10M.
        con.execute(f"INSERT INTO {table} ({names}, previous_same_at) SELECT {values}, p.previous_same_at "
                    f"FROM {batch} b LEFT JOIN ({derived.previous_same_sql(batch, SEQ)}) p USING ({SEQ})")
        return counts
    if counts["updated"]:
        assignments = ", ".join(f"{c} = b.{c}" for c in columns if c not in key)
        con.execute(f"UPDATE {table} t SET {assignments} FROM {batch} b WHERE {join} AND {newer}")
    if counts["inserted"]:
        con.execute(f"INSERT INTO {table} ({names}) SELECT {values} FROM {batch} b ANTI JOIN {table} t ON {join}")
    if entity_name == "incidents":
        derived.refresh_previous_same(con, None if empty else batch, callers)
    return counts


def _newer(entity_name: str, columns: list[str]) -> str:
    if entity_name == "incidents":
        return f"{_version('b')} > {_version('t')}"
    compared = [c for c in columns if c not in LINEAGE and c not in ENTITIES[entity_name].key]
    if entity_name == "sensor_readings" or not compared:
        return "false"
    return "(" + " OR ".join(f"b.{c} IS DISTINCT FROM t.{c}" for c in compared) + ")"


EVENTS = (("'received'", "created_at", "created_at IS NOT NULL"),
          ("'dispatched'", "dispatched_at", "dispatched_at IS NOT NULL"),
          ("'closed'", "closed_at", "closed_at IS NOT NULL"),
          ("status", "coalesce(updated_at, created_at)", "status NOT IN ('received', 'dispatched', 'closed')"))


def _history(con, rows: str, repeated: str) -> None:
    def events(join: str) -> str:
        return " UNION ALL ".join(f"SELECT incident_id, {status} AS status, {time} AS changed_at, run_id "
                                  f"FROM {rows} r {join} WHERE {where}" for status, time, where in EVENTS)
    # One row per (incident, status, time). Versions of a case read in one load repeat events: only incidents read
    # more than once can, and only theirs are de-duplicated (DISTINCT over every event cost 6 s at 10M; the rest
    # takes 3 s). A later load repeats stored ones (ANTI JOIN). No index enforces it: this is what keeps it unique.
    once = events(f"ANTI JOIN {repeated} d USING (incident_id)")
    again = events(f"SEMI JOIN {repeated} d USING (incident_id)")
    con.execute(f"""INSERT INTO fct_incident_status
        SELECT e.* FROM ({once} UNION ALL SELECT DISTINCT * FROM ({again})) e
        ANTI JOIN fct_incident_status s
          ON s.incident_id = e.incident_id AND s.status = e.status AND s.changed_at = e.changed_at
        WHERE e.changed_at IS NOT NULL""")


def _count(con, sql: str) -> int:
    return con.execute(sql).fetchall()[0][0]
