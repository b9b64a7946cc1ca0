"""A point feed (entity `places`): the demo's service halls load through config/feeds/service_halls.yaml alone, and
the wall's service-hall layer shows each hall's applications and overdue cases as an independent count of the feed
files gives them."""
import csv
import json
from datetime import datetime, timedelta

from core.settings import load_config
from layers import places as draw
from layers import registry
from query import layers, store

AS_OF = datetime.fromisoformat("2026-11-20T15:00:00+08:00")


def _local(text: str) -> datetime | None:
    return datetime.fromisoformat(text).replace(tzinfo=AS_OF.tzinfo) if text else None


def _expected(city, since, until) -> dict:
    halls = json.loads((city / "services" / "halls.geojson").read_text(encoding="utf-8"))["features"]
    out = {f["properties"]["hall_id"]: [0, 0] for f in halls}
    with open(city / "services" / "service_cases.csv", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            submitted = _local(row["submitted_at"])
            if row["hall_id"] not in out or submitted is None or submitted > until:
                continue
            decided, deadline = _local(row["decided_at"]), _local(row["deadline_at"])
            out[row["hall_id"]][0] += submitted > since
            out[row["hall_id"]][1] += (decided is None or decided > until) and deadline is not None and deadline < until
    return out


def test_service_halls_load_and_their_counts_match_the_feed_files(loaded_city):
    settings, city, log = loaded_city
    assert "service_halls" in log and "quarantined=0" in log.split("service_halls")[1].split("\n")[0]
    store.init(load_config(settings), None)
    for hours in (24, 24 * 30):
        since, until = AS_OF - timedelta(hours=hours), AS_OF
        got = {r["place_id"]: [r["applications"], r["overdue"]] for r in layers.places("service_hall", since, until)}
        want = _expected(city, since, until)
        assert got == want
        assert sum(a for a, _ in got.values()) > 0, "the window should hold applications"
    assert sum(o for _, o in got.values()) > 0, "some halls should have overdue applications over 30 days"
    rows = layers.places("service_hall", AS_OF - timedelta(days=1), AS_OF)
    assert all(r["district_id"] for r in rows), "every hall is located in a district by the ETL"
    assert layers.places("shelter", AS_OF - timedelta(days=1), AS_OF) == [], "another kind: no places"


def test_hall_state_and_trace():
    assert [draw.state(n, 1, 5) for n in (0, 1, 4, 5, 9)] == ["ok", "warning", "warning", "alarm", "alarm"]
    rows = [{"place_id": "H01", "name_en": "Hall", "name_zh": "大厅", "lat": 30.2, "lon": 120.1,
             "applications": 16, "overdue": 6},
            {"place_id": "H02", "name_en": None, "name_zh": None, "lat": 30.3, "lon": 120.2,
             "applications": 0, "overdue": 0}]
    trace = draw.points(rows, "Halls", "en", "%{text}", 1, 5)
    assert list(trace.text) == ["Hall", "H02"]
    assert list(trace.marker.size) == [24, 12] and list(trace.marker.color) == [draw.COLOUR["alarm"], draw.COLOUR["ok"]]
    assert "places" in registry.WINDOWED and "places" in registry.STEP_FIELDS
