"""The wall's time control: a slider over the last hours (core/layers.Timeline, config/layers/_timeline.yaml) with
play/pause and a way back to live. Slider positions are small integers: 0 .. steps-1 are the steps, oldest
first; `steps` is live. Anything else a browser sends is refused before a query is built."""
import math
from datetime import datetime, timedelta

from dash import dcc, html

from core import layers as layer_config
from dashboard.shell import t
from query import store


def spec() -> layer_config.Timeline:
    return layer_config.timeline(store.config().settings_path.parent)


def position(value) -> int | None:
    """The slider position a request carries, or None when it is not one (wrong type or out of range)."""
    if type(value) is not int or not 0 <= value <= spec().steps:
        return None
    return value


def window(now: datetime, at: int) -> tuple[datetime, datetime] | None:
    """(since, until] shown at a position; None for live."""
    timeline = spec()
    return None if at == timeline.steps else timeline.window(now, at)


def window_minutes() -> int:
    timeline = spec()
    return timeline.window_steps * timeline.step_minutes


def duration(lang: str, minutes: int) -> str:
    if minutes % 60 == 0:
        return t(lang, "layer.window.hours", n=minutes // 60)
    return t(lang, "layer.window.minutes", n=minutes)


def anchor(now: datetime) -> str:
    """The newest step's end: the marks are redrawn only when it moves."""
    return spec().newest(now).isoformat()


def window_label(lang: str, now: datetime, shown: tuple[datetime, datetime]) -> str:
    since, until = shown
    start = f"{since:%H:%M}"
    if since.date() != now.date():
        start = (t(lang, "wall.time.yesterday") if since.date() == now.date() - timedelta(days=1)
                 else f"{since:%m-%d}") + " " + start
    return f"{start}–{until:%H:%M}"


def marks(lang: str, now: datetime) -> dict:
    """A label every few steps (on round clock times) so they never crowd, and 'now' at live."""
    timeline = spec()
    every = max(1, math.ceil(timeline.steps / 8))
    out = {}
    for at in range(timeline.steps - 1):          # the newest step sits beside 'now': no label of its own
        start = timeline.window(now, at)[1] - timedelta(minutes=timeline.step_minutes)
        minute_of_day = start.hour * 60 + start.minute
        if (minute_of_day // timeline.step_minutes) % every == 0 and at < timeline.steps - 2:
            out[at] = f"{start:%H:%M}"
    out[timeline.steps] = t(lang, "wall.time.now")
    return out


def badge(lang: str, now: datetime, shown) -> str:
    return "" if shown is None else t(lang, "wall.time.viewing", window=window_label(lang, now, shown))


def bar_class(shown) -> str:
    return "wall-time " + ("live" if shown is None else "frozen")


def live_label(lang: str, shown) -> str:
    return "● " + t(lang, "wall.time.live") if shown is None else "⟲ " + t(lang, "wall.time.back")


def bar(lang: str, now: datetime) -> html.Div:
    timeline = spec()
    return html.Div([
        html.Button("▶ " + t(lang, "wall.time.play"), id="wall-time-play", className="time-play", n_clicks=0),
        html.Div(dcc.Slider(id="wall-time", min=0, max=timeline.steps, step=1, value=timeline.steps,
                            marks=marks(lang, now), included=True, allow_direct_input=False, updatemode="mouseup",
                            className="time-slider-input"),
                 className="time-slider", title=t(lang, "wall.time.slider")),
        html.Button(live_label(lang, None), id="wall-time-live", className="time-live", n_clicks=0),
        dcc.Interval(id="wall-time-player", interval=int(timeline.play_seconds * 1000), disabled=True),
        dcc.Store(id="wall-time-spec", data={"steps": timeline.steps, "loop": timeline.loop,
                                             "play": "▶ " + t(lang, "wall.time.play"),
                                             "pause": "❚❚ " + t(lang, "wall.time.pause")}),
        dcc.Store(id="wall-time-anchor", data=anchor(now)),
    ], id="wall-time-bar", className=bar_class(None))
