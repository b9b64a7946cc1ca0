"""The benchmarks behind docs/ figures run end to end, at a tiny size (not the soak, which needs minutes, nor the
what-if ones): a bench that crashes is found by the suite, not by the next person who needs its figures
(bench/wall_refresh failed for sessions after a helper it shares changed). Figures are not asserted, only that
each run finishes, writes its results and measured what it says."""
import json
import re

import pytest

from tests.conftest import ROOT, run

TINY_CITY = ["--incidents", "20000", "--sensors", "12", "--days", "30", "--service-cases", "2000"]


def _results(stdout: str) -> dict:
    """The JSON a bench wrote: the path it printed last (`results: bench/results/….json`)."""
    return json.loads((ROOT / re.findall(r"^results: (\S+\.json)$", stdout, re.M)[-1]).read_text())


def test_etl_throughput_measures_every_feed_and_the_load_all():
    report = _results(run("-m", "bench.etl_throughput", *TINY_CITY, "--floor-repeats", "1").stdout)
    assert {f["feed"] for f in report["feeds"]} == {"service_halls", "sensors", "sensor_readings", "hotline_12345",
                                                   "open311", "service_cases"}
    for feed in report["feeds"]:
        assert feed["status"] == "ok" and feed["ratio"] > 0 and feed["rss_mib"] > 0, feed["feed"]
        assert sum(feed["counts"].values()) == feed["rows"], f"{feed['feed']}: every row accounted for"
    assert report["load_all"]["status"] == "ok" and report["load_all"]["ratio_minimal"] > 0


def test_wall_refresh_measures_each_case_against_its_baselines():
    report = _results(run("-m", "bench.wall_refresh", *TINY_CITY, "--repeats", "2", "--cold-repeats", "1",
                          "--generations", "1").stdout)
    assert {"cold_refresh", "steady", "new_generation"} <= set(report["cases"])
    assert report["cases"]["cold_refresh"]["ratio"]["to_healthz"] > 0
    assert "wall-map.figure" in report["cases"]["cold_refresh"]["updated"], "a cold refresh sends the map"
    assert report["publishes"][0]["generation"] == "gen-000002"


def test_kpis_page_measures_a_loaded_warehouse(loaded_city):
    settings, _, _ = loaded_city
    out = run("-m", "bench.kpis_page", "--settings", str(settings), "--repeats", "1").stdout
    report = json.loads((ROOT / out.strip().splitlines()[-1]).read_text())
    assert set(report["users"]) == {"analyst", "leader-d01"}


@pytest.mark.parametrize("args", [
    ["-m", "bench.stage_times", *TINY_CITY],
    ["-m", "bench.geo_locate", "--points", "2000", "--repeats", "1"],
])
def test_smaller_benches_run(args):
    report = _results(run(*args).stdout)
    assert report.get("stages") or report.get("steps")
