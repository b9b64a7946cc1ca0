"""Personal data rules: applied before anything is stored, in the warehouse and in quarantine alike.

Names are dropped, phone numbers become a keyed hash (repeat callers stay countable), addresses are cut to street
level, and free text loses phone and ID-card numbers and e-mail addresses.
"""
import hashlib
import hmac
import re

import pandas as pd

from core.schema import ENTITIES

ID_CARD = re.compile(r"(?<![0-9])[1-9]\d{5}(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx](?![0-9])")
MOBILE_CN = re.compile(r"(?<![0-9])(?:\+?86[- ]?)?1[3-9]\d{9}(?![0-9])")
PHONE = re.compile(r"(?<![0-9])(?:\+?\d{1,3}[-. ]?)?\(?\d{3}\)?[-. ]?\d{3,4}[-. ]?\d{4}(?![0-9])")
LOCAL_PHONE = re.compile(r"(?<![\d-])[2-9]\d{2}[-.]\d{4}(?![\d-])")   # North American, no area code: 635-4500
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
STREET_ZH = re.compile(r"^(.*?(?:街道|镇|乡|大道|路|街|巷))")
HOUSE_NUMBER_EN = re.compile(r"^\s*\d+[A-Za-z]?(?:[-/]\d+[A-Za-z]?)?\s+")
UNIT_EN = re.compile(r"\b(?:apt|apartment|unit|suite|ste|#)\s*[\w-]+", re.IGNORECASE)
DIGITS_ZH = re.compile(r"[0-9０-９]+\s*[号栋幢座楼层室单元户#-]*")


def phone_hash(values: pd.Series, key: bytes) -> pd.Series:
    def one(v):
        digits = re.sub(r"\D", "", v)[-11:]
        return hmac.new(key, digits.encode(), hashlib.sha256).hexdigest()[:24] if digits else None
    return values.map(one, na_action="ignore")


def street_level(values: pd.Series) -> pd.Series:
    def one(v: str):
        if re.search(r"[\u4e00-\u9fff]", v):
            m = STREET_ZH.match(v)
            return m.group(1) if m else DIGITS_ZH.sub("", v).strip()
        return UNIT_EN.sub("", HOUSE_NUMBER_EN.sub("", v)).strip(" ,")
    return values.map(one, na_action="ignore")


def scrub_text(v: str) -> str:
    v = PHONE.sub("[phone]", MOBILE_CN.sub("[phone]", ID_CARD.sub("[id]", v)))
    return EMAIL.sub("[email]", LOCAL_PHONE.sub("[phone]", v))


def scrub(values: pd.Series) -> pd.Series:
    return values.map(scrub_text, na_action="ignore")


def apply(frame: pd.DataFrame, personal, key: bytes) -> pd.DataFrame:
    """Mask canonical columns per the feed's rules; caller_phone never survives this function."""
    for name in personal.hash:
        target = "caller_hash" if name == "caller_phone" else name
        frame[target] = phone_hash(frame[name], key)
        if target != name:
            frame = frame.drop(columns=[name])
    for name in personal.street_level:
        frame[name] = street_level(frame[name])
    for name in personal.scrub:
        frame[name] = scrub(frame[name])
    return frame.drop(columns=[c for c in ("caller_phone",) if c in frame.columns])


def raw_roles(feed) -> tuple[set, set, set]:
    """Source fields a quarantined raw record hashes, cuts to street level, or keeps verbatim (keys, numbers,
    times). Work it out once per batch: it does not depend on the record."""
    sources = {name: feed.spec(name).fields() for name in feed.fields}
    hashed = {s for n in feed.personal.hash for s in sources[n]}
    streets = {s for n in feed.personal.street_level for s in sources[n]}
    columns = {c.name: c.type for c in ENTITIES[feed.entity].columns}
    verbatim = {s for n in feed.fields if n in feed.key or columns.get(n) != "text" for s in sources[n]}
    return hashed, streets, verbatim


def raw_record(row: dict, feed, key: bytes, roles: tuple[set, set, set] | None = None) -> dict:
    """A quarantined source record, masked like a loaded one: dropped fields gone, hashed fields hashed,
    address fields cut to street level, and every other text scrubbed."""
    hashed, streets, verbatim = roles or raw_roles(feed)
    out = {}
    for field, value in row.items():
        if field in feed.personal.drop or field.startswith("_"):
            continue
        if value is None or value is pd.NA or (isinstance(value, float) and value != value):
            out[field] = None
        elif field in hashed:
            out[field] = phone_hash(pd.Series([str(value)]), key).iloc[0]
        elif field in streets:
            out[field] = street_level(pd.Series([str(value)])).iloc[0]
        elif field in verbatim:
            out[field] = str(value)
        else:
            out[field] = scrub_text(str(value))
    return out
