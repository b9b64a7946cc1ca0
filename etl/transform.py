"""Map source fields onto canonical columns: rename, parse types, translate values. Failures become reasons."""
import re
from functools import partial

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from core.errors import FeedError
from core.schema import ENTITIES

# A time followed by an offset as pandas' ISO 8601 parser reads one (hours alone, a space before it): such texts are
# instants, the others local times.
HAS_OFFSET = re.compile(r"[T ]\d{2}(?::?\d{2}(?::?\d{2}(?:[.,]\d+)?)?)?\s*(?:Z|[+-]\d{1,2}(?::?\d{2})?)$")
OFFSET_DIRECTIVE = re.compile(r"%[zZ]")


class Reasons:
    """The first reason each row fails for; rows with a reason go to quarantine."""

    def __init__(self, n: int):
        self.values = pd.Series([None] * n, dtype="object")
        self._failed = np.zeros(n, dtype=bool)    # values.notna(), kept: isna over an object column costs 6 ms

    def add(self, mask, reason) -> None:
        """reason: a text, a Series of texts, or a function of the failing rows (a boolean array) giving theirs:
        built for every row, a reason string costs 20-50 ms per column per chunk; the failing rows are few."""
        todo = np.asarray(mask, dtype=bool) & ~self._failed
        if todo.any():
            if callable(reason):
                self.values[todo] = np.asarray(reason(todo), dtype=object)
            elif isinstance(reason, pd.Series):
                self.values[todo] = reason.reset_index(drop=True)[todo]
            else:
                self.values[todo] = reason
            self._failed[todo] = self.values[todo].notna().to_numpy()

    def failed(self) -> pd.Series:
        return pd.Series(self._failed.copy())


NULL_TEXT = ["", "None", "nan", "NaN", "null", "<NA>"]
STRING = pd.StringDtype("pyarrow")      # text columns of canonical frames: Arrow-backed, NA where missing


def texts_at(values: pd.Series, rows) -> pd.Series:
    """The failing rows' source text for a reason ('' where missing)."""
    return values.reset_index(drop=True)[rows].fillna("").astype(str)


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
        text = _source_text(raw, spec)
        text = text.mask(text.isin(NULL_TEXT + spec.null_if))
        kind = columns[name].type
        if spec.map is not None:
            out[name] = _mapped(text, spec.map, catalog, name, reasons, spec.unmapped)
        elif kind == "timestamp":
            out[name] = _per_distinct(text, reasons, partial(_timestamps, fmt=spec.format, tz=tz, name=name,
                                                             dst=feed.source.dst))
        elif kind in ("float", "int"):
            out[name] = _per_distinct(text, reasons, partial(_numbers, kind=kind, name=name))
        else:
            out[name] = text
    if feed.placeholder_points and "lat" in out and "lon" in out:
        _unlocate_placeholders(out, feed.placeholder_points)
    return out


def _source_text(raw: pd.DataFrame, spec) -> pd.Series:
    """The field's source text: one field, several joined (missing when any part is), or a constant."""
    if spec.value is not None:
        return pd.Series([spec.value] * len(raw), dtype="string").str.strip()
    parts = [raw[field].reset_index(drop=True).astype("string").str.strip() for field in spec.fields()]
    parts = [part.mask(part.isin(NULL_TEXT)) for part in parts] if len(parts) > 1 else parts
    text = parts[0]
    for part in parts[1:]:
        text = text + spec.join + part
    return text


SAMPLE = 2_000         # rows looked at to guess whether a column repeats its values
REPEATS = 0.5          # distinct values per row below which a column is converted once per distinct value


