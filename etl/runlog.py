"""Reading the run log and quarantine back, from the published generation (never blocking a running load)."""
import pandas as pd

from core.warehouse import NoData, Reader


def _reader(config) -> Reader:
    return Reader(config.warehouse_dir, config.settings.city.timezone)


def runs(config, limit: int) -> pd.DataFrame:
    try:
        return _reader(config).df(
            "SELECT run_id, feed_id, regexp_extract(file, '[^/]+$') AS file, status, started_at, rows_read, "
            "rows_inserted, rows_updated, rows_merged, rows_quarantined, round(duration_s, 2) AS seconds "
            "FROM etl_run ORDER BY run_id DESC LIMIT ?", [limit])
    except NoData:
        return pd.DataFrame({"message": ["nothing published yet"]})


def quarantine(config, feed_id: str | None, limit: int, reason: str | None = None) -> pd.DataFrame:
    try:
        return _reader(config).df(
            "SELECT feed_id, regexp_extract(file, '[^/]+$') AS file, line, record_key, reason FROM etl_quarantine "
            "WHERE (?::VARCHAR IS NULL OR feed_id = ?) "
            "AND (?::VARCHAR IS NULL OR contains(lower(reason), lower(?::VARCHAR))) "
            "ORDER BY feed_id, file, line LIMIT ?", [feed_id, feed_id, reason, reason, limit])
    except NoData:
        return pd.DataFrame({"message": ["nothing published yet"]})
