"""What happens to one chunk of a file's records: mapped onto canonical columns, checked, masked and located.
Pure: a chunk's result depends on the chunk and the job alone, so chunks can be worked on in other processes."""
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa

from core.schema import ENTITIES
from etl import mask, merge, staging, transform, validate


@dataclass
class Checked:
    """A chunk's outcome: its rows ready to stage (as Arrow, the form DuckDB scans fastest and workers send without
    pickling), its quarantine entries, and how many records it read."""
    rows: pa.Table
    quarantine: pd.DataFrame
    read: int
    quarantined: int


@dataclass
class ChunkJob:
    """Everything a chunk's work needs, and nothing tied to the writer connection: a job can be sent to a worker
    process (etl/workers.py) as it is."""
    config: object
    feed: object
    path: Path
    context: validate.Context        # detached (no connection)
    key: bytes
    run_id: int

    def run(self, raw: pd.DataFrame, first: bool = False) -> Checked:
        """Map, check, mask and locate one chunk of raw records; `first`: the file's first chunk, whose columns
        are checked against the mapping."""
        config, feed, path = self.config, self.feed, self.path
        if first:
            transform.check_columns(raw, feed, path)
        raw = raw.reset_index(drop=True)
        reasons = transform.Reasons(len(raw))
        reasons.add(raw["_error"].notna(), raw["_error"])
        frame = transform.to_canonical(raw, feed, config.catalog, feed.source.timezone, reasons)
        validate.check(frame, feed.entity, self.context, reasons)
        failed = reasons.failed().to_numpy()
        quarantine = _quarantine(feed, path, raw[failed], reasons.values[failed], self.key, self.run_id)
        good = frame[~failed].reset_index(drop=True)
        good = mask.apply(good, feed.personal, self.key)
        good = derive(good, feed, config, self.context.locator)
        good[staging.SEQ] = raw["_line"].to_numpy()[~failed]
        rows = pa.Table.from_pandas(merge.with_version_times(good, feed.entity), preserve_index=False)
        return Checked(rows, quarantine, len(raw), int(failed.sum()))


def derive(frame: pd.DataFrame, feed, config, locator) -> pd.DataFrame:
    entity = ENTITIES[feed.entity]
    if feed.entity == "incidents":
        frame["incident_id"] = feed.id + ":" + frame["source_key"].astype(str)
        sla = frame["category"].map({k: c.sla_hours for k, c in config.catalog.categories.items()})
        default_due = frame["created_at"] + pd.to_timedelta(sla, unit="h")
        frame["due_at"] = frame["due_at"].fillna(default_due) if "due_at" in frame else default_due
        if "department" not in frame or frame["department"].isna().any():
            fallback = frame["category"].map({k: c.department for k, c in config.catalog.categories.items()})
            frame["department"] = frame.get("department", fallback).fillna(fallback)
    if feed.entity == "service_cases" and "decided_at" in frame and "deadline_at" in frame:
        frame["within_deadline"] = (frame["decided_at"] <= frame["deadline_at"]).where(frame["decided_at"].notna())
    if entity.located and "lat" in frame:
        lat, lon = frame["lat"].to_numpy(float), frame["lon"].to_numpy(float)
        frame = pd.concat([frame, locator.assign(lat, lon), _h3(lat, lon)], axis=1)
    return frame


def _h3(lat, lon):
    from geo.locate import h3_cells
    return h3_cells(lat, lon)


READ_ERROR = "_error"     # raw_json key: the record itself could not be read (wrong field count, bad bytes)


def _quarantine(feed, path, raw, reasons, key, run_id) -> pd.DataFrame:
    """The etl_quarantine rows of a chunk's failed records, their raw records masked."""
    if raw.empty:
        return pd.DataFrame()
    fields = [c for c in raw.columns if not c.startswith("_")]
    records = raw[fields].astype(object).where(raw[fields].notna(), None).to_dict("records")
    read_errors = raw["_error"].astype(object).where(raw["_error"].notna(), None).tolist() \
        if "_error" in raw else [None] * len(records)
    key_specs = [feed.spec(k) for k in feed.key]
    return pd.DataFrame({
        "run_id": run_id, "feed_id": feed.id, "file": str(path),
        "line": raw["_line"].to_numpy(),
        "record_key": ["|".join(spec.join.join(str(r.get(s) or "") for s in spec.fields()) for spec in key_specs)
                       for r in records],
        "reason": reasons.to_numpy(),
        "raw_json": [json.dumps(_with_read_error(r, error), ensure_ascii=False)
                     for r, error in zip(mask.raw_records(raw[fields], feed, key), read_errors)],
    })


def _with_read_error(record: dict, error) -> dict:
    """Keep why the record could not be read, so a replay keeps it in quarantine (its fields are not its own)."""
    if error is not None:
        record[READ_ERROR] = error
    return record