def _per_distinct(text: pd.Series, reasons: Reasons, convert) -> pd.Series:
    """convert(text, reasons), run once per distinct text and spread back to the rows. Hourly readings repeat a
    few hundred times and a few thousand values in a chunk of 250,000 rows: parsing those alone is 10-20x faster.
    The result and the reasons are the same as converting every row (conversions here are per value). Columns
    whose first rows hardly repeat (an incident's timestamps) are converted row by row, as before."""
    sample = text.iloc[:SAMPLE]
    if len(text) < 2 * SAMPLE or sample.nunique(dropna=False) > REPEATS * len(sample):
        return convert(text, reasons)
    codes, distinct = pd.factorize(text, use_na_sentinel=False)
    if len(distinct) > REPEATS * len(text):
        return convert(text, reasons)
    own = Reasons(len(distinct))
    values = convert(pd.Series(distinct, dtype=text.dtype), own)
    reasons.add(own.failed().to_numpy()[codes], lambda rows: own.values.to_numpy()[codes[rows]])
    return values.take(codes).set_axis(text.index)


def _unlocate_placeholders(out: pd.DataFrame, points) -> None:
    lat, lon = out["lat"].to_numpy(float), out["lon"].to_numpy(float)
    placeholder = np.zeros(len(out), dtype=bool)
    for p in points:
        placeholder |= np.isclose(lat, p.lat, rtol=0, atol=1e-7) & np.isclose(lon, p.lon, rtol=0, atol=1e-7)
    out.loc[placeholder, ["lat", "lon"]] = np.nan


def _mapped(text, mapping, catalog, name, reasons, unmapped=None):
    table = catalog.value_map(mapping) if isinstance(mapping, str) else mapping
    mapped = _lookup(text, table)
    unknown = text.notna() & mapped.isna()
    if unmapped is not None:
        mapped = mapped.where(~unknown, unmapped)
    else:
        reasons.add(unknown, lambda rows: "unknown " + name + " '" + texts_at(text, rows) + "'")
    return mapped


def _lookup(text: pd.Series, table: dict) -> pd.Series:
    """text.map(table) by exact match, in Arrow: 10-20x faster than a dict lookup per row on Arrow strings.
    Codes stay Arrow strings (missing: NA): later checks on them are 10-20x faster than on Python objects."""
    if not table:
        return pd.Series(pd.NA, index=text.index, dtype=STRING)
    keys = pa.array([str(k) for k in table], pa.large_string())
    values = pa.array(list(table.values()))
    found = values.take(pc.index_in(pa.array(text, pa.large_string()), value_set=keys))
    if pa.types.is_string(found.type) or pa.types.is_large_string(found.type):
        return pd.Series(pd.arrays.ArrowStringArray(found), index=text.index)
    return pd.Series(found.to_pandas(), index=text.index)


# Texts that Arrow's ISO-8601 cast reads as pandas does. Fields out of range (a '0000-00-00' date, a 60th second,
# which pandas rolls over) are not of these shapes and go to pandas; a day past its month's end fails the cast.
DATE = r"\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])"
TIME = r"(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d"
ISO_SHAPES = {"%Y-%m-%d %H:%M:%S": f"^{DATE} {TIME}$", "%Y-%m-%dT%H:%M:%S": f"^{DATE}T{TIME}$"}
OFFSET_ISO = f"^{DATE}[T ]{TIME}(?:\\.\\d{{1,6}})?(?:Z|[+-](?:[01]\\d|2[0-3]):[0-5]\\d)$"


def _timestamps(text, reasons, fmt, tz, name, dst="quarantine"):
    if fmt and not OFFSET_DIRECTIVE.search(fmt):
        return _formatted_times(text, reasons, fmt, tz, name, dst)
    shaped, utc = (np.zeros(len(text), dtype=bool), np.full(len(text), np.datetime64("NaT"), "datetime64[us]")) \
        if fmt else _offset_iso_times(text)
    result = pd.Series(utc, index=text.index).dt.tz_localize("UTC")
    present = text.notna() & ~shaped
    no_such_local_time = pd.Series(False, index=text.index)

    def local(rows, parsed):
        localized = _localize(parsed, tz, dst)
        result[rows] = localized
        no_such_local_time[rows] = parsed.notna() & localized.isna()

    if fmt:
        local(present, _in_us(_offset_times(text[present], fmt)))
    elif present.any():
        aware = present & text.str.contains(HAS_OFFSET, na=False)
        naive = present & ~aware
        if aware.any():
            result[aware] = _in_us(pd.to_datetime(text[aware], format="ISO8601", errors="coerce", utc=True))
        if naive.any():
            times, instants = _iso_local(text[naive])
            local(naive, times)
            carried = instants.notna()
            if carried.any():
                result[carried.index[carried]] = instants[carried]
    return _time_reasons(text, result, no_such_local_time, reasons, tz, name)


