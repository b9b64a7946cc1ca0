"""Real servers and a real browser for end-to-end tests: the dashboard in a subprocess, Debian's Chromium
driven by Playwright (never a downloaded browser)."""
import os
import socket
import subprocess
import tempfile
import sys
import time
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
