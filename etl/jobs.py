"""What the CLI and the scheduler run: load one file, load everything pending, in dependency order."""
import glob
import sys
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

from core import warehouse
from core.errors import FeedError
from core.schema import ADMIN_TABLES, ENTITIES, LOAD_ORDER
from etl import boundaries, derived, pipeline, staging
from etl import replay as replays
from geo import boundaries as geo_boundaries
from geo.locate import Locator


class Session:
    """A writer connection plus the city's boundaries, for one batch of loads."""

    def __init__(self, config, con):
        self.config = config
        self.con = con
        self.levels = geo_boundaries.read_all(config.settings.city.boundaries, config.path)
        self.locator = Locator(self.levels)
        # The tables this session writes: only those are rewritten when it publishes. None (all of them) when
        # readers already lack something: loads committed by a process killed before it published.
        self.changed: set[str] | None = None if warehouse.unpublished(con, config.warehouse_dir) else set()

    def wrote(self, entity_name: str | None, outcome=None) -> None:
        """Note the tables a load (entity_name), a replay or the boundaries (None) wrote."""
        if self.changed is None or (outcome is not None and outcome.status == "unchanged"):
            return
        self.changed.add("etl_run")
        if entity_name is None:
            self.changed.update(ADMIN_TABLES.values())
        elif outcome.status == "ok":
            self.changed.update({ENTITIES[entity_name].table, "etl_quarantine"})
            if entity_name == "incidents":
                self.changed.add("fct_incident_status")

    def tables_changed(self, tables: set[str]) -> None:
        if self.changed is not None:
            self.changed.update(tables)

    def publish(self) -> str:
        return warehouse.publish(self.con, self.config.warehouse_dir, self.config.settings.warehouse.keep_generations,
                                 self.changed)


def pending_files(config, feed) -> list[Path]:
    pattern = str(config.data_dir / feed.source.files)
    return [Path(p) for p in sorted(glob.glob(pattern))]


def _stat(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def load_all(config, force: bool = False, progress=None, report=print, feeds=None, known: dict | None = None,
             report_unchanged: bool = True, settle_seconds: float = 0) -> list[pipeline.Outcome]:
    """Load every pending file of `feeds` (ids; default all), in dependency order, then publish if needed.

    known: the worker's memory of the files it has read, path -> (size, modification time). A file that is as
    remembered is skipped without being read and hashed again, and when no feed file and no boundary file
    changed, the writer database is not even opened (a manual load is not locked out by an idle worker).
    settle_seconds (with known): a file modified more recently is left for a later pass, neither read nor
    remembered; it comes back as a 'waiting' outcome."""
    chosen = [config.feeds[f] for f in feeds] if feeds is not None else list(config.feeds.values())
    todo = [(feed, path) for feed in sorted(chosen, key=lambda f: (LOAD_ORDER.index(f.entity), f.id))
            for path in pending_files(config, feed)]
    stats, waiting = {}, []
    if known is not None:
        stats = {path: _stat(path) for _, path in todo}
        stats.update({path: _stat(path) for path in boundary_files(config) if path.exists()})
        if not force:
            todo = [(feed, path) for feed, path in todo if known.get(path) != stats[path]]
        fresh = _settling(todo, stats, settle_seconds)
        todo = [item for item in todo if item not in fresh]
        waiting = [pipeline.Outcome(feed.id, str(path), status="waiting") for feed, path in fresh]
        for _, path in fresh:
            del stats[path]
        if not todo and all(known.get(path) == stat for path, stat in stats.items()):
            return waiting
    outcomes = []
    with _session(config, report) as session:
        for feed, path in todo:
            outcome = _load_one(session, feed, path, force, progress)
            outcomes.append(outcome)
            if report_unchanged or outcome.status != "unchanged":
                report(outcome.line())
    if known is not None:       # failed loads too: a file a load refused is tried again when it changes
        known.update(stats)
    return outcomes + waiting


def _settling(todo: list, stats: dict, settle_seconds: float) -> list:
    """The files of todo modified in the last settle_seconds. One still being written would load its complete rows
    and quarantine its cut last line (a CSV), or fail (a JSON document), until it loaded again complete."""
    now, settle = time.time_ns(), int(settle_seconds * 1e9)
    # a time further ahead than that is a skewed clock (a network share), not a file being written: taken as it is
    return [(feed, path) for feed, path in todo if settle and now - settle < stats[path][1] <= now + settle]


def boundary_files(config) -> list[Path]:
    return [part for spec in config.settings.city.boundaries.values()
            for part in geo_boundaries.source_files(config.path(spec.path))]


def load_one(config, feed_id: str, path: Path, force: bool = False, progress=None, report=print):
    feed = config.feeds[feed_id]
    with _session(config, report) as session:
        outcome = _load_one(session, feed, path, force, progress)
        report(outcome.line())
    return outcome


def replay(config, feed_id: str, reason: str | None = None, report=print) -> pipeline.Outcome:
    """Quarantined records of one feed through its current mapping and checks (etl/replay.py), then publish."""
    feed = config.feeds[feed_id]
    with _session(config, report) as session:
        try:
            outcome = replays.replay(session.con, config, feed, session.locator, reason)
        except FeedError as exc:
            outcome = pipeline.Outcome(replays.run_feed_id(feed.id), "quarantine", status="failed", error=str(exc))
        session.wrote(feed.entity, outcome)
        report(outcome.line())
    return outcome


@contextmanager
def _session(config, report):
    """The writer, its abandoned runs marked, boundaries current; afterwards publish whatever readers lack
    (not only this batch's loads: see warehouse.unpublished)."""
    with warehouse.writer(config.warehouse_dir, config.settings.warehouse.writer_memory_limit) as con:
        pipeline.mark_abandoned(con)
        upgraded = derived.upgrade(con)
        session = Session(config, con)
        if upgraded:
            report(f"warehouse upgraded: new columns in {sorted(upgraded)}")
            session.tables_changed(upgraded)
        changed = boundaries.load(con, config, session.levels)
        if changed:
            session.wrote(None)
            report(f"boundaries loaded: {changed}")
        try:
            yield session
        finally:
            staging.detach(con)
        if upgraded or warehouse.unpublished(con, config.warehouse_dir):
            report(f"published {session.publish()}")


def _load_one(session, feed, path, force, progress):
    try:
        outcome = pipeline.load_file(session.con, session.config, feed, path, session.locator, force, progress)
    except FeedError as exc:
        outcome = pipeline.Outcome(feed.id, str(path), status="failed", error=str(exc))
    except Exception as exc:  # noqa: BLE001 - a bug: the run is rolled back and logged failed; other files go on
        traceback.print_exc(file=sys.stderr)
        outcome = pipeline.Outcome(feed.id, str(path), status="failed",
                                   error=f"unexpected error ({type(exc).__name__}: {exc}): a bug in CityOps; its "
                                         "traceback is on standard error")
    session.wrote(feed.entity, outcome)
    return outcome
