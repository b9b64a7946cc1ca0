"""The query cache's flask-caching configuration, and the two local backends made safe to run for weeks.

cachelib's SimpleCache and FileSystemCache drop expired entries only once they hold `threshold` entries. Every
key here carries the generation and, for "now" queries, the minute, so entries expire by the thousand a day while
the count creeps towards the threshold (100,000 by default): the server's memory (or cache folder) grew for days
on a wall that refreshes every 10 s (bench/wall_soak: +20 MiB an hour at the 50,000-incident city). These sweep
expired entries at most once a `SWEEP_SECONDS` on write, so what is kept is what is still valid. Redis expires
keys itself.
"""
import time

from flask_caching.backends.filesystemcache import FileSystemCache
from flask_caching.backends.simplecache import SimpleCache

SWEEP_SECONDS = 60


class _Sweeping:
    """Mixed into a cachelib backend whose _prune removes expired entries only past the threshold."""
    sweep_seconds = SWEEP_SECONDS
    _next_sweep = 0.0

    def _prune(self) -> None:
        now = time.time()
        if now >= self._next_sweep:
            self._next_sweep = now + self.sweep_seconds
            self._remove_expired(now)
        super()._prune()


class SweepingSimpleCache(_Sweeping, SimpleCache):
    pass


class SweepingFileSystemCache(_Sweeping, FileSystemCache):
    pass


KINDS = {"simple": f"{__name__}.SweepingSimpleCache", "filesystem": f"{__name__}.SweepingFileSystemCache",
         "redis": "RedisCache", "null": "NullCache"}


def cache_config(config) -> dict:
    """flask-caching settings from config/settings.yaml's `cache` block."""
    c = config.settings.cache
    out = {"CACHE_TYPE": KINDS[c.type], "CACHE_DEFAULT_TIMEOUT": c.timeout_seconds, "CACHE_THRESHOLD": c.threshold}
    if c.type == "redis":
        out["CACHE_REDIS_URL"] = c.redis_url
        out["CACHE_KEY_PREFIX"] = f"cityops:{config.settings.city.id}:"
    if c.type == "filesystem":
        out["CACHE_DIR"] = str(config.path(c.dir))
    return out
