"""Shared fixtures: a copy of config/ to break, and (session-wide) a small demo city loaded through the ETL."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


@pytest.fixture
def config_copy(tmp_path) -> Path:
    """A writable copy of config/ inside a fresh project root; returns the settings.yaml path."""
    shutil.copytree(ROOT / "config", tmp_path / "config")
    return tmp_path / "config" / "settings.yaml"


def edit_yaml(path: Path, change) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")


def run(*args, env=None, check=True, timeout=900) -> subprocess.CompletedProcess:
    result = subprocess.run([PYTHON, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} exited {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


SMALL_CITY = ["--incidents", "6000", "--sensors", "24", "--days", "60", "--service-cases", "2000"]


def make_city(root: Path, extra_args=()) -> tuple[Path, Path]:
    """Generate a small demo city under root and a config pointing at it; returns (settings, city dir)."""
    city = root / "demo"
    run("-m", "demo_city", "generate", "--out", str(city), *SMALL_CITY, *extra_args)
    shutil.copytree(ROOT / "config", root / "config")
    settings = root / "config" / "settings.yaml"

    def point_at_city(d):
        d["data_dir"] = str(city)
        d["warehouse"]["dir"] = str(root / "var" / "warehouse")
        for spec in d["city"]["boundaries"].values():
            spec["path"] = str(city / "boundaries" / Path(spec["path"]).name)
    edit_yaml(settings, point_at_city)
    return settings, city


@pytest.fixture(scope="session")
def loaded_city(tmp_path_factory):
    """A small demo city, generated and loaded through the real ETL once per test session."""
    root = tmp_path_factory.mktemp("city")
    settings, city = make_city(root)
    result = run("-m", "etl", "--config", str(settings), "load-all")
    return settings, city, result.stdout + result.stderr
