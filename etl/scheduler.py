"""The worker process (`python -m etl watch`, the Procfile's `worker`): loads each feed's new files when the
feed's schedule says so.

A feed file's `schedule` is one of `every_minutes: N`, `every_seconds: N` or `at: ["02:00", ...]` (daily, in the
city's timezone); a feed without one is loaded every etl.schedule_seconds. `every_*` feeds are due when the worker
starts, then at fixed intervals from then on (a load that overruns skips the missed ticks, it does not queue them);
`at` feeds only at their times. When feeds are due the worker loads their new files (in dependency order, the
boundaries first when they changed) and publishes. The worker keeps no state across restarts: files already
loaded are recognised by their SHA-256 in the run log, and, while it runs, by size and modification time without
being read again. Times are real time (the wall clock), never `clock.as_of`.

Single writer: when another process holds the writer database (a manual `python -m etl load`), the due feeds stay
due and are tried again RETRY_SECONDS later. SIGTERM or SIGINT stop the worker after the load in progress.
"""
import logging
import signal
import threading
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time

from core.errors import ConfigError, FeedError
from core.warehouse import WarehouseBusy
from etl import jobs

log = logging.getLogger("cityops.scheduler")

RETRY_SECONDS = 5.0


def interval(schedule, default_seconds: int) -> timedelta | None:
    """The period of an `every_*` schedule (or of no schedule); None for daily `at` times."""
    if schedule is None:
        return timedelta(seconds=default_seconds)
    if schedule.at is not None:
        return None
    return timedelta(minutes=schedule.every_minutes) if schedule.every_minutes else \
        timedelta(seconds=schedule.every_seconds)


def next_daily(times: list[str], after: datetime, tz) -> datetime:
    """The first of the daily local `times` strictly after the instant `after` (returned in UTC).
    A time a daylight-saving change skips happens that day at the same offset as before the change (02:30 when
    clocks jump from 02:00 to 03:00 runs at 03:30); a time it repeats runs once, at its first occurrence."""
    after = after.astimezone(UTC)
    today = after.astimezone(tz).date()
    for day in range(-1, 3):
        for text in times:
            hours, minutes = (int(x) for x in text.split(":"))
            local = datetime.combine(today + timedelta(days=day), clock_time(hours, minutes), tzinfo=tz)
            instant = local.astimezone(UTC)
            if instant > after:
                return instant
    raise AssertionError("a daily time always comes within two days")


class Timetable:
    """When each feed is next due (UTC instants)."""

    def __init__(self, config, now: datetime):
        self.tz = config.tz
        self.default_seconds = config.settings.etl.schedule_seconds
        self.schedules = {feed_id: feed.schedule for feed_id, feed in config.feeds.items()}
        now = now.astimezone(UTC)
        self.next = {}
        for feed_id, schedule in self.schedules.items():
            self.next[feed_id] = now if interval(schedule, self.default_seconds) else \
                next_daily(schedule.at, now, self.tz)

    def due(self, now: datetime) -> list[str]:
        return sorted(f for f, t in self.next.items() if t <= now.astimezone(UTC))

    def done(self, feed_ids, now: datetime) -> None:
        """The feeds' loads are over: schedule each one's next time after `now`."""
        now = now.astimezone(UTC)
        for feed_id in feed_ids:
            period = interval(self.schedules[feed_id], self.default_seconds)
            if period is None:
                self.next[feed_id] = next_daily(self.schedules[feed_id].at, now, self.tz)
                continue
            following = self.next[feed_id] + period
            if following <= now:                              # overran: skip the missed ticks
                following += period * ((now - following) // period + 1)
            self.next[feed_id] = following

    def retry(self, feed_ids, when: datetime) -> None:
        """The writer was busy, or a file was still being written: the feeds stay due, from `when`."""
        for feed_id in feed_ids:
            self.next[feed_id] = when.astimezone(UTC)

    def seconds_until_next(self, now: datetime) -> float:
        return max(0.0, (min(self.next.values()) - now.astimezone(UTC)).total_seconds())

    def describe(self, feed_id: str) -> str:
        schedule = self.schedules[feed_id]
        when = schedule.describe() if schedule else f"every {self.default_seconds} s (etl.schedule_seconds)"
        return f"{feed_id} {when}" + (f" ({self.tz.key})" if schedule and schedule.at else "")


def _now() -> datetime:
    return datetime.now(UTC)


def run_once(config, feeds=None, known: dict | None = None) -> tuple[int, float | None]:
    """One pass over `feeds` (default all): how many files were loaded, and in how many seconds to pass again
    (None: at the feeds' next times): soon when the writer was busy, once settled when a file was still being
    written (modified in the last etl.settle_seconds)."""
    settle = config.settings.etl.settle_seconds
    try:
        outcomes = jobs.load_all(config, report=log.info, feeds=feeds, known=known, report_unchanged=False,
                                 settle_seconds=settle)
    except WarehouseBusy as exc:      # a manual load is running; try again soon
        log.warning("%s; trying again in %.0f s", exc, RETRY_SECONDS)
        return 0, RETRY_SECONDS
    loaded = sum(o.status == "ok" for o in outcomes)
    waiting = [o.file for o in outcomes if o.status == "waiting"]
    if waiting:
        log.info("modified in the last %g s, loaded once settled: %s", settle, ", ".join(waiting))
        return loaded, min(settle, RETRY_SECONDS)
    return loaded, None


def run_forever(config, ticks: int | None = None, stop: threading.Event | None = None) -> None:
    """Load feeds as their schedules fall due until stopped (SIGTERM, SIGINT, `stop`) or after `ticks` passes."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    timetable = Timetable(config, _now())
    log.info("watching %s: %s", config.data_dir, "; ".join(timetable.describe(f) for f in sorted(config.feeds)))
    known: dict = {}
    count = 0
    while not stop.is_set() and (ticks is None or count < ticks):
        due = timetable.due(_now())
        if due:
            again = None
            try:
                _, again = run_once(config, due, known)
            except (FeedError, ConfigError) as exc:
                log.error("%s", exc)
            except Exception:                      # the worker outlives one bad pass; the run log has the details
                log.exception("load of %s failed", ", ".join(due))
            if again is not None:
                timetable.retry(due, _now() + timedelta(seconds=again))
            else:
                timetable.done(due, _now())
            count += 1
        stop.wait(timetable.seconds_until_next(_now()))
    log.info("stopped")
