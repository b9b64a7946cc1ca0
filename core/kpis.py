"""KPIs a city declares (config/kpis/*.yaml): one file per KPI, validated at start-up, evaluated by query/kpis.py.

A KPI file says WHAT is measured, never how: an entity of the canonical schema, the time column that puts a record
in a period, and named filters from the fixed vocabulary below. No SQL comes from configuration: each filter's
meaning is a SQL fragment written here, over the row alias `r` and the window alias `w` (`w.we` is the end of the
period being measured, "the moment the figure is taken"), and a filter's value is always a bound parameter.

How a KPI is computed for one period and scope (docs/KPIS.md says it in words):

  population  records of `entity` in the caller's scope whose `period_by` time falls in [start, end)
              (`period_by: end`: records existing at the period's end, a snapshot), passing every `where` filter
  excluded    records failing a `require` entry, counted under the id of the first one they fail
  used        the rest
  value       count: used records passing `numerator` (all used when it is empty); ratio: that count / used;
              quantile: the q-quantile of `measure` over used; composite: the weighted mean of each component's
              value / target (target / value when lower is better), each capped at `cap`, as Boston's CityScore.
"""
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from core import config_files
from core.errors import ConfigError
from core.settings import Names, Strict

GRAINS = ("day", "week", "month", "quarter", "year")
Grain = Literal["day", "week", "month", "quarter", "year"]
ID = r"^[a-z][a-z0-9_]{0,40}$"


# --- the vocabulary ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Predicate:
    sql: str          # true/false over r (row) and w (window); never NULL once wrapped in coalesce(..., false)
    value: str        # flag (true, or false for its negation), hours, days, rating, categories, metrics
    doc: str


@dataclass(frozen=True)
class Measure:
    sql: str
    unit: str
    needs: tuple[str, bool]   # the requirement filter a quantile of it must declare (without it: no value)
    doc: str


@dataclass(frozen=True)
class Entity:
    table: str
    record_id: str                    # SQL giving each record's id (for drill-down)
    times: dict[str, str]             # period_by choices -> column
    born: str | None                  # column for `period_by: end` (records existing at the end); None: no snapshots
    predicates: dict[str, Predicate]
    measures: dict[str, Measure] = field(default_factory=dict)
    details: tuple[str, ...] = ()     # columns a drill-down returns (never personal data such as caller_hash)
    doc: str = ""


_CLOSED = "(r.status = 'closed' AND (r.closed_at IS NULL OR r.closed_at <= w.we))"   # as query/alarms.py's _OPEN_AT
_RESPONDED = "(r.response_at IS NOT NULL AND r.response_at <= w.we)"
_DECIDED = "(r.decided_at IS NOT NULL AND r.decided_at <= w.we)"
_OK_READING = "((r.status IS NULL OR r.status = 'ok') AND r.value IS NOT NULL)"

