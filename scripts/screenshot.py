"""Screenshots of dashboard pages at wall sizes, in every language, with Debian's Chromium.

python -m scripts.screenshot --base http://127.0.0.1:8050 --pages / --sizes 1920x1080,3840x2160 --out snapshots
"""
import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.browser import chromium  # noqa: E402  (the same launch flags as the browser tests)


def shoot(base: str, pages: list[str], sizes: list[str], langs: list[str], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    files = []
    with chromium(Path(tempfile.mkdtemp())) as browser:
        for size in sizes:
            width, height = (int(v) for v in size.split("x"))
            for lang in langs:
                for path in pages:
                    page = browser.new_page(viewport={"width": width, "height": height})
                    page.goto(f"{base}{path}?lang={lang}")
                    page.wait_for_selector(".maplibregl-canvas", timeout=60_000)
                    page.wait_for_selector("[data-fitted='1']", timeout=60_000)   # maps fitted to the city
                    page.wait_for_timeout(1500)      # let MapLibre finish drawing
                    name = (path.strip("/") or "overview").replace("/", "_")
                    target = out / f"{name}-{lang}-{width}x{height}.png"
                    page.screenshot(path=str(target))
                    files.append(target)
                    page.close()
    return files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", default="http://127.0.0.1:8050")
    parser.add_argument("--pages", default="/")
    parser.add_argument("--sizes", default="1920x1080,3840x2160")
    parser.add_argument("--langs", default="en,zh")
    parser.add_argument("--out", type=Path, default=Path("snapshots"))
    a = parser.parse_args()
    for f in shoot(a.base, a.pages.split(","), a.sizes.split(","), a.langs.split(","), a.out):
        print(f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
