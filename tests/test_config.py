"""Config validation: a bad file stops start-up with the file, the key, the value and what was expected."""
import os
import random
import shutil

import pytest
import yaml

from core.errors import ConfigError
from core.settings import load_config
from tests.conftest import ROOT, edit_yaml, run


def test_shipped_config_is_valid():
    config = load_config()
    assert config.settings.city.timezone == "Asia/Shanghai"
    assert set(config.feeds) >= {"hotline_12345", "open311", "sensors", "sensor_readings", "service_cases"}
    assert config.messages.t("zh", "tile.open") == "未办结"


def _error(settings_path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(settings_path)
    return str(info.value)


def test_bad_enum_names_file_key_value_and_choices(config_copy):
    edit_yaml(config_copy, lambda d: d["cache"].update(type="memcache"))
    message = _error(config_copy)
    assert str(config_copy) in message
    assert "key 'cache.type'" in message and "'memcache'" in message
    assert "'simple'" in message and "'redis'" in message


def test_bad_timezone(config_copy):
    edit_yaml(config_copy, lambda d: d["city"].update(timezone="Mars/Olympus"))
    message = _error(config_copy)
    assert "key 'city.timezone'" in message and "'Mars/Olympus'" in message and "IANA" in message


def test_missing_key_is_reported_as_missing(config_copy):
    edit_yaml(config_copy, lambda d: d.pop("warehouse"))
    message = _error(config_copy)
    assert "key 'warehouse'" in message and "missing" in message


def test_unknown_key_is_refused(config_copy):
    edit_yaml(config_copy, lambda d: d["dashboard"].update(refresh_secs=10))
    message = _error(config_copy)
    assert "key 'dashboard.refresh_secs'" in message


def test_out_of_range_number(config_copy):
    edit_yaml(config_copy, lambda d: d["dashboard"].update(port=70000))
    message = _error(config_copy)
    assert "key 'dashboard.port'" in message and "70000" in message and "65535" in message


def test_naive_as_of_is_refused(config_copy):
    edit_yaml(config_copy, lambda d: d["clock"].update(as_of="2026-11-20T15:00:00"))
    assert "key 'clock.as_of'" in _error(config_copy)


def test_yaml_syntax_error_names_line(config_copy):
    config_copy.write_text(config_copy.read_text() + "\ncache: [unclosed\n")
    message = _error(config_copy)
    assert str(config_copy) in message and "not valid YAML" in message and "line" in message


def test_feed_mapping_to_unknown_canonical_field(config_copy):
    feed = config_copy.parent / "feeds" / "hotline_12345.yaml"
    edit_yaml(feed, lambda d: d["fields"].update(caller_name="caller_name"))
    message = _error(config_copy)
    assert str(feed) in message and "key 'fields.caller_name'" in message and "canonical incidents field" in message


def test_feed_missing_required_mapping(config_copy):
    feed = config_copy.parent / "feeds" / "open311.yaml"
    edit_yaml(feed, lambda d: d["fields"].pop("category"))
    message = _error(config_copy)
    assert str(feed) in message and "key 'fields.category'" in message and "required" in message


def test_feed_bad_encoding_and_format(config_copy):
    feed = config_copy.parent / "feeds" / "service_cases.yaml"
    edit_yaml(feed, lambda d: d["source"].update(encoding="klingon", format="xml"))
    message = _error(config_copy)
    assert "key 'source.format'" in message and "'xml'" in message
    assert "key 'source.encoding'" in message and "'klingon'" in message


def test_feed_timestamp_format_with_a_wrong_directive(config_copy):
    feed = config_copy.parent / "feeds" / "hotline_12345.yaml"
    edit_yaml(feed, lambda d: d["fields"]["created_at"].update(format="%Y-%m-%d %H:%M:%Q"))
    message = _error(config_copy)
    assert str(feed) in message and "key 'fields.created_at.format'" in message, message
    assert "'Q' is a bad directive" in message and "expected a strptime format" in message, message


def test_category_with_unknown_department(config_copy):
    path = config_copy.parent / "categories.yaml"
    edit_yaml(path, lambda d: d["categories"]["noise"].update(department="NOPE"))
    message = _error(config_copy)
    assert str(path) in message and "categories.noise.department" in message and "'NOPE'" in message


def test_product_message_catalogues_have_the_same_keys():
    from core.i18n import PRODUCT
    keys = {lang: set(yaml.safe_load((PRODUCT / f"{lang}.yaml").read_text(encoding="utf-8"))) for lang in ("en", "zh")}
    assert keys["en"] == keys["zh"], keys["en"] ^ keys["zh"]


def test_a_deployment_overrides_messages_and_inherits_the_rest(config_copy):
    path = config_copy.parent / "i18n" / "zh.yaml"
    path.write_text("tile.open: 在办诉求\n", encoding="utf-8")
    config = load_config(config_copy)
    assert config.messages.t("zh", "tile.open") == "在办诉求"
    assert config.messages.t("zh", "tile.overdue") == "已超期"


def test_a_deployment_message_that_is_not_a_cityops_key_is_refused(config_copy):
    path = config_copy.parent / "i18n" / "zh.yaml"
    path.write_text("tile.opne: 在办诉求\n", encoding="utf-8")
    message = _error(config_copy)
    assert str(path) in message and "key 'tile.opne'" in message


def test_threshold_alarm_must_be_worse_than_warning(config_copy):
    path = config_copy.parent / "thresholds.yaml"
    edit_yaml(path, lambda d: d["metrics"]["speed_kmh"].update(alarm=40))
    assert "metrics.speed_kmh" in _error(config_copy)


def test_dashboard_start_up_fails_cleanly_on_bad_config(config_copy):
    edit_yaml(config_copy, lambda d: d["language"].update(default="fr"))
    result = run("-m", "dashboard", env={**os.environ, "CITYOPS_CONFIG": str(config_copy)}, check=False, timeout=60)
    assert result.returncode == 2
    assert "key 'language.default'" in result.stderr and "Traceback" not in result.stderr


def test_etl_start_up_fails_cleanly_on_bad_config(config_copy):
    edit_yaml(config_copy, lambda d: d["city"]["map"].update(zoom="far"))
    result = run("-m", "etl", "--config", str(config_copy), "runs", check=False, timeout=60)
    assert result.returncode == 2
    assert "key 'city.map.zoom'" in result.stderr and "Traceback" not in result.stderr


def test_layer_of_unknown_type_names_file_key_and_choices(config_copy):
    path = config_copy.parent / "layers" / "incidents.yaml"
    edit_yaml(path, lambda d: d["params"].update(type="hexbins"))
    message = _error(config_copy)
    assert str(path) in message and "params" in message and "'hexbins'" in message
    assert "incident_cells" in message


def test_layer_parameter_out_of_range(config_copy):
    path = config_copy.parent / "layers" / "incidents.yaml"
    edit_yaml(path, lambda d: d["params"].update(resolution=12))
    message = _error(config_copy)
    assert "key 'params.incident_cells.resolution'" in message and "12" in message


def test_sensor_layer_with_unknown_metric(config_copy):
    path = config_copy.parent / "layers" / "sensors.yaml"
    edit_yaml(path, lambda d: d["params"].update(metrics=["pm25", "radiation"]))
    message = _error(config_copy)
    assert str(path) in message and "key 'params.metrics'" in message and "'radiation'" in message


def test_layer_id_must_match_file_name(config_copy):
    path = config_copy.parent / "layers" / "sensors.yaml"
    edit_yaml(path, lambda d: d.update(id="devices"))
    assert "expected the file name's stem 'sensors'" in _error(config_copy)


def test_config_files_read_by_libyaml_are_read_as_by_pyyaml(tmp_path):
    """Config files are parsed by libyaml (start-up speed): every shipped file must give what the Python parser gives,
    and a broken file is still reported with the Python parser's message, line and column."""
    from pathlib import Path

    from core.config_files import read_yaml
    root = Path(__file__).resolve().parent.parent
    files = sorted(root.glob("config/**/*.yaml")) + sorted(root.glob("deployments/**/*.yaml"))
    assert len(files) > 30
    for path in files:
        assert read_yaml(path) == yaml.safe_load(path.read_text(encoding="utf-8")), path
    broken = tmp_path / "broken.yaml"
    broken.write_text("a: [1, 2\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        read_yaml(broken)
    assert str(info.value) == f"{broken}: not valid YAML (line 2, column 1): expected ',' or ']', but got '<stream end>'"


def test_a_key_named_twice_is_refused_with_both_lines(tmp_path):
    """YAML keeps a repeated key's last value without a word; a city's feed file must not lose its first mapping so.
    Both parsers refuse it (libyaml first, then the Python parser for the message); a merge key may be overridden."""
    from core.config_files import read_yaml
    path = tmp_path / "feed.yaml"
    path.write_text("id: hotline\nfields:\n  status: {from: state}\n  category: type\n  status: {from: status}\n",
                    encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        read_yaml(path)
    assert str(info.value) == (f"{path}: not valid YAML (line 5, column 3): key 'status' appears twice "
                               "(first at line 3); expected each key once")
    path.write_text("base: &b {tz: UTC, encoding: utf-8}\nfeed:\n  <<: *b\n  tz: Asia/Shanghai\n", encoding="utf-8")
    assert read_yaml(path) == {"base": {"tz": "UTC", "encoding": "utf-8"},
                               "feed": {"tz": "Asia/Shanghai", "encoding": "utf-8"}}


def test_writer_memory_limit_is_checked_and_used(config_copy, tmp_path):
    """The ETL writer's DuckDB buffer pool comes from settings; a value DuckDB would not read is refused at start-up."""
    import duckdb

    from etl import jobs
    from tests.conftest import make_city
    edit_yaml(config_copy, lambda d: d["warehouse"].update(writer_memory_limit="lots"))
    message = _error(config_copy)
    assert "key 'warehouse.writer_memory_limit'" in message and "'lots'" in message and "such as 6GB" in message
    settings, _ = make_city(tmp_path / "city")
    edit_yaml(settings, lambda d: d["warehouse"].update(writer_memory_limit="1GB"))
    expected = duckdb.connect(config={"memory_limit": "1GB"}).execute(
        "SELECT current_setting('memory_limit')").fetchall()
    with jobs._session(load_config(settings), lambda line: None) as session:
        assert session.con.execute("SELECT current_setting('memory_limit')").fetchall() == expected


def _mutate(node, rnd, odd, depth=0) -> None:
    """Replace one value somewhere below node (a mapping or a list) with an odd one; now and then drop a key."""
    places = list(node) if isinstance(node, dict) else list(range(len(node))) if isinstance(node, list) else []
    if not places:
        return
    place = rnd.choice(places)
    if rnd.random() < 0.4 or depth > 5:
        node[place] = rnd.choice(odd)
    else:
        _mutate(node[place], rnd, odd, depth + 1)
    if isinstance(node, dict) and rnd.random() < 0.1:
        node.pop(rnd.choice(list(node)), None)


def test_any_value_of_the_wrong_type_or_shape_is_a_config_error(tmp_path):
    """300 random mutations of the shipped config files (a value swapped for None, a number, a list, a mapping, a
    long or odd text; a key dropped): each loads or raises ConfigError, never another exception."""
    rnd = random.Random(20261128)
    odd = [None, "", "x", 0, -1, 10**12, 1.5, True, [], {}, ["a"], {"a": 1}, [[1]], "99:99", "%Q", "../..", "a" * 1000]
    files = sorted((ROOT / "config").rglob("*.yaml"))
    refused = 0
    for _ in range(300):
        config = tmp_path / "config"
        shutil.rmtree(config, ignore_errors=True)
        shutil.copytree(ROOT / "config", config)
        target = config / rnd.choice(files).relative_to(ROOT / "config")
        data = yaml.safe_load(target.read_text(encoding="utf-8"))
        _mutate(data, rnd, odd)
        target.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        try:
            load_config(config / "settings.yaml")
        except ConfigError:
            refused += 1
    assert refused > 100          # about half the mutations break something, and each says what
