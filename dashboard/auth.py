"""Who is asking: sign-in, sessions, page access and the audit of what a user saw.

Every request but the sign-in page, /healthz and static assets needs a signed-in user. The user is put where the
query layer finds it (flask.g, read by query.store.caller), so every query is limited to the user's scope there,
whichever page or callback asked.

- current_user()  the signed-in User of this request (core/users.py: username, role, scope, kiosk), or None
- allowed(perm)   whether the current user's role grants a permission (acknowledge, view_records, export, audit)
- audit(action, subject, **detail)   append to the audit log as the current user

A session is a signed cookie holding the username, the sign-in time, the last activity and a stamp of the password
hash: it ends when idle past the role's idle_minutes, past its max_hours, or when the password changes. A kiosk
account's session does not expire: a wall signs in once.
"""
import os
import secrets
import time
from datetime import timedelta
from html import escape
from urllib.parse import parse_qsl, urlencode, urlsplit

import dash
from flask import Response, abort, g, has_request_context, jsonify, redirect, request, session

from ops import audit as audit_log
from ops import signin
from query import store

# Open without signing in: these exact paths and what is under /assets/ ("/loginx" or "/healthz/.." is no exception).
PUBLIC_PATHS = frozenset({"/login", "/logout", "/healthz", "/_favicon.ico"})
PUBLIC_PREFIXES = ("/assets/",)
TOUCH_EVERY_S = 60            # write the last-activity time at most once a minute (each write re-sends the cookie)


def current_user():
    return store.caller()


def allowed(permission: str) -> bool:
    user = current_user()
    return user is not None and permission in user.permissions


def require_page(path: str) -> None:
    """Refuse (403) a callback of a page the current user may not open: callbacks are reachable without loading
    the page, so the page's own check at load time is not enough."""
    user = current_user()
    if user is None or not user.may_open(path):
        abort(403, description=f"{path}: not a page this account may open")


def audit(action: str, subject: str, **detail) -> None:
    user = current_user()
    audit_log.record(user.username if user else "anonymous", action, subject,
                     {**detail, "address": request.remote_addr if has_request_context() else None})


def register(server, config) -> None:
    directory = config.users
    auth = config.settings.auth
    server.secret_key = _secret_key(config)
    server.config.update(SESSION_COOKIE_NAME=cookie_name(config),
                         SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                         SESSION_COOKIE_SECURE=auth.secure_cookies,
                         PERMANENT_SESSION_LIFETIME=timedelta(days=auth.kiosk_days))

    @server.before_request
    def identify():
        g.cityops_user = _session_user(directory)
        if request.path in PUBLIC_PATHS or request.path.startswith(PUBLIC_PREFIXES):
            return None
        user = g.cityops_user
        if user is None:
            if request.path.startswith("/_dash"):
                return jsonify(error="not signed in", login="/login"), 401
            expired = {"expired": "1"} if session.pop("expired", False) else {}
            return redirect("/login?" + urlencode({"next": request.full_path.rstrip("?"), **expired}))
        pages = {page["path"] for page in dash.page_registry.values()}
        if request.path in pages and not user.may_open(request.path):
            audit("page_refused", request.path)
            return _page(403, config, _lang(config), "auth.forbidden", detail=request.path)
        return None

    @server.route("/login", methods=["GET", "POST"])
    def login():
        lang = _lang(config)
        if request.method == "GET":
            reason = "auth.expired" if request.args.get("expired") == "1" else None
            return _form(config, lang, reason=reason)
        username = request.form.get("username", "").strip().lower()[:64]
        password = request.form.get("password", "")
        address = request.remote_addr or "?"
        window_s = auth.failure_window_minutes * 60
        wait = signin.locked_for(username, address, auth.max_failures, window_s)
        if wait > 0:
            audit_log.record(username or "?", "sign_in_locked", username or "?", {"address": address})
            response = _form(config, lang, username, "auth.locked", 429, minutes=max(1, round(wait / 60)))
            response.headers["Retry-After"] = str(int(wait) + 1)
            return response
        user = directory.authenticate(username, password)
        if user is None:
            signin.failed(username, address, window_s)
            audit_log.record(username or "?", "sign_in_failed", username or "?", {"address": address})
            return _form(config, lang, username, "auth.failed", 401)
        signin.succeeded(username)
        session.clear()
        now = time.time()
        session.update(u=user.username, t0=now, seen=now, stamp=directory.session_stamp(user.username))
        session.permanent = user.kiosk
        audit_log.record(user.username, "sign_in", user.username, {"address": address, "kiosk": user.kiosk})
        return redirect(_next_page(request.form.get("next"), user), code=303)

    @server.route("/logout", methods=["GET", "POST"])
    def logout():
        if session.get("u"):
            audit_log.record(session["u"], "sign_out", session["u"], {"address": request.remote_addr})
        session.clear()
        return redirect("/login", code=303)


