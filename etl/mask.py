"""Personal data rules: applied before anything is stored, in the warehouse and in quarantine alike.

Names are dropped, phone numbers become a keyed hash (repeat callers stay countable), addresses are cut to street
level, and free text loses phone and ID-card numbers and e-mail addresses.
"""
import functools
import hashlib
import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from core.schema import ENTITIES

ID_CARD = re.compile(r"(?<![0-9])[1-9]\d{5}(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx](?![0-9])")
MOBILE_CN = re.compile(r"(?<![0-9])(?:\+?86[- ]?)?1[3-9]\d{9}(?![0-9])")
PHONE = re.compile(r"(?<![0-9])(?:\+?\d{1,3}[-. ]?)?\(?\d{3}\)?[-. ]?\d{3,4}[-. ]?\d{4}(?![0-9])")
LOCAL_PHONE = re.compile(r"(?<![\d-])[2-9]\d{2}[-.]\d{4}(?![\d-])")   # North American, no area code: 635-4500
# Bounded as RFC 5321 bounds an address (64 characters before the @, 63 per label): unbounded, a long text without an
# address took quadratic time (38 s for one 70,000-character description, a load stalled on it).
EMAIL = re.compile(r"[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63})+")
STREET_ZH = re.compile(r"^(.*?(?:街道|镇|乡|大道|路|街|巷))")
HOUSE_NUMBER_EN = re.compile(r"^\s*\d+[A-Za-z]?(?:[-/]\d+[A-Za-z]?)?\s+")
UNIT_EN = re.compile(r"\b(?:apt|apartment|unit|suite|ste|#)\s*[\w-]+", re.IGNORECASE)
DIGITS_ZH = re.compile(r"[0-9０-９]+\s*[号栋幢座楼层室单元户#-]*")


def per_distinct(values: pd.Series, fn) -> pd.Series:
    """fn of each value (None where NA), computed once per distinct value: exports repeat callers, addresses and
    templated descriptions. A plain loop: pandas' map and astype on Arrow-backed strings cost more than fn."""
    done = {}

    def one(v):
        if v not in done:
            done[v] = fn(v)
        return done[v]
    out = [one(v) if isinstance(v, str) or not pd.isna(v) else None for v in values.tolist()]
    return pd.Series(out, index=values.index, dtype=object)


# Masking in Arrow. RE2 (Arrow's regex engine) reads \d, \s, \w and \b as ASCII and has no look-behind, so each
# function below does in Arrow only what RE2 can do exactly as Python's re does, with character classes built from
# Python's own tables, and sends every other value through the Python function, which stays the definition.
# Per 250k demo hotline rows: phone hashes 0.31 -> 0.24 s (the hashing itself is left), street cuts 0.30 -> 0.12 s;
# scrubbing stays 0.16 s (texts with digits there all hold a number to scrub, which takes look-behinds).

@functools.cache
def python_class(pattern: str) -> str:
    r"""An RE2 character class holding exactly the code points Python's re matches with `pattern`, one character
    such as r"\d" or r"\s" (Unicode-wide in Python). Built once per process (0.1 s)."""
    points = [m.start() for m in re.finditer(pattern, _all_characters())]
    ranges, first = [], None
    for i, point in enumerate(points):
        first = point if first is None else first
        if i + 1 == len(points) or points[i + 1] != point + 1:
            ranges.append(f"\\x{{{first:x}}}" + ("" if first == point else f"-\\x{{{point:x}}}"))
            first = None
    return "[" + "".join(ranges) + "]"


def _all_characters() -> str:
    return "".join(map(chr, range(0x110000)))


def _arrow(values: pd.Series) -> pa.Array:
    """The texts as Arrow strings; a value that is not text is null here (phone_hash gives it None, and the Python
    function sees it as before)."""
    if values.dtype == object:
        values = values.where(values.map(lambda v: isinstance(v, str)), None)
    arrow = pa.array(values, pa.large_string())
    # A column read from a CSV block comes in pyarrow's 1 MB pieces; the rules below take one array.
    return arrow.combine_chunks() if isinstance(arrow, pa.ChunkedArray) else arrow


