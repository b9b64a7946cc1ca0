"""Deployment settings (config/settings.yaml) and the one place that reads the environment.

`load_config()` validates every config file at start-up and returns a frozen `Config`; a bad file raises
ConfigError naming the file, the key, the value and what was expected.
"""
import os
import re
import zoneinfo
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SETTINGS = ROOT / "config" / "settings.yaml"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Names(Strict):
    en: str = Field(min_length=1)
    zh: str = Field(min_length=1)


def check_timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError("an IANA timezone name such as 'Asia/Shanghai' or 'America/New_York'") from None
    return value


class LatLon(Strict):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class MapView(Strict):
    center: LatLon
    zoom: float = Field(ge=0, le=20)


class Boundary(Strict):
    path: Path
    id: str = Field(min_length=1, description="property holding the unit's id")
    name_en: str | None = None
    name_zh: str | None = None
    parent: str | None = Field(None, description="property holding the parent unit's id, if the file has it")


class City(Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")
    name: Names
    timezone: str
    map: MapView
    boundaries: dict[Literal["city", "district", "street", "grid"], Boundary]

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v):
        return check_timezone(v)

    @field_validator("boundaries")
    @classmethod
    def _needs_districts(cls, v):
        if "district" not in v:
            raise ValueError("a 'district' boundary file (city, street and grid are optional)")
        return v


class Warehouse(Strict):
    dir: Path
    keep_generations: int = Field(3, ge=2, le=100)
    writer_memory_limit: str = Field("6GB", description=(
        "DuckDB's buffer pool for the ETL writer; it spills past it. 4GB: 10M incidents and 50M readings load "
        "within 5.3 GiB instead of 6.4 GiB, about 5% slower (docs/PERFORMANCE.md)"))

    @field_validator("writer_memory_limit")
    @classmethod
    def _size(cls, v: str) -> str:
        if not re.fullmatch(r"[1-9][0-9]*(\.[0-9]+)?(MB|GB|MiB|GiB)", v):
            raise ValueError("a size in MB or GB, such as 6GB or 512MB")
        return v


class Language(Strict):
    default: Literal["en", "zh"] = "en"
    available: list[Literal["en", "zh"]] = ["en", "zh"]

    @model_validator(mode="after")
    def _default_available(self):
        if self.default not in self.available:
            raise ValueError(f"default language {self.default!r} to be one of available {self.available}")
        return self


class Cache(Strict):
    type: Literal["simple", "filesystem", "redis", "null"] = "simple"
    timeout_seconds: int = Field(300, ge=0)
    threshold: int = Field(100_000, ge=1000)
    redis_url: str = "redis://127.0.0.1:6379/0"
    dir: Path = Path("var/cache")


class Clock(Strict):
    as_of: datetime | None = None

    @field_validator("as_of")
    @classmethod
    def _aware(cls, v):
        if v is not None and v.tzinfo is None:
            raise ValueError("a timestamp with a UTC offset, e.g. '2026-11-20T15:00:00+08:00'")
        return v


class Dashboard(Strict):
    refresh_seconds: int = Field(60, ge=5, le=3600)
    host: str = "127.0.0.1"
    port: int = Field(8050, ge=1, le=65535)


class Etl(Strict):
    schedule_seconds: int = Field(300, ge=5)
    pii_key_env: str = "CITYOPS_PII_KEY"
    chunk_rows: int = Field(250_000, ge=1000)
    workers: int = Field(2, ge=0, le=64, description=(
        "processes that map, check, mask and locate a big file's chunks beside the loader (0: the loader does it)"))
    settle_seconds: float = Field(5, ge=0, le=3600, description=(
        "the watcher leaves a file modified less than this many seconds ago for a pass a moment later: it may "
        "still be being written (manual loads take files as they are)"))
    workers_from_chunks: float = Field(3, ge=0, description=(
        "a file is worked on by workers when it holds at least this many chunks (judged from the share of the file "
        "its first chunk took); smaller ones in the loader: starting workers costs more than they save"))


class Ops(Strict):
    dir: Path = Field(Path("var/ops"), description="operational state the dashboard writes (acknowledgements)")


class Auth(Strict):
    secret_key_env: str = Field("CITYOPS_SECRET_KEY", description=(
        "environment variable holding the key that signs session cookies; if unset, a key is generated once "
        "in ops.dir (every worker of this installation shares it)"))
    max_failures: int = Field(5, ge=1, le=100, description="failed sign-ins per account or address ...")
    failure_window_minutes: float = Field(15, gt=0, le=24 * 60, description="... within this window lock it out")
    kiosk_days: int = Field(365, ge=1, le=3650, description="a kiosk account's session cookie lasts this long")
    secure_cookies: bool = Field(False, description="send the session cookie over HTTPS only (behind TLS)")


class Privacy(Strict):
    min_records: int = Field(5, ge=1, le=1000, description=(
        "k of small-number suppression: a published figure counting fewer records is shown as '< k' on shared "
        "screens (kiosk accounts, no signed-in user) and in exports"))


class Settings(Strict):
    city: City
    data_dir: Path
    warehouse: Warehouse
    language: Language = Language()
    cache: Cache = Cache()
    clock: Clock = Clock()
    dashboard: Dashboard = Dashboard()
    etl: Etl = Etl()
    ops: Ops = Ops()
    auth: Auth = Auth()
    privacy: Privacy = Privacy()


class Config:
    """Everything a process needs, validated together. Paths are absolute."""

    def __init__(self, settings_path: Path, settings: Settings, catalog, feeds, messages, layers=(), playlists=None,
                 kpis=None):
        self.settings_path = settings_path
        self.root = settings_path.parent.parent
        self.settings = settings
        self.catalog = catalog
        self.feeds = feeds
        self.messages = messages
        self.layers = list(layers)
        self.playlists = dict(playlists or {})
        self.kpis = dict(kpis or {})     # config/kpis/*.yaml (core/kpis.py), id -> Kpi in display order

    def path(self, p: Path) -> Path:
        return p if p.is_absolute() else (self.root / p)

    @cached_property
    def data_dir(self) -> Path:
        return self.path(self.settings.data_dir)

    @cached_property
    def warehouse_dir(self) -> Path:
        return self.path(self.settings.warehouse.dir)

    @cached_property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.settings.city.timezone)

    @cached_property
    def alarms(self):
        """config/alarms.yaml (defaults when absent); load_config has already validated it."""
        from core import alarms_config
        return alarms_config.load(self.settings_path.parent)

    @cached_property
    def users(self):
        """config/roles.yaml and users.yaml (core/users.py): read by the dashboard only, so the ETL runs without."""
        from core import users
        return users.load(self.settings_path.parent)

    def pii_key(self) -> bytes | None:
        value = os.environ.get(self.settings.etl.pii_key_env)
        return value.encode() if value else None


def settings_path_from_env() -> Path:
    return Path(os.environ.get("CITYOPS_CONFIG", DEFAULT_SETTINGS)).resolve()


def load_config(settings_path: Path | str | None = None) -> Config:
    from core import alarms_config, catalog, config_files, feeds, i18n, layers, playlists
    from core import kpis as kpi_files

    path = Path(settings_path).resolve() if settings_path else settings_path_from_env()
    settings = config_files.load(Settings, path)
    config_dir = path.parent
    cat = catalog.load(config_dir)
    alarms_config.load(config_dir)   # a bad alarms.yaml stops start-up like any other file
    return Config(path, settings, cat, feeds.load_all(config_dir, cat), i18n.load(config_dir, settings.language),
                  layers.load_all(config_dir, cat), playlists.load_all(config_dir), kpi_files.load_all(config_dir, cat))
