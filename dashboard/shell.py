"""The frame every page shares: title bar, language switch, data status line. Labels come from the catalogue."""
from urllib.parse import urlencode

from dash import dcc, html

from core import clock
from query import store


def language(lang: str | None) -> str:
    messages = store.config().messages
    return messages.resolve(lang) or messages.default


def t(lang: str, key: str, **values) -> str:
    return store.config().messages.t(lang, key, **values)


def frame(lang: str, path: str, body, status=None) -> html.Div:
    config = store.config()
    other = next((code for code in config.messages.languages if code != lang), lang)
    return html.Div([
        html.Header([
            html.Div([
                html.H1(t(lang, "app.title"), className="title"),
                html.Span(f"{config.settings.city.name.model_dump()[lang]} · {t(lang, 'app.subtitle')}",
                          className="subtitle"),
            ], className="brand"),
            html.Div(status, className="status-line", id="status-line"),
            dcc.Link(t(lang, "lang.switch"), href=f"{path}?{urlencode({'lang': other})}", className="lang-switch",
                     id="lang-switch", title=other),
        ], className="topbar"),
        html.Main(body, className="page"),
    ], lang=lang, className=f"frame lang-{lang}")


def now():
    return clock.now(store.config())
