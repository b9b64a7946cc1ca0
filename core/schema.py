"""The canonical warehouse schema: one definition that the ETL maps onto, the DDL creates, and docs/SCHEMA.md describes.

Times are TIMESTAMPTZ (instants); the city's timezone is applied when reading. Record ids are built from a feed's
natural key, so they are stable across reloads.
"""
from dataclasses import dataclass

SQL_TYPES = {"text": "VARCHAR", "timestamp": "TIMESTAMPTZ", "float": "DOUBLE", "int": "INTEGER", "bool": "BOOLEAN"}


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    required: bool = False
    mappable: bool = True     # a feed may map a source field onto it
    doc: str = ""


@dataclass(frozen=True)
class Entity:
    name: str                 # what feed files declare as `entity`
    table: str
    key: tuple[str, ...]      # natural key: one row per key (etl/merge.py keeps it so)
    columns: tuple[Column, ...]
    located: bool = False     # has lat/lon, gets district/street/grid/H3
    doc: str = ""
    # A PRIMARY KEY index on the key. Off for the big facts (readings, incidents): an ART index never spills,
    # costs about 46 B a row in the writer's memory and a third to half of a load's insert and commit time
    # (docs/PERFORMANCE.md); the merge inserts only keys not stored (ANTI JOIN) and a test checks keys stay unique.
    # A warehouse made with the index keeps it: both work.
    key_index: bool = True

    def mappable(self) -> dict[str, Column]:
        return {c.name: c for c in self.columns if c.mappable}

    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


def _c(name, type_="text", required=False, mappable=True, doc=""):
    return Column(name, type_, required, mappable, doc)


LOCATION = (
    _c("lat", "float", doc="WGS84 latitude; null when the feed gave none"),
    _c("lon", "float", doc="WGS84 longitude"),
    _c("district_id", mappable=False, doc="district containing the point (geo/)"),
    _c("street_id", mappable=False, doc="street (街道) containing the point"),
    _c("grid_id", mappable=False, doc="grid cell (网格) containing the point"),
    _c("h3_r7", mappable=False, doc="H3 cell, resolution 7 (~5 km²)"),
    _c("h3_r8", mappable=False, doc="H3 cell, resolution 8 (~0.7 km²)"),
    _c("h3_r9", mappable=False, doc="H3 cell, resolution 9 (~0.1 km²)"),
)
LINEAGE = (
    _c("feed_id", mappable=False, doc="feed that delivered the current version"),
    _c("run_id", "int", mappable=False, doc="ETL run that wrote the current version"),
)

INCIDENTS = Entity(
    "incidents", "fct_incident", ("incident_id",),
    (
        _c("incident_id", required=True, mappable=False, doc="feed id + ':' + natural key; stable across reloads"),
        _c("source_key", required=True, doc="the feed's own case number"),
        _c("category", required=True, doc="canonical category code (config/categories.yaml)"),
        _c("department", doc="department code (config/departments.yaml)"),
        _c("channel", doc="phone, wechat, web, app, ..."),
        _c("priority", doc="normal or urgent"),
        _c("status", required=True, doc="received, dispatched, in_progress or closed"),
        _c("created_at", "timestamp", required=True, doc="when the citizen's request was registered"),
        _c("dispatched_at", "timestamp", doc="when it was sent to a department"),
        _c("closed_at", "timestamp", doc="when it was closed; null while open"),
        _c("due_at", "timestamp", doc="deadline; created_at + the category's SLA when the feed gives none"),
        _c("updated_at", "timestamp", doc="time of the latest change in the source system"),
        _c("satisfaction", "int", doc="citizen rating 1-5, null when not rated"),
        *LOCATION,
        _c("address", doc="address cut to street level (no house numbers)"),
        _c("description", doc="free text with phone and ID-card numbers scrubbed"),
        _c("caller_phone", mappable=True, doc="never stored: hashed into caller_hash during masking"),
        _c("caller_hash", mappable=False, doc="keyed hash of the caller's phone number, to count repeat callers"),
        _c("previous_same_at", "timestamp", mappable=False,
           doc="created_at of the same caller's previous incident of the same category in the same district "
               "(null: none before, or no caller); kept by the ETL (etl/derived.py) for repeat-complaint KPIs"),
        *LINEAGE,
    ),
    located=True, doc="Citizen requests and complaints (12345 / 311), latest state of each case.",
    key_index=False,
)

SERVICE_CASES = Entity(
    "service_cases", "fct_service_case", ("case_id",),
    (
        _c("case_id", required=True, doc="the case system's application number"),
        _c("item_code", doc="service item code"),
        _c("item_name", doc="service item name"),
        _c("department", doc="department code"),
        _c("channel", required=True, doc="online or offline"),
        _c("hall_id", doc="service hall for offline applications"),
        _c("district_id", doc="district of the applicant or hall"),
        _c("submitted_at", "timestamp", required=True),
        _c("deadline_at", "timestamp", doc="statutory deadline"),
        _c("decided_at", "timestamp", doc="null while pending"),
        _c("outcome", doc="approved, rejected, withdrawn; null while pending"),
        _c("rating", doc="good, neutral or bad (好差评); null when not rated"),
        _c("within_deadline", "bool", mappable=False, doc="decided_at <= deadline_at; null while pending"),
        *LINEAGE,
    ),
    doc="Applications for government services (一网通办).",
)

