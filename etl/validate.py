"""Record checks after mapping: the rules a canonical record must satisfy to enter the warehouse."""
import copy
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from core.schema import ENTITIES
from etl.transform import Reasons, texts_at

FUTURE_TOLERANCE = timedelta(minutes=10)    # clocks of source systems drift a little


def check(frame: pd.DataFrame, entity_name: str, context, reasons: Reasons) -> None:
    entity = ENTITIES[entity_name]
    for column in entity.columns:
        if column.required and column.name in frame.columns:
            reasons.add(frame[column.name].isna(), f"missing {column.name}")
    horizon = pd.Timestamp(context.now + FUTURE_TOLERANCE)
    for column in entity.columns:
        if column.type == "timestamp" and column.name in frame.columns and column.name != "due_at" \
                and column.name != "deadline_at":
            reasons.add(frame[column.name] > horizon, f"{column.name} in the future")
    RULES[entity_name](frame, context, reasons)
    if entity.located:
        _coordinates(frame, context.locator, reasons)


def _incidents(frame, context, reasons):
    created = frame["created_at"]
    for later in ("dispatched_at", "closed_at"):
        if later in frame.columns:
            reasons.add(frame[later] < created, f"{later.removesuffix('_at')} before created")
    if "satisfaction" in frame.columns:
        s = frame["satisfaction"]
        reasons.add(s.notna() & ((s < 1) | (s > 5)), "satisfaction outside 1-5")
    statuses = {"received", "dispatched", "in_progress", "closed"}
    reasons.add(frame["status"].notna() & ~frame["status"].isin(statuses),
                lambda rows: "unknown status '" + texts_at(frame["status"], rows) + "'")


def _service_cases(frame, context, reasons):
    if "decided_at" in frame.columns:
        reasons.add(frame["decided_at"] < frame["submitted_at"], "decided before submitted")
    reasons.add(frame["channel"].notna() & ~frame["channel"].isin(["online", "offline"]),
                lambda rows: "unknown channel '" + texts_at(frame["channel"], rows) + "' (expected online or offline)")


def _sensors(frame, context, reasons):
    metrics = context.catalog.thresholds.metrics
    reasons.add(frame["metric"].notna() & ~frame["metric"].isin(list(metrics)),
                lambda rows: "unknown metric '" + texts_at(frame["metric"], rows) + "'")


def _readings(frame, context, reasons):
    sensor = context.sensor_index(frame["sensor_id"])
    reasons.add(frame["sensor_id"].notna().to_numpy() & (sensor < 0),
                lambda rows: "unknown sensor '" + texts_at(frame["sensor_id"], rows) + "'")
    ok = frame["status"].fillna("ok").eq("ok") if "status" in frame.columns else pd.Series(True, index=frame.index)
    low, high = context.valid_range(sensor)
    value = frame["value"]
    reasons.add(ok & value.isna(), "missing value for a reading with status ok")
    reasons.add(ok & ((value < low) | (value > high)), "value outside the metric's valid range")


def _coordinates(frame, locator, reasons):
    if "lat" not in frame.columns or "lon" not in frame.columns:
        return
    lat, lon = frame["lat"].to_numpy(float), frame["lon"].to_numpy(float)
    has_lat, has_lon = ~np.isnan(lat), ~np.isnan(lon)
    reasons.add(has_lat ^ has_lon, "only one of latitude and longitude given")
    both = has_lat & has_lon
    in_range = both & (np.abs(lat) <= 90) & (np.abs(lon) <= 180)
    inside = np.zeros(len(lat), dtype=bool)
    inside[in_range] = locator.inside_city(lat[in_range], lon[in_range])
    swapped = np.zeros(len(lat), dtype=bool)
    flip = both & ~inside & (np.abs(lon) <= 90)
    swapped[flip] = locator.inside_city(lon[flip], lat[flip])
    reasons.add(swapped, "coordinates swapped (latitude and longitude exchanged)")
    reasons.add(both & ~inside, "coordinates outside the city")


def _places(frame, context, reasons):
    reasons.add(frame["kind"].notna() & ~frame["kind"].astype(str).str.fullmatch(r"[a-z][a-z0-9_]{0,40}"),
                lambda rows: "kind '" + texts_at(frame["kind"], rows) + "' is not a code (a-z, 0-9, _)")


RULES = {"incidents": _incidents, "service_cases": _service_cases, "sensors": _sensors,
         "sensor_readings": _readings, "places": _places}


class Context:
    """What validation needs to know beyond the record: now, the city outline, known sensors, thresholds."""

    def __init__(self, now: datetime, locator, catalog, con):
        self.now = now
        self.locator = locator
        self.catalog = catalog
        self._con = con
        self._sensors = None
        self._sensor_ids = None      # the register's ids as an Arrow array, for index_in
        self._ranges = None          # (low, high) per register row, unknown last

    def detached(self) -> "Context":
        """This context without its connection, the sensor register read now: it can go to another process."""
        self._sensor_table()
        detached = copy.copy(self)
        detached._con = None
        return detached

    def _sensor_table(self) -> pd.DataFrame:
        if self._sensors is None:
            self._sensors = self._con.execute("SELECT sensor_id, metric FROM dim_sensor").df()
        return self._sensors

    def sensor_index(self, sensor_ids: pd.Series) -> np.ndarray:
        """Each reading's row in the sensor register, -1 for an unknown sensor (exact match, in Arrow)."""
        if self._sensor_ids is None:
            self._sensor_ids = pa.array(self._sensor_table()["sensor_id"].astype(str), pa.large_string())
        found = pc.index_in(pa.array(sensor_ids, pa.large_string()), value_set=self._sensor_ids)
        return pc.fill_null(found, -1).to_numpy(zero_copy_only=False).astype(np.int64)

    def valid_range(self, sensor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The valid (low, high) of each reading's metric, by sensor_index; unbounded for unknown sensors or
        metrics without a range."""
        if self._ranges is None:
            metrics = self.catalog.thresholds.metrics
            metric = pd.concat([self._sensor_table()["metric"], pd.Series([None])], ignore_index=True)  # last: unknown

            def bound(end: int, unbounded: float) -> np.ndarray:
                return metric.map({k: m.valid[end] for k, m in metrics.items()}).astype(float) \
                    .fillna(unbounded).to_numpy()
            self._ranges = (bound(0, -np.inf), bound(1, np.inf))
        low, high = self._ranges
        row = np.where(sensor < 0, len(low) - 1, sensor)
        return low[row], high[row]
