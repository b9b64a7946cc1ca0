"""The worker process: watches the feed folders and loads what is new, every etl.schedule_seconds."""
import logging
import time

from core.errors import FeedError
from core.warehouse import WarehouseBusy
from etl import jobs

log = logging.getLogger("cityops.scheduler")


def run_once(config) -> int:
    """One pass; returns how many files were loaded."""
    try:
        outcomes = jobs.load_all(config, report=log.info)
    except WarehouseBusy as exc:      # a manual load is running; try again next tick
        log.warning("%s", exc)
        return 0
    return sum(o.status == "ok" for o in outcomes)


def run_forever(config, ticks: int | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    interval = config.settings.etl.schedule_seconds
    log.info("watching %s every %ss", config.data_dir, interval)
    count = 0
    while ticks is None or count < ticks:
        started = time.monotonic()
        try:
            run_once(config)
        except FeedError as exc:
            log.error("%s", exc)
        count += 1
        if ticks is None or count < ticks:
            time.sleep(max(0.0, interval - (time.monotonic() - started)))
