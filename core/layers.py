"""Map layers a city declares (config/layers/*.yaml): one file per layer, its type picking the parameters it takes.
Drawing lives in layers/; this module only validates the declarations, the wall's time control
(config/layers/_timeline.yaml: files whose name starts with '_' are settings of the layer set, not layers) and an
optional offline basemap (config/layers/_basemap.yaml: a local PMTiles raster archive the app serves itself)."""
import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal, Union

from pmtiles.tile import MagicNumberNotFound, SpecVersionUnsupported, deserialize_header
from pydantic import Field, model_validator

from core import config_files
from core.errors import ConfigError
from core.settings import Names, Strict


class IncidentCells(Strict):
    """Incidents counted per H3 cell; single points when few enough."""
    type: Literal["incident_cells"]
    window_hours: int = Field(24, ge=1, le=24 * 366)
    status: Literal["open", "all"] = "all"
    resolution: Literal[7, 8, 9] = 8
    points_below: int = Field(300, ge=0, le=5000, description="draw single incidents when at most this many")
    max_cells: int = Field(2500, ge=50, le=3000, description=(
        "more cells than this at `resolution`: drawn one resolution coarser, until they fit (a hexagon is about "
        "300 bytes, so 3000 keeps the layer under 1 MB)"))


class IncidentHeat(Strict):
    """A density surface of incidents, weighted by H3 cell counts (payload bounded by the city's area)."""
    type: Literal["incident_heat"]
    window_hours: int = Field(24, ge=1, le=24 * 366)
    resolution: Literal[7, 8, 9] = 9
    radius_px: int = Field(18, ge=2, le=80)
    max_cells: int = Field(20000, ge=50, le=35000, description=(
        "more cells than this at `resolution`: one resolution coarser, until they fit (a cell centre is about "
        "25 bytes, so 35000 keeps the layer under 1 MB)"))


class DistrictChoropleth(Strict):
    """Districts shaded by a measure."""
    type: Literal["district_choropleth"]
    measure: Literal["open_incidents", "overdue_share", "satisfaction", "incidents_window"] = "open_incidents"
    window_hours: int = Field(24 * 30, ge=1, le=24 * 366, description="for measures over a time window")


class Sensors(Strict):
    """Sensors coloured by state (normal, warning, alarm, fault, offline) from config/thresholds.yaml."""
    type: Literal["sensors"]
    metrics: list[str] | None = Field(None, description="metric codes to show; all when absent")


class Places(Strict):
    """The places of a point feed (entity `places`) of one kind, e.g. service halls, with their applications."""
    type: Literal["places"]
    kind: str = Field("service_hall", pattern=r"^[a-z][a-z0-9_]{0,40}$", description="the places' `kind` code")
    window_hours: int = Field(24, ge=1, le=24 * 31, description="applications made in this many hours")
    overdue_warning: int = Field(1, ge=1, description="applications waiting past their deadline: warning from ...")
    overdue_alarm: int = Field(5, ge=1, description="... alarm from this many")


Params = Annotated[Union[IncidentCells, IncidentHeat, DistrictChoropleth, Sensors, Places],
                   Field(discriminator="type")]


class Layer(Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,40}$")
    name: Names
    visible: bool = True
    order: int = Field(50, description="drawing order: lower is drawn first (below)")
    params: Params

    @property
    def type(self) -> str:
        return self.params.type


class Timeline(Strict):
    """The wall's time control: a slider over the last `span_hours` in steps of `step_minutes` (aligned on the
    local clock), played at `play_seconds` a step. At a step ending at T the incident layers show the
    `window_steps` steps ending at T (1: "the hour ending at T"); 'live' shows every layer as configured."""
    span_hours: int = Field(24, ge=1, le=168)
    step_minutes: int = Field(60, ge=5, le=1440, description="divides a day: 5, 10, 15, 20, 30, 60, 120, ...")
    window_steps: int = Field(1, ge=1, le=48)
    play_seconds: float = Field(1.5, ge=0.5, le=30)
    loop: bool = Field(False, description="playback starts over after live instead of stopping there")

    @model_validator(mode="after")
    def _whole_steps(self):
        if 1440 % self.step_minutes:
            raise ValueError(f"step_minutes {self.step_minutes} must divide a day (1440 minutes)")
        if (self.span_hours * 60) % self.step_minutes or self.steps > 288:
            raise ValueError(f"span_hours {self.span_hours} must be a whole number of steps, at most 288")
        return self

    @property
    def steps(self) -> int:
        return self.span_hours * 60 // self.step_minutes

    def newest(self, now: datetime) -> datetime:
        """The end of the newest whole step at or before now (local clock)."""
        now = now.replace(second=0, microsecond=0)
        return now - timedelta(minutes=(now.hour * 60 + now.minute) % self.step_minutes)

    def window(self, now: datetime, position: int) -> tuple[datetime, datetime]:
        """(since, until] shown at a slider position 0 .. steps-1 (steps-1 is the newest step). Arithmetic in UTC,
        so a daylight-saving change never stretches a step."""
        newest = self.newest(now).astimezone(UTC)
        step = timedelta(minutes=self.step_minutes)
        until = newest - (self.steps - 1 - position) * step
        return ((until - self.window_steps * step).astimezone(now.tzinfo), until.astimezone(now.tzinfo))


