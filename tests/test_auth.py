"""Sign-in, sessions, roles and scopes against a real dashboard server: who may see what, and what is written down."""
import shutil
import time
import urllib.error
import urllib.parse
from datetime import datetime

import pytest
from flask import Flask
from flask.sessions import SecureCookieSessionInterface

from core import users
from core.errors import ConfigError
from core.settings import load_config
from ops import acks
from query import overview, store
from tests.browser import chromium, dashboard_server, http_client, signed_in
from tests.conftest import edit_yaml

AS_OF = datetime.fromisoformat("2026-11-20T15:00:00+08:00")


def _own_config(loaded_city, tmp_path):
    """The loaded city's config in a root of its own: its own ops database (failures, audit, session key)."""
    settings, _, _ = loaded_city
    shutil.copytree(settings.parent, tmp_path / "config")
    return tmp_path / "config" / "settings.yaml"


@pytest.fixture(scope="module")
def server(loaded_city, tmp_path_factory):
    settings = _own_config(loaded_city, tmp_path_factory.mktemp("auth"))
    with dashboard_server(settings) as base:
        yield base, settings


def _status(opener, url, data=None):
    try:
        with opener.open(url, data=data, timeout=30) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


def _wait_healthy(base, timeout=90):
    """Until a server started in a subprocess answers /healthz (the test's requests then tell what went wrong)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if _status(http_client(base, None), base + "/healthz")[0] == 200:
                return
        except OSError:
            time.sleep(0.3)


def _login(base, user, password):
    form = urllib.parse.urlencode({"username": user, "password": password}).encode()
    return _status(http_client(base, None), base + "/login", form)


def _audit(settings, action):
    acks.init(load_config(settings))
    try:
        return [e for e in acks.audit(limit=1000) if e["action"] == action]
    finally:
        acks._dir = None


# --- accounts and roles in config ---------------------------------------------------------------------------------

def test_a_plain_password_in_users_yaml_is_refused_naming_file_and_key(config_copy):
    edit_yaml(config_copy.parent / "users.yaml", lambda d: d["users"][1].update(password_hash="leader-demo-123456789"))
    with pytest.raises(ConfigError) as info:
        users.load(config_copy.parent)
    text = str(info.value)
    assert "users.yaml" in text and "users.1.password_hash" in text and "hash-password" in text


def test_an_unknown_role_or_district_or_page_is_refused(config_copy):
    edit_yaml(config_copy.parent / "users.yaml", lambda d: d["users"][0].update(role="mayor"))
    with pytest.raises(ConfigError, match=r"users\.0\.role.*'mayor'.*expected one of"):
        users.load(config_copy.parent)
    edit_yaml(config_copy.parent / "users.yaml", lambda d: d["users"][0].update(role="operator", scope=["D99"]))
    with pytest.raises(ConfigError, match=r"users\.0\.scope.*'D99'"):
        users.load(config_copy.parent, {"D01", "D02"})
    directory = users.load(load_config().settings_path.parent)
    with pytest.raises(ConfigError, match=r"roles\.leader\.pages"):
        users.check_pages(directory, config_copy.parent, {"/", "/wall"})


def test_passwords_are_checked_against_hashes_and_a_changed_password_changes_the_stamp(config_copy):
    directory = users.load(config_copy.parent)
    assert directory.authenticate("leader-d01", "leader-demo").scope == ("D01",)
    assert directory.authenticate("leader-d01", "wrong") is None
    assert directory.authenticate("nobody", "leader-demo") is None
    stamp = directory.session_stamp("leader-d01")
    from werkzeug.security import generate_password_hash
    edit_yaml(config_copy.parent / "users.yaml",
              lambda d: d["users"][1].update(password_hash=generate_password_hash("new-password")))
    assert users.load(config_copy.parent).session_stamp("leader-d01") != stamp


# --- the gate -----------------------------------------------------------------------------------------------------

def test_nothing_is_served_before_sign_in(server):
    base, _ = server
    anonymous = http_client(base, None)
    status, headers, _ = _status(anonymous, base + "/wall?lang=zh")
    assert status == 302 and headers["Location"] == "/login?" + urllib.parse.urlencode({"next": "/wall?lang=zh"})
    status, _, body = _status(anonymous, base + "/_dash-update-component", b"{}")
    assert status == 401 and "not signed in" in body
    for path in ("/_dash-layout", "/_dash-dependencies"):
        assert _status(anonymous, base + path)[0] == 401
    assert _status(anonymous, base + "/healthz")[0] == 200
    status, _, body = _status(anonymous, base + "/login?lang=zh")
    assert status == 200 and "登录" in body and "<form" in body


def test_sign_in_goes_to_the_page_asked_for_and_never_off_site(server):
    base, _ = server
    form = {"username": "analyst", "password": "analyst-demo"}
    for target, expected in (("/wall?lang=zh", "/wall?lang=zh"), ("//evil.example/x", "/"),
                             ("https://evil.example/", "/")):
        data = urllib.parse.urlencode({**form, "next": target}).encode()
        status, headers, _ = _status(http_client(base, None), base + "/login", data)
        assert (status, headers["Location"]) == (303, expected)
    data = urllib.parse.urlencode({"username": "wall", "password": "wall-demo"}).encode()
    status, headers, _ = _status(http_client(base, None), base + "/login", data)
    assert headers["Location"] == "/wall?kiosk=1", "a wall display goes to the wall, in kiosk mode"


def test_roles_open_only_their_pages(server):
    base, _ = server
    leader, operator = http_client(base, "leader-d01"), http_client(base, "operator")
    assert _status(leader, base + "/")[0] == 200
    assert _status(leader, base + "/kpis")[0] == 200
    status, _, body = _status(leader, base + "/wall")
    assert status == 403 and "Traceback" not in body
    assert _status(operator, base + "/wall")[0] == 200
    assert _status(operator, base + "/kpis")[0] == 403


def test_failed_sign_ins_are_rate_limited_and_audited(loaded_city, tmp_path):
    settings = _own_config(loaded_city, tmp_path)
    edit_yaml(settings, lambda d: d.setdefault("auth", {}).update(max_failures=3, failure_window_minutes=10))
    with dashboard_server(settings) as base:
        assert [_login(base, "operator", "guess")[0] for _ in range(3)] == [401, 401, 401]
        status, headers, body = _login(base, "operator", "operator-demo")
        assert status == 429 and 500 <= int(headers["Retry-After"]) <= 601, "locked, even with the right password"
        assert "Traceback" not in body
        assert _login(base, "analyst", "analyst-demo")[0] == 303, "another account from the address still works"
    failed = _audit(settings, "sign_in_failed")
    assert len(failed) == 3 and {e["actor"] for e in failed} == {"operator"}
    assert len(_audit(settings, "sign_in_locked")) == 1 and len(_audit(settings, "sign_in")) == 1


# --- sessions -----------------------------------------------------------------------------------------------------

def _forged_session(settings, **values) -> str:
    """A session cookie signed with the installation's real key, as the server would have issued it earlier."""
    app = Flask("forge")
    app.secret_key = (settings.parent.parent / "var" / "ops" / "session.key").read_bytes()
    return SecureCookieSessionInterface().get_signing_serializer(app).dumps(values)