INCIDENTS = Entity(
    table="fct_incident", record_id="r.incident_id",
    times={"created_at": "created_at", "closed_at": "closed_at", "due_at": "due_at"}, born="created_at",
    predicates={
        "closed": Predicate(_CLOSED, "flag", "closed at the period's end (false: still open then)"),
        "responded": Predicate(_RESPONDED, "flag", "answered (dispatched or closed) by the period's end"),
        "closed_within_hours": Predicate(
            f"({_CLOSED} AND r.closed_at IS NOT NULL AND epoch(r.closed_at) - epoch(r.created_at) <= ? * 3600)",
            "hours", "closed by the period's end, at most this many hours after it was registered"),
        "has_due": Predicate("r.due_at IS NOT NULL", "flag", "has a deadline (due_at)"),
        "closed_by_due": Predicate(f"({_CLOSED} AND r.closed_at <= r.due_at)", "flag",
                                   "closed by the period's end and no later than its deadline"),
        "closure_settled": Predicate(f"({_CLOSED} OR r.due_at < w.we)", "flag",
                                     "whether it closed on time is known at the period's end: closed, or past due"),
        "overdue": Predicate(f"(NOT {_CLOSED} AND r.due_at < w.we)", "flag",
                             "open at the period's end and past its deadline"),
        "responded_within_hours": Predicate(
            f"({_RESPONDED} AND epoch(r.response_at) - epoch(r.created_at) <= ? * 3600)", "hours",
            "answered (dispatched to a department or closed, whichever came first) within this many hours"),
        "response_settled_hours": Predicate(
            f"({_RESPONDED} OR epoch(w.we) - epoch(r.created_at) >= ? * 3600)", "hours",
            "whether it was answered within this many hours is known at the period's end"),
        "rated": Predicate("r.satisfaction BETWEEN 1 AND 5", "flag", "the citizen gave a 1-5 rating"),
        "satisfaction_at_least": Predicate("r.satisfaction >= ?", "rating", "rated at least this (1-5)"),
        "has_caller": Predicate("r.caller_hash IS NOT NULL", "flag", "the caller's number is known (hashed)"),
        "repeat_within_days": Predicate(
            "(r.caller_hash IS NOT NULL AND epoch(r.created_at) - epoch(r.previous_same_at) <= ? * 86400)", "days",
            "the same caller registered an incident of the same category in the same district within this many "
            "days before"),
        "urgent": Predicate("r.priority = 'urgent'", "flag", "priority urgent"),
        "category_in": Predicate("r.category IN (SELECT unnest(?::VARCHAR[]))", "categories",
                                 "category is one of these codes (config/categories.yaml)"),
    },
    measures={"hours_to_close": Measure("epoch(r.closed_at - r.created_at) / 3600.0", "hours", ("closed", True),
                                        "hours from registration to closing"),
              "hours_to_respond": Measure("epoch(r.response_at - r.created_at) / 3600.0", "hours",
                                          ("responded", True), "hours from registration to answer")},
    details=("category", "status", "priority", "created_at", "dispatched_at", "closed_at", "due_at", "satisfaction"),
    doc="citizen requests and complaints (fct_incident)",
)

SERVICE_CASES = Entity(
    table="fct_service_case", record_id="r.case_id",
    times={"submitted_at": "submitted_at", "decided_at": "decided_at", "deadline_at": "deadline_at"},
    born="submitted_at",
    predicates={
        "online": Predicate("r.channel = 'online'", "flag", "applied online (一网通办)"),
        "has_deadline": Predicate("r.deadline_at IS NOT NULL", "flag", "has a statutory deadline"),
        "decided": Predicate(_DECIDED, "flag", "decided by the period's end"),
        "decided_by_deadline": Predicate(f"({_DECIDED} AND r.decided_at <= r.deadline_at)", "flag",
                                         "decided by the period's end and no later than its deadline"),
        "decision_settled": Predicate(f"({_DECIDED} OR r.deadline_at < w.we)", "flag",
                                      "whether it was decided in time is known at the period's end"),
        "withdrawn": Predicate("r.outcome = 'withdrawn'", "flag", "withdrawn by the applicant"),
        "rated": Predicate("r.rating IN ('good', 'neutral', 'bad')", "flag", "rated (好差评)"),
        "rating_good": Predicate("r.rating = 'good'", "flag", "rated good (好评)"),
        "rating_bad": Predicate("r.rating = 'bad'", "flag", "rated bad (差评)"),
    },
    measures={"hours_to_decide": Measure("epoch(r.decided_at - r.submitted_at) / 3600.0", "hours",
                                         ("decided", True), "hours from application to decision")},
    details=("item_code", "item_name", "channel", "submitted_at", "deadline_at", "decided_at", "outcome", "rating"),
    doc="applications for government services (fct_service_case)",
)

