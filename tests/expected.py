"""Independent counts from the demo city's feed files: the figures the dashboard must show.

Deliberately shares no code with etl/ or query/: it parses the files with the csv/json modules and applies the
tile definitions (docs/KPI_TILES in README) directly, using defects.json to know which records the ETL must refuse.
"""
import csv
import json
import statistics
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

TZ = ZoneInfo("Asia/Shanghai")
REFUSED = {"swapped_coordinates", "outside_city", "unparseable_timestamp", "future_timestamp",
           "closed_before_created", "unknown_category", "unknown_sensor"}
ALARM = {"pm25": (">=", 115), "water_level_m": (">=", 3.0), "noise_db": (">=", 80), "speed_kmh": ("<=", 15)}
OFFLINE_AFTER = timedelta(hours=3)


def _lines(path: Path) -> list[str]:
    out = []
    for raw in path.read_bytes().split(b"\n"):
        try:
            out.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            out.append(raw.decode("gbk"))
    return out


def _skip(city: Path, file: str) -> set:
    defects = json.loads((city / "defects.json").read_text(encoding="utf-8"))
    return {d.get("line", d.get("index")) for d in defects
            if d["file"] == file and (d["kind"] in REFUSED or d["kind"] == "duplicate")}


def _local(text: str) -> datetime | None:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=TZ) if text else None


def _iso(text):
    return datetime.fromisoformat(text) if text else None


def incidents(city: Path) -> list[dict]:
    """(created, closed, due, is_closed) of every incident the warehouse must hold."""
    out = []
    skip = _skip(city, "incidents/hotline_12345.csv")
    lines = _lines(city / "incidents" / "hotline_12345.csv")
    rows = csv.DictReader(lines[:1] + [line for line in lines[1:]])
    for number, row in enumerate(rows, start=2):
        if number in skip or not row.get("case_id"):
            continue
        out.append({"created": _local(row["created_at"]), "closed": _local(row["closed_at"]),
                    "due": _local(row["due_at"]), "is_closed": row["status"] == "已办结"})
    skip = _skip(city, "incidents/open311_requests.json")
    records = json.loads((city / "incidents" / "open311_requests.json").read_text(encoding="utf-8"))
    for index, r in enumerate(records):
        if index in skip:
            continue
        ext = r["extended_attributes"]
        out.append({"created": _iso(r["requested_datetime"]), "closed": _iso(ext["closed_datetime"]),
                    "due": _iso(r["expected_datetime"]), "is_closed": ext["state"] == "closed"})
    return out


def tiles(city: Path, now: datetime) -> dict:
    items = incidents(city)
    midnight = now.astimezone(TZ).replace(hour=0, minute=0, second=0, microsecond=0)
    open_items = [i for i in items if not i["is_closed"]]
    hours = [(i["closed"] - i["created"]).total_seconds() / 3600 for i in items
             if i["closed"] and now - timedelta(days=30) < i["closed"] <= now]
    return {
        "incidents_today": sum(1 for i in items if midnight <= i["created"] <= now),
        "open": len(open_items),
        "overdue": sum(1 for i in open_items if i["due"] and i["due"] < now),
        "median_hours_to_close": round(statistics.median(hours), 1) if hours else None,
        "sensors_in_alarm": sensors_in_alarm(city, now),
    }


def sensors_in_alarm(city: Path, now: datetime) -> int:
    sensors = json.loads((city / "iot" / "sensors.geojson").read_text(encoding="utf-8"))["features"]
    metric = {f["properties"]["sensor_id"]: f["properties"]["metric"] for f in sensors}
    skip = _skip(city, "iot/readings.csv")
    newest: dict[str, tuple] = {}
    with open(city / "iot" / "readings.csv", encoding="utf-8", newline="") as fh:
        for number, row in enumerate(csv.DictReader(fh), start=2):
            if number in skip or row["sensor_id"] not in metric:
                continue
            ts = datetime.fromisoformat(row["ts"])
            if ts <= now and (row["sensor_id"] not in newest or ts > newest[row["sensor_id"]][0]):
                newest[row["sensor_id"]] = (ts, row["value"], row["status"])
    count = 0
    for sensor_id, (ts, value, status) in newest.items():
        if ts < now - OFFLINE_AFTER or status != "ok" or value == "":
            continue
        op, limit = ALARM[metric[sensor_id]]
        v = float(value)
        count += (v >= limit) if op == ">=" else (v <= limit)
    return count