def _with_cookie(base, settings, path, **values):
    import urllib.request
    config = load_config(settings)
    name = f"cityops_{config.settings.city.id.lower()}"
    req = urllib.request.Request(base + path, headers={"Cookie": f"{name}={_forged_session(settings, **values)}"})
    return _status(http_client(base, None), req)


def test_sessions_expire_when_idle_or_old_but_a_kiosk_stays_signed_in(server):
    base, settings = server
    http_client(base, "analyst")                         # makes sure the key file exists
    directory = load_config(settings).users
    now = time.time()
    fresh = dict(u="analyst", t0=now - 60, seen=now - 60, stamp=directory.session_stamp("analyst"))
    assert _with_cookie(base, settings, "/", **fresh)[0] == 200
    idle = {**fresh, "seen": now - 61 * 60}              # the analyst role's idle_minutes is 60
    status, headers, _ = _with_cookie(base, settings, "/", **idle)
    assert status == 302 and "expired=1" in headers["Location"]
    old = {**fresh, "t0": now - 13 * 3600}               # max_hours 12
    assert _with_cookie(base, settings, "/", **old)[0] == 302
    stale_password = {**fresh, "stamp": "0" * 12}
    assert _with_cookie(base, settings, "/", **stale_password)[0] == 302
    kiosk = dict(u="wall", t0=now - 90 * 86400, seen=now - 30 * 86400, stamp=directory.session_stamp("wall"))
    assert _with_cookie(base, settings, "/wall", **kiosk)[0] == 200, "the wall stays signed in"


def test_sign_out_ends_the_session(server):
    base, _ = server
    client = http_client(base, "analyst")
    assert _status(client, base + "/")[0] == 200
    assert _status(client, base + "/logout")[0] == 303
    assert _status(client, base + "/")[0] == 302


