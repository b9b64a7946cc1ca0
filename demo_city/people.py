"""Callers: Chinese names, mobile numbers, ID-card numbers and the pool of
frequent callers who phone about the same thing for weeks."""
from __future__ import annotations

import numpy as np

from . import catalog
from .incidents import FREQUENT_WINDOW, Window
from .locations import LocationSampler
from .randomness import stream
from .writers import ints

SURNAMES = np.array(list(catalog.SURNAMES), dtype=object)
SURNAME_CDF = np.cumsum(1.0 / (np.arange(len(SURNAMES)) + 4.0))
SURNAME_CDF /= SURNAME_CDF[-1]
GIVEN = np.array(list(catalog.GIVEN_CHARS), dtype=object)
MOBILE_PREFIXES = np.array([130, 131, 132, 133, 134, 135, 136, 137, 138, 139, 150, 151, 152, 153,
                            155, 156, 157, 158, 159, 166, 173, 175, 176, 177, 178, 180, 181, 182,
                            183, 184, 185, 186, 187, 188, 189, 191, 198, 199], dtype=np.int64)
ID_REGIONS = np.array(["330102", "330105", "330106", "330108", "330109", "330110"], dtype=object)
ID_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])
ID_CHECK = np.array(list("10X98765432"), dtype=object)


def names(n: int, rng) -> np.ndarray:
    s = SURNAMES[np.searchsorted(SURNAME_CDF, rng.random(n), side="right").clip(0, len(SURNAMES) - 1)]
    g1 = GIVEN[rng.integers(0, len(GIVEN), n)]
    g2 = np.where(rng.random(n) < 0.6, GIVEN[rng.integers(0, len(GIVEN), n)], "")
    return s + g1 + g2


def mobiles(n: int, rng, prefix: int | None = None) -> np.ndarray:
    """11-digit mobile numbers 1[3-9]x... as strings."""
    pre = np.full(n, prefix) if prefix else MOBILE_PREFIXES[rng.integers(0, len(MOBILE_PREFIXES), n)]
    return ints(pre * 100_000_000 + rng.integers(0, 100_000_000, n))


def id_cards(n: int, rng) -> np.ndarray:
    """18-char resident ID numbers with a valid ISO 7064 check character."""
    if n == 0:
        return np.empty(0, dtype=object)
    birth = np.datetime64("1950-01-01") + rng.integers(0, 20000, n).astype("timedelta64[D]")
    ymd = np.strings.replace(np.datetime_as_string(birth, unit="D"), "-", "").astype(object)
    seq = np.array([f"{v:03d}" for v in rng.integers(0, 1000, n).tolist()], dtype=object)
    body = ID_REGIONS[rng.integers(0, len(ID_REGIONS), n)] + ymd + seq
    digits = body.astype("U17").view(np.uint32).reshape(n, 17).astype(np.int64) - 48
    return body + ID_CHECK[(digits @ ID_WEIGHTS) % 11]


class FrequentCallers:
    """Callers with a favourite category, a home address and a ~6 week
    active window; ~15% of hotline calls come from them."""

    def __init__(self, calls: int, win: Window, sampler: LocationSampler):
        rng = stream(win.seed, "frequent-callers")
        n = max(20, int(round(calls * 0.15 / 12)))
        shares = np.array([c.share for c in catalog.CATEGORIES])
        cat = np.searchsorted(np.cumsum(shares) / shares.sum(), rng.random(n), side="right")
        begin = win.start - FREQUENT_WINDOW + rng.integers(0, win.days * 86400 + FREQUENT_WINDOW, n)
        order = np.lexsort((begin, cat))
        self.cat, self.begin = cat[order], begin[order]
        self.cell = np.empty(n, dtype=np.int64)
        for k in np.unique(self.cat):
            idx = np.flatnonzero(self.cat == k)
            self.cell[idx] = sampler.cells_for(int(k), len(idx), rng)
        self.lon, self.lat = sampler.points_in_cells(self.cell, rng)
        self.name = names(n, rng)
        self.phone = mobiles(n, rng)
        self.house = rng.integers(1, 1000, n)
        self.building = rng.integers(1, 31, n)
        self.unit = rng.integers(1, 29, n) * 100 + rng.integers(1, 7, n)
        self.first = np.searchsorted(self.cat, np.arange(len(catalog.CATEGORIES)), side="left")
        self.last = np.searchsorted(self.cat, np.arange(len(catalog.CATEGORIES)), side="right")

    def pick(self, cat: np.ndarray, t: np.ndarray, rng) -> np.ndarray:
        """A caller of the same category active around t (or the closest)."""
        out = np.empty(len(cat), dtype=np.int64)
        u = rng.random(len(cat))
        for k in np.unique(cat):
            idx = np.flatnonzero(cat == k)
            a, b = self.first[k], self.last[k]
            if a == b:          # nobody loves this category: any caller
                a, b = 0, len(self.cat)
            starts = self.begin[a:b]
            lo = np.searchsorted(starts, t[idx] - FREQUENT_WINDOW, side="left")
            hi = np.searchsorted(starts, t[idx], side="right")
            empty = hi <= lo
            lo = np.where(empty, np.clip(hi - 1, 0, b - a - 1), lo)
            hi = np.where(empty, lo + 1, hi)
            out[idx] = a + lo + (u[idx] * (hi - lo)).astype(np.int64)
        return out