def _iso_local(text: pd.Series) -> tuple[pd.Series, pd.Series]:
    """pandas' ISO 8601 parse of texts without an offset HAS_OFFSET knows: the local times (NaT where a text has an
    offset after all) and the instants in UTC of those that have one. pandas refuses a mix of both (the load
    failed on it), so a mixed part is halved until its parts parse."""
    try:
        parsed = _in_us(pd.to_datetime(text, format="ISO8601", errors="coerce"))
    except ValueError:           # "Mixed timezones detected": never for a single text
        half = len(text) // 2
        (times_a, instants_a), (times_b, instants_b) = _iso_local(text.iloc[:half]), _iso_local(text.iloc[half:])
        return pd.concat([times_a, times_b]), pd.concat([instants_a, instants_b])
    if parsed.dt.tz is None:
        return parsed, pd.Series(pd.NaT, index=text.index, dtype="datetime64[us, UTC]")
    return pd.Series(pd.NaT, index=text.index, dtype="datetime64[us]"), parsed.dt.tz_convert("UTC")


def _offset_times(text: pd.Series, fmt: str) -> pd.Series:
    """Texts of a format with an offset. A file spanning a daylight-saving change holds two offsets, which pandas
    keeps only as instants in UTC (else it refuses them, and the load failed)."""
    try:
        return pd.to_datetime(text, format=fmt, errors="coerce")
    except ValueError:          # "Mixed timezones detected"
        return pd.to_datetime(text, format=fmt, errors="coerce", utc=True)


def _in_us(parsed: pd.Series) -> pd.Series:
    """Times in the microseconds the warehouse stores: pandas gives nanoseconds for a text with more than six
    decimals, which a microsecond column refuses (the load failed on such a text); the rest is cut off."""
    return parsed.dt.floor("us").dt.as_unit("us") if parsed.dt.unit == "ns" else parsed