def _flags(condition: pa.Array) -> np.ndarray:
    return pc.fill_null(condition, False).to_numpy(zero_copy_only=False)


def _texts(values: pd.Series, result: pa.Array) -> pd.Series:
    """Masked texts stay Arrow strings (missing: NA): as Python strings, staging converted them back to Arrow
    (50-110 ms per chunk of 250k incidents)."""
    return pd.Series(pd.arrays.ArrowStringArray(result), index=values.index)


def _completed(values: pd.Series, result: pa.Array, done: np.ndarray, fn) -> pd.Series:
    """result where `done` (null where the value is missing), fn per distinct value at the other rows."""
    rest = ~done & values.notna().to_numpy()
    if rest.any():
        python = pa.array(per_distinct(values[rest], fn).tolist(), pa.large_string())
        result = pc.replace_with_mask(result, pa.array(rest), python)
    return _texts(values, result)


def digits(arrow: pa.Array) -> pa.Array:
    """Each text's digits, any script's (Python's \\d): with RE2's ASCII class where the text is ASCII, 8x faster
    than the class of every script's digits."""
    kept = pc.replace_substring_regex(arrow, "[^0-9]+", "")
    wide = _flags(pc.invert(pc.string_is_ascii(arrow)))
    if wide.any():
        other = pc.replace_substring_regex(arrow.filter(wide), "[^" + python_class(r"\d")[1:] + "+", "")
        kept = pc.replace_with_mask(kept, pa.array(wide), other)
    return kept


def phone_hash(values: pd.Series, key: bytes) -> pd.Series:
    """HMAC-SHA256 of the number's last 11 digits, first 24 hex characters; None where there is no digit. Each
    distinct number is hashed once, with the key's pads hashed once and copied: the same digest as hmac.new, 3x
    faster."""
    inner, outer = _hmac_pads(key)
    numbers = pc.utf8_slice_codeunits(digits(_arrow(values)), start=-11).dictionary_encode()

    def one(number: str):
        h, o = inner.copy(), outer.copy()
        h.update(number.encode())
        o.update(h.digest())
        return o.hexdigest()[:24]
    hashed = pa.array([one(v) if v else None for v in numbers.dictionary.to_pylist()], pa.large_string())
    return _texts(values, hashed.take(numbers.indices))


def _hmac_pads(key: bytes):
    """SHA-256 states after the HMAC inner and outer key pads (RFC 2104)."""
    block = hashlib.sha256().block_size
    key = (hashlib.sha256(key).digest() if len(key) > block else key).ljust(block, b"\0")
    return hashlib.sha256(bytes(b ^ 0x36 for b in key)), hashlib.sha256(bytes(b ^ 0x5C for b in key))


CJK = re.compile(r"[\u4e00-\u9fff]")


def street_text(v: str) -> str:
    """The street an address lies on: a Chinese address up to its street (else without numbers), an English one
    without its house number and unit."""
    if CJK.search(v):
        m = STREET_ZH.match(v)
        return m.group(1) if m else DIGITS_ZH.sub("", v).strip()
    return UNIT_EN.sub("", HOUSE_NUMBER_EN.sub("", v)).strip(" ,")


def street_level(values: pd.Series) -> pd.Series:
    """street_text of each value. In Arrow: Chinese addresses that name a street, and English ones in ASCII
    (where RE2's \\b and \\w are Python's)."""
    arrow = _arrow(values)
    out = pa.nulls(len(values), pa.large_string())
    done = np.zeros(len(values), dtype=bool)
    chinese = _flags(pc.match_substring_regex(arrow, r"[\x{4e00}-\x{9fff}]"))
    if chinese.any():
        street = pc.struct_field(pc.extract_regex(arrow.filter(chinese), "^(?P<s>" + STREET_ZH.pattern[2:]), [0])
        rows = np.flatnonzero(chinese)[_flags(pc.is_valid(street))]
        done[rows] = True
        out = pc.replace_with_mask(out, pa.array(done), street.drop_null().cast(pa.large_string()))
    english = ~chinese & _flags(pc.string_is_ascii(arrow))
    if english.any():
        space = python_class(r"\s")
        text = pc.replace_substring_regex(arrow.filter(english),
                                          f"^{space}*[0-9]+[A-Za-z]?(?:[-/][0-9]+[A-Za-z]?)?{space}+", "")
        text = pc.replace_substring_regex(text, rf"(?i)\b(?:apt|apartment|unit|suite|ste|#){space}*[A-Za-z0-9_-]+", "")
        out = pc.replace_with_mask(out, pa.array(english), pc.utf8_trim(text, " ,"))
        done |= english
    return _completed(values, out, done, street_text)


