"""HTTP routes beside the pages: /healthz, and request checks that turn bad addresses into 4xx, not stack traces.

A page is reached two ways, checked alike: a full load (GET or HEAD of its address) and Dash's in-page navigation
(the page router's callback request, whose pathname and search are the address). Every other callback request must
be one Dash's renderer sends for this app (dashboard/callback_requests.py)."""
from datetime import datetime
from html import escape

import dash
from dash.exceptions import DependencyException
from flask import Response, jsonify, request
from werkzeug.exceptions import HTTPException

from dashboard import auth, callback_requests, params
from query import health

# Dash's index and catch-all routes: every address no other route claims is a page address or no address at all.
PAGE_RULES = ("/", "/<path:path>")


def register(app: dash.Dash, config) -> None:
    server, messages = app.server, config.messages

    @server.route("/healthz")
    def healthz():
        return jsonify(health.feeds_status(datetime.now(config.tz)))

    @server.before_request
    def check_page_request():
        rule = request.url_rule
        if request.method not in ("GET", "HEAD") or rule is None or rule.rule not in PAGE_RULES:
            return None
        refused = _address_refused(messages, request.path, request.args)
        return _error(*refused) if refused else None

    @server.before_request
    def check_callback_request():
        if request.path != callback_requests.UPDATE_PATH or request.method != "POST":
            return None
        body = request.get_json(silent=True)
        problem = callback_requests.problem(body, app.callback_map)
        if problem:
            return _json_error(400, "Bad Request", problem)
        address = callback_requests.page_address(body)
        refused = _navigation_refused(messages, address) if address else None
        return _json_error(*refused) if refused else None

    # Dash raises this for a script path it does not serve (/_dash-component-suites/<package>/<path>): no such file.
    @server.errorhandler(DependencyException)
    def no_such_script(_exc):
        return _json_error(404, "Not Found", "no such script")

    @server.errorhandler(HTTPException)
    def http_error(exc):
        if request.path.startswith("/_dash"):
            return _json_error(exc.code or 500, exc.name, exc.description or "")
        return _error(exc.code or 500, exc.name, exc.description or "")


def _address_refused(messages, path: str, args) -> tuple[int, str, str] | None:
    """(status, title, detail) refusing a page address, or None: 404 for no page, 400 for bad parameters."""
    if path not in {page["path"] for page in dash.page_registry.values()}:
        return 404, messages.t(messages.default, "error.not_found"), path
    problem = params.problem(args)
    return (400, messages.t(messages.default, "error.bad_request"), problem) if problem else None


def _navigation_refused(messages, address: dict) -> tuple[int, str, str] | None:
    """The page router's address: refused as a full load of it would be, including a page the user may not open
    (auth refuses that for full loads)."""
    path, search = address.get("pathname"), address.get("search")
    if not isinstance(path, str) or not isinstance(search, str | None) or (search and search[0] != "?"):
        return 400, messages.t(messages.default, "error.bad_request"), "pathname and search: not an address"
    user = auth.current_user()
    if path in {page["path"] for page in dash.page_registry.values()} and not (user and user.may_open(path)):
        auth.audit("page_refused", path)
        return 403, "Forbidden", path
    return _address_refused(messages, path, params.parse(search or ""))


def _error(code: int, title: str, detail: str) -> Response:
    body = (f"<!doctype html><meta charset=utf-8><title>{code} {escape(title)}</title>"
            f"<h1>{code} {escape(title)}</h1><p>{escape(detail)}</p><p><a href='/'>CityOps</a></p>")
    return Response(body, status=code, mimetype="text/html")


def _json_error(code: int, title: str, detail: str) -> Response:
    response = jsonify(error=title, detail=detail)
    response.status_code = code
    return response
