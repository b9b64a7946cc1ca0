"""Loading the administrative hierarchy (city > district > street > grid) into the dim_ tables."""
import hashlib

from core.schema import ADMIN_LEVELS
from geo import boundaries as geo_boundaries

FEED_ID = "boundaries"


def load(con, config, levels) -> dict[str, int] | None:
    """Replace the dim_ tables when the boundary files changed; returns rows per level, None if unchanged."""
    specs = config.settings.city.boundaries
    digest = hashlib.sha256()
    for name in ADMIN_LEVELS:
        if name in specs:
            for path in geo_boundaries.source_files(config.path(specs[name].path)):
                digest.update(path.read_bytes())
    sha = digest.hexdigest()
    seen = con.execute("SELECT count(*) FROM etl_run WHERE feed_id = ? AND file_sha256 = ? AND status = 'ok'",
                       [FEED_ID, sha]).fetchall()[0][0]
    if seen:
        return None
    run_id = con.execute("SELECT nextval('etl_run_seq')").fetchall()[0][0]
    con.execute("BEGIN TRANSACTION")
    counts = {}
    parent = None
    for name in ADMIN_LEVELS:
        level = levels.get(name)
        if level is None:
            continue
        rows = geo_boundaries.describe(level, parent)
        rows["run_id"] = run_id
        counts[name] = len(rows)
        con.execute(f"DELETE FROM dim_{name}")
        con.register("level_rows", rows)
        con.execute(f"INSERT INTO dim_{name} BY NAME SELECT * FROM level_rows")
        con.unregister("level_rows")
        parent = level
    _fill_grandparents(con)
    repaired = sum(level.repaired for level in levels.values())
    con.execute("INSERT INTO etl_run (run_id, feed_id, file, file_sha256, started_at, finished_at, status, rows_read, "
                "rows_inserted, rows_updated, rows_merged, rows_quarantined, error) "
                "VALUES (?, ?, ?, ?, now(), now(), 'ok', ?, ?, 0, 0, 0, ?)",
                [run_id, FEED_ID, ",".join(str(config.path(specs[n].path)) for n in ADMIN_LEVELS if n in specs), sha,
                 sum(counts.values()), sum(counts.values()),
                 f"{repaired} invalid geometries repaired" if repaired else None])
    con.execute("COMMIT")
    return counts


def _fill_grandparents(con) -> None:
    """Grid cells know their street; their district follows from it."""
    con.execute("UPDATE dim_grid g SET district_id = s.district_id FROM dim_street s WHERE g.street_id = s.street_id")
