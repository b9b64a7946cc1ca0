"""Screenshots of dashboard pages at wall sizes, in every language, with Debian's Chromium.

python -m scripts.screenshot --base http://127.0.0.1:8050 --pages /,/kpis,/wall --sizes 1920x1080,3840x2160 \
    --out snapshots [--user admin --password ...]    (signed in through the real form; default: the demo admin)
"""
import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.browser import chromium, signed_in  # noqa: E402  (the same launch flags as the browser tests)


def shoot(base: str, pages: list[str], sizes: list[str], langs: list[str], out: Path, user: str = "admin",
          password: str | None = None) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    files = []
    with chromium(Path(tempfile.mkdtemp())) as browser:
        for size in sizes:
            width, height = (int(v) for v in size.split("x"))
            for lang in langs:
                for path in pages:
                    page = signed_in(browser, base, user, {"width": width, "height": height}, password)
                    page.goto(f"{base}{path}?lang={lang}")
                    page.wait_for_load_state("networkidle", timeout=60_000)       # Dash's layout and callbacks
                    if page.locator(".maplibregl-canvas").count():                   # a page with a map
                        page.wait_for_selector("[data-fitted='1']", timeout=60_000)   # fitted to the city
                    page.wait_for_timeout(1500)      # let MapLibre and the charts finish drawing
                    name = (path.strip("/") or "overview").replace("/", "_")
                    target = out / f"{name}-{lang}-{width}x{height}.png"
                    page.screenshot(path=str(target))
                    files.append(target)
                    page.context.close()
    return files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", default="http://127.0.0.1:8050")
    parser.add_argument("--pages", default="/")
    parser.add_argument("--sizes", default="1920x1080,3840x2160")
    parser.add_argument("--langs", default="en,zh")
    parser.add_argument("--out", type=Path, default=Path("snapshots"))
    parser.add_argument("--user", default="admin")
    parser.add_argument("--password", help="default: the demo account's password (tests/browser.DEMO_PASSWORDS)")
    a = parser.parse_args()
    for f in shoot(a.base, a.pages.split(","), a.sizes.split(","), a.langs.split(","), a.out, a.user,
                   a.password):
        print(f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
