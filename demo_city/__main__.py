"""CLI: python -m demo_city generate|update ..."""
from __future__ import annotations

import argparse
import sys
import time

from .generate import Params, run


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m demo_city", description="Lakeside City demo feeds")
    sub = p.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="write a full demo city into --out")
    g.add_argument("--out", required=True)
    defaults = Params()
    g.add_argument("--seed", type=int, default=defaults.seed)
    g.add_argument("--incidents", type=int, default=defaults.incidents)
    g.add_argument("--days", type=int, default=defaults.days)
    g.add_argument("--sensors", type=int, default=defaults.sensors)
    g.add_argument("--service-cases", type=int, default=defaults.service_cases)
    g.add_argument("--end", default=defaults.end)
    u = sub.add_parser("update", help="later hotline export: changes + new cases after --end")
    u.add_argument("--city", required=True)
    u.add_argument("--out", required=True)
    u.add_argument("--hours", type=int, default=6)
    return p


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    t0 = time.perf_counter()
    if args.command == "generate":
        if args.days < 7 or args.incidents < 0 or args.sensors < 4:
            sys.exit("need --days >= 7, --sensors >= 4, --incidents >= 0")
        params = Params(args.seed, args.incidents, args.days, args.sensors, args.service_cases, args.end)
        manifest = run(args.out, params)
        rows = sum(f["rows"] for f in manifest["files"].values())
        print(f"wrote {len(manifest['files']) + 1} files ({rows} records) to {args.out} "
              f"in {time.perf_counter() - t0:.1f}s")
    else:
        from .update import run_update
        n = run_update(args.city, args.out, args.hours)
        print(f"wrote {n} rows to {args.out} in {time.perf_counter() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
