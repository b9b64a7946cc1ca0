"""Feed definitions (config/feeds/*.yaml): where a feed's files are, how to read them, and how their fields map
onto the canonical schema. One file per feed; adding a feed is adding a file."""
import codecs
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from core import config_files
from core.errors import ConfigError
from core.schema import ENTITIES
from core.settings import LatLon, Names, Strict, check_timezone

NAMED_MAPS = ("categories", "departments")


class FieldSpec(Strict):
    source: str | list[str] | None = Field(None, alias="from", description="the source field, or several whose "
                                           "values are joined with 'join' (e.g. year, month, day, hour columns)")
    join: str = Field(" ", description="separator between the values of several source fields")
    value: str | None = Field(None, description="a constant for every record, instead of 'from'")
    format: str | None = Field(None, description="strptime format for timestamps; ISO 8601 when absent")
    map: dict[str, str] | Literal["categories", "departments"] | None = None
    null_if: list[str] = Field([], description="source values that mean 'none given' (e.g. 'N/A', 'No Q')")
    unmapped: str | None = Field(None, description="with 'map': the value for source values the map does not "
                                 "list; when absent such records are quarantined ('unknown <field>')")

    @field_validator("source")
    @classmethod
    def _names(cls, v):
        if v is not None and (v == "" or v == [] or (isinstance(v, list) and not all(v))):
            raise ValueError("a source field name, or a non-empty list of them")
        return v

    @field_validator("format")
    @classmethod
    def _strptime(cls, v):
        """A format pandas can parse with: a wrong directive would otherwise fail the load, not the config check."""
        if v is not None:
            import pandas as pd  # here: reading feed files must not cost the import where formats are absent
            try:
                pd.to_datetime(pd.Series(["2000-01-01"], dtype=object), format=v, errors="coerce")
            except ValueError as exc:
                raise ValueError(f"{exc}; expected a strptime format such as '%Y-%m-%d %H:%M:%S'") from None
        return v

    @model_validator(mode="after")
    def _one_origin(self):
        if (self.source is None) == (self.value is None):
            raise ValueError("exactly one of 'from' (source field or fields) and 'value' (a constant)")
        if self.unmapped is not None and self.map is None:
            raise ValueError("'unmapped' only together with 'map'")
        return self

    def fields(self) -> list[str]:
        """The source fields this canonical field is read from (none for a constant)."""
        if self.source is None:
            return []
        return [self.source] if isinstance(self.source, str) else list(self.source)


class Source(Strict):
    format: Literal["csv", "json", "jsonl", "geojson", "excel"]
    files: str = Field(min_length=1, description="glob relative to the data dir")
    encoding: str = "utf-8"
    fallback_encoding: str | None = None
    timezone: str
    delimiter: str = Field(",", min_length=1, max_length=1)
    records_path: str | None = Field(None, description="JSON: dotted path to the array of records")
    sheet: str | None = Field(None, description="Excel: sheet name")
    expected_every_minutes: int = Field(1440, gt=0)
    workers: int | None = Field(None, ge=0, le=64, description=(
        "worker processes for this feed's big files, instead of the setting etl.workers (0: none). They pay where "
        "each record costs much (masking, locating: the hotline) and not where records are light (readings)"))
    dst: Literal["quarantine", "shift"] = Field("quarantine", description=(
        "local times a daylight-saving change makes repeated or skipped: quarantine the record, or shift "
        "(a repeated time is taken as its first occurrence, a skipped one is moved an hour forward)"))

    @field_validator("encoding", "fallback_encoding")
    @classmethod
    def _codec(cls, v):
        if v is not None:
            try:
                codecs.lookup(v)
            except LookupError:
                raise ValueError("a Python codec name such as 'utf-8', 'gbk' or 'latin-1'") from None
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v):
        return check_timezone(v)


HH_MM = re.compile(r"^([01]?[0-9]|2[0-3]):([0-5][0-9])$")


