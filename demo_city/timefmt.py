"""Time handling: all internal times are int64 seconds of *local* wall time
(Asia/Shanghai, fixed UTC+8, no DST) counted from 1970-01-01 00:00 local."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np

LOCAL_TZ = timezone(timedelta(hours=8))
HOUR = 3600
DAY = 86400


def parse_end(text: str) -> int:
    """ISO timestamp (any offset; naive means local) -> local seconds."""
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is not None:
        dt = dt.astimezone(LOCAL_TZ).replace(tzinfo=None)
    return int((dt - datetime(1970, 1, 1)).total_seconds())


def iso_local(sec: int) -> str:
    """Single timestamp as ISO 8601 with +08:00."""
    return (datetime(1970, 1, 1) + timedelta(seconds=int(sec))).isoformat() + "+08:00"


def _as_u19(sec: np.ndarray) -> np.ndarray:
    s = np.datetime_as_string(np.asarray(sec, dtype="int64").astype("datetime64[s]"), unit="s")
    return s.astype("U19")


def local_strings(sec: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """'YYYY-MM-DD HH:MM:SS' object array; '' where not valid."""
    u = _as_u19(sec)
    u.view(np.uint32).reshape(-1, 19)[:, 10] = ord(" ")
    out = u.astype(object)
    if valid is not None:
        out[~valid] = ""
    return out


def iso_strings(sec: np.ndarray) -> np.ndarray:
    """ISO 8601 with '+08:00' as an object array."""
    return np.strings.add(_as_u19(sec), "+08:00").astype(object)


def parse_local(texts) -> np.ndarray:
    """'YYYY-MM-DD HH:MM:SS' strings -> local seconds (int64); '' -> -1."""
    arr = np.asarray(texts, dtype=object)
    out = np.full(len(arr), -1, dtype=np.int64)
    ok = arr != ""
    if ok.any():
        out[ok] = np.array(arr[ok].astype(str), dtype="datetime64[s]").astype(np.int64)
    return out


def hour_of_day(sec: np.ndarray) -> np.ndarray:
    return (sec // HOUR) % 24


def day_of_week(sec: np.ndarray) -> np.ndarray:
    """0 = Monday (1970-01-01 was a Thursday)."""
    return (sec // DAY + 3) % 7


def day_of_year(sec: np.ndarray) -> np.ndarray:
    """Approximate day of year (0-based); good enough for seasonal curves."""
    d = np.asarray(sec, dtype="int64").astype("datetime64[s]").astype("datetime64[D]")
    y = d.astype("datetime64[Y]")
    return (d - y).astype(np.int64)
