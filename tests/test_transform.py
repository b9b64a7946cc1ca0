"""Parsing numbers and mapping values, the two steps of etl/transform done in Arrow: the results must be those of
pandas' own to_numeric and Series.map (what the ETL used before, and what the quarantine reasons were built on)."""
import re

import numpy as np
import pandas as pd
import pytest

from etl import transform

ODD_NUMBERS = ["1", "+1", "-1", ".5", "5.", "1e3", "1E-3", "+.5e-1", "-0", "00012", "1.5e+02", "31.23456789012345678",
               "42.3601234567", "-71.0589", "1e400", "inf", "-inf", "Infinity", "NAN", "1_000", "0x10", "1,5", "5e",
               "e5", "١٢", "１２", "12 ", "1.2.3", "--1", "", None]


@pytest.mark.parametrize("kind", ["float", "int"])
def test_numbers_are_parsed_as_pandas_parses_them(kind):
    text = pd.Series(ODD_NUMBERS * 3, dtype="string")
    reasons = transform.Reasons(len(text))
    got = transform._numbers(text, reasons, kind, "value")

    expected = pd.to_numeric(text, errors="coerce").astype("float64")
    bad = text.notna() & expected.isna()
    huge = pd.Series(False, index=text.index)
    if kind == "int":          # besides: what an INTEGER cannot hold (infinities too) is out of range
        bad |= expected.notna() & (expected != np.floor(expected))
        huge = ~bad & ((expected < -2**31) | (expected > 2**31 - 1))
        expected = expected.mask(huge).round().astype("Int64")
        assert huge.any()
    pd.testing.assert_series_equal(got, expected, check_names=False)
    assert reasons.failed().tolist() == (bad | huge).tolist()
    assert reasons.values[bad.to_numpy()].str.startswith("not a number in value '").all()
    assert reasons.values[huge.to_numpy()].str.startswith("out of range in value '").all()


def test_numbers_keep_every_bit_of_long_decimals():
    rng = np.random.default_rng(7)
    values = np.concatenate([rng.uniform(-180, 180, 5000), rng.normal(0, 1e-5, 5000), rng.uniform(0, 1e9, 5000)])
    text = pd.Series([repr(float(v)) for v in values] + [f"{v:.17g}" for v in values] + [f"{v:.6f}" for v in values],
                     dtype="string")
    got = transform._to_float(text).to_numpy()
    assert np.array_equal(got, pd.to_numeric(text).astype("float64").to_numpy())


def test_value_maps_match_exactly_and_report_the_unknown(catalog):
    text = pd.Series(["已受理", "已办结", "已办结 ", "处理", None, "已派单", "Closed"], dtype="string")
    mapping = {"已受理": "received", "已派单": "dispatched", "已办结": "closed"}
    reasons = transform.Reasons(len(text))
    got = transform._mapped(text, mapping, catalog, "status", reasons)
    assert _plain(got) == ["received", "closed", None, None, None, "dispatched", None]
    assert reasons.values.tolist() == [None, None, "unknown status '已办结 '", "unknown status '处理'", None, None,
                                       "unknown status 'Closed'"]


def test_value_map_with_a_fallback_and_a_catalogue(catalog):
    table = catalog.value_map("categories")
    alias = next(alias for code, entry in catalog.categories.items() for alias in entry.aliases)
    text = pd.Series([alias, next(iter(table)), "no such category"], dtype="string")
    reasons = transform.Reasons(len(text))
    got = transform._mapped(text, "categories", catalog, "category", reasons, unmapped="other")
    assert _plain(got) == [table[alias], table[next(iter(table))], "other"]
    assert not reasons.failed().any()


def test_an_empty_value_map_knows_nothing(catalog):
    reasons = transform.Reasons(2)
    got = transform._mapped(pd.Series(["a", None], dtype="string"), {}, catalog, "channel", reasons)
    assert _plain(got) == [None, None]
    assert reasons.values.tolist() == ["unknown channel 'a'", None]