# --- scope --------------------------------------------------------------------------------------------------------

@pytest.mark.browser
def test_a_district_leader_sees_only_their_district(server, tmp_path):
    base, settings = server
    config = load_config(settings)
    store.init(config, None)
    d01, city = overview.tiles(AS_OF, ("D01",)), overview.tiles(AS_OF)
    assert 0 < d01.open < city.open
    shown = {}
    with chromium(tmp_path) as browser:
        for user in ("leader-d01", "analyst"):
            page = signed_in(browser, base, user)
            page.goto(f"{base}/")
            page.wait_for_selector("#tile-open", timeout=30_000)
            page.wait_for_function("() => document.querySelector('#district-map .js-plotly-plot') !== null",
                                   timeout=30_000)
            shown[user] = {
                "open": float(page.get_attribute("#tile-open", "data-value")),
                "districts": page.evaluate("""() => document.querySelector('#district-map .js-plotly-plot')
                                              .data.flatMap((t) => t.locations || [])"""),
                "badge": page.inner_text("#user-badge"),
            }
            page.context.close()
    assert shown["leader-d01"]["open"] == d01.open and shown["analyst"]["open"] == city.open
    assert set(shown["leader-d01"]["districts"]) == {"D01"}
    assert len(set(shown["analyst"]["districts"])) == 12
    assert "Old Town" in shown["leader-d01"]["badge"]


def test_gunicorn_workers_share_sessions_and_failure_counts(loaded_city, tmp_path):
    """As the Procfile runs it: two worker processes, each with its own memory; a session made by one is honoured
    by the other, and failures counted by one lock out through the other."""
    import os
    import subprocess
    import sys

    from tests.browser import ROOT, free_port
    settings = _own_config(loaded_city, tmp_path)
    edit_yaml(settings, lambda d: d.setdefault("auth", {}).update(max_failures=4))
    port = free_port()
    env = {**os.environ, "CITYOPS_CONFIG": str(settings)}
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "--workers", "2", "--threads", "2", "--bind",
                             f"127.0.0.1:{port}", "dashboard.wsgi:server"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base)
        client = http_client(base, "analyst")
        for _ in range(30):                     # a new connection each time: both workers answer some
            assert _status(client, base + "/")[0] == 200
        assert [_login(base, "admin", "nope")[0] for _ in range(4)] == [401] * 4
        assert _login(base, "admin", "admin-demo")[0] == 429
    finally:
        proc.terminate()
        proc.wait(20)



def test_procfile_web_recycles_workers_and_keeps_everyone_signed_in(loaded_city, tmp_path):
    """The Procfile's web command bounds each worker's life (--max-requests: a wall's server otherwise grows slowly
    for weeks, docs/PERFORMANCE.md); a replaced worker must not sign anyone out, nor fail the page's scripts when
    they are its first requests, several at once (Dash got ready lazily and raced: dashboard/app._ready)."""
    import os
    import re
    import shlex
    import subprocess
    import sys
    from concurrent.futures import ThreadPoolExecutor

    from tests.browser import ROOT, free_port
    line = next(l for l in (ROOT / "Procfile").read_text().splitlines() if l.startswith("web:"))
    words = shlex.split(line.split(":", 1)[1])
    assert "--max-requests" in words and "--max-requests-jitter" in words
    port = free_port()
    words[words.index("--bind") + 1] = f"127.0.0.1:{port}"
    words += ["--max-requests", "15", "--max-requests-jitter", "0"]       # a later flag wins: recycle often
    env = {**os.environ, "CITYOPS_CONFIG": str(_own_config(loaded_city, tmp_path))}
    log = tmp_path / "gunicorn.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", *words], cwd=ROOT, env=env, stdout=out, stderr=out)
    base = f"http://127.0.0.1:{port}"
    pages, scripts = [], []
    try:
        _wait_healthy(base)
        client = http_client(base, "operator")
        with ThreadPoolExecutor(8) as pool:
            for _ in range(6):
                status, _, html = _status(client, base + "/wall")
                pages.append(status)
                urls = [base + u for u in re.findall(r'src="(/_dash-component-suites/[^"]+)"', html)]
                scripts += pool.map(lambda u: _status(client, u)[0], urls)
    finally:
        proc.terminate()
        proc.wait(30)
    text = log.read_text()
    assert pages == [200] * 6                # never a redirect to /login, never an error
    assert len(scripts) > 40 and set(scripts) == {200}, [s for s in scripts if s != 200]
    assert text.count("Autorestarting worker") >= 3          # workers were replaced while serving
