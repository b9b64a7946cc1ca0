"""Merging a batch of valid canonical records into the writer database, idempotently.

Rules by entity:
- incidents: a record replaces the stored one only when its version (updated_at, else the latest of its
  event times) is newer; every version adds its events to the status history (primary key ignores repeats).
- sensor readings: (sensor_id, ts) is the key; a repeat is merged, a late row lands in place.
- service cases and sensors: a record replaces the stored one when any field differs.
Counts returned: inserted, updated, merged (duplicates within the batch, unchanged or older versions).
"""
import pandas as pd

from core.schema import ENTITIES

LINEAGE = ("feed_id", "run_id")
VERSION_TIMES = ("updated_at", "created_at", "dispatched_at", "closed_at")   # what incident versions compare


def _version(alias: str) -> str:
    return (f"coalesce({alias}.updated_at, greatest({alias}.created_at, {alias}.dispatched_at, "
            f"{alias}.closed_at))")


def merge(con, frame: pd.DataFrame, entity_name: str) -> dict[str, int]:
    entity = ENTITIES[entity_name]
    if entity_name == "incidents":     # a feed need not map every event time; versions compare what there is
        for name in VERSION_TIMES:
            if name not in frame.columns:
                frame[name] = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[us, UTC]")
    columns = [c for c in entity.column_names() if c in frame.columns]
    key = list(entity.key)
    before = len(frame)
    frame = _dedupe(frame, entity_name, key)
    counts = {"merged": before - len(frame)}
    con.register("batch", frame[columns])
    try:
        join = " AND ".join(f"t.{k} = b.{k}" for k in key)
        table = entity.table
        counts["inserted"] = _count(con, f"SELECT count(*) FROM batch b ANTI JOIN {table} t ON {join}")
        newer = _newer(entity_name, columns)
        counts["updated"] = _count(con, f"SELECT count(*) FROM batch b JOIN {table} t ON {join} WHERE {newer}")
        counts["merged"] += len(frame) - counts["inserted"] - counts["updated"]
        if entity_name == "incidents":
            _history(con)
        names = ", ".join(columns)
        assignments = ", ".join(f"{c} = b.{c}" for c in columns if c not in key)
        con.execute(f"UPDATE {table} t SET {assignments} FROM batch b WHERE {join} AND {newer}")
        con.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM batch b ANTI JOIN {table} t ON {join}")
    finally:
        con.unregister("batch")
    return counts


def _dedupe(frame: pd.DataFrame, entity_name: str, key: list[str]) -> pd.DataFrame:
    """Within one batch keep one row per key: the newest version for incidents, else the last row read."""
    if entity_name == "incidents":
        version = frame["updated_at"].fillna(frame[["created_at", "dispatched_at", "closed_at"]].max(axis=1))
        order = frame.assign(_v=version).sort_values("_v", kind="stable").index
        frame = frame.loc[order]
    return frame[~frame.duplicated(key, keep="last")]


def _newer(entity_name: str, columns: list[str]) -> str:
    if entity_name == "incidents":
        return f"{_version('b')} > {_version('t')}"
    compared = [c for c in columns if c not in LINEAGE and c not in ENTITIES[entity_name].key]
    if entity_name == "sensor_readings":
        return "false"
    return "(" + " OR ".join(f"b.{c} IS DISTINCT FROM t.{c}" for c in compared) + ")"


def _history(con) -> None:
    events = " UNION ALL ".join(
        f"SELECT incident_id, '{status}' AS status, {column} AS changed_at, run_id FROM batch WHERE {column} IS NOT NULL"
        for status, column in (("received", "created_at"), ("dispatched", "dispatched_at"), ("closed", "closed_at")))
    current = ("SELECT incident_id, status, coalesce(updated_at, created_at), run_id FROM batch "
               "WHERE status NOT IN ('received', 'dispatched', 'closed')")
    con.execute(f"INSERT OR IGNORE INTO fct_incident_status {events} UNION ALL {current}")


def _count(con, sql: str) -> int:
    return con.execute(sql).fetchall()[0][0]