def _plain(codes: pd.Series) -> list:
    """Mapped codes as Python values, None where missing."""
    assert codes.dtype == transform.STRING
    return codes.astype(object).where(codes.notna(), None).tolist()


@pytest.fixture(scope="module")
def catalog():
    from core.settings import load_config
    return load_config().catalog


def test_repeated_values_are_converted_once_with_the_same_results_and_reasons(catalog, monkeypatch):
    """Hourly readings repeat their times and values: they are parsed once per distinct text. Values, reasons and
    the order of reasons (the first failing field wins) must be those of parsing every row, DST gaps and all."""
    from core.settings import load_config
    feed = load_config().feeds["sensor_readings"]
    rng = np.random.default_rng(11)
    hours = [f"2026-03-29 {h:02d}:30:00" for h in range(5)] + [f"2026-10-25 0{h}:30:00" for h in range(4)] \
        + ["2026-13-01 00:00:00", "yesterday", "", None, "2026-03-29T01:30:00+01:00"]
    values = ["1.5", "2", "-0", "1e3", "inf", "abc", "", None, "0x10", "７"]
    n = 12_000
    raw = pd.DataFrame({"sensor_id": rng.choice(["s1", "s2", None], n), "ts": rng.choice(hours, n),
                        "value": rng.choice(values, n), "status": rng.choice(["ok", "fault"], n)}).astype("string")
    raw["_line"] = np.arange(n) + 2
    raw["_error"] = None

    def convert(tz):
        reasons = transform.Reasons(n)
        frame = transform.to_canonical(raw, feed, catalog, tz, reasons)
        return frame, reasons.values

    parsed = []
    timestamps = transform._timestamps
    monkeypatch.setattr(transform, "_timestamps", lambda text, *a, **k: parsed.append(len(text)) or
                        timestamps(text, *a, **k))
    for tz in ("Europe/Berlin", "Asia/Shanghai"):
        frame, reasons = convert(tz)
        with monkeypatch.context() as row_by_row:
            row_by_row.setattr(transform, "REPEATS", 0.0)
            expected_frame, expected_reasons = convert(tz)
        pd.testing.assert_frame_equal(frame, expected_frame)
        pd.testing.assert_series_equal(reasons, expected_reasons)
        assert reasons.str.contains("daylight-saving").any() == (tz == "Europe/Berlin")
        assert reasons.str.startswith("unparseable ts").any() and reasons.str.startswith("not a number in value").any()
    assert parsed == [len(hours) - 1, n] * 2     # once per distinct text ("" and None are both missing), then row by row


@pytest.mark.parametrize("fmt, tz, dst", [
    ("%Y-%m-%d %H:%M:%S", "Asia/Shanghai", "quarantine"),
    ("%Y-%m-%d %H:%M:%S", "Europe/Berlin", "quarantine"),
    ("%m/%d/%Y %I:%M:%S %p", "America/New_York", "shift"),
    ("%Y-%m-%d %H:%M:%S.%f", "America/New_York", "quarantine"),
])
def test_formatted_times_are_each_texts_own_parse(fmt, tz, dst, monkeypatch):
    """A column parsed at once (on numpy arrays) gives every row what parsing its text alone gives, and what the
    general path (Series assignment, kept for formats with an offset) gives: the value in UTC, NaT and the DST or
    unparseable reason, whatever rows are missing around it."""
    rng = np.random.default_rng(3)
    stamps = pd.Timestamp("2025-03-01") + pd.to_timedelta(rng.integers(0, 300 * 86400, 400), unit="s")
    texts = [t.strftime(fmt) for t in stamps] + [
        pd.Timestamp("2025-03-30 02:30").strftime(fmt), pd.Timestamp("2025-10-26 02:30").strftime(fmt),
        pd.Timestamp("2025-03-09 02:30").strftime(fmt), pd.Timestamp("2025-11-02 01:30").strftime(fmt),
        "2025-02-30 00:00:00", "2025-2-3 1:02:03", "2025-02-28 23:59:60", "02/30/2025 01:00:00 AM", "x", ""]
    values = pd.Series([t if i % 7 else None for i, t in enumerate(texts)], dtype=transform.STRING)
    reasons = transform.Reasons(len(values))
    got = transform._timestamps(values, reasons, fmt, tz, "t", dst)
    for i, text in enumerate(values):
        one = transform.Reasons(1)
        alone = transform._timestamps(pd.Series([text], dtype=transform.STRING), one, fmt, tz, "t", dst)
        assert (got.iloc[i] is pd.NaT and alone.iloc[0] is pd.NaT) or got.iloc[i] == alone.iloc[0], (text, got.iloc[i])
        assert reasons.values.iloc[i] == one.values.iloc[0], text
    assert got.dtype == "datetime64[us, UTC]" and got.isna().sum() > len(values) // 7
    monkeypatch.setattr(transform, "OFFSET_DIRECTIVE", re.compile(""))       # every format: the general path
    general = transform.Reasons(len(values))
    assert transform._timestamps(values, general, fmt, tz, "t", dst).equals(got)
    assert general.values.tolist() == reasons.values.tolist()
    assert any("daylight-saving" in str(r) for r in general.values) == (tz != "Asia/Shanghai" and dst == "quarantine")


