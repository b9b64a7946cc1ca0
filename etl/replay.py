"""Quarantined records through the feed's current mapping and checks again (`python -m etl replay`).

After a city fixes what made records fail (a category alias, a value map, a sensor registered late), a replay
reads the feed's quarantined raw records back, maps and validates them exactly as a load would, merges those that
pass now, and leaves the others in quarantine with their current reason (file and line unchanged). It commits as
one etl_run of feed `replay:<feed id>` (a replay is not new data from the source: a feed's freshness is not
touched) with the usual accounting, read = inserted + updated + merged + quarantined; the loaded rows carry the
feed's own id and the replay's run id. A replay that would change nothing (no record passes, no reason changes)
records no run and publishes nothing, so running it twice is harmless.

The stored raw records are masked already (etl/mask.raw_record): hashed fields hold their keyed hash and
addresses are cut to street level, so those are taken as they are, never masked twice; a replayed record is
stored as a direct load of its source record would store it. (Exception: a hashed or street-level field built
from several source fields was masked source field by source field, and stays so.)
"""
import json
import os
import re
import time

import pandas as pd

from core import clock
from core.errors import FeedError
from etl import chunk_work, mask, merge, pipeline, transform, validate
from etl.keys import pii_key

PREFIX = "replay:"
# Reasons etl/extract.py gives records it could not read as records; quarantines written before raw records kept
# that reason (chunk_work.READ_ERROR) are recognised by it.
READ_ERROR_REASON = re.compile(r"^(expected \d+ fields, got \d+|bytes not valid |not valid JSON: |record is not a JSON "
                               r"object$)")


def run_feed_id(feed_id: str) -> str:
    """The etl_run.feed_id of a replay of `feed_id`."""
    return PREFIX + feed_id


def replay(con, config, feed, locator, reason: str | None = None) -> pipeline.Outcome:
    """Replay the feed's quarantined records (those whose reason contains `reason`, case-insensitive, if given)."""
    label = "quarantine" + (f" (reason containing {reason!r})" if reason else "")
    outcome = pipeline.Outcome(run_feed_id(feed.id), label)
    started = time.monotonic()
    held = con.execute(
        "SELECT rowid AS rid, file, line, reason, raw_json FROM etl_quarantine "
        "WHERE feed_id = ? AND (?::VARCHAR IS NULL OR contains(lower(reason), lower(?::VARCHAR))) "
        "ORDER BY run_id, file, line", [feed.id, reason, reason]).df()
    if held.empty:
        outcome.status = "unchanged"
        outcome.error = "nothing in quarantine" + (f" with a reason containing {reason!r}" if reason else "")
        return outcome
    records, read_errors = _records(held)
    read_errors = [error or (reason if READ_ERROR_REASON.match(reason) else None)
                   for error, reason in zip(read_errors, held["reason"])]
    _check_fields(records, feed)
    outcome.run_id = con.execute("SELECT nextval('etl_run_seq')").fetchall()[0][0]
    con.execute("INSERT INTO etl_run (run_id, feed_id, file, started_at, status, pid) VALUES (?, ?, ?, now(), "
                "'running', ?)", [outcome.run_id, outcome.feed_id, label, os.getpid()])
    con.execute("BEGIN TRANSACTION")
    try:
        context = validate.Context(clock.now(config), locator, config.catalog, con)
        key = pii_key(config)
        step = config.settings.etl.chunk_rows
        changed_reasons = 0
        for start in range(0, len(held), step):
            part = held.iloc[start:start + step].reset_index(drop=True)
            raw = _frame(records[start:start + step], read_errors[start:start + step], part["line"], feed)
            changed_reasons += _replay_chunk(con, config, feed, part, raw, context, key, outcome)
        c = outcome.counts
        if c["quarantined"] == c["read"] and not changed_reasons:
            con.execute("ROLLBACK")
            con.execute("DELETE FROM etl_run WHERE run_id = ?", [outcome.run_id])
            outcome.run_id, outcome.status = None, "unchanged"
            outcome.error = "no record passes now; reasons as before"
            outcome.seconds = time.monotonic() - started
            return outcome
        outcome.seconds = time.monotonic() - started
        pipeline.commit_run(con, outcome)
    except Exception as exc:
        pipeline.fail_run(con, outcome, exc, started)
        raise
    return outcome


def _records(held: pd.DataFrame) -> tuple[list[dict], list]:
    records = [json.loads(text) for text in held["raw_json"]]
    return records, [r.pop(chunk_work.READ_ERROR, None) for r in records]


def _check_fields(records: list[dict], feed) -> None:
    """A mapped source field that no quarantined record has: the mapping names a field the files never had
    (a direct load would refuse the file the same way)."""
    present = set().union(*(r.keys() for r in records))
    missing = [s for s in feed.source_fields() if s not in present]
    if missing:
        raise FeedError(f"quarantined records of {feed.id} have no field {missing[0]!r} (mapped in "
                        f"config/feeds/{feed.id}.yaml); they have {sorted(present)}")


def _frame(records: list[dict], read_errors: list, lines: pd.Series, feed) -> pd.DataFrame:
    """Quarantined raw records as the extractor's frame: text columns, `_line`, `_error`."""
    frame = pd.DataFrame.from_records(records, columns=sorted(set().union(*(r.keys() for r in records))))
    frame = frame.astype(object).where(frame.notna(), None).astype("string")
    for source in feed.source_fields():        # absent from these records' chunk of the file: no value
        if source not in frame.columns:
            frame[source] = pd.Series(pd.NA, index=frame.index, dtype="string")
    frame["_line"] = lines.to_numpy()
    frame["_error"] = pd.Series(read_errors, dtype="object")
    return frame


def _replay_chunk(con, config, feed, held, raw, context, key, outcome) -> int:
    """Merge what passes, drop it from quarantine, update the reasons of what does not; returns how many
    reasons changed."""
    reasons = transform.Reasons(len(raw))
    reasons.add(raw["_error"].notna(), raw["_error"])
    frame = transform.to_canonical(raw, feed, config.catalog, feed.source.timezone, reasons)
    validate.check(frame, feed.entity, context, reasons)
    failed = reasons.failed().to_numpy()
    new_reason = reasons.values.to_numpy()
    changed = failed & (new_reason != held["reason"].to_numpy())
    if changed.any():
        update = pd.DataFrame({"rid": held["rid"].to_numpy()[changed], "reason": new_reason[changed]})
        con.register("replay_reasons", update)
        try:
            con.execute("UPDATE etl_quarantine SET reason = u.reason FROM replay_reasons u "
                        "WHERE etl_quarantine.rowid = u.rid")
        finally:
            con.unregister("replay_reasons")
    good = frame[~failed].reset_index(drop=True)
    good = mask.apply(good, feed.personal, key, premasked=True)
    good = chunk_work.derive(good, feed, config, context.locator)
    good["feed_id"], good["run_id"] = feed.id, outcome.run_id
    counts = merge.merge(con, good, feed.entity)
    passed = pd.DataFrame({"rid": held["rid"].to_numpy()[~failed]})
    if len(passed):
        con.register("replay_passed", passed)
        try:
            con.execute("DELETE FROM etl_quarantine WHERE rowid IN (SELECT rid FROM replay_passed)")
        finally:
            con.unregister("replay_passed")
    c = outcome.counts
    c["read"] += len(raw)
    c["quarantined"] += int(failed.sum())
    for name, value in counts.items():
        c[name] += value
    return int(changed.sum())
