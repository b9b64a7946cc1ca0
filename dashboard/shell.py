"""The frame every page shares: title bar, language switch, data status line. Labels come from the catalogue."""
import json
from urllib.parse import urlencode

from dash import dcc, html

from core import clock
from dashboard import params
from query import store


def language(lang) -> str:
    """The language to show: a display preference, so anything not offered (a list, a number) is the default."""
    messages = store.config().messages
    return (messages.resolve(lang) if isinstance(lang, str) else None) or messages.default


def t(lang: str, key: str, **values) -> str:
    return store.config().messages.t(lang, key, **values)


def frame(lang: str, path: str, body, status=None, subtitle: str = "app.subtitle", playlist: str | None = None,
          kiosk: str | None = None) -> html.Div:
    config = store.config()
    other = next((code for code in config.messages.languages if code != lang), lang)
    return html.Div([
        html.Header([
            html.Div([
                html.H1(t(lang, "app.title"), className="title"),
                html.Span(f"{config.settings.city.name.model_dump()[lang]} · {t(lang, subtitle)}",
                          className="subtitle"),
            ], className="brand"),
            html.Div(status, className="status-line", id="status-line"),
            dcc.Link(t(lang, "lang.switch"), href=f"{path}?{urlencode({'lang': other})}", className="lang-switch",
                     id="lang-switch", title=other),
            _user_badge(lang),
        ], className="topbar"),
        html.Main(body, className="page"),
        html.Div(t(lang, "connection.lost"), id="connection-banner", className="connection-banner", hidden=True,
                 role="alert"),
        _playlist(lang, playlist, kiosk),
    ], lang=lang, className=f"frame lang-{lang}")


def _user_badge(lang: str):
    user = store.caller()
    if user is None:
        return None
    return html.Div([html.Span(t(lang, "auth.signed_in_as", name=user.name), className="user-name"),
                     html.A(t(lang, "auth.sign_out"), href="/logout", className="sign-out")],
                    className="user-badge", id="user-badge")


def _playlist(lang: str, playlist_id: str | None, kiosk: str | None):
    """The rotation the browser runs (assets/playlist.js), with the address parameters every view keeps."""
    spec = params.playlist(playlist_id)
    if spec is None:
        return None
    keep = {"playlist": spec["id"], "lang": lang, **({"kiosk": kiosk} if kiosk == "1" else {})}
    return html.Div(t(lang, "playlist.paused"), id="playlist", className="playlist-paused", hidden=True,
                    **{"data-playlist": json.dumps({**spec, "keep": urlencode(keep)})})


def now():
    return clock.now(store.config())


def duration(lang: str, seconds: float, compact: bool = False) -> str:
    """How long, in the page's language: '4 min', '3 h 05 min' (compact: '3 h'), '2 d'."""
    minutes = max(0, int(seconds // 60))
    if minutes < (120 if compact else 60):
        return t(lang, "duration.minutes", n=minutes)
    if minutes < 48 * 60:
        hours = minutes // 60
        return t(lang, "duration.hours", n=hours) if compact else \
            t(lang, "duration.hours_minutes", h=hours, m=f"{minutes % 60:02d}")
    return t(lang, "duration.days", n=minutes // 1440)
