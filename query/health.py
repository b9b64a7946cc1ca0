"""What /healthz reports: the published generation and each feed's last load."""
from datetime import datetime, timedelta

from query import store


def feeds_status(now: datetime) -> dict:
    config = store.config()
    generation = store.reader().current()
    rows = []
    if generation:
        rows = store.reader().rows("""
            SELECT feed_id, max(finished_at) FILTER (WHERE status = 'ok'), arg_max(status, run_id),
                   sum(rows_read) FILTER (WHERE status = 'ok')
            FROM etl_run GROUP BY feed_id""")
    runs = {r[0]: r for r in rows}
    feeds = {}
    for feed_id, feed in sorted(config.feeds.items()):
        _, last_ok, last_status, rows_read = runs.get(feed_id, (feed_id, None, None, None))
        stale = last_ok is None or now - last_ok > timedelta(minutes=feed.source.expected_every_minutes)
        feeds[feed_id] = {"last_load": last_ok.isoformat() if last_ok else None, "last_status": last_status,
                          "rows_loaded": int(rows_read or 0), "stale": bool(stale),
                          "expected_every_minutes": feed.source.expected_every_minutes}
    return {"status": "ok" if generation else "empty", "generation": generation, "feeds": feeds}
