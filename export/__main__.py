"""python -m export list | run ID... | watch   (the Procfile's `exports` process)

Snapshots pages of the running dashboard (config/exports.yaml) to PNG and PDF. `watch` takes each export when its
schedule falls due (the same `every_minutes` / `every_seconds` / `at` schedules as feeds, real time in the city's
timezone); a snapshot that fails is logged and tried at its next time, the others go on.
"""
import argparse
import logging
import signal
import sys
import threading
from datetime import UTC, datetime, timedelta

from core import exports as export_config
from core.errors import ConfigError
from core.settings import load_config
from etl.scheduler import interval, next_daily
from export import snapshot

log = logging.getLogger("cityops.export")


def _load(args):
    config = load_config(args.config)
    return config, export_config.load(config.settings_path.parent, set(config.users.accounts))


def _chosen(exports, ids):
    known = {e.id: e for e in exports.exports}
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise ConfigError(f"no export {unknown[0]!r}; config/exports.yaml has {sorted(known)}")
    return [known[i] for i in ids] if ids else list(known.values())


def _next(export, after: datetime, tz) -> datetime:
    period = interval(export.schedule, 0)
    return after + period if period else next_daily(export.schedule.at, after, tz)


def watch(config, exports, stop: threading.Event, ticks: int | None = None) -> None:
    now = datetime.now(UTC)
    due = {e.id: now if interval(e.schedule, 0) else next_daily(e.schedule.at, now, config.tz)
           for e in exports.exports}
    log.info("exports: %s", "; ".join(f"{e.id} {e.schedule.describe()}" for e in exports.exports) or "none")
    done = 0
    while not stop.is_set() and exports.exports and (ticks is None or done < ticks):
        now = datetime.now(UTC)
        for export in exports.exports:
            if due[export.id] <= now:
                try:
                    files = snapshot.take(config, exports, export, now)
                    log.info("%s: %s", export.id, ", ".join(f.name for f in files))
                except Exception as exc:                    # one failing page must not stop the others
                    log.error("%s failed: %s", export.id, exc)
                after = max(due[export.id], datetime.now(UTC) - timedelta(seconds=1))
                due[export.id] = _next(export, after, config.tz)
                while due[export.id] <= datetime.now(UTC):   # overran: skip the missed times
                    due[export.id] = _next(export, due[export.id], config.tz)
                done += 1
        stop.wait(max(0.0, (min(due.values()) - datetime.now(UTC)).total_seconds()))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m export", description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", help="settings.yaml (default $CITYOPS_CONFIG or config/settings.yaml)")
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the configured exports and their schedules")
    run = sub.add_parser("run", help="take these exports now (all when none is named)")
    run.add_argument("ids", nargs="*")
    sub.add_parser("watch", help="take each export when its schedule falls due")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        config, exports = _load(args)
        if args.command == "list":
            for e in exports.exports:
                print(f"{e.id}\t{e.page}\t{e.user}\t{','.join(e.formats)}\t{e.schedule.describe()}")
            return 0
        if args.command == "run":
            for export in _chosen(exports, args.ids):
                for path in snapshot.take(config, exports, export, datetime.now(UTC)):
                    print(path)
            return 0
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        watch(config, exports, stop)
        return 0
    except (ConfigError, snapshot.SnapshotError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