def _offset_iso_times(text: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """The rows of ISO-8601 texts with an offset (OFFSET_ISO) that Arrow cast, and their instants (UTC,
    datetime64[us], NaT elsewhere), as pandas' ISO8601 parse reads them: 3x faster (52 against 17 ms per column of
    230k). Slices holding an impossible date, time or offset are left to pandas."""
    return _shaped_times(text, OFFSET_ISO, pa.timestamp("us", "UTC"))


def _time_reasons(text, result, no_such_local_time, reasons, tz, name):
    reasons.add(no_such_local_time, lambda rows: name + " '" + texts_at(text, rows) + "' repeated or skipped in " + tz
                + " by a daylight-saving change (feed key 'source.dst')")
    bad = text.notna() & result.isna()
    reasons.add(bad, lambda rows: "unparseable " + name + " '" + texts_at(text, rows) + "'")
    return result


def _formatted_times(text, reasons, fmt, tz, name, dst):
    """_timestamps for a format without an offset, on numpy arrays: assigning a Series to the present rows of
    another aligned their indexes, which cost as much as parsing (25 of 64 ms per column of 250k rows)."""
    present = text.notna().to_numpy()
    naive = np.full(len(text), np.datetime64("NaT"), dtype="datetime64[us]")
    if present.any():
        naive[present] = _naive_times(text if present.all() else text[present], fmt)
    parsed = pd.Series(naive, index=text.index)
    result = _localize(parsed, tz, dst)
    return _time_reasons(text, result, parsed.notna() & result.isna(), reasons, tz, name)


def _naive_times(text: pd.Series, fmt: str) -> np.ndarray:
    """pd.to_datetime(text, format=fmt, errors="coerce") as datetime64[us]. Texts of an ISO shape (ISO_SHAPES) are
    cast by Arrow, 3x faster (37 against 13 ms per column of 230k); the others, and the slices of shaped texts that
    hold an impossible time, go through pandas."""
    cast, naive = _shaped_times(text, ISO_SHAPES[fmt], pa.timestamp("us")) if fmt in ISO_SHAPES else \
        (np.zeros(len(text), dtype=bool), np.full(len(text), np.datetime64("NaT"), dtype="datetime64[us]"))
    if not cast.all():
        rest = text if not cast.any() else text[~cast]
        naive[~cast] = pd.to_datetime(rest, format=fmt, errors="coerce").to_numpy().astype("datetime64[us]")
    return naive


SLICE = 8_192     # a cast fails whole on one impossible text (a '0000-00-00 00:00:00' in most demo chunks)


def _shaped_times(text: pd.Series, shape: str, to: pa.DataType) -> tuple[np.ndarray, np.ndarray]:
    """Texts matching `shape` cast by Arrow to `to`: the rows cast, and the times as datetime64[us] (UTC for an
    aware type; NaT elsewhere). Where the cast fails, it is tried again slice by slice, and the failing slices'
    rows are left out."""
    arrow = pa.array(text, pa.large_string())
    shaped = pc.fill_null(pc.match_substring_regex(arrow, shape), False).to_numpy(zero_copy_only=False)
    times = np.full(len(text), np.datetime64("NaT"), dtype="datetime64[us]")
    spans = [(0, len(text))]
    while spans:
        start, stop = spans.pop()
        rows = shaped[start:stop]
        if not rows.any():
            continue
        part = arrow.slice(start, stop - start)
        try:
            cast = pc.cast(part if rows.all() else part.filter(pa.array(rows)), to)
        except pa.ArrowInvalid:
            if stop - start <= SLICE:
                shaped[start:stop] = False
            else:
                spans += [(s, min(s + SLICE, stop)) for s in range(start, stop, SLICE)]
            continue
        times[start:stop][rows] = cast.cast(pa.timestamp("us")).to_numpy(zero_copy_only=False)
    return shaped, times


def _localize(parsed: pd.Series, tz: str, dst: str = "quarantine") -> pd.Series:
    if getattr(parsed.dt, "tz", None) is not None:
        return parsed.dt.tz_convert("UTC")
    if dst == "shift":       # a repeated time: its first (daylight) occurrence; a skipped one: an hour later
        localized = parsed.dt.tz_localize(tz, ambiguous=np.ones(len(parsed), dtype=bool),
                                          nonexistent=pd.Timedelta(hours=1))
    else:
        localized = parsed.dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT")
    return localized.dt.tz_convert("UTC")


INT_RANGE = (-2**31, 2**31 - 1)     # the warehouse's INTEGER


def _numbers(text, reasons, kind, name):
    numbers = _to_float(text)
    bad = text.notna() & numbers.isna()
    if kind == "int":
        bad |= numbers.notna() & (numbers != np.floor(numbers))
    reasons.add(bad, lambda rows: "not a number in " + name + " '" + texts_at(text, rows) + "'")
    if kind == "float":
        return numbers.astype("float64")
    huge = (numbers < INT_RANGE[0]) | (numbers > INT_RANGE[1])    # infinities too: the load failed on them
    reasons.add(huge, lambda rows: "out of range in " + name + " '" + texts_at(text, rows) + "'")
    return numbers.mask(huge).round().astype("Int64")


DECIMAL = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$"    # where Arrow's cast and pandas agree to the bit


def _to_float(text: pd.Series) -> pd.Series:
    """pd.to_numeric(text, errors="coerce") as float64 with NaN for missing: plain decimals are cast in Arrow
    (about 8x faster); anything else (inf, hex, stray text, other digits) goes through pandas as before."""
    arrow = pa.array(text, pa.large_string())
    plain = pc.fill_null(pc.match_substring_regex(arrow, DECIMAL), False).to_numpy(zero_copy_only=False)
    numbers = np.full(len(text), np.nan)
    if plain.any():
        numbers[plain] = pc.cast(arrow.filter(pa.array(plain)), pa.float64()).to_numpy(zero_copy_only=False)
    other = ~plain & text.notna().to_numpy()
    if other.any():
        numbers[other] = pd.to_numeric(text[other], errors="coerce").astype("float64").to_numpy(na_value=np.nan)
    return pd.Series(numbers, index=text.index)
