"""HTTP routes beside the pages: /healthz, and request checks that turn bad addresses into 4xx, not stack traces."""
from datetime import datetime

import dash
from flask import Response, jsonify, request
from werkzeug.exceptions import HTTPException

from dashboard import params
from query import health

INTERNAL_PREFIXES = ("/_dash", "/assets/", "/_favicon", "/_reload", "/healthz", "/login", "/logout",
                     "/tiles/")


def register(server, config) -> None:
    messages = config.messages

    @server.route("/healthz")
    def healthz():
        return jsonify(health.feeds_status(datetime.now(config.tz)))

    @server.before_request
    def check_page_request():
        if request.method != "GET" or request.path.startswith(INTERNAL_PREFIXES):
            return None
        paths = {page["path"] for page in dash.page_registry.values()}
        if request.path not in paths:
            return _error(404, messages.t(messages.default, "error.not_found"), request.path)
        problem = params.problem(request.args)
        if problem:
            return _error(400, messages.t(messages.default, "error.bad_request"), problem)
        return None

    @server.errorhandler(HTTPException)
    def http_error(exc):
        return _error(exc.code or 500, exc.name, exc.description or "")


def _error(code: int, title: str, detail: str) -> Response:
    from html import escape
    body = (f"<!doctype html><meta charset=utf-8><title>{code} {escape(title)}</title>"
            f"<h1>{code} {escape(title)}</h1><p>{escape(detail)}</p><p><a href='/'>CityOps</a></p>")
    return Response(body, status=code, mimetype="text/html")
