"""Columns the ETL derives from other rows, kept current in the load's transaction, and the schema upgrade that
adds the columns a newer release declares.

fct_incident.previous_same_at: the created_at of the same caller's previous incident of the same category in the
same district. Repeat-complaint KPIs need it; computed by the dashboard it was a window over every incident for
each query (5.8 s at 10M). A load changes it only within the groups (caller, category, district) its incidents
belong to, after the load or before it: only those groups are recomputed, and only rows whose value changed are
written.
"""
from core.schema import ENTITIES, SQL_TYPES

GROUP = ("caller_hash", "category", "district_id")


def moved_groups(con, batch: str, columns: list[str]) -> list[list]:
    """The stored groups of the batch's incidents that the merge will move them out of (a corrected category or
    location; `columns`: those the feed supplies, the only ones a merge overwrites). Read before the merge;
    usually none."""
    compared = [c for c in GROUP if c in columns]
    rows = con.execute(f"""SELECT DISTINCT {', '.join('t.' + c for c in GROUP)}
        FROM fct_incident t JOIN {batch} b USING (incident_id)
        WHERE t.caller_hash IS NOT NULL
          AND ({' OR '.join(f't.{c} IS DISTINCT FROM b.{c}' for c in compared)})""").fetchall() if compared else []
    return [list(column) for column in zip(*rows)] if rows else [[], [], []]


def refresh_previous_same(con, batch: str | None = None, moved: list[list] | None = None) -> int:
    """After a merge: recompute previous_same_at in the groups the batch's incidents are in now and the `moved`
    ones they left, and clear it where a batch incident has no caller; batch None: every group. Returns the rows
    changed."""
    within, params = "", []
    if batch is not None:
        cols = ", ".join(GROUP)
        # The batch's incidents as stored now (a feed that maps no phone leaves the stored caller in place).
        within = f"""SEMI JOIN (SELECT {cols} FROM fct_incident SEMI JOIN {batch} USING (incident_id)
                               WHERE caller_hash IS NOT NULL
                               UNION SELECT unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), unnest(?::VARCHAR[])) g
                     ON i.caller_hash = g.caller_hash AND i.category = g.category
                    AND i.district_id IS NOT DISTINCT FROM g.district_id"""
        params = moved or [[], [], []]
    changed = con.execute(f"""UPDATE fct_incident f SET previous_same_at = x.previous
        FROM (SELECT i.incident_id, lag(i.created_at) OVER (PARTITION BY {', '.join('i.' + c for c in GROUP)}
                                                           ORDER BY i.created_at, i.incident_id) AS previous
              FROM fct_incident i {within} WHERE i.caller_hash IS NOT NULL) x
        WHERE f.incident_id = x.incident_id AND f.previous_same_at IS DISTINCT FROM x.previous""",
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