NEEDS_SCRUB = re.compile(r"[\d@]")   # each pattern needs a digit (any script, as \d) or an @: most texts have neither


def scrub_text(v: str) -> str:
    if not NEEDS_SCRUB.search(v):
        return v
    v = PHONE.sub("[phone]", MOBILE_CN.sub("[phone]", ID_CARD.sub("[id]", v)))
    return EMAIL.sub("[email]", LOCAL_PHONE.sub("[phone]", v))


def scrub(values: pd.Series) -> pd.Series:
    """scrub_text of each value; texts without a digit or an @ (found by Arrow) are kept as they are."""
    arrow = _arrow(values)
    clean = _flags(pc.invert(pc.match_substring_regex(arrow, python_class(r"\d")[:-1] + "@]")))
    return _completed(values, arrow, clean, scrub_text)


def apply(frame: pd.DataFrame, personal, key: bytes, premasked: bool = False) -> pd.DataFrame:
    """Mask canonical columns per the feed's rules; caller_phone never survives this function.

    premasked: the frame was mapped from quarantined raw records (raw_record below), whose hashed fields already
    hold their hash and whose addresses are already cut: those are taken as they are (hashing a hash again would
    break repeat-caller counts; cutting twice could cut more). Free text is scrubbed again (a no-op on scrubbed
    text, and safe for fields the raw record kept verbatim)."""
    for name in personal.hash:
        target = "caller_hash" if name == "caller_phone" else name
        frame[target] = frame[name] if premasked else phone_hash(frame[name], key)
        if target != name:
            frame = frame.drop(columns=[name])
    for name in personal.street_level if not premasked else ():
        frame[name] = street_level(frame[name])
    for name in personal.scrub:
        frame[name] = scrub(frame[name])
    return frame.drop(columns=[c for c in ("caller_phone",) if c in frame.columns])


def raw_roles(feed) -> tuple[dict, set, set]:
    """Source fields a quarantined raw record hashes (with the texts that mean 'none given' there), cuts to street
    level, or keeps verbatim (keys, numbers, times)."""
    from etl.transform import NULL_TEXT
    sources = {name: feed.spec(name).fields() for name in feed.fields}
    hashed = {s: set(NULL_TEXT) | set(feed.spec(n).null_if) for n in feed.personal.hash for s in sources[n]}
    streets = {s for n in feed.personal.street_level for s in sources[n]}
    columns = {c.name: c.type for c in ENTITIES[feed.entity].columns}
    verbatim = {s for n in feed.fields if n in feed.key or columns.get(n) != "text" for s in sources[n]}
    return hashed, streets, verbatim


def raw_records(raw: pd.DataFrame, feed, key: bytes) -> list[dict]:
    """Quarantined source records (the frame's source columns, as read), masked like loaded ones: dropped fields
    gone, hashed fields hashed (None where a load would see no value: the hash of a hash would not match), address
    fields cut to street level, and every other text scrubbed. Column by column: per-row masking cost about 0.5 ms
    a record, which a broken export with many bad rows would be dominated by."""
    hashed, streets, verbatim = raw_roles(feed)
    masked = {}
    for field in raw.columns:
        if field in feed.personal.drop or field.startswith("_"):
            continue
        text = raw[field].astype("string")
        if field in hashed:
            stripped = text.str.strip()
            column = phone_hash(stripped.mask(stripped.isin(hashed[field])), key)
        elif field in streets:
            column = street_level(text)
        elif field in verbatim:
            column = text
        else:
            column = scrub(text)
        masked[field] = column.astype(object).where(column.notna(), None).tolist()
    return [dict(zip(masked, values)) for values in zip(*masked.values())] if masked else [{} for _ in range(len(raw))]
