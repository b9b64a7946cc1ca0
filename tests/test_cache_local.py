"""The local query caches (config cache.type simple or filesystem) keep only what has not expired: the stock
backends kept expired entries until `threshold` (100,000) entries were held, so a wall left running grew for days."""
import time

import pytest
from flask import Flask
from flask_caching import Cache
from flask_caching.backends.simplecache import SimpleCache

from core.settings import load_config
from dashboard import cache as local
from tests.conftest import edit_yaml


def _cache(settings, kind: str, monkeypatch) -> Cache:
    monkeypatch.setattr(local._Sweeping, "sweep_seconds", 0.5)
    edit_yaml(settings, lambda d: d["cache"].update(type=kind, dir=str(settings.parent.parent / "cache"),
                                                     timeout_seconds=1))
    return Cache(Flask(__name__), config=local.cache_config(load_config(settings)))


def _held(cache: Cache) -> int:
    backend = cache.cache
    return len(backend._cache) if hasattr(backend, "_cache") else len(list(backend._list_dir()))


@pytest.mark.parametrize("kind", ["simple", "filesystem"])
def test_expired_entries_are_swept_long_before_the_threshold(config_copy, kind, monkeypatch):
    cache = _cache(config_copy, kind, monkeypatch)
    assert type(cache.cache).__name__ == f"Sweeping{'Simple' if kind == 'simple' else 'FileSystem'}Cache"
    for i in range(40):
        cache.set(f"old-{i}", {"figure": "x" * 1000, "i": i})
    assert _held(cache) == 40 and cache.get("old-7")["i"] == 7
    time.sleep(1.2)                     # every entry expired (timeout 1 s) and a sweep is due (0.5 s)
    cache.set("new", 1)
    assert _held(cache) == 1
    assert cache.get("new") == 1 and cache.get("old-7") is None


def test_a_live_entry_survives_a_sweep(config_copy, monkeypatch):
    cache = _cache(config_copy, "simple", monkeypatch)
    cache.set("long", "kept", timeout=60)
    cache.set("short", "gone")
    time.sleep(1.2)
    cache.set("next", 2)
    assert cache.get("long") == "kept" and cache.get("short") is None and _held(cache) == 2


def test_the_stock_backend_keeps_what_expired():
    """Why the sweeping backends exist: below the threshold, cachelib never looks at expiry times on write."""
    stock = SimpleCache(threshold=100_000, default_timeout=1)
    for i in range(40):
        stock.set(f"old-{i}", i)
    time.sleep(1.1)
    stock.set("new", 1)
    assert len(stock._cache) == 41


def test_redis_and_null_keep_their_stock_backends(config_copy):
    edit_yaml(config_copy, lambda d: d["cache"].update(type="null"))
    assert local.cache_config(load_config(config_copy))["CACHE_TYPE"] == "NullCache"