def cookie_name(config) -> str:
    return f"cityops_{config.settings.city.id.lower()}"


def session_cookie(config, username: str) -> tuple[str, str]:
    """A session for `username` signed with this installation's key: how the export job, running on this machine
    with access to that key, is let in without a password. (name, value) of the cookie."""
    from flask import Flask
    from flask.sessions import SecureCookieSessionInterface
    signer = Flask("cityops-session")
    signer.secret_key = _secret_key(config)
    now = time.time()
    value = SecureCookieSessionInterface().get_signing_serializer(signer).dumps(
        {"u": username, "t0": now, "seen": now, "stamp": config.users.session_stamp(username)})
    return cookie_name(config), value


def _session_user(directory):
    """The user this request's session cookie names, if the session is still valid (touched on the way)."""
    username = session.get("u")
    if not username:
        return None
    user = directory.user(username)
    now = time.time()
    if user is None or session.get("stamp") != directory.session_stamp(username):
        session.clear()
        return None
    if not user.kiosk:
        role = directory.roles[user.role]
        if now - session.get("seen", 0) > role.idle_minutes * 60 or now - session.get("t0", 0) > role.max_hours * 3600:
            session.clear()
            session["expired"] = True
            return None
    if now - session.get("seen", 0) > TOUCH_EVERY_S:
        session["seen"] = now
    return user


def _next_page(target: str | None, user) -> str:
    """Where to go after signing in: the page asked for, if it is a page of this app the user may open. Rebuilt
    from its path and query: echoed as sent, '/\\evil.example' or '/<tab>/evil.example' is another host to a browser."""
    parts = urlsplit(target if isinstance(target, str) else "")
    pages = {page["path"] for page in dash.page_registry.values()}
    if not parts.scheme and not parts.netloc and parts.path in pages and user.may_open(parts.path):
        query = urlencode(parse_qsl(parts.query, keep_blank_values=True))
        return parts.path + (f"?{query}" if query else "")
    if user.kiosk and user.may_open("/wall"):
        return "/wall?kiosk=1"
    return next((path for path in ("/", "/kpis", "/wall") if user.may_open(path)), "/")


def _secret_key(config) -> bytes:
    """From the environment, else one key per installation kept in ops.dir (shared by every worker process)."""
    value = os.environ.get(config.settings.auth.secret_key_env)
    if value:
        return value.encode()
    path = config.path(config.settings.ops.dir) / "session.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".session.key.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_hex(32).encode())
        try:
            os.link(partial, path)      # appears whole or not at all; the first of several workers wins
        except FileExistsError:
            pass
        finally:
            partial.unlink()
    return path.read_bytes()


def _lang(config) -> str:
    return config.messages.resolve(request.args.get("lang") or request.form.get("lang")
                                   or request.accept_languages.best_match(config.messages.languages) or "") \
        or config.messages.default


def _form(config, lang: str, username: str = "", reason: str | None = None, status: int = 200, **values):
    t = lambda key, **v: escape(config.messages.t(lang, key, **v))
    city = config.settings.city.name.model_dump().get(lang, "")
    next_page = escape(request.values.get("next", ""), quote=True)
    notice = f"<p class='login-notice' role='alert'>{t(reason, **values)}</p>" if reason else ""
    other = next((code for code in config.messages.languages if code != lang), lang)
    body = f"""<!doctype html><html lang="{lang}"><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{t('auth.title')} · {t('app.title')}</title><link rel="stylesheet" href="/assets/login.css">
<main class="login"><form method="post" action="/login" class="login-card">
<h1>{t('app.title')}</h1><p class="login-city">{escape(city)}</p>{notice}
<label>{t('auth.username')}<input name="username" autocomplete="username" value="{escape(username, quote=True)}"
 required autofocus></label>
<label>{t('auth.password')}<input name="password" type="password" autocomplete="current-password" required></label>
<input type="hidden" name="next" value="{next_page}"><input type="hidden" name="lang" value="{lang}">
<button type="submit">{t('auth.sign_in')}</button>
<a class="login-lang" href="/login?{urlencode({'lang': other, 'next': request.values.get('next', '')})}">{
    escape(config.messages.t(lang, 'lang.switch'))}</a>
</form></main></html>"""
    return Response(body, status=status, mimetype="text/html")


def _page(status: int, config, lang: str, key: str, detail: str = "") -> Response:
    t = lambda k: escape(config.messages.t(lang, k))
    body = (f"<!doctype html><meta charset=utf-8><title>{status} {t(key)}</title><h1>{status} {t(key)}</h1>"
            f"<p>{escape(detail)}</p><p><a href='/'>CityOps</a> · <a href='/logout'>{t('auth.sign_out')}</a></p>")
    return Response(body, status=status, mimetype="text/html")
