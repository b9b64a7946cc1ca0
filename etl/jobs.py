"""What the CLI and the scheduler run: load one file, load everything pending, in dependency order."""
import glob
from pathlib import Path

from core import warehouse
from core.errors import FeedError
from core.schema import LOAD_ORDER
from etl import boundaries, pipeline
from geo import boundaries as geo_boundaries
from geo.locate import Locator


class Session:
    """A writer connection plus the city's boundaries, for one batch of loads."""

    def __init__(self, config, con):
        self.config = config
        self.con = con
        self.levels = geo_boundaries.read_all(config.settings.city.boundaries, config.path)
        self.locator = Locator(self.levels)

    def publish(self) -> str:
        return warehouse.publish(self.con, self.config.warehouse_dir, self.config.settings.warehouse.keep_generations)


def pending_files(config, feed) -> list[Path]:
    pattern = str(config.data_dir / feed.source.files)
    return [Path(p) for p in sorted(glob.glob(pattern))]


def load_all(config, force: bool = False, progress=None, report=print) -> list[pipeline.Outcome]:
    outcomes = []
    with warehouse.writer(config.warehouse_dir) as con:
        pipeline.mark_abandoned(con)
        session = Session(config, con)
        changed = boundaries.load(con, config, session.levels)
        if changed:
            report(f"boundaries loaded: {changed}")
        feeds = sorted(config.feeds.values(), key=lambda f: (LOAD_ORDER.index(f.entity), f.id))
        for feed in feeds:
            for path in pending_files(config, feed):
                outcome = _load_one(session, feed, path, force, progress)
                outcomes.append(outcome)
                report(outcome.line())
        if warehouse.unpublished(con, config.warehouse_dir):   # not only this run's loads: see unpublished()
            report(f"published {session.publish()}")
    return outcomes


def load_one(config, feed_id: str, path: Path, force: bool = False, progress=None, report=print):
    feed = config.feeds[feed_id]
    with warehouse.writer(config.warehouse_dir) as con:
        pipeline.mark_abandoned(con)
        session = Session(config, con)
        if boundaries.load(con, config, session.levels):
            report("boundaries loaded")
        outcome = _load_one(session, feed, path, force, progress)
        report(outcome.line())
        if warehouse.unpublished(con, config.warehouse_dir):
            report(f"published {session.publish()}")
    return outcome


def _load_one(session, feed, path, force, progress):
    try:
        return pipeline.load_file(session.con, session.config, feed, path, session.locator, force, progress)
    except FeedError as exc:
        return pipeline.Outcome(feed.id, str(path), status="failed", error=str(exc))
