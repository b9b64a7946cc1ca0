"""What the command-centre wall raises as alarms (config/alarms.yaml), validated at start-up.

Loaded by core.settings.load_config as `config.alarms`. A deployment without config/alarms.yaml gets the defaults
below; a file that is there must be valid (a bad one raises ConfigError naming file, key, value and expectation).
"""
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from core import config_files
from core.settings import Strict

FILE = "alarms.yaml"
Severity = Literal["critical", "warning"]


class UrgentIncident(Strict):
    enabled: bool = True
    within_hours: float = Field(6, gt=0, le=24 * 30, description="urgent incidents created this recently, not closed")
    severity: Severity = "critical"


class SensorThreshold(Strict):
    """A sensor whose newest reading is in 'alarm' state is critical, in 'warning' state a warning (limits:
    config/thresholds.yaml)."""
    enabled: bool = True


class DeadlineBreach(Strict):
    enabled: bool = True
    due_within_hours: float = Field(2, gt=0, le=24 * 30, description="open and due within this many hours: warning")
    overdue_within_hours: float = Field(4, gt=0, le=24 * 365,
                                        description="open and overdue by at most this many hours: critical")
    max_per_district: int = Field(3, ge=1, le=1000, description="at most this many deadline alarms per district")


class DistrictSpike(Strict):
    enabled: bool = True
    window_hours: float = Field(6, gt=0, le=24, description="incidents created in the last this many hours ...")
    baseline_days: int = Field(14, ge=2, le=90, description="... against the same hours of the previous this many days")
    min_count: int = Field(10, ge=1, description="never a spike below this many incidents in the window")
    z_score: float | None = Field(4.0, gt=0, description="spike when (count - mean) / max(sd, 1) reaches this")
    ratio: float | None = Field(3.0, gt=1, description="spike when count / mean reaches this")
    step_minutes: int = Field(5, ge=1, le=60, description="evaluated on a clock-aligned grid of this step")
    merge_gap_minutes: int = Field(60, ge=0, le=24 * 60, description=(
        "a lull this long or shorter does not end a spike: it keeps its onset, so its id and acknowledgement"))
    onset_lookback_hours: float = Field(48, gt=0, le=24 * 7, description="how far back a spike's onset is sought")
    severity: Severity = "warning"

    @model_validator(mode="after")
    def _a_criterion(self):
        if self.z_score is None and self.ratio is None:
            raise ValueError("at least one of 'z_score' and 'ratio' to be set (a number, not null)")
        return self


class StaleFeed(Strict):
    enabled: bool = True
    severity: Severity = "warning"
    critical_after_intervals: float | None = Field(
        3, gt=1, description="silent longer than this many expected intervals: critical (null: never)")


class Alarms(Strict):
    urgent_incident: UrgentIncident = UrgentIncident()
    sensor_threshold: SensorThreshold = SensorThreshold()
    deadline_breach: DeadlineBreach = DeadlineBreach()
    district_spike: DistrictSpike = DistrictSpike()
    stale_feed: StaleFeed = StaleFeed()


def load(config_dir: Path) -> Alarms:
    path = config_dir / FILE
    if not path.exists():
        return Alarms()
    return config_files.load(Alarms, path)