@pytest.mark.parametrize("fmt", sorted(transform.ISO_SHAPES))
def test_iso_shaped_times_are_cast_by_arrow_as_pandas_parses_them(fmt, monkeypatch):
    """Texts of an ISO shape are cast by Arrow, the rest parsed by pandas; every batch gives pandas' own values:
    valid batches (Arrow alone: pandas is not called), batches with an impossible date or a 60th second (pandas
    takes the batch over), and texts of other shapes or missing."""
    rng = np.random.default_rng(11)
    sep = fmt[8]

    def text(year, month, day, hour, minute, second):
        return f"{year:04d}-{month:02d}-{day:02d}{sep}{hour:02d}:{minute:02d}:{second:02d}"

    def valid(n):
        stamps = pd.Timestamp("1600-01-01") + pd.to_timedelta(rng.integers(0, 700 * 365 * 86400, n), unit="s")
        return [t.strftime(fmt) for t in stamps] + [text(0, 1, 1, 0, 0, 0), text(2000, 2, 29, 23, 59, 59),
                                                    text(9999, 12, 31, 23, 59, 59), text(1, 1, 1, 0, 0, 0)]
    odd = [text(1900, 2, 29, 0, 0, 0), text(2025, 4, 31, 0, 0, 0), text(2025, 13, 1, 0, 0, 0),  # first two: shaped
           text(2025, 1, 1, 24, 0, 0), text(2025, 1, 1, 0, 60, 0), text(2025, 1, 1, 23, 59, 60),
           text(2025, 1, 1, 0, 0, 61), text(2025, 0, 1, 0, 0, 0), text(2025, 1, 0, 0, 0, 0)]
    other = ["2025-1-5 3:04:05", "2025-01-05 10:00", "2025-01-05T10:00:00Z", " 2025-01-05 10:00:00",
             "2025-01-05 10:00:00.5", "20250-01-05 10:00:00", "x"]
    calls = []
    to_datetime = pd.to_datetime
    monkeypatch.setattr(transform.pd, "to_datetime", lambda *a, **k: calls.append(len(a[0])) or to_datetime(*a, **k))
    batches = [valid(3000), valid(50) + other] + [valid(50) + [o] for o in odd]
    for batch in batches:
        texts = pd.Series(batch, dtype=transform.STRING)
        calls.clear()
        got = transform._naive_times(texts, fmt)
        expected = to_datetime(texts, format=fmt, errors="coerce").to_numpy().astype("datetime64[us]")
        assert np.array_equal(got, expected, equal_nan=True), batch
        # pandas: nothing for the valid batch; the other texts; an impossible text alone, or its slice when the
        # text is of the shape (a day past the month's end)
        assert calls == ([] if batch is batches[0] else [len(other)] if batch is batches[1]
                         else [len(batch)] if batch[-1] in odd[:2] else [1]), batch[-1]
    big = valid(40_000)
    big[::100] = ["0000-00-00 00:00:00".replace(" ", sep)] * len(big[::100])        # MySQL's zero date, often
    big[20_001] = text(2025, 2, 30, 0, 0, 0)
    calls.clear()
    got = transform._naive_times(pd.Series(big, dtype=transform.STRING), fmt)
    expected = to_datetime(pd.Series(big, dtype=transform.STRING), format=fmt, errors="coerce")
    assert np.array_equal(got, expected.to_numpy().astype("datetime64[us]"), equal_nan=True)
    assert len(big[::100]) < sum(calls) <= len(big[::100]) + transform.SLICE     # one slice left to pandas
    assert not np.isnat(transform._naive_times(pd.Series(valid(10), dtype=transform.STRING), fmt)).any()