TIMELINE_FILE = "_timeline.yaml"
BASEMAP_FILE = "_basemap.yaml"
# PMTiles tile types drawn as a raster basemap, with the file extension the tile route answers to.
RASTER_TYPES = {2: "png", 3: "jpg", 4: "webp"}
PMTILES_KINDS = {0: "of unknown type", 1: "vector (MVT)", 5: "AVIF", 6: "vector (MLT)"}


class Basemap(Strict):
    """A raster basemap under the outlines, read from a local PMTiles archive and served by the app itself
    (dashboard/tiles.py), so the map fetches nothing from outside the machine."""
    pmtiles: Path = Field(description="the .pmtiles archive; relative paths start at the project root")
    opacity: float = Field(1.0, ge=0, le=1)

    def archive(self, root: Path) -> Path:
        return self.pmtiles if self.pmtiles.is_absolute() else root / self.pmtiles


@dataclass(frozen=True)
class Archive:
    """What the app needs of a checked archive: where it is and what its tiles are."""
    path: Path
    ext: str
    min_zoom: int
    max_zoom: int
    opacity: float


def _archive_header(path: Path, source: Path) -> dict:
    """The archive's PMTiles v3 header, or a ConfigError naming the declaration, its key and what was expected."""
    where = f"{source}: key 'pmtiles'"
    if path.suffix != ".pmtiles":
        raise ConfigError(f"{where}: got {str(path)!r}; expected a file ending in .pmtiles")
    if not path.is_file():
        raise ConfigError(f"{where}: got {str(path)!r}, which does not exist; expected an existing .pmtiles file "
                          f"(relative paths start at the project root)")
    with path.open("rb") as f:
        head = f.read(127)
    try:
        return deserialize_header(head)
    except (IndexError, ValueError, MagicNumberNotFound, SpecVersionUnsupported):   # short, not PMTiles, not v3
        raise ConfigError(f"{where}: {str(path)!r} is not a PMTiles archive; expected PMTiles version 3") from None


def _checked_archive(declared: Basemap, root: Path, source: Path) -> Archive:
    path = declared.archive(root)
    header = _archive_header(path, source)
    kind = header["tile_type"].value
    if kind not in RASTER_TYPES:
        raise ConfigError(f"{source}: key 'pmtiles': {str(path)!r} holds tiles {PMTILES_KINDS.get(kind, kind)}; "
                          f"expected a raster archive (PNG, JPEG or WebP tiles)")
    if header["tile_compression"].value not in (0, 1):
        raise ConfigError(f"{source}: key 'pmtiles': {str(path)!r} compresses its tiles "
                          f"({header['tile_compression'].name}); expected raster tiles stored as they are")
    if header["tile_entries_count"] == 0:
        raise ConfigError(f"{source}: key 'pmtiles': {str(path)!r} holds no tiles; expected at least one")
    return Archive(path, RASTER_TYPES[kind], header["min_zoom"], header["max_zoom"], declared.opacity)


@functools.lru_cache(maxsize=16)
def basemap(config_dir: Path) -> Archive | None:
    """The deployment's offline basemap, checked; None when it declares none (the map keeps its plain background)."""
    source = config_dir / "layers" / BASEMAP_FILE
    if not source.is_file():
        return None
    return _checked_archive(config_files.load(Basemap, source), config_dir.parent, source)


@functools.lru_cache(maxsize=16)
def timeline(config_dir: Path) -> Timeline:
    """The deployment's time control; the defaults (24 hourly steps) when it declares none."""
    path = config_dir / "layers" / TIMELINE_FILE
    return config_files.load(Timeline, path) if path.is_file() else Timeline()


def load_all(config_dir: Path, catalog) -> list[Layer]:
    timeline(config_dir)             # a bad time control or basemap stops start-up like a bad layer
    basemap(config_dir)
    layers = []
    for path in sorted((config_dir / "layers").glob("*.yaml")):
        if path.name.startswith("_"):
            continue
        layer = config_files.load(Layer, path)
        if path.stem != layer.id:
            raise ConfigError(f"{path}: key 'id': got {layer.id!r}; expected the file name's stem {path.stem!r}")
        if isinstance(layer.params, Sensors):
            for metric in layer.params.metrics or []:
                if metric not in catalog.thresholds.metrics:
                    raise ConfigError(f"{path}: key 'params.metrics': got {metric!r}; expected one of "
                                      f"{sorted(catalog.thresholds.metrics)} (config/thresholds.yaml)")
        layers.append(layer)
    return sorted(layers, key=lambda layer: (layer.order, layer.id))
