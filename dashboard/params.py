"""Page parameters: what an address may carry, checked the same way for both ways a page is reached: a full load
and Dash's in-page navigation (the page router's callback request), both refused with 400 by dashboard/routes.py.
Layouts still fall back to defaults for what they are given, as a second line."""
from urllib.parse import parse_qsl

from werkzeug.datastructures import MultiDict

from query import store

FLAGS = ("kiosk",)                                   # 0 or 1
PAGE_PARAMS = {"lang", "kiosk", "layers", "playlist", *("kpi", "grain", "at", "district", "a", "b")}  # 2nd: /kpis


def parse(search: str) -> MultiDict:
    """A query string ('?a=1&b=2' or 'a=1&b=2') as Flask parses request.args."""
    return MultiDict(parse_qsl(search.removeprefix("?"), keep_blank_values=True))


def problem(args: MultiDict) -> str | None:
    """Why these query parameters are refused, or None when they are all acceptable."""
    config = store.config()
    unknown = sorted(set(args) - PAGE_PARAMS)
    if unknown:
        return f"unknown parameter {unknown[0]!r}"
    repeated = sorted(name for name in args if len(args.getlist(name)) > 1)
    if repeated:        # Dash would hand the page a list where a full load checked only the first value
        return f"{repeated[0]} is given more than once"
    for flag in FLAGS:
        if args.get(flag, "0") not in ("0", "1"):
            return f"{flag} must be 0 or 1, not {args[flag][:20]!r}"
    lang = args.get("lang")
    if lang is not None and config.messages.resolve(lang) is None:
        return f"lang must be one of {config.messages.languages}, not {lang[:20]!r}"
    if "layers" in args and layers(args["layers"]) is None:
        return f"layers must be a comma-separated list of {[layer.id for layer in config.layers]}"
    if "playlist" in args and args["playlist"] not in config.playlists:
        return f"playlist must be one of {sorted(config.playlists)}, not {args['playlist'][:20]!r}"
    return kpi_problem(args)


def kpi_problem(args) -> str | None:
    """The KPI page's parameters: a configured KPI, a grain it supports, periods that are labels of past or
    current periods ('2026', '2026-Q4', '2026-10', '2026-W47', '2026-11-20'), a district the caller may see."""
    from core.kpis import GRAINS
    from core.warehouse import NoData
    from dashboard import shell
    from query import kpis
    configured = getattr(store.config(), "kpis", None) or {}
    kpi_id = args.get("kpi")
    if kpi_id is not None and kpi_id not in configured:
        return f"kpi must be one of {list(configured)}, not {kpi_id[:40]!r}"
    grain = args.get("grain")
    if grain is not None:
        supported = configured[kpi_id].periods if kpi_id else GRAINS
        if grain not in supported:
            return f"grain must be one of {list(supported)}" + (f" (the periods {kpi_id} supports)" if kpi_id else "") \
                + f", not {grain[:20]!r}"
    today = shell.now().date()
    for name in ("at", "a", "b"):
        if name in args:
            parsed = kpis.parse_label(args[name])
            if parsed is None:
                return (f"{name} must be a period such as 2026, 2026-Q4, 2026-10, 2026-W47 or 2026-11-20, "
                        f"not {args[name][:20]!r}")
            if parsed[1] > today:
                return f"{name} must be a period that has begun, not {args[name][:20]!r}"
    if "district" in args:
        try:
            known = [d[0] for d in kpis.districts()]
        except NoData:              # nothing published yet: no district is known
            known = []
        if args["district"] not in known:
            return f"district must be one of {known}, not {args['district'][:20]!r}"
    return None


def layers(value: str | None) -> list[str] | None:
    """Layer ids named in the address (None when any is unknown); '' means none."""
    known = [layer.id for layer in store.config().layers]
    names = [v for v in (value or "").split(",") if v]
    return names if all(n in known for n in names) else None


def playlist(value: str | None) -> dict | None:
    """The playlist as the browser runs it: each view's address and seconds."""
    chosen = store.config().playlists.get(value or "")
    if chosen is None:
        return None
    views = []
    for view in chosen.views:
        query = "&".join(f"{k}={v}" for k, v in view.params.items())
        views.append({"path": view.path, "query": query, "seconds": view.seconds or chosen.seconds})
    return {"id": chosen.id, "views": views}
