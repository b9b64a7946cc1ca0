"""Orchestrates one full generation into an output directory."""
from __future__ import annotations

import os
from dataclasses import dataclass

from . import VERSION, boundaries, catalog, defects, geography, hotline, iot, open311, services
from .incidents import Window
from .locations import LocationSampler
from .timefmt import iso_local, parse_end
from .writers import write_json

CSV_SHARE = 0.8


@dataclass
class Params:
    seed: int = 20261120
    incidents: int = 200_000
    days: int = 365
    sensors: int = 120
    service_cases: int = 60_000
    end: str = "2026-11-20T15:00:00+08:00"

    @property
    def incidents_csv(self) -> int:
        return int(round(self.incidents * CSV_SHARE))


def run(out: str, p: Params) -> dict:
    os.makedirs(out, exist_ok=True)
    win = Window(p.seed, parse_end(p.end), p.days)
    geo = geography.build(p.seed)
    sampler = LocationSampler(geo, p.seed)
    registry = defects.Registry()
    files = dict(boundaries.write(out, geo))
    files.update([hotline.write(out, geo, sampler, win, p.incidents_csv, registry)])
    files.update([open311.write(out, geo, sampler, win, p.incidents - p.incidents_csv, registry)])
    halls = services.halls(geo)
    files.update([services.write_halls(out, halls)])
    files.update([services.write_cases(out, geo, sampler, win, p.service_cases, halls)])
    sensors = iot.place_sensors(geo, sampler, win, p.sensors)
    files.update([iot.write_sensors(out, sensors)])
    readings, truth = iot.write_readings(out, sensors, win, registry)
    files.update([readings])
    entries = registry.sorted()
    files.update([write_json(out, "defects.json", entries, len(entries))])
    manifest = {
        "generator": "demo_city", "version": VERSION, "seed": p.seed, "end": iso_local(win.end),
        "days": p.days,
        "parameters": {
            "incidents": p.incidents, "incidents_csv": p.incidents_csv,
            "incidents_json": p.incidents - p.incidents_csv,
            "duplicates": "extra rows on top of --incidents (CSV and JSON rows = incidents + duplicates)",
            "sensors": p.sensors, "service_cases": p.service_cases, "window_start": iso_local(win.start),
        },
        "scenario": {
            "storm": {"start": iso_local(win.storm[0]), "end": iso_local(win.storm[1]),
                      "districts": [d.district_id for d in catalog.DISTRICTS if d.low_lying]},
            **truth,
        },
        "files": {k: files[k] for k in sorted(files)},
    }
    write_json(out, "manifest.json", manifest, 1)
    return manifest