def test_iso_times_with_an_offset_are_cast_by_arrow_as_pandas_parses_them(monkeypatch):
    """ISO-8601 texts with an offset are cast by Arrow: each batch gives what pandas alone gives (OFFSET_ISO
    matching nothing), values and reasons, whether it is all such texts, mixed with naive and other texts, or holds
    one impossible date, time or offset (then pandas parses it all)."""
    rng = np.random.default_rng(5)
    stamps = pd.Timestamp("1700-01-01") + pd.to_timedelta(rng.integers(0, 500 * 365 * 86400, 2000), unit="s")
    offsets = ["Z", "+08:00", "-05:30", "+14:00", "+23:59", "-00:00"]
    fractions = ["", ".5", ".123", ".123456"]
    good = [t.strftime("%Y-%m-%d") + rng.choice(["T", " "]) + t.strftime("%H:%M:%S") + rng.choice(fractions)
            + rng.choice(offsets) for t in stamps] + ["0000-01-01T00:00:00Z", "0001-01-01T00:00:00+08:00"]
    naive = ["2025-03-30T02:30:00", "2025-10-26 02:30:00", "2025-11-20", "2025-11-20T15:00:13+0800",
             "2025-11-20T15:00:13+08", "2025-11-20T15:00:13.1234567+08:00", "x", ""]
    odd = ["2025-02-29T15:00:13+08:00", "2025-11-20T23:59:60+08:00", "2025-11-20T15:00:13+24:00",
           "2025-11-20T15:00:13+08:60", "2025-11-20T24:00:00Z", "2025-13-01T00:00:00Z"]

    def parse(batch):
        values = pd.Series([t if i % 9 else None for i, t in enumerate(batch)], dtype=transform.STRING)
        reasons = transform.Reasons(len(values))
        return transform._timestamps(values, reasons, None, "Europe/Berlin", "t"), reasons.values

    batches = [good, good[:50] + naive] + [good[:50] + [o] for o in odd]
    calls = []
    to_datetime = pd.to_datetime
    with monkeypatch.context() as counted:
        counted.setattr(transform.pd, "to_datetime", lambda *a, **k: calls.append(len(a[0])) or to_datetime(*a, **k))
        got = [parse(b) for b in batches]
    # pandas: nothing for batch 0 (Arrow alone); in batch 1 its other texts with and without an offset; then an
    # impossible text alone, or its whole slice when it is of the shape (February 29th of 2025)
    assert len(calls) == 2 + len(odd) and calls[2:] == [sum(1 for i in range(51) if i % 9)] + [1] * 5, calls
    assert got[0][0].notna().sum() == len(good) - len(good) // 9 - 1 and got[0][1].isna().all()
    monkeypatch.setattr(transform, "OFFSET_ISO", "^$NEVER")      # matches no text
    for batch, (values, reasons) in zip(batches, got):
        expected_values, expected_reasons = parse(batch)
        pd.testing.assert_series_equal(values, expected_values)
        pd.testing.assert_series_equal(reasons, expected_reasons)


