"""Real servers and a real browser for end-to-end tests: the dashboard in a subprocess, Debian's Chromium
driven by Playwright (never a downloaded browser)."""
import os
import socket
import subprocess
import tempfile
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic", "--disable-default-apps"]
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def dashboard_server(settings_path: Path, timeout: float = 60, port: int | None = None):
    port = port or free_port()
    env = {**os.environ, "CITYOPS_CONFIG": str(settings_path), "CITYOPS_PORT": str(port)}
    code = ("import sys; from dashboard.app import create_app; app = create_app(); "
            f"app.run(host='127.0.0.1', port={port}, debug=False)")
    # The request log goes to a file: a pipe nobody reads fills up and blocks the server in long tests.
    log = tempfile.NamedTemporaryFile("w+", prefix="cityops-server-", suffix=".log", delete=False)
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(base + "/healthz", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"dashboard did not start: {Path(log.name).read_text()[-3000:]}") from None
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        os.unlink(log.name)


@contextmanager
def chromium(tmp_dir: Path):
    if not os.path.exists(CHROMIUM):
        raise RuntimeError(f"{CHROMIUM} missing: run `bash scripts/system-deps.sh` as root (apt-get install chromium)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


DEMO_PASSWORDS = {"operator": "operator-demo", "leader-d01": "leader-demo", "leader-d02": "leader-demo",
                  "analyst": "analyst-demo", "admin": "admin-demo", "wall": "wall-demo"}  # config/users.yaml, README


def signed_in(browser, base: str, user: str = "admin", viewport: dict | None = None, password: str | None = None):
    """A new page in its own browser context, signed in as `user` through the real sign-in form."""
    context = browser.new_context(viewport=viewport or {"width": 1920, "height": 1080})
    response = context.request.post(base + "/login", form={"username": user,
                                                             "password": password or DEMO_PASSWORDS[user]},
                                     max_redirects=0)
    if response.status not in (302, 303):
        raise RuntimeError(f"sign-in as {user} failed: HTTP {response.status}")
    return context.new_page()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def http_client(base: str, user: str | None = "admin", password: str | None = None) -> urllib.request.OpenerDirector:
    """A urllib opener with its own cookie jar, signed in as `user` (None: not signed in). Redirects are not
    followed, so a test sees the 302/303 itself; HTTP errors raise urllib.error.HTTPError as usual."""
    import http.cookiejar
    import urllib.parse
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), _NoRedirect)
    if user is not None:
        form = urllib.parse.urlencode({"username": user, "password": password or DEMO_PASSWORDS[user]}).encode()
        try:
            opener.open(base + "/login", data=form, timeout=30)
        except urllib.error.HTTPError as exc:
            if exc.code != 303:
                raise RuntimeError(f"sign-in as {user} failed: HTTP {exc.code}") from None
    return opener
