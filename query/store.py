"""The reader and the cache behind every query. Results are cached per published generation: a new
generation changes every key, so a load never leaves a stale figure behind."""
import functools
import hashlib
import threading
from datetime import datetime

from core.warehouse import Reader

_state = threading.local()
_shared: dict = {}


def init(config, cache=None) -> None:
    _shared["config"] = config
    _shared["reader"] = Reader(config.warehouse_dir, config.settings.city.timezone)
    _shared["cache"] = cache


def config():
    return _shared["config"]


def reader() -> Reader:
    return _shared["reader"]


def cached(fn):
    """Memoize on (function, generation, arguments) in the configured flask-caching backend."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        cache = _shared.get("cache")
        generation = reader().current()
        if cache is None or generation is None:
            return fn(*args, **kwargs)
        key = _key(f"{fn.__module__}.{fn.__qualname__}", generation, (args, sorted(kwargs.items())))
        value = cache.get(key)
        if value is None:
            value = fn(*args, **kwargs)
            cache.set(key, value)
        return value
    return wrapper


def _key(name: str, generation: str, args) -> str:
    # The caller's scope is part of the key: a scoped user never gets a figure cached for a wider one.
    raw = repr((name, generation, caller_scope(), args))
    return "q:" + hashlib.sha1(raw.encode()).hexdigest()


def cached_each(name: str, items: list, compute) -> list:
    """Memoize per item, computing all the missing ones at once: compute(items not cached) returns their values in
    order. One query serves many windows, and a window asked for again in another batch is not queried again."""
    cache = _shared.get("cache")
    generation = reader().current()
    if cache is None or generation is None:
        return list(compute(items))
    keys = [_key(name, generation, item) for item in items]
    values = [cache.get(key) for key in keys]
    missing = [i for i, value in enumerate(values) if value is None]
    if missing:
        for i, value in zip(missing, compute([items[i] for i in missing]), strict=True):
            values[i] = value
            cache.set(keys[i], value)
    return values


def caller():
    """The signed-in user of the current request (set by dashboard/auth.py), or None outside a request: the ETL,
    the export job and tests run as the whole city."""
    from flask import g, has_request_context
    return getattr(g, "cityops_user", None) if has_request_context() else None


def caller_scope() -> tuple[str, ...] | None:
    user = caller()
    return None if user is None else user.scope


def effective_scope(scope: tuple[str, ...] | None) -> tuple[str, ...] | None:
    """The districts a query may read: what the page asked for, within what the caller may see. None = the city."""
    allowed = caller_scope()
    if allowed is None:
        return tuple(scope) if scope is not None else None
    if scope is None:
        return allowed
    return tuple(d for d in allowed if d in set(scope))


def scope_clause(scope: tuple[str, ...] | None, column: str = "district_id") -> tuple[str, list]:
    """SQL condition and parameters restricting rows to a scope (None = the whole city), always within the
    caller's own scope: a page cannot widen it by forgetting to pass one."""
    scope = effective_scope(scope)
    if scope is None:
        return "true", []
    return f"{column} IN (SELECT unnest(?::VARCHAR[]))", [list(scope)]


def minute(ts: datetime) -> datetime:
    """Queries relative to now are cached per minute."""
    return ts.replace(second=0, microsecond=0)
