"""Map layers a city declares (config/layers/*.yaml): one file per layer, its type picking the parameters it takes.
Drawing lives in layers/; this module only validates the declarations."""
from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import Field

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


def load_all(config_dir: Path, catalog) -> list[Layer]:
    layers = []
    for path in sorted((config_dir / "layers").glob("*.yaml")):
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
