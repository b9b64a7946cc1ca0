"""Map source fields onto canonical columns: rename, parse types, translate values. Failures become reasons."""
import re

import numpy as np
import pandas as pd

from core.errors import FeedError
from core.schema import ENTITIES

HAS_OFFSET = re.compile(r"(?:[+-]\d{2}:?\d{2}|Z)$")


class Reasons:
    """The first reason each row fails for; rows with a reason go to quarantine."""

    def __init__(self, n: int):
        self.values = pd.Series([None] * n, dtype="object")

    def add(self, mask, reason) -> None:
        mask = pd.Series(np.asarray(mask, dtype=bool))
        todo = mask & self.values.isna()
        if todo.any():
            if isinstance(reason, pd.Series):
                self.values[todo] = reason.reset_index(drop=True)[todo]
            else:
                self.values[todo] = reason

    def failed(self) -> pd.Series:
        return self.values.notna()


def check_columns(raw: pd.DataFrame, feed, path) -> None:
    missing = [s for s in feed.source_fields() if s not in raw.columns]
    if missing:
        raise FeedError(f"{path}: no field {missing[0]!r} (mapped in config/feeds/{feed.id}.yaml); "
                        f"the file has {sorted(c for c in raw.columns if not c.startswith('_'))}")


def to_canonical(raw: pd.DataFrame, feed, catalog, tz: str, reasons: Reasons) -> pd.DataFrame:
    entity = ENTITIES[feed.entity]
    columns = {c.name: c for c in entity.columns}
    out = pd.DataFrame(index=range(len(raw)))
    for name in feed.fields:
        spec = feed.spec(name)
        text = raw[spec.source].reset_index(drop=True).astype("string").str.strip()
        text = text.mask(text.isin(["", "None", "nan", "NaN", "null", "<NA>"]))
        kind = columns[name].type
        if spec.map is not None:
            out[name] = _mapped(text, spec.map, catalog, name, reasons)
        elif kind == "timestamp":
            out[name] = _timestamps(text, spec.format, tz, name, reasons)
        elif kind in ("float", "int"):
            out[name] = _numbers(text, kind, name, reasons)
        else:
            out[name] = text.astype("object").where(text.notna(), None)
    return out


def _mapped(text, mapping, catalog, name, reasons):
    table = catalog.value_map(mapping) if isinstance(mapping, str) else mapping
    mapped = text.map(table)
    unknown = text.notna() & mapped.isna()
    reasons.add(unknown, "unknown " + name + " '" + text.fillna("") + "'")
    return mapped.astype("object").where(mapped.notna(), None)


def _timestamps(text, fmt, tz, name, reasons):
    result = pd.Series(pd.NaT, index=text.index, dtype="datetime64[us, UTC]")
    present = text.notna()
    if fmt:
        parsed = pd.to_datetime(text[present], format=fmt, errors="coerce")
        result[present] = _localize(parsed, tz)
    else:
        aware = present & text.str.contains(HAS_OFFSET, na=False)
        naive = present & ~aware
        if aware.any():
            result[aware] = pd.to_datetime(text[aware], format="ISO8601", errors="coerce", utc=True)
        if naive.any():
            result[naive] = _localize(pd.to_datetime(text[naive], format="ISO8601", errors="coerce"), tz)
    bad = present & result.isna()
    reasons.add(bad, "unparseable " + name + " '" + text.fillna("") + "'")
    return result


def _localize(parsed: pd.Series, tz: str) -> pd.Series:
    if getattr(parsed.dt, "tz", None) is not None:
        return parsed.dt.tz_convert("UTC")
    return parsed.dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")


def _numbers(text, kind, name, reasons):
    numbers = pd.to_numeric(text, errors="coerce")
    bad = text.notna() & numbers.isna()
    if kind == "int":
        bad |= numbers.notna() & (numbers != np.floor(numbers))
    reasons.add(bad, "not a number in " + name + " '" + text.fillna("") + "'")
    return numbers.astype("float64") if kind == "float" else numbers.round().astype("Int64")
