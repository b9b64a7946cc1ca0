"""How old each panel's data is: the newest successful load among the feeds it depends on, and whether any of
them has been silent longer than its configured interval (source.expected_every_minutes)."""
from datetime import datetime

from dash import html

from dashboard.shell import duration, t
from query import health, store


def entity_status(now: datetime) -> dict[str, dict]:
    """Per canonical entity: age in seconds of its newest load (None if never) and whether a feed is stale."""
    feeds = health.feeds_status(now)["feeds"]
    out: dict[str, dict] = {}
    for feed_id, status in feeds.items():
        entity = store.config().feeds[feed_id].entity
        entry = out.setdefault(entity, {"age": None, "stale": False})
        if status["last_load"]:
            age = (now - datetime.fromisoformat(status["last_load"])).total_seconds()
            entry["age"] = age if entry["age"] is None else min(entry["age"], age)
        entry["stale"] |= status["stale"]
    return out


def age_label(lang: str, status: dict[str, dict], entities: tuple[str, ...]):
    """'data 4 min old', or STALE when a feed behind the panel is overdue."""
    known = [status[e] for e in entities if e in status]
    stale = not known or any(s["stale"] or s["age"] is None for s in known)
    ages = [s["age"] for s in known if s["age"] is not None]
    text = t(lang, "wall.age", age=duration(lang, max(ages))) if ages else ""
    if stale:
        return html.Span([html.B(t(lang, "wall.stale")), " ", text], className="age-stale", **{"data-stale": "1"})
    return html.Span(text, className="age-ok", **{"data-stale": "0"})
