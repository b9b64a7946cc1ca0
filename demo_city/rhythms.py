"""Temporal intensity of citizen requests: daily, weekly, seasonal rhythms
and the storm.  Rates are expressed per hour-bin and per *component*:
components 0..15 are the catalog categories (city-wide), component 16 is
the extra storm drainage load confined to the low-lying districts."""
from __future__ import annotations

import math

import numpy as np

from . import catalog
from .timefmt import DAY, HOUR, day_of_week, day_of_year, hour_of_day

N_CAT = len(catalog.CATEGORIES)
STORM_COMPONENT = N_CAT
N_COMPONENTS = N_CAT + 1
STORM_HOURS = 72
STORM_DAYS_BEFORE_END = 122
STORM_FACTOR = 9.0   # extra drainage in storm districts, x their average rate

# Office-hours rhythm: peaks 9-11 and 14-17, quiet at night.
DAILY = np.array([0.15, 0.10, 0.07, 0.06, 0.06, 0.10, 0.25, 0.50, 0.85, 1.00, 1.00, 0.95,
                  0.70, 0.75, 0.95, 1.00, 0.95, 0.85, 0.60, 0.50, 0.45, 0.40, 0.30, 0.20])
# Noise: evenings and nights.
DAILY_NOISE = np.array([0.90, 0.70, 0.45, 0.30, 0.20, 0.20, 0.30, 0.45, 0.50, 0.50, 0.50, 0.50,
                        0.55, 0.50, 0.50, 0.50, 0.55, 0.60, 0.70, 0.85, 1.00, 1.00, 1.00, 0.95])
# Street vendors: lunch and evening markets.
DAILY_VENDORS = np.array([0.30, 0.15, 0.05, 0.03, 0.03, 0.05, 0.15, 0.35, 0.60, 0.75, 0.85, 0.95,
                          0.90, 0.70, 0.65, 0.70, 0.80, 0.95, 1.00, 1.00, 0.95, 0.85, 0.65, 0.45])
WEEKLY = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 0.65, 0.60])
WEEKLY_UP = np.array([0.9, 0.9, 0.9, 0.95, 1.05, 1.30, 1.20])   # noise, vendors


def storm_window(end: int, days: int) -> tuple[int, int]:
    """3-day storm ~4 months before end (or 1/3 of a short window), from 06:00."""
    back = min(STORM_DAYS_BEFORE_END, max(days // 3, 4))
    start = ((end - back * DAY) // DAY) * DAY + 6 * HOUR
    return start, start + STORM_HOURS * HOUR


def _bump(doy, centre, width):
    d = np.minimum(np.abs(doy - centre), 365 - np.abs(doy - centre))
    return np.exp(-0.5 * (d / width) ** 2)


def _seasonal(code: str, doy: np.ndarray) -> np.ndarray:
    winter = np.clip(np.cos(2 * math.pi * (doy - 15) / 365.0), 0, 1) ** 2
    if code == "heating":
        return 0.25 + 4.0 * winter
    if code == "drainage":   # plum-rain season (Jun-Jul) and typhoons (Aug-Sep)
        return 0.5 + 2.5 * _bump(doy, 180, 22) + 1.0 * _bump(doy, 240, 20)
    if code == "greening":
        return 1.0 + 0.4 * _bump(doy, 120, 60)
    if code == "noise":
        return 1.0 + 0.2 * np.cos(2 * math.pi * (doy - 200) / 365.0)
    if code == "pollution":
        return 1.0 + 0.3 * winter
    return np.ones_like(doy, dtype=float)


def _in_storm(sec, storm, tail=0):
    return (sec >= storm[0]) & (sec < storm[1] + tail * HOUR)


def raw_category(code: str, sec: np.ndarray, storm) -> np.ndarray:
    hod, dow, doy = hour_of_day(sec), day_of_week(sec), day_of_year(sec)
    daily = {"noise": DAILY_NOISE, "vendors": DAILY_VENDORS}.get(code, DAILY)[hod]
    weekly = (WEEKLY_UP if code in ("noise", "vendors") else WEEKLY)[dow]
    rate = daily * weekly * _seasonal(code, doy)
    boost = {"drainage": 2.0, "greening": 2.0, "water_supply": 1.5}.get(code)
    if boost:                       # city-wide side effects of the storm
        rate = np.where(_in_storm(sec, storm, 24), rate * boost, rate)
    if code == "road":              # potholes show up after the rain
        rate = np.where((sec >= storm[1]) & (sec < storm[1] + 7 * DAY), rate * 1.6, rate)
    return rate


def raw_storm(sec: np.ndarray, storm) -> np.ndarray:
    t = (sec - storm[0]) / float(storm[1] - storm[0])
    shape = np.where((t >= 0) & (t < 1), 0.3 + np.sin(math.pi * np.clip(t, 0, 1)), 0.0)
    tail = np.where((t >= 1) & (t < 1 + 24 / STORM_HOURS), 0.25, 0.0)
    return (shape + tail) * DAILY[hour_of_day(sec)] ** 0.3


def component_rates(main_hours: np.ndarray, target_hours: np.ndarray, storm,
                    storm_pop_share: float) -> np.ndarray:
    """Expected share of the window's total volume per (component, hour).

    Normalised over main_hours (sums to 1 there); target_hours may be another
    window (e.g. the update's future hours) using the same normalisation.
    """
    rates = np.zeros((N_COMPONENTS, len(target_hours)))
    for i, c in enumerate(catalog.CATEGORIES):
        rates[i] = c.share * raw_category(c.code, target_hours, storm) / raw_category(c.code, main_hours, storm).sum()
    drain = catalog.CATEGORIES[catalog.CATEGORY_INDEX["drainage"]].share
    mass = STORM_FACTOR * drain * storm_pop_share * STORM_HOURS / len(main_hours)
    rates[STORM_COMPONENT] = mass * raw_storm(target_hours, storm) / raw_storm(main_hours, storm).sum()
    return rates / (1.0 + mass)
