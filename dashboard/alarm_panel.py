"""The wall's alarm panel and ticker: query.alarms' current alarms with the operators' acknowledgements
(ops.acks), worded from the message catalogue. Unacknowledged first, critical before warning, newest first."""
from datetime import datetime

from dash import html

from dashboard.shell import duration, t
from ops import acks
from query import alarms, overview, store

# At most this many rows are sent; the browser (assets/alarms.js) shows only the rows that fit whole at its size and
# counts the rest on the "+N more" line, which carries the count of those not sent (data-beyond) and its wording.
MAX_ITEMS = 20


def current(now: datetime) -> list[tuple]:
    """(alarm, acknowledgement or None), in display order."""
    found = alarms.current(now)
    done = acks.acknowledged([a.id for a in found]) if found else {}
    order = {"critical": 0, "warning": 1}
    return sorted(((a, done.get(a.id)) for a in found),
                  key=lambda pair: (pair[1] is not None, order.get(pair[0].severity, 2), -pair[0].since.timestamp()))


def _district_names(lang: str) -> dict:
    return {r["district_id"]: r[f"name_{lang}"] for r in overview.open_by_district()}


def text(lang: str, alarm, districts: dict) -> str:
    config = store.config()
    v = alarm.values
    place = districts.get(alarm.district_id, "")
    category = config.catalog.categories.get(v.get("category"))
    what = getattr(category, lang, v.get("category", "")) if category or v.get("category") else ""
    if alarm.kind == "urgent_incident":
        return t(lang, "alarm.urgent_incident", what=what, place=place)
    if alarm.kind == "deadline_breach":
        hours = abs(v["hours_to_due"])
        key = "alarm.deadline_breach.overdue" if v["hours_to_due"] < 0 else "alarm.deadline_breach.due"
        return t(lang, key, what=what, place=place, hours=f"{hours:.1f}")
    if alarm.kind == "sensor_threshold":
        metric = config.catalog.thresholds.metrics.get(v["metric"])
        return t(lang, "alarm.sensor_threshold", metric=getattr(metric, lang, v["metric"]), value=f"{v['value']:g}",
                 unit=v["unit"], limit=f"{v['limit']:g}", sensor=alarm.subject, place=place)
    if alarm.kind == "district_spike":
        return t(lang, "alarm.district_spike", place=place, count=v["count"], hours=v["window_hours"],
                 baseline=f"{v['baseline']:.1f}")
    feed = config.feeds.get(alarm.subject)
    return t(lang, "alarm.stale_feed", feed=getattr(feed.name, lang) if feed else alarm.subject,
             hours=f"{v['minutes_silent'] / 60:.1f}" if v.get("minutes_silent") is not None else "∞")


def may_acknowledge() -> bool:
    """Only a role with the acknowledge permission gets the button (the callback checks again)."""
    user = store.caller()
    return user is None or "acknowledge" in user.permissions


def panel(lang: str, now: datetime, pairs: list[tuple]) -> list:
    if not pairs:
        return [html.Div(t(lang, "wall.no_alarms"), className="alarm-none")]
    districts, can_ack = _district_names(lang), may_acknowledge()
    items = []
    for alarm, ack in pairs[:MAX_ITEMS]:
        located = alarm.lat is not None and alarm.lon is not None
        items.append(html.Div([
            html.Button([html.Span(text(lang, alarm, districts), className="alarm-text"),
                         html.Span(duration(lang, (now - alarm.since).total_seconds(), compact=True),
                                   className="alarm-age")],
                        id={"type": "alarm-go", "index": alarm.id}, className="alarm-go", disabled=not located,
                        title=t(lang, "alarm.locate")),
            html.Span(t(lang, "alarm.acked_by", user=ack["user"]), className="alarm-acked") if ack else
            html.Button("✓", id={"type": "alarm-ack", "index": alarm.id}, className="alarm-ack",
                        title=t(lang, "alarm.ack")) if can_ack else None,
        ], className=f"alarm alarm-{alarm.severity}" + (" acknowledged" if ack else ""),
            **{"data-alarm": alarm.id, "data-kind": alarm.kind}))
    beyond = max(0, len(pairs) - MAX_ITEMS)
    items.append(html.Div(t(lang, "alarm.more", count=beyond), className="alarm-more", hidden=not beyond,
                          **{"data-beyond": beyond, "data-template": t(lang, "alarm.more", count="{n}")}))
    return items


def ticker(lang: str, pairs: list[tuple]) -> str:
    districts = _district_names(lang) if pairs else {}
    return "   ◆   ".join(text(lang, a, districts) for a, ack in pairs if ack is None)


def positions(pairs: list[tuple]) -> dict:
    """Where the map flies for each alarm."""
    return {a.id: [a.lon, a.lat] for a, _ in pairs if a.lat is not None and a.lon is not None}
