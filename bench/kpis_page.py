"""The leaders' page /kpis: what building it costs on a loaded warehouse, cold and warm, as ratios to baselines
measured in the same run and process.

    python -m bench.kpis_page [--settings config/settings.yaml] [--repeats 5] [--user analyst --user leader-d01]

Works on whatever warehouse the settings point at (`make load` gives the demo city; a bench city from
bench.etl_throughput works through its settings). The dashboard's app is created in this process (its configured
cache, SimpleCache by default) and each case runs in a request signed in as the user, as the page does:
- cold:  the page's layout with the query cache emptied first (the first leader to open it after a load);
- warm:  the same layout again (every other leader of the same scope within the generation);
- parts: cold, each part alone: the tiles' comparisons (query.kpis.board), the sparklines (series per KPI), the
         ranking and the two-period comparison of the selected KPI.
Baselines: `SELECT count(*) FROM fct_incident` through the same reader (best of --repeats), and one cold
`query.kpis.figure` of the incident volume (one grouped query over the incidents). Times are reported, never
asserted; JSON in bench/results/.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = Path(__file__).resolve().parent / "results"


def timed(call, repeats: int, before=None) -> dict:
    times = []
    for _ in range(repeats):
        if before:
            before()
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return {"n": repeats, "min": min(times), "median": statistics.median(times), "max": max(times)}


def run(args) -> dict:
    from flask import g

    from core import clock
    from core.settings import load_config
    from dashboard.app import create_app
    from query import kpis, store

    config = load_config(args.settings)
    app = create_app(config)
    from dashboard.pages import kpis as page  # registers the page: after the app exists
    cache = store._shared["cache"]
    now = store.minute(clock.now(config))
    counts = store.reader().rows("SELECT count(*) FROM fct_incident")[0][0]

    def as_user(user, call):
        def inner():
            with app.server.test_request_context("/kpis"):
                g.cityops_user = config.users.user(user)
                return call()
        return inner

    report = {"when": datetime.now(UTC).isoformat(timespec="seconds"), "incidents": counts, "now": now.isoformat(),
              "kpis": len(config.kpis), "baselines": {}, "users": {}}
    report["baselines"]["count_star"] = timed(lambda: store.reader().rows("SELECT count(*) FROM fct_incident"),
                                              args.repeats)
    report["baselines"]["one_kpi_cold"] = timed(
        as_user("analyst", lambda: kpis.figure("incident_volume", "month", now)), args.repeats, cache.clear)
    def cases(user: str) -> dict:
        view = as_user(user, lambda: page.resolve())()
        ids = [k for k, kpi in config.kpis.items() if view.grain in kpi.periods]
        return {
            "cold": timed(as_user(user, lambda: page.layout()), args.repeats, cache.clear),
            "warm": timed(as_user(user, lambda: page.layout()), args.repeats),
            "board": timed(as_user(user, lambda: kpis.board(view.grain, now, view.scope)), args.repeats, cache.clear),
            "sparklines": timed(as_user(user, lambda: [kpis.series(k, view.grain, now, view.scope) for k in ids]),
                                args.repeats, cache.clear),
            "ranking": timed(as_user(user, lambda: kpis.ranking(view.kpi, view.grain, now, view.scope)),
                             args.repeats, cache.clear),
            "compare": timed(as_user(user, lambda: page.comparison_panel(view, now, False)), args.repeats,
                             cache.clear),
        }

    for user in args.user:
        report["users"][user] = cases(user)
    return report


def table(report: dict) -> str:
    base = report["baselines"]["count_star"]["min"]
    one = report["baselines"]["one_kpi_cold"]["median"]
    lines = [f"/kpis on {report['incidents']:,} incidents, {report['kpis']} KPIs, now={report['now']}",
             f"baselines: count(*) best {base * 1e3:.2f} ms; one KPI cold median {one * 1e3:.1f} ms", "",
             "| user | case | median | x count(*) | x one KPI |", "|---|---|---:|---:|---:|"]
    for user, cases in report["users"].items():
        for case, s in cases.items():
            lines.append(f"| {user} | {case} | {s['median'] * 1e3:,.0f} ms | {s['median'] / base:,.0f}x "
                         f"| {s['median'] / one:,.1f}x |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--settings", default=None, help="settings.yaml (default: $CITYOPS_CONFIG or config/)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--user", action="append", help="demo account(s) to open the page as (default analyst, "
                                                    "leader-d01)")
    args = ap.parse_args(argv)
    args.user = args.user or ["analyst", "leader-d01"]
    report = run(args)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"kpis_page-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.write_text(json.dumps(report, indent=1))
    print(table(report))
    print(f"\n{out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