def test_a_format_with_an_offset_reads_texts_on_both_sides_of_a_daylight_saving_change():
    """New York writes -0400 in summer and -0500 in winter: one column holds both (pandas refuses mixed offsets
    unless told to convert them, and the load failed on it). Seven decimals are cut to microseconds."""
    texts = pd.Series(["2025-07-01 12:00:00-0400", "2025-12-01 12:00:00-0500", "2025-12-01 12:00:00", None,
                       "2025-12-01 12:00:00.1234567+0000"], dtype=transform.STRING)
    reasons = transform.Reasons(len(texts))
    got = transform._timestamps(texts, reasons, "%Y-%m-%d %H:%M:%S%z", "America/New_York", "t")
    got_fraction = transform._timestamps(texts[4:], transform.Reasons(1), "%Y-%m-%d %H:%M:%S.%f%z",
                                         "America/New_York", "t")
    assert got.tolist()[:2] == [pd.Timestamp("2025-07-01 16:00", tz="UTC"), pd.Timestamp("2025-12-01 17:00", tz="UTC")]
    assert got.isna().tolist()[2:4] == [True, True] and got.dtype == "datetime64[us, UTC]"
    assert reasons.values.tolist()[:4] == [None, None, "unparseable t '2025-12-01 12:00:00'", None]
    assert got_fraction.iloc[0] == pd.Timestamp("2025-12-01 12:00:00.123456", tz="UTC")


def test_whole_numbers_outside_the_warehouse_integer_are_refused_with_a_reason():
    """An INTEGER column (satisfaction) given 'inf' or 1e30 failed the whole load (converting to Int64, or DuckDB
    refusing the value when staged): such rows now go to quarantine."""
    texts = pd.Series(["5", "inf", "-inf", "1e30", "2147483647", "2147483648", "-2147483648", "-2147483649", "2.5",
                       None, "-0"], dtype=transform.STRING)
    reasons = transform.Reasons(len(texts))
    got = transform._numbers(texts, reasons, "int", "satisfaction")
    assert got.dtype == "Int64"
    assert got.tolist() == [5, pd.NA, pd.NA, pd.NA, 2**31 - 1, pd.NA, -2**31, pd.NA, 2, pd.NA, 0]   # 2.5: refused
    out = [i for i, r in enumerate(reasons.values) if r and r.startswith("out of range in satisfaction")]
    assert out == [1, 2, 3, 5, 7] and reasons.values[8] == "not a number in satisfaction '2.5'"


def test_iso_texts_with_offsets_pandas_reads_and_the_pattern_may_miss_are_instants():
    """pandas reads '+08', '+8', ' Z' and a space before an offset as offsets, and refuses a column mixing such texts
    with local times (the load failed on it): each text gets what it gets alone, instants converted to UTC and local
    times localised, also for an offset no pattern here knows (simulated by a pattern that matches nothing)."""
    texts = ["2025-11-20T15:00:13+08", "2025-11-20T15:00:13 +08:00", "2025-11-20T15:00:13 Z", "2025-11-20T15:00:13-5",
             "2025-11-20T15:00Z", "2025-11-20T15:00:13", "2025-11-20", "2025-11-20 15:00:13 UTC", "x", None,
             "2025-07-01T12:00:00-4", "2025-07-01T12:00:00.1234567+08"] * 3

    def parse(values):
        reasons = transform.Reasons(len(values))
        return transform._timestamps(pd.Series(values, dtype=transform.STRING), reasons, None, "Asia/Shanghai", "t")

    expected = [parse([t]).iloc[0] for t in texts]
    assert expected[0] == pd.Timestamp("2025-11-20 07:00:13", tz="UTC")
    assert expected[5] == pd.Timestamp("2025-11-20 07:00:13", tz="UTC")        # local: Shanghai
    assert expected[10] == pd.Timestamp("2025-07-01 16:00", tz="UTC")
    assert expected[11] == pd.Timestamp("2025-07-01 04:00:00.123456", tz="UTC")
    for pattern in (transform.HAS_OFFSET, re.compile(r"^$NEVER")):
        transform.HAS_OFFSET, saved = pattern, transform.HAS_OFFSET
        try:
            got = parse(texts)
        finally:
            transform.HAS_OFFSET = saved
        assert [None if v is pd.NaT else v for v in got] == [None if v is pd.NaT else v for v in expected]
