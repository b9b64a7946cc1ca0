"""Scheduled snapshot exports: real dashboard, real Chromium, real files, audited."""
import shutil
import struct
from datetime import UTC, datetime, timedelta

import pytest

from core import exports as export_config
from core.errors import ConfigError
from core.settings import load_config
from export import snapshot
from export.__main__ import _next
from ops import acks
from tests.browser import dashboard_server
from tests.conftest import edit_yaml, run


def _png_size(blob: bytes) -> tuple[int, int]:
    assert blob[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", blob[16:24])


@pytest.fixture(scope="module")
def served(loaded_city, tmp_path_factory):
    settings, _, _ = loaded_city
    root = tmp_path_factory.mktemp("export")
    shutil.copytree(settings.parent, root / "config")
    copy = root / "config" / "settings.yaml"
    with dashboard_server(copy) as base:
        edit_yaml(copy.parent / "exports.yaml", lambda d: d.update(base_url=base))
        yield copy, base


@pytest.mark.browser
def test_a_snapshot_writes_png_and_pdf_of_the_drawn_page_and_is_audited(served):
    settings, _ = served
    config = load_config(settings)
    exports = export_config.load(settings.parent, set(config.users.accounts))
    export = next(e for e in exports.exports if e.id == "overview_daily")
    now = datetime(2026, 11, 20, 7, 30, tzinfo=UTC)
    files = snapshot.take(config, exports, export, now)
    assert [f.suffix for f in files] == [".png", ".pdf"]
    png, pdf = (f.read_bytes() for f in files)
    assert _png_size(png) == (1920, 1080)
    assert len(png) > 50_000, "a drawn page, not a blank one"
    assert pdf.startswith(b"%PDF") and b"%%EOF" in pdf[-64:] and len(pdf) > 50_000, "a PDF holding the picture"
    acks.init(config)
    try:
        entries = [e for e in acks.audit(limit=50) if e["action"] == "export"]
    finally:
        acks._dir = None
    assert entries and entries[0]["actor"] == "reports" and entries[0]["subject"] == "overview_daily"
    assert [str(f) for f in files] == entries[0]["detail"]["files"]


@pytest.mark.browser
def test_old_snapshots_are_pruned_and_a_refused_page_is_an_error_not_a_login_picture(served):
    settings, _ = served
    config = load_config(settings)
    exports = export_config.load(settings.parent, set(config.users.accounts))
    wall = next(e for e in exports.exports if e.id == "wall_hourly").model_copy(update={"keep": 2})
    start = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    for hour in range(3):
        snapshot.take(config, exports, wall, start + timedelta(hours=hour))
    folder = config.path(exports.dir) / "wall_hourly"
    assert sorted(p.name for p in folder.iterdir()) == ["20261120-170000.png", "20261120-180000.png"]
    refused = wall.model_copy(update={"user": "leader-d01"})          # a leader may not open /wall
    with pytest.raises(snapshot.SnapshotError, match="403"):
        snapshot.take(config, exports, refused, start)


def test_the_cli_names_a_bad_export_and_the_config_checks_users_and_pages(config_copy):
    result = run("-m", "export", "--config", str(config_copy), "run", "nope", check=False)
    assert result.returncode == 2 and "no export 'nope'" in result.stderr
    edit_yaml(config_copy.parent / "exports.yaml", lambda d: d["exports"][0].update(user="mayor"))
    with pytest.raises(ConfigError, match=r"exports\.yaml: key 'exports\.0\.user': got 'mayor'"):
        export_config.load(config_copy.parent, {"reports"})
    good = export_config.load(config_copy.parent)
    with pytest.raises(ConfigError, match=r"exports\.0\.page"):
        export_config.check_pages(good, config_copy.parent, {"/"}, {"lang"})


def test_schedules_fall_on_their_times():
    config = load_config()
    exports = export_config.load(config.settings_path.parent)
    hourly, daily = exports.exports
    t = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)
    assert _next(hourly, t, config.tz) == t + timedelta(hours=1)
    # 07:30 in Asia/Shanghai is 23:30 UTC the day before.
    assert _next(daily, t, config.tz) == datetime(2026, 11, 20, 23, 30, tzinfo=UTC)