SENSORS = Entity(
    "sensors", "dim_sensor", ("sensor_id",),
    (
        _c("sensor_id", required=True),
        _c("kind", doc="air, water_level, traffic, noise, ..."),
        _c("metric", required=True, doc="metric code (config/thresholds.yaml)"),
        _c("name_en"), _c("name_zh"),
        _c("installed_at", "timestamp"),
        *LOCATION,
        *LINEAGE,
    ),
    located=True, doc="IoT devices.",
)

SENSOR_READINGS = Entity(
    "sensor_readings", "fct_sensor_reading", ("sensor_id", "ts"),
    (
        _c("sensor_id", required=True),
        _c("ts", "timestamp", required=True, doc="measurement time"),
        _c("value", "float", doc="in the metric's unit; null or flagged when the device reports a fault"),
        _c("status", doc="device health: ok, fault, low_battery, ..."),
        *LINEAGE,
    ),
    doc="Sensor readings; late and out-of-order rows land in place by (sensor_id, ts).",
    key_index=False,
)

PLACES = Entity(
    "places", "dim_place", ("place_id",),
    (
        _c("place_id", required=True, doc="the source's id of the place (e.g. a service hall's hall_id)"),
        _c("kind", required=True, doc="service_hall, shelter, school, ...: what a layer picks"),
        _c("name_en"), _c("name_zh"),
        _c("address", doc="the place's public address (a public building, not a person's)"),
        *LOCATION,
        *LINEAGE,
    ),
    located=True, doc="Fixed points a city publishes: service halls (政务服务大厅), shelters, ... (any point feed).",
)

ENTITIES = {e.name: e for e in (INCIDENTS, SERVICE_CASES, SENSORS, SENSOR_READINGS, PLACES)}
# Load order: readings are checked against known sensors.
LOAD_ORDER = ("places", "sensors", "sensor_readings", "incidents", "service_cases")

ADMIN_LEVELS = ("city", "district", "street", "grid")
ADMIN_TABLES = {level: f"dim_{level}" for level in ADMIN_LEVELS}


def _entity_ddl(e: Entity) -> str:
    cols = [f"{c.name} {SQL_TYPES[c.type]}" for c in e.columns if c.name != "caller_phone"]
    key = f", PRIMARY KEY ({', '.join(e.key)})" if e.key_index else ""
    return f"CREATE TABLE IF NOT EXISTS {e.table} ({', '.join(cols)}{key})"


def _admin_ddl(level: str) -> str:
    parents = {"city": "", "district": "city_id VARCHAR, ", "street": "district_id VARCHAR, ",
               "grid": "street_id VARCHAR, district_id VARCHAR, "}[level]
    return (f"CREATE TABLE IF NOT EXISTS dim_{level} ({level}_id VARCHAR PRIMARY KEY, {parents}"
            "name_en VARCHAR, name_zh VARCHAR, area_km2 DOUBLE, centroid_lat DOUBLE, centroid_lon DOUBLE, "
            "geometry_wkb BLOB, geojson_simplified VARCHAR, run_id INTEGER)")


DDL = [
    *(_entity_ddl(e) for e in ENTITIES.values()),
    """CREATE TABLE IF NOT EXISTS fct_incident_status (
        incident_id VARCHAR, status VARCHAR, changed_at TIMESTAMPTZ, run_id INTEGER)""",   # unique as merged
    *(_admin_ddl(level) for level in ADMIN_LEVELS),
    "CREATE SEQUENCE IF NOT EXISTS etl_run_seq START 1",
    """CREATE TABLE IF NOT EXISTS etl_run (
        run_id INTEGER PRIMARY KEY, feed_id VARCHAR, file VARCHAR, file_sha256 VARCHAR,
        started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ, status VARCHAR,
        rows_read BIGINT, rows_inserted BIGINT, rows_updated BIGINT, rows_merged BIGINT, rows_quarantined BIGINT,
        duration_s DOUBLE, pid INTEGER, error VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS etl_quarantine (
        run_id INTEGER, feed_id VARCHAR, file VARCHAR, line BIGINT, record_key VARCHAR,
        reason VARCHAR, raw_json VARCHAR)""",
]

# What the ETL publishes for readers (the dashboard never sees the writer's database).
PUBLISHED_TABLES = (
    *(e.table for e in ENTITIES.values()), "fct_incident_status",
    *ADMIN_TABLES.values(), "etl_run", "etl_quarantine",
)
