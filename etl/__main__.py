"""python -m etl <command>: load feeds into the warehouse and inspect what happened."""
import argparse
import os
import sys
from pathlib import Path

from core.errors import ConfigError, FeedError
from core.settings import load_config
from core.warehouse import WarehouseBusy


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m etl", description=__doc__)
    parser.add_argument("--config", help="settings.yaml (default: $CITYOPS_CONFIG or config/settings.yaml)")
    sub = parser.add_subparsers(dest="command", required=True)
    progress = "rows, rows/s and ETA on stderr even when it is not a terminal (always shown on a terminal)"
    p = sub.add_parser("load-all", help="load every pending file of every feed, then publish")
    p.add_argument("--force", action="store_true", help="reload files already loaded (still idempotent)")
    p.add_argument("--progress", action="store_true", help=progress)
    p = sub.add_parser("load", help="load one file of one feed, then publish")
    p.add_argument("--feed", required=True)
    p.add_argument("file", type=Path)
    p.add_argument("--force", action="store_true")
    p.add_argument("--progress", action="store_true", help=progress)
    p = sub.add_parser("runs", help="show the run log")
    p.add_argument("--limit", type=int, default=20)
    p = sub.add_parser("quarantine", help="show quarantined records")
    p.add_argument("--feed")
    p.add_argument("--reason", help="only records whose reason contains this text (case-insensitive)")
    p.add_argument("--limit", type=int, default=20)
    p = sub.add_parser("replay", help="quarantined records of a feed through its current mapping and checks: "
                       "load those that pass now, keep the rest; then publish")
    p.add_argument("--feed", required=True)
    p.add_argument("--reason", help="only records whose reason contains this text (case-insensitive)")
    sub.add_parser("watch", help="the scheduler: load each feed's new files when its schedule is due "
                   "(feed key 'schedule', else every etl.schedule_seconds)")
    args = parser.parse_args(argv)
    sys.stdout = _PipeSafe(sys.stdout)
    try:
        config = load_config(args.config)
        return COMMANDS[args.command](config, args)
    except (ConfigError, FeedError, WarehouseBusy) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


class _PipeSafe:
    """stdout that outlives its reader: `python -m etl load-all | head -1` must still load and publish every file
    (the reports are printed between loads), and say nothing of a broken pipe. Once the reader has gone, output
    goes to /dev/null, so that the interpreter's last flush finds nothing to complain about either."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        return self._guarded(self._stream.write, text)

    def flush(self) -> None:
        self._guarded(self._stream.flush)

    def _guarded(self, call, *args):
        try:
            return call(*args)
        except BrokenPipeError:
            os.dup2(os.open(os.devnull, os.O_WRONLY), self._stream.fileno())
            return 0

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _load_all(config, args) -> int:
    from etl import jobs, pipeline
    outcomes = jobs.load_all(config, force=args.force, progress=pipeline.progress_printer(force=args.progress))
    return 1 if any(o.status == "failed" for o in outcomes) else 0


def _load(config, args) -> int:
    from etl import jobs, pipeline
    if args.feed not in config.feeds:
        print(f"error: unknown feed {args.feed!r}; expected one of {sorted(config.feeds)}", file=sys.stderr)
        return 2
    if not args.file.is_file():
        print(f"error: {args.file}: no such file", file=sys.stderr)
        return 2
    outcome = jobs.load_one(config, args.feed, args.file.resolve(), args.force,
                            pipeline.progress_printer(force=args.progress))
    return 1 if outcome.status == "failed" else 0


def _runs(config, args) -> int:
    from etl import runlog
    print(runlog.runs(config, args.limit).to_string(index=False))
    return 0


def _quarantine(config, args) -> int:
    from etl import runlog
    print(runlog.quarantine(config, args.feed, args.limit, args.reason).to_string(index=False))
    return 0


def _replay(config, args) -> int:
    from etl import jobs
    if args.feed not in config.feeds:
        print(f"error: unknown feed {args.feed!r}; expected one of {sorted(config.feeds)}", file=sys.stderr)
        return 2
    outcome = jobs.replay(config, args.feed, args.reason)
    return 1 if outcome.status == "failed" else 0


def _watch(config, args) -> int:
    from etl import scheduler
    scheduler.run_forever(config)
    return 0


COMMANDS = {"load-all": _load_all, "load": _load, "runs": _runs, "quarantine": _quarantine, "replay": _replay,
            "watch": _watch}

if __name__ == "__main__":
    sys.exit(main())
