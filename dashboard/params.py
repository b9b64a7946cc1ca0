"""Page parameters: what an address may carry, checked once for both ways a page is reached: a full load
(refused with 400 by dashboard/routes.py) and Dash's in-page navigation (which calls layout() directly, so
layouts fall back to defaults instead)."""
from query import store

FLAGS = ("kiosk",)                                   # 0 or 1
PAGE_PARAMS = {"lang", "kiosk", "layers", "playlist"}


def problem(args) -> str | None:
    """Why these query parameters are refused, or None when they are all acceptable."""
    config = store.config()
    unknown = sorted(set(args) - PAGE_PARAMS)
    if unknown:
        return f"unknown parameter {unknown[0]!r}"
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