SENSOR_HOURS = Entity(
    table="dim_sensor", record_id="r.sensor_id || '@' || strftime(timezone('UTC', r.hour), '%Y-%m-%dT%H:%MZ')",
    times={"hour": "hour"}, born=None,
    predicates={
        "installed": Predicate("(r.installed_at IS NULL OR r.hour >= r.installed_at)", "flag",
                               "the hour starts at or after the sensor's installation"),
        "hour_over": Predicate("r.hour + INTERVAL 1 HOUR <= w.we", "flag", "the hour is over by the period's end"),
        "reading_ok": Predicate("r.ok_readings > 0", "flag",
                                "at least one reading in the hour with status ok (or none given) and a value"),
    },
    details=("sensor_id", "metric", "hour", "readings", "ok_readings"),
    doc="every sensor (dim_sensor) times every hour of the period: the readings expected, one an hour",
)

SENSOR_READINGS = Entity(
    table="fct_sensor_reading",
    record_id="r.sensor_id || '@' || strftime(timezone('UTC', r.ts), '%Y-%m-%dT%H:%M:%SZ')",
    times={"ts": "ts"}, born=None,
    predicates={
        "reading_ok": Predicate(_OK_READING, "flag", "status ok (or none given) and a value"),
        "known_metric": Predicate("r.alarm IS NOT NULL", "flag", "its metric has limits in config/thresholds.yaml"),
        "in_alarm": Predicate(f"({_OK_READING} AND CASE r.direction WHEN 'above' THEN r.value >= r.alarm "
                              "WHEN 'below' THEN r.value <= r.alarm END)", "flag",
                              "the value is at or beyond its metric's alarm limit (as the overview's 'alarm' state)"),
        "metric_in": Predicate("r.metric IN (SELECT unnest(?::VARCHAR[]))", "metrics",
                               "the sensor's metric is one of these codes (config/thresholds.yaml)"),
    },
    details=("sensor_id", "metric", "ts", "value", "status"),
    doc="sensor readings (fct_sensor_reading) with their sensor's district and metric",
)

ENTITIES = {"incidents": INCIDENTS, "service_cases": SERVICE_CASES, "sensor_hours": SENSOR_HOURS,
            "sensor_readings": SENSOR_READINGS}
PAIRED = {"responded_within_hours": "response_settled_hours"}   # a numerator filter and the requirement it needs
UNITS = {"count": "count", "ratio": "percent", "composite": "score"}   # quantile: its measure's unit


# --- the file format --------------------------------------------------------------------------------------------

class Requirement(Strict):
    id: str = Field(pattern=ID, description="the exclusion reason's code")
    filter: dict[str, Any] = Field(min_length=1)
    reason: Names = Field(description="what an excluded record is, in words, e.g. 'not yet closed'")


class Kpi(Strict):
    id: str = Field(pattern=ID)
    order: int = 50
    name: Names
    description: Names = Field(description="the formula in words, including what is excluded")
    unit: Literal["percent", "count", "hours", "score"]
    higher_is_better: bool
    target: float
    warning: float = Field(description="the band's far edge: from target to warning a warning, beyond it an alert")
    target_per: list[Literal["district", "day"]] = Field([], description="count KPIs: target per district and/or day")
    periods: list[Grain] = Field(min_length=1)
    kind: Literal["count", "ratio", "quantile", "composite"]
    entity: Literal["incidents", "service_cases", "sensor_hours", "sensor_readings"] | None = None
    period_by: str | None = None
    where: dict[str, Any] = {}
    require: list[Requirement] = []
    numerator: dict[str, Any] = {}
    measure: str | None = None
    q: float | None = Field(None, gt=0, lt=1)
    weights: dict[str, float] = {}
    cap: float = Field(2.0, gt=1, description="composite: the most one component's value/target can add")

    @property
    def snapshot(self) -> bool:
        return self.period_by == "end"


def _fail(path: Path, key: str, value, expected: str):
    raise ConfigError(f"{path}: key '{key}': got {value!r}; expected {expected}")


