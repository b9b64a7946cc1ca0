"""Dash's callback requests (POST /_dash-update-component), checked against the app's own callbacks before Dash
reads them. Dash trusts the body's shape: a list for an object, a missing key, an output of no server callback, an
input of another component or a malformed id in changedPropIds each failed inside Dash with a 500. What Dash's
renderer sends passes; anything else is refused with 400 by dashboard/routes.py.

The body as the renderer sends it: output (the callback's output string), outputs ({id, property} or a list of
them), inputs and state ({id, property, value}; a list of them for an ALL pattern), changedPropIds ("id.property"
of the inputs that changed, a pattern's id as JSON with sorted keys)."""
import json

from dash import ctx

UPDATE_PATH = "/_dash-update-component"
ROUTER_ID = "_pages_location"          # the dcc.Location whose pathname and search Dash's page router reads
SCALARS = (str, int, float, bool)      # what a pattern id's values may be
MANY = (["ALL"], ["ALLSMALLER"])       # wildcards that send a list of components


def problem(body, callback_map: dict) -> str | None:
    """Why this callback request is not one the renderer sends for this app, or None."""
    if not isinstance(body, dict):
        return "a callback request is a JSON object"
    output = body.get("output")
    spec = callback_map.get(output) if isinstance(output, str) else None
    if spec is None or "callback" not in spec:
        return "output: not the output of a server callback of this app"
    outputs = [_output_dep(name) for name in _output_names(output)]
    sent = body.get("outputs")
    if not _all_match(sent if output.startswith("..") else [sent], outputs):
        return "outputs: not the callback's outputs"
    if not _all_match(body.get("inputs"), spec["inputs"]):
        return "inputs: not the callback's inputs"
    if not _all_match(body.get("state", []), spec["state"]):
        return "state: not the callback's state"
    return _changed_problem(body.get("changedPropIds"), body["inputs"])


def page_address(body: dict) -> dict | None:
    """{'pathname': ..., 'search': ...} when this is the page router's request (in-page navigation), else None."""
    values = {item["property"]: item.get("value") for item in body["inputs"]
              if isinstance(item, dict) and item["id"] == ROUTER_ID}
    return values or None


def clicked() -> bool:
    """Whether the input that triggered this callback was sent with a click's count (n_clicks a positive int)."""
    value = triggered_value()
    return type(value) is int and value > 0


def triggered_value():
    """The value the triggering input was sent with, found by its id. (Dash finds it by a prop-id string that, for
    a pattern id holding non-ASCII text, differs from the browser's: json.dumps escapes it, JSON.stringify not.)"""
    trigger = _parsed(ctx.triggered[0]["prop_id"]) if ctx.triggered else None
    return next((i.get("value") for i in _flat(ctx.inputs_list) if (i["id"], i["property"]) == trigger), None)


def _output_names(output: str) -> list[str]:
    return output[2:-2].split("...") if output.startswith("..") else [output]


def _output_dep(name: str) -> dict:
    id_, _, prop = name.rpartition(".")
    return {"id": id_, "property": prop}


def _all_match(items, deps: list[dict]) -> bool:
    return isinstance(items, list) and len(items) == len(deps) and all(map(_matches, items, deps))


def _matches(item, dep: dict) -> bool:
    """One input, state or output of the request against the callback's dependency (a pattern: every component)."""
    if not dep["id"].startswith("{"):
        return _one(item, dep["property"]) and item["id"] == dep["id"]
    pattern = json.loads(dep["id"])
    many = any(v in MANY for v in pattern.values())
    items = item if many and isinstance(item, list) else [item] if not many else None
    return items is not None and all(_one(i, dep["property"]) and _pattern_id(i["id"], pattern) for i in items)


def _one(item, prop: str) -> bool:
    return isinstance(item, dict) and "id" in item and _bare(item.get("property")) == _bare(prop)


def _bare(prop) -> str | None:
    """A property without the '@<hash>' an allow_duplicate output carries."""
    return prop.split("@")[0] if isinstance(prop, str) else None


def _pattern_id(id_, pattern: dict) -> bool:
    return isinstance(id_, dict) and set(id_) == set(pattern) and all(
        isinstance(v, SCALARS) and (isinstance(pattern[k], list) or v == pattern[k]) for k, v in id_.items())


def _changed_problem(changed, inputs: list) -> str | None:
    sent = [(i["id"], i["property"]) for i in _flat(inputs)]
    if not isinstance(changed, list) or not all(isinstance(c, str) and _parsed(c) in sent for c in changed):
        return "changedPropIds: not inputs of this request"
    return None


def _flat(items: list) -> list[dict]:
    return [i for item in items for i in (item if isinstance(item, list) else [item])]


def _parsed(prop_id: str) -> tuple | None:
    """(id, property) of an 'id.property' prop id, a pattern id read from its JSON (compared as data, not as text:
    see triggered_value); None when that JSON is broken."""
    id_, _, prop = prop_id.rpartition(".")
    if id_.startswith("{"):
        try:
            id_ = json.loads(id_)
        except ValueError:
            return None
    return id_, prop
