"""Map layers a city declares (config/layers/*.yaml): one file per layer, its type picking the parameters it takes.
Drawing lives in layers/; this module only validates the declarations, and the wall's time control
(config/layers/_timeline.yaml: files whose name starts with '_' are settings of the layer set, not layers)."""
import functools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal, Union

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


class IncidentHeat(Strict):
    """A density surface of incidents, weighted by H3 cell counts (payload bounded by the city's area)."""
    type: Literal["incident_heat"]
    window_hours: int = Field(24, ge=1, le=24 * 366)
    resolution: Literal[7, 8, 9] = 9
    radius_px: int = Field(18, ge=2, le=80)


class DistrictChoropleth(Strict):
    """Districts shaded by a measure."""
    type: Literal["district_choropleth"]
    measure: Literal["open_incidents", "overdue_share", "satisfaction", "incidents_window"] = "open_incidents"
    window_hours: int = Field(24 * 30, ge=1, le=24 * 366, description="for measures over a time window")


class Sensors(Strict):
    """Sensors coloured by state (normal, warning, alarm, fault, offline) from config/thresholds.yaml."""
    type: Literal["sensors"]
    metrics: list[str] | None = Field(None, description="metric codes to show; all when absent")


Params = Annotated[Union[IncidentCells, IncidentHeat, DistrictChoropleth, Sensors], Field(discriminator="type")]


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


@functools.lru_cache(maxsize=16)
def timeline(config_dir: Path) -> Timeline:
    """The deployment's time control; the defaults (24 hourly steps) when it declares none."""
    path = config_dir / "layers" / TIMELINE_FILE
    return config_files.load(Timeline, path) if path.is_file() else Timeline()


def load_all(config_dir: Path, catalog) -> list[Layer]:
    timeline(config_dir)             # a bad time control stops start-up like a bad layer
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
