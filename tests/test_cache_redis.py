"""The shared cache on a real Redis server: figures computed by one dashboard process are served to another
from Redis, keyed by the published generation."""
import shutil
import subprocess
import time

import pytest
import redis

from tests.browser import free_port
from tests.conftest import edit_yaml, run

TILES = ("from core import clock; from dashboard.app import create_app; from query import overview, store; "
         "create_app(); print(overview.tiles(store.minute(clock.now(store.config()))))")


@pytest.fixture
def redis_url(tmp_path):
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.fail("redis-server missing: run `bash scripts/system-deps.sh` as root (apt-get install redis-server)")
    port = free_port()
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(10)


def _settings_with_cache(loaded_city, tmp_path, cache: dict):
    """A copy of the loaded city's config and warehouse, with the given cache settings."""
    settings, _, _ = loaded_city
    root = tmp_path / "deploy"
    shutil.copytree(settings.parent, root / "config")
    warehouse = root / "warehouse"
    source = settings.parent.parent / "var" / "warehouse" / "published"
    shutil.copytree(source, warehouse / "published")

    def change(d):
        d["warehouse"]["dir"] = str(warehouse)
        d["cache"].update(cache)
    edit_yaml(root / "config" / "settings.yaml", change)
    return root / "config" / "settings.yaml", warehouse


def _tiles(settings, check=True):
    import os
    return run("-c", TILES, env={**os.environ, "CITYOPS_CONFIG": str(settings)}, check=check)


def test_a_second_process_is_served_from_redis(loaded_city, tmp_path, redis_url):
    settings, warehouse = _settings_with_cache(loaded_city, tmp_path, {"type": "redis", "redis_url": redis_url})
    first = _tiles(settings).stdout
    keys = redis.Redis.from_url(redis_url).keys("cityops:LKS:q:*")
    assert keys, "the figures should be stored in Redis under the city's prefix"
    # Take the warehouse's files away: only the shared cache can answer now.
    generation = (warehouse / "published" / "CURRENT").read_text().strip()
    for parquet in (warehouse / "published" / generation).rglob("*.parquet"):
        parquet.rename(parquet.with_suffix(".moved"))
    assert _tiles(settings).stdout == first


def test_without_the_shared_cache_the_same_situation_fails(loaded_city, tmp_path):
    """The control for the test above: a per-process cache cannot answer once the files are gone."""
    settings, warehouse = _settings_with_cache(loaded_city, tmp_path, {"type": "simple"})
    _tiles(settings)
    generation = (warehouse / "published" / "CURRENT").read_text().strip()
    for parquet in (warehouse / "published" / generation).rglob("*.parquet"):
        parquet.rename(parquet.with_suffix(".moved"))
    assert _tiles(settings, check=False).returncode != 0