def _check_value(path, key, pred: Predicate, value, catalog):
    kind = pred.value
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "flag" and not isinstance(value, bool):
        _fail(path, key, value, "true or false")
    if kind == "hours" and not (number and 0 < value <= 24 * 366):
        _fail(path, key, value, "a number of hours greater than 0")
    if kind == "days" and not (isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 366):
        _fail(path, key, value, "a whole number of days from 1 to 366")
    if kind == "rating" and not (isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 5):
        _fail(path, key, value, "a whole rating from 1 to 5")
    if kind in ("categories", "metrics"):
        known = sorted(catalog.categories if kind == "categories" else catalog.thresholds.metrics)
        source = "config/categories.yaml" if kind == "categories" else "config/thresholds.yaml"
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v in known for v in value):
            _fail(path, key, value, f"a list of codes from {known} ({source})")


def _check_filters(path, key, filters: dict, entity: str, catalog):
    vocabulary = ENTITIES[entity].predicates
    for name, value in filters.items():
        if name not in vocabulary:
            _fail(path, f"{key}.{name}", name, f"a filter for {entity}: one of {sorted(vocabulary)}")
        _check_value(path, f"{key}.{name}", vocabulary[name], value, catalog)


def _check_band(path, kpi: Kpi):
    if kpi.unit == "percent":
        for key in ("target", "warning"):
            if not 0 <= getattr(kpi, key) <= 1:
                _fail(path, key, getattr(kpi, key), "a share from 0 to 1 (percent KPIs are fractions: 0.95 is 95%)")
    elif kpi.target < 0 or kpi.warning < 0:
        _fail(path, "target" if kpi.target < 0 else "warning", min(kpi.target, kpi.warning), "a value of 0 or more")
    if kpi.higher_is_better and not kpi.warning < kpi.target:
        _fail(path, "target", kpi.target, f"above warning {kpi.warning} (higher is better: the warning band lies "
                                          "below the target)")
    if not kpi.higher_is_better and not kpi.warning > kpi.target:
        _fail(path, "target", kpi.target, f"below warning {kpi.warning} (lower is better: the warning band lies "
                                          "above the target)")


def _check_measured(path, kpi: Kpi, catalog):
    if kpi.weights:
        _fail(path, "weights", kpi.weights, f"no weights for kind {kpi.kind!r} (only a composite has weights)")
    if kpi.entity is None:
        _fail(path, "entity", None, f"one of {sorted(ENTITIES)}")
    entity = ENTITIES[kpi.entity]
    choices = sorted(entity.times) + (["end"] if entity.born else [])
    if kpi.period_by not in choices:
        _fail(path, "period_by", kpi.period_by, f"for {kpi.entity}: one of {choices} ('end': the state at the "
                                                "period's end)")
    _check_filters(path, "where", kpi.where, kpi.entity, catalog)
    seen = set()
    for i, req in enumerate(kpi.require):
        if req.id in seen:
            _fail(path, f"require.{i}.id", req.id, "an id not used by another requirement of this KPI")
        seen.add(req.id)
        _check_filters(path, f"require.{i}.filter", req.filter, kpi.entity, catalog)
    _check_filters(path, "numerator", kpi.numerator, kpi.entity, catalog)
    if kpi.kind == "ratio" and not kpi.numerator:
        _fail(path, "numerator", kpi.numerator, "at least one filter (a ratio counts the used records passing it)")
    if kpi.kind != "ratio" and kpi.kind != "count" and kpi.numerator:
        _fail(path, "numerator", kpi.numerator, f"no numerator for kind {kpi.kind!r}")
    required = {name: value for req in kpi.require for name, value in req.filter.items()}
    for name, value in kpi.numerator.items():
        if name in PAIRED and required.get(PAIRED[name]) != value:
            _fail(path, f"numerator.{name}", value, f"a requirement '{PAIRED[name]}: {value}' (records whose "
                                                    "outcome is not known yet at the period's end are excluded)")
    if kpi.kind == "quantile":
        if kpi.q is None:
            _fail(path, "q", None, "a quantile between 0 and 1, e.g. 0.5 for the median")
        if kpi.measure not in entity.measures:
            _fail(path, "measure", kpi.measure, f"for {kpi.kind} of {kpi.entity}: one of {sorted(entity.measures)}")
        measure = entity.measures[kpi.measure]
        name, value = measure.needs
        if required.get(name) != value:
            _fail(path, "require", [r.id for r in kpi.require], f"a requirement with filter '{name}: "
                  f"{str(value).lower()}' (a record without it has no {kpi.measure})")
        if kpi.unit != measure.unit:
            _fail(path, "unit", kpi.unit, f"{measure.unit!r} (the unit of {kpi.measure})")
    else:
        for key in ("measure", "q"):
            if getattr(kpi, key) is not None:
                _fail(path, key, getattr(kpi, key), f"no {key} for kind {kpi.kind!r} (only a quantile has one)")
    if kpi.target_per and kpi.kind != "count":
        _fail(path, "target_per", kpi.target_per, "no target_per for kind {!r} (only counts grow with districts and "
                                                  "days)".format(kpi.kind))
    if "day" in kpi.target_per and kpi.snapshot:
        _fail(path, "target_per", kpi.target_per, "no 'day' for a snapshot (period_by: end) KPI")


