"""One snapshot: open the page in headless Chromium as the export's account, wait until it has drawn, write PNG
and PDF, keep the newest `keep`, and audit the export.

The account is let in with a session cookie signed by this installation's key (dashboard.auth.session_cookie):
the job runs on the server, beside that key, so no password is stored for it. The page sees the account's role,
scope and small-number rule, as a person signed in as it would.

Chromium's PDF printer drops WebGL maps, so the PDF is the PNG printed on a page with a title line.
"""
import base64
import os
from datetime import datetime
from html import escape
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from dashboard import auth
from ops import acks, audit

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic", "--disable-default-apps"]
DRAWN = """() => !document.querySelector('[data-dash-is-loading="true"]')
    && [...document.querySelectorAll('.js-plotly-plot')].every((p) => p._fullLayout)
    && [...document.querySelectorAll('.maplibregl-map')].every((m) => m.querySelector('canvas')
        && m.closest('.js-plotly-plot').getAttribute('data-fitted') === '1')"""   # maps.js fitted the city


class SnapshotError(RuntimeError):
    pass


def take(config, exports, export, now: datetime, browser=None) -> list[Path]:
    """Write this export's files for `now` and return their paths."""
    url = f"{exports.base_url}{export.page}" + (f"?{urlencode(export.params)}" if export.params else "")
    name, value = auth.session_cookie(config, export.user)
    host = urlsplit(exports.base_url).hostname
    own = browser is None
    playwright = None
    if own:
        from playwright.sync_api import sync_playwright
        playwright = sync_playwright().start()
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    try:
        context = browser.new_context(viewport=export.viewport.model_dump(), device_scale_factor=1)
        context.add_cookies([{"name": name, "value": value, "domain": host, "path": "/", "httpOnly": True}])
        page = context.new_page()
        png = _render(page, url, exports.timeout_seconds * 1000)
        pdf = _pdf(context, png, export, config, now) if "pdf" in export.formats else None
        context.close()
    finally:
        if own:
            browser.close()
            playwright.stop()
    files = _write(config, exports, export, now, {"png": png, "pdf": pdf})
    acks.init(config)                   # the audit log of this installation, whichever process this is
    audit.record(export.user, "export", export.id, {"page": url, "files": [str(f) for f in files]}, at=now)
    return files


def _render(page, url: str, timeout_ms: int) -> bytes:
    response = page.goto(url, wait_until="networkidle", timeout=timeout_ms)
    landed = urlsplit(page.url).path
    if response is None or response.status >= 400 or landed == "/login":
        raise SnapshotError(f"{url}: the dashboard answered HTTP {response.status if response else '?'} "
                            f"and showed {landed} (is the account allowed to open this page?)")
    page.wait_for_function(DRAWN, timeout=timeout_ms)
    page.wait_for_load_state("networkidle", timeout=timeout_ms)
    return page.screenshot(type="png", full_page=False)


def _pdf(context, png: bytes, export, config, now: datetime) -> bytes:
    lang = export.params.get("lang", config.messages.default)
    title = f"{config.settings.city.name.model_dump()[lang]} · {export.name.model_dump()[lang]}"
    stamp = now.astimezone(config.tz).strftime("%Y-%m-%d %H:%M %Z")
    page = context.new_page()
    page.set_content(f"""<!doctype html><meta charset=utf-8><style>
        @page {{ size: A4 landscape; margin: 10mm }} body {{ margin: 0; font-family: 'Noto Sans CJK SC', sans-serif }}
        h1 {{ font-size: 14pt; margin: 0 0 4mm }} img {{ width: 100%; max-height: 170mm; object-fit: contain }}
        </style><h1>{escape(title)} <small>{escape(stamp)}</small></h1>
        <img src="data:image/png;base64,{base64.b64encode(png).decode()}">""")
    page.wait_for_function("() => document.images[0].complete")
    return page.pdf(landscape=True, format="A4", print_background=True)


def _write(config, exports, export, now: datetime, blobs: dict) -> list[Path]:
    folder = config.path(exports.dir) / export.id
    folder.mkdir(parents=True, exist_ok=True)
    stem = now.astimezone(config.tz).strftime("%Y%m%d-%H%M%S")
    files = []
    for ext, blob in blobs.items():
        if blob is None:
            continue
        final = folder / f"{stem}.{ext}"
        partial = folder / f".{stem}.{ext}.partial"
        partial.write_bytes(blob)
        os.replace(partial, final)          # a reader never sees half a file
        files.append(final)
    _prune(folder, export.keep)
    return files


def _prune(folder: Path, keep: int) -> None:
    stems = sorted({p.name.split(".")[0] for p in folder.iterdir() if not p.name.startswith(".")}, reverse=True)
    for stem in stems[keep:]:
        for old in folder.glob(f"{stem}.*"):
            old.unlink()
