"""Feed definitions (config/feeds/*.yaml): where a feed's files are, how to read them, and how their fields map
onto the canonical schema. One file per feed; adding a feed is adding a file."""
import codecs
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from core import config_files
from core.errors import ConfigError
from core.schema import ENTITIES
from core.settings import Names, Strict, check_timezone

NAMED_MAPS = ("categories", "departments")


class FieldSpec(Strict):
    source: str = Field(alias="from", min_length=1)
    format: str | None = Field(None, description="strptime format for timestamps; ISO 8601 when absent")
    map: dict[str, str] | Literal["categories", "departments"] | None = None


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


class Personal(Strict):
    drop: list[str] = []          # source fields never read past extraction
    hash: list[str] = []          # canonical fields replaced by a keyed hash
    street_level: list[str] = []  # canonical address fields cut to street level
    scrub: list[str] = []         # free-text fields cleaned of phone and ID numbers


class Feed(Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,40}$")
    entity: Literal["incidents", "service_cases", "sensors", "sensor_readings"]
    name: Names
    source: Source
    key: list[str] = Field(min_length=1)
    fields: dict[str, str | FieldSpec]
    personal: Personal = Personal()

    def spec(self, canonical: str) -> FieldSpec:
        value = self.fields[canonical]
        return FieldSpec(**{"from": value}) if isinstance(value, str) else value

    def source_fields(self) -> list[str]:
        return sorted({self.spec(name).source for name in self.fields})


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


def load_all(config_dir: Path, catalog) -> dict[str, Feed]:
    feeds: dict[str, Feed] = {}
    for path in sorted((config_dir / "feeds").glob("*.yaml")):
        feed = config_files.load(Feed, path)
        check_fields(feed, path)
        if feed.id in feeds:
            raise ConfigError(f"{path}: key 'id': got {feed.id!r}; expected a feed id not used by another feed file")
        if path.stem != feed.id:
            raise ConfigError(f"{path}: key 'id': got {feed.id!r}; expected the file name's stem {path.stem!r}")
        feeds[feed.id] = feed
    if not feeds:
        raise ConfigError(f"{config_dir / 'feeds'}: no feed files (*.yaml); expected at least one")
    return feeds
