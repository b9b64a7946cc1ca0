"""The app factory: validated config -> query layer with its cache -> Dash pages and HTTP routes."""
from pathlib import Path

import dash
from dash import dcc, html
from flask_caching import Cache

from core import exports, playlists, users
from core.settings import load_config
from dashboard import auth, params, routes, tiles
from dashboard.cache import cache_config
from query import store

HERE = Path(__file__).resolve().parent


def create_app(config=None) -> dash.Dash:
    config = config or load_config()
    app = dash.Dash(
        __name__,
        use_pages=True,
        pages_folder=str(HERE / "pages"),
        assets_folder=str(HERE / "assets"),
        serve_locally=True,             # every script from this server: no CDN on a closed network
        title=config.messages.t(config.settings.language.default, "app.title"),
        update_title=None,
        suppress_callback_exceptions=True,
    )
    cache = Cache(app.server, config=cache_config(config))
    store.init(config, cache)
    app.layout = html.Div([dcc.Location(id="url"), dash.page_container], className="app-root")
    auth.register(app.server, config)      # first: every later check knows who is asking
    routes.register(app, config)
    tiles.register(app.server, config)
    pages = {page["path"] for page in dash.page_registry.values()}
    playlists.check_views(config.playlists, config.settings_path.parent, pages, params.PAGE_PARAMS)
    users.check_pages(config.users, config.settings_path.parent, pages)
    exports.check_pages(exports.load(config.settings_path.parent, set(config.users.accounts)),
                        config.settings_path.parent, pages, params.PAGE_PARAMS)
    _ready(app)
    return app


def _ready(app: dash.Dash) -> None:
    """Let Dash prepare itself before any request is served. It does so on a process's first request (registering
    the scripts it may serve) but marks that done before it is, so another thread's script request meanwhile got a
    500 ("dash is not a registered library"): seen as a broken wall page after a gunicorn worker was replaced."""
    with app.server.test_client() as client:
        client.get("/healthz")