def _check_composite(path, kpi: Kpi, kpis: dict[str, "Kpi"]):
    for key in ("entity", "period_by", "measure", "q"):
        if getattr(kpi, key) is not None:
            _fail(path, key, getattr(kpi, key), "nothing for a composite (it is made of other KPIs' values)")
    for key in ("where", "require", "numerator", "target_per"):
        if getattr(kpi, key):
            _fail(path, key, getattr(kpi, key), "nothing for a composite (it is made of other KPIs' values)")
    if not kpi.weights:
        _fail(path, "weights", kpi.weights, "at least one KPI id with its weight")
    for name, weight in kpi.weights.items():
        component = kpis.get(name)
        measured = sorted(k for k, v in kpis.items() if v.kind != "composite")
        if component is None or component.kind == "composite":
            _fail(path, f"weights.{name}", name, f"the id of a KPI that is not a composite: one of {measured}")
        if not weight > 0:
            _fail(path, f"weights.{name}", weight, "a weight greater than 0")
        if not component.target > 0:
            _fail(path, f"weights.{name}", name, f"a KPI whose target is above 0 (its target is {component.target}; "
                                                 "value/target needs one)")
        missing = [g for g in kpi.periods if g not in component.periods]
        if missing:
            _fail(path, "periods", missing, f"only periods every component supports ({name} supports "
                                            f"{component.periods})")


def check(kpi: Kpi, path: Path, catalog, kpis: dict[str, Kpi]) -> None:
    if len(set(kpi.periods)) != len(kpi.periods):
        _fail(path, "periods", kpi.periods, "each period at most once")
    expected_unit = UNITS.get(kpi.kind)
    if expected_unit and kpi.unit != expected_unit:
        _fail(path, "unit", kpi.unit, f"{expected_unit!r} for kind {kpi.kind!r}")
    if kpi.kind == "composite":
        _check_composite(path, kpi, kpis)
    else:
        _check_measured(path, kpi, catalog)
    _check_band(path, kpi)


def load_all(config_dir: Path, catalog) -> dict[str, Kpi]:
    """Every config/kpis/*.yaml, validated, in display order (order, id). No folder: no KPIs."""
    found = []
    for path in sorted((config_dir / "kpis").glob("*.yaml")):
        kpi = config_files.load(Kpi, path)
        if path.stem != kpi.id:     # ids are then unique, and a composite's weights can name them
            _fail(path, "id", kpi.id, f"the file name's stem {path.stem!r}")
        found.append((path, kpi))
    kpis = {kpi.id: kpi for _, kpi in found}
    for path, kpi in found:
        check(kpi, path, catalog, kpis)
    return {kpi.id: kpi for kpi in sorted(kpis.values(), key=lambda k: (k.order, k.id))}


def status(kpi: Kpi, value: float | None, target: float, warning: float) -> str | None:
    """'ok' when the value meets its target, 'warning' inside the band, 'alert' beyond it; None without a value."""
    if value is None:
        return None
    better = (lambda a, b: a >= b) if kpi.higher_is_better else (lambda a, b: a <= b)
    return "ok" if better(value, target) else "warning" if better(value, warning) else "alert"