class Schedule(Strict):
    """When the worker (`python -m etl watch`) loads the feed's new files: exactly one of the three keys."""
    every_minutes: int | None = Field(None, ge=1, description="every N minutes (the first time when the worker starts)")
    every_seconds: int | None = Field(None, ge=1, description="every N seconds, for near-real-time feeds and tests")
    at: list[str] | None = Field(None, description="daily at these local times, 'HH:MM' (24-hour), in the city's "
                                 "timezone (city.timezone)")

    @field_validator("every_minutes", mode="before")
    @classmethod
    def _whole_minutes(cls, v):
        if isinstance(v, float) and not v.is_integer():
            raise ValueError("whole minutes (for less than a minute use 'every_seconds')")
        return v

    @field_validator("at", mode="before")
    @classmethod
    def _times(cls, v):
        if not isinstance(v, list) or not v:
            raise ValueError('a list of one or more \'HH:MM\' times, e.g. ["02:00", "14:30"]')
        times = []
        for item in v:
            if isinstance(item, int) and not isinstance(item, bool):
                hours, minutes = divmod(item, 60)
                raise ValueError(f"quoted 'HH:MM' times: YAML reads an unquoted {hours}:{minutes:02d} as the number "
                                 f"{item}; write \"{hours:02d}:{minutes:02d}\"")
            match = HH_MM.match(item.strip()) if isinstance(item, str) else None
            if not match:
                raise ValueError(f"'HH:MM' times from 00:00 to 23:59 (24-hour clock), not {item!r}")
            times.append(f"{int(match.group(1)):02d}:{match.group(2)}")
        repeated = sorted({t for t in times if times.count(t) > 1})
        if repeated:
            raise ValueError(f"each time once; {repeated[0]!r} is listed {times.count(repeated[0])} times")
        return sorted(times)

    @model_validator(mode="after")
    def _exactly_one(self):
        given = [k for k in ("every_minutes", "every_seconds", "at") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("exactly one of 'every_minutes', 'every_seconds' and 'at'"
                             + (f" (not {' and '.join(repr(k) for k in given)} together)" if given else ""))
        return self

    def describe(self) -> str:
        if self.at is not None:
            return "daily at " + ", ".join(self.at)
        return f"every {self.every_minutes} min" if self.every_minutes else f"every {self.every_seconds} s"


class Personal(Strict):
    drop: list[str] = []          # source fields never read past extraction
    hash: list[str] = []          # canonical fields replaced by a keyed hash
    street_level: list[str] = []  # canonical address fields cut to street level
    scrub: list[str] = []         # free-text fields cleaned of phone and ID numbers


class Feed(Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,40}$")
    entity: Literal["incidents", "service_cases", "sensors", "sensor_readings", "places"]
    name: Names
    source: Source
    key: list[str] = Field(min_length=1)
    fields: dict[str, FieldSpec] = Field(description="canonical field: a source field name, or a FieldSpec")
    personal: Personal = Personal()
    schedule: Schedule | None = Field(None, description=(
        "when `python -m etl watch` loads the feed's new files; absent: every etl.schedule_seconds"))
    placeholder_points: list[LatLon] = Field([], description=(
        "points the source writes when it has no location (a geocoder's default, e.g. city hall): "
        "records there are kept without coordinates instead of being placed there"))

    @field_validator("fields", mode="before")
    @classmethod
    def _shorthand(cls, v):
        """`name: SOURCE` is short for `name: {from: SOURCE}` (errors then name the field, not a union member)."""
        if isinstance(v, dict):
            return {name: {"from": spec} if isinstance(spec, str) else spec for name, spec in v.items()}
        return v

    def spec(self, canonical: str) -> FieldSpec:
        return self.fields[canonical]

    def source_fields(self) -> list[str]:
        return sorted({source for name in self.fields for source in self.spec(name).fields()})


def check_fields(feed: Feed, path: Path) -> None:
    """Cross-field checks, reported against the key that is wrong."""
    def fail(key, got, expected):
        raise ConfigError(f"{path}: key '{key}': got {got!r}; expected {expected}")

    mappable = ENTITIES[feed.entity].mappable()
    for name in feed.fields:
        if name not in mappable:
            fail(f"fields.{name}", name, f"a canonical {feed.entity} field, one of {sorted(mappable)}")
    required = [c.name for c in ENTITIES[feed.entity].columns if c.required and c.mappable]
    for name in required:
        if name not in feed.fields:
            fail(f"fields.{name}", None, f"a mapping for this required {feed.entity} field")
    for name in feed.key:
        if name not in feed.fields:
            fail("key", feed.key, f"fields mapped in 'fields' (not {name!r})")
    for group in ("hash", "street_level", "scrub"):
        for name in getattr(feed.personal, group):
            if name not in feed.fields:
                fail(f"personal.{group}", name, "a canonical field mapped in 'fields'")
    if feed.placeholder_points and not {"lat", "lon"} <= set(feed.fields):
        fail("placeholder_points", [p.model_dump() for p in feed.placeholder_points],
             "only in a feed that maps both 'lat' and 'lon'")


def check_values(feed: Feed, path: Path, catalog) -> None:
    """Values named in a feed file that must exist in the catalogue (config/categories.yaml, departments.yaml)."""
    for name in feed.fields:
        spec = feed.spec(name)
        if isinstance(spec.map, str) and spec.unmapped is not None:
            codes = sorted(catalog.value_map(spec.map).values())
            if spec.unmapped not in codes:
                raise ConfigError(f"{path}: key 'fields.{name}.unmapped': got {spec.unmapped!r}; expected a code "
                                  f"of config/{spec.map}.yaml, one of {sorted(set(codes))}")


def load_all(config_dir: Path, catalog) -> dict[str, Feed]:
    feeds: dict[str, Feed] = {}
    for path in sorted((config_dir / "feeds").glob("*.yaml")):
        feed = config_files.load(Feed, path)
        check_fields(feed, path)
        check_values(feed, path, catalog)
        if feed.id in feeds:
            raise ConfigError(f"{path}: key 'id': got {feed.id!r}; expected a feed id not used by another feed file")
        if path.stem != feed.id:
            raise ConfigError(f"{path}: key 'id': got {feed.id!r}; expected the file name's stem {path.stem!r}")
        feeds[feed.id] = feed
    if not feeds:
        raise ConfigError(f"{config_dir / 'feeds'}: no feed files (*.yaml); expected at least one")
    return feeds
