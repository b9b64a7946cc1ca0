"""Columns the ETL derives from other rows, kept current in the load's transaction, and the schema upgrade that
adds the columns a newer release declares.

fct_incident.previous_same_at: the created_at of the same caller's previous incident of the same category in the
same district. Repeat-complaint KPIs need it; computed by the dashboard it was a window over every incident for
each query (5.8 s at 10M). A load can change it only for the callers of the incidents it merges (as stored
before the load and as read): only their incidents are recomputed, and only rows whose value changed are written.
"""
from core.schema import ENTITIES, SQL_TYPES

GROUP = ("caller_hash", "category", "district_id")
INPUTS = (*GROUP, "created_at", "incident_id")


def callers(con, batch: str, columns: list[str]) -> list[str]:
    """The callers whose incidents a merge of `batch` (one row per incident) can reorder: those of the batch's
    incidents as stored (before the merge overwrites them) and as read (`columns`: those the feed supplies; one
    that maps no phone leaves the stored caller). Their groups are all recomputed after the merge: a caller has few
    incidents, and one key column is far cheaper to match than a group (5.3 s against 2.0 s at 10M, loaded)."""
    read = f" UNION SELECT caller_hash FROM {batch}" if "caller_hash" in columns else ""
    return [r[0] for r in con.execute(
        f"SELECT DISTINCT caller_hash FROM (SELECT t.caller_hash FROM fct_incident t SEMI JOIN {batch} b "
        f"USING (incident_id)"
        f"{read}) WHERE caller_hash IS NOT NULL").fetchall()]


def previous_same_sql(source: str, key: str, within: str = "") -> str:
    """`key` and previous_same_at for the incidents of `source` that have a caller (the others have none)."""
    return (f"SELECT {key}, lag(created_at) OVER (PARTITION BY {', '.join(GROUP)} ORDER BY created_at, incident_id) "
            f"AS previous_same_at FROM {source} WHERE caller_hash IS NOT NULL {within}")


def refresh_previous_same(con, batch: str | None = None, callers: list[str] | None = None) -> int:
    """After a merge: recompute previous_same_at for every incident of `callers`, and clear it where a batch
    incident has no caller; batch None: every incident. Returns the rows changed."""
    within, params = "", []
    if batch is not None:
        within, params = "AND caller_hash IN (SELECT unnest(?::VARCHAR[]))", [callers or []]
    changed = con.execute(f"""UPDATE fct_incident f SET previous_same_at = x.previous_same_at
        FROM ({previous_same_sql('fct_incident', 'incident_id', within)}) x
        WHERE f.incident_id = x.incident_id AND f.previous_same_at IS DISTINCT FROM x.previous_same_at""",
                          params).fetchall()[0][0]
    only = "" if batch is None else f"AND incident_id IN (SELECT incident_id FROM {batch})"
    return changed + con.execute("UPDATE fct_incident SET previous_same_at = NULL "
                                 f"WHERE caller_hash IS NULL AND previous_same_at IS NOT NULL {only}").fetchall()[0][0]


def upgrade(con) -> set[str]:
    """Add the columns the schema declares that an older warehouse's tables lack, filling the derived ones, in one
    transaction. Returns the tables changed (they must be published again)."""
    present = set(con.execute("SELECT table_name, column_name FROM duckdb_columns() "
                              "WHERE database_name = current_database()").fetchall())
    missing = [(e.table, c) for e in ENTITIES.values() for c in e.columns
               if c.name != "caller_phone" and (e.table, c.name) not in present]
    if not missing:
        return set()
    con.execute("BEGIN TRANSACTION")
    for table, column in missing:
        con.execute(f"ALTER TABLE {table} ADD COLUMN {column.name} {SQL_TYPES[column.type]}")
    if any(t == "fct_incident" and c.name == "previous_same_at" for t, c in missing):
        refresh_previous_same(con)
    con.execute("COMMIT")
    return {table for table, _ in missing}
