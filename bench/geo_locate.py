"""geo/locate against the code it replaced, on the same points in the same run: the ratio is the measurement.

    python -m bench.geo_locate --points 1000000 [--boundaries demo|boston] [--repeats 3] [--distinct 0.86]

- old: three gpd.sjoin(predicate="within") joins and one h3.latlng_to_cell per point (kept verbatim as the
  reference in tests/test_geo_locate.py);
- new: geo.locate.Locator.assign (a raster index per level, one lookup per distinct coordinate pair) and h3_cells
  (one H3 call per distinct pair).
Points: `--distinct` of them are distinct places, the rest repeat those places (the demo hotline file has 86%
distinct pairs, Boston's 2015 311 file 35%), 1% are not located (NaN). Places follow the demo generator's
population weights and are rounded to 6 decimals as its feed files are; for Boston they are uniform inside the
city. Old and new run alternately, `--repeats` times each; every new result is checked equal to the old one.
Peak memory: what one call of each adds to resident memory at its peak, in a forked child (VmHWM - VmRSS at
the fork; large allocations mapped fresh so memory the parent freed does not hide them). Approximate.
Results: a table on stdout and JSON in bench/results/ (machine, load average, commit, digest of the sources).
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import statistics
import time
from datetime import datetime
from pathlib import Path

import numpy as np

from bench.etl_throughput import RESULTS, ROOT, machine

BOSTON_CONFIG = ROOT / "deployments" / "boston" / "config" / "settings.yaml"
UNLOCATED_SHARE = 0.01


def demo_levels(seed: int):
    """The demo city's levels (written by its generator into var/bench/, read as the ETL reads them) and its
    geography, for drawing places."""
    from core.settings import load_config
    from demo_city import boundaries as demo_boundaries
    from demo_city import geography
    from geo import boundaries

    geo = geography.build(seed)
    root = ROOT / "var" / "bench" / f"boundaries-{seed}"
    if not (root / "boundaries" / "grid.geojson").exists():
        demo_boundaries.write(str(root), geo)
    config = load_config(ROOT / "config" / "settings.yaml")
    return boundaries.read_all(config.settings.city.boundaries, lambda p: root / "boundaries" / Path(p).name), geo


def boston_levels():
    from core.settings import load_config
    from geo import boundaries

    config = load_config(BOSTON_CONFIG)
    return boundaries.read_all(config.settings.city.boundaries, config.path)


def places(count: int, levels, geo, rng) -> tuple[np.ndarray, np.ndarray]:
    """(lat, lon) of `count` places in the city."""
    if geo is not None:
        from demo_city.locations import LocationSampler
        sampler = LocationSampler(geo, seed=int(rng.integers(1 << 31)))
        lon, lat = sampler.points_in_cells(sampler.cells_for(0, count, rng), rng)
        return np.round(lat, 6), np.round(lon, 6)
    from geo.locate import Locator
    west, south, east, north = levels["city"].frame.total_bounds
    city = Locator(levels)
    lat, lon = np.empty(0), np.empty(0)
    while len(lat) < count:
        x, y = rng.uniform(west, east, count), rng.uniform(south, north, count)
        inside = city.inside_city(y, x)
        lat, lon = np.concatenate([lat, y[inside]]), np.concatenate([lon, x[inside]])
    return lat[:count], lon[:count]


def points(count: int, distinct: float, levels, geo, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    lat, lon = places(max(1, int(count * distinct)), levels, geo, rng)
    pick = np.concatenate([np.arange(len(lat)), rng.integers(0, len(lat), count - len(lat))])
    rng.shuffle(pick)
    lat, lon = lat[pick], lon[pick]
    unlocated = rng.random(count) < UNLOCATED_SHARE
    lat[unlocated], lon[unlocated] = np.nan, np.nan
    return lat, lon


def timed(fn) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def _status_kib(field: str) -> int:
    line = next(row for row in Path("/proc/self/status").read_text().splitlines() if row.startswith(field + ":"))
    return int(line.split()[1])


def peak_extra_mib(fn) -> float | None:
    """Resident memory one call adds at its peak, measured in a forked child (the parent's heap is untouched)."""
    if not Path("/proc/self/status").exists():
        return None
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:                                                          # child
        try:
            _map_large_allocations()
            before = _status_kib("VmRSS")
            fn()
            os.write(write, str(_status_kib("VmHWM") - before).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        value = pipe.read()
    os.waitpid(pid, 0)
    return round(int(value) / 1024, 1) if value else None


def _map_large_allocations() -> None:
    """Large arrays from fresh pages (glibc), so they show in the resident peak rather than reusing heap memory
    the parent freed (M_MMAP_THRESHOLD fixed at 128 KiB; set, it stops glibc from raising it)."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(-3, 128 * 1024)
    except OSError:
        pass


def compare(name: str, old, new, repeats: int, check) -> dict:
    """Old and new alternately, `repeats` times each; the first results are checked equal. Peaks first, forked
    from the same state of this process."""
    peaks = {"old_peak_extra_mib": peak_extra_mib(old), "new_peak_extra_mib": peak_extra_mib(new)}
    old_s, new_s = [], []
    for i in range(repeats):
        seconds, old_result = timed(old)
        old_s.append(seconds)
        seconds, new_result = timed(new)
        new_s.append(seconds)
        if i == 0:
            check(new_result, old_result)
        del old_result, new_result
    row = {"step": name, "old_s": [round(s, 3) for s in old_s], "new_s": [round(s, 3) for s in new_s],
           "old_median_s": round(statistics.median(old_s), 3), "new_median_s": round(statistics.median(new_s), 3)}
    row["ratio"] = round(row["old_median_s"] / row["new_median_s"], 1)
    return {**row, **peaks}


def run(args) -> dict:
    from geo.locate import ASSIGNED_LEVELS, Locator, distinct_pairs, h3_cells
    from tests.test_geo_locate import assert_identical, reference_assign, reference_h3_cells

    host = machine()
    levels, geo = demo_levels(args.seed) if args.boundaries == "demo" else (boston_levels(), None)
    lat, lon = points(args.points, args.distinct, levels, geo, args.seed)
    built = Locator(levels)
    build_s, _ = timed(lambda: [built.index(name) for name in ASSIGNED_LEVELS if name in levels])
    locator = Locator(levels)
    locator.assign(lat[:1000], lon[:1000])                     # indexes built once, as a session does
    rows = [
        compare("district/street/grid", lambda: reference_assign(levels, lat, lon),
                lambda: locator.assign(lat, lon), args.repeats, assert_identical),
        compare("h3 r7-r9", lambda: reference_h3_cells(lat, lon), lambda: h3_cells(lat, lon), args.repeats,
                assert_identical),
    ]
    return {"bench": "geo_locate", "machine": host, "load_average_end": os.getloadavg(),
            "boundaries": args.boundaries, "polygons": {n: len(levels[n].frame) for n in levels},
            "points": args.points, "distinct_pairs": len(distinct_pairs(lat, lon)[1]),
            "unlocated": int(np.isnan(lat).sum()), "repeats": args.repeats,
            "index_build_s": round(build_s, 3), "steps": rows}


def table(report: dict) -> str:
    lines = [f"{'step':<22}{'old s (median)':>16}{'new s (median)':>16}{'ratio':>8}{'old +MiB':>10}{'new +MiB':>10}"]
    for r in report["steps"]:
        lines.append(f"{r['step']:<22}{r['old_median_s']:>16.3f}{r['new_median_s']:>16.3f}{r['ratio']:>7.1f}x"
                     f"{r['old_peak_extra_mib'] or 0:>10.0f}{r['new_peak_extra_mib'] or 0:>10.0f}")
    old = sum(r["old_median_s"] for r in report["steps"])
    new = sum(r["new_median_s"] for r in report["steps"])
    lines.append(f"{'both':<22}{old:>16.3f}{new:>16.3f}{old / new:>7.1f}x")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.geo_locate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--boundaries", choices=("demo", "boston"), default="demo",
                    help="the demo city's, or deployments/boston's (needs ../shared/data/boston)")
    ap.add_argument("--distinct", type=float, default=0.86, help="share of distinct coordinate pairs (default 0.86)")
    ap.add_argument("--repeats", type=int, default=3, help="runs of each implementation, alternating (default 3)")
    ap.add_argument("--seed", type=int, default=20261120)
    args = ap.parse_args(argv)
    report = run(args)
    print(table(report))
    print(f"\n{report['points']:,} points, {report['distinct_pairs']:,} distinct pairs, {report['unlocated']:,} "
          f"unlocated; {args.boundaries} boundaries {report['polygons']}; index build {report['index_build_s']} s; "
          f"load average {report['machine']['load_average_start'][0]:.1f} -> {report['load_average_end'][0]:.1f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = RESULTS / f"geo_locate-{stamp}-p{args.points}-{args.boundaries}-d{args.distinct:g}.json"
    out.write_text(json.dumps(report, indent=1))
    print(f"results: {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
