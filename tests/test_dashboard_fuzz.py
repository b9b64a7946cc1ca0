"""A deterministic fuzz of the dashboard's HTTP surface against a real server over the small demo city.

Page addresses, Dash callback requests, /tiles/ and sign-in get hostile values (seeded, so every run sends the same
requests). The rule checked (README, "Bad input gets a clear error and loses nothing"): never a 5xx, never a stack
trace, SQL error or project path in a body; a bad address or filter value gets a 4xx; a tampered callback value is
refused (4xx, or no update where the control simply stays as it was), never carried into a result; nothing is run
for a caller who is not signed in or may not open the page; sign-in never redirects off this host.
Each problem names the request that showed it; all are collected before the test fails."""
import http.client
import json
import os
import random
import re
import shutil
import subprocess
import sys
from urllib.parse import quote, unquote, urlencode, urljoin, urlsplit

import pytest

from dashboard.params import PAGE_PARAMS
from tests.browser import DEMO_PASSWORDS, dashboard_server
from tests.conftest import ROOT

SEED = 20261120
UPDATE = "/_dash-update-component"
ROUTER = ".._pages_content.children..._pages_store.data.."
LEAKS = ("Traceback", "Binder Error", "Parser Error", 'File "', "site-packages", str(ROOT))
ALLOWED = {200, 204, 301, 302, 303, 304, 400, 401, 403, 404, 405, 413, 415, 429}

HOSTILE_TEXT = ["", "x" * 10_000, "\x00", "\x01\x1b\x7f", "' OR 1=1 --", "1; DROP TABLE fct_incident", "区一 ☃",
                "２０２６", "-1", "99999999999999999999", "1e309", "NaN", "0000-00-00", "9999-W99", "2026-13",
                "2026-Q5", "2026-02-30", "-2026", "2026\n", "2026-W47\n", " 2026", "None", "null", "[]"]
# Valid values of each parameter in the demo config (everything else in HOSTILE_TEXT must be refused).
VALID = {"lang": {"", "en", "zh"}, "kiosk": {"0", "1"}, "layers": {"", "districts", "sensors,incidents"},
         "playlist": {"wall"}, "kpi": {"response_rate", "city_score"}, "grain": {"month", "day"},
         "at": {"2026", "2026-11", "2026-W47"}, "a": {"2026-Q3"}, "b": {"2026-10"}, "district": {"D01"}}
RAW_ESCAPES = ["%FF%FE", "%C0%AF", "%ED%A0%80", "%", "%G1", "%00", "%0D%0ASet-Cookie:x=1", "%25FF"]
ODD_PATHS = ["/kpis/", "//kpis", "/kpis/../wall", "/./kpis", "/kpis%2F", "/%6Bpis", "/KPIS", "/kpis%00", "/%FF%FE",
             "/" + "a" * 9000, "/wall/" * 300, "/no/such/page", "/loginx", "/login/../kpis", "/healthzz",
             "/healthz/../kpis", "/logout.html", "/_favicon.icox", "/_dashboard", "/_dash-nope", "/_reload-hashx",
             "/assets/../config/users.yaml", "/assets/..%2F..%2Fconfig%2Fusers.yaml", "/assets/%2e%2e/app.py",
             "/_dash-component-suites/dash/../../../etc/passwd", "/_dash-component-suites/nope/x.js",
             "/_dash-component-suites/dash/dcc/%00.js", "/tiles/../kpis", "/index.html", "/?", "/kpis?&&&",
             "/kpis?=", "/kpis?lang", "/kpis#x"]
MAP_JUNK = [{"points": [{"lat": "x", "lon": None, "customdata": ["' OR 1=1 --"]}]}, {"points": "all"},
            {"map.center": {"lon": "NaN", "lat": 1e308}, "map.zoom": -1}, {"range": {"x": [[]]}, "lassoPoints": 5}]
HOSTILE_VALUES = [None, -1, 10 ** 18, -10 ** 30, 1.5, True, False, "", "x" * 10_000, "' OR 1=1 --",
                  "1; DROP TABLE fct_incident", "\x00\x01\x1b", "区一", "2026-13", [], ["a", ["b", ["c"]]], [[[[[]]]]],
                  {"a": 1}, {"kpi": ["x"], "at": 5}, *MAP_JUNK]
# Inputs and states holding a filter of the KPI page or the page address: a tampered value is refused (4xx, or 204:
# nothing changes), never reinterpreted. Elsewhere (wall and overview display state) a default is harmless.
STRICT = {"kpis-view.data", "kpis-grain.value", "kpis-at.value", "kpis-district.value", "kpis-kpi.value",
          "kpis-a.value", "kpis-b.value", "kpis-drill-part.value", "kpis-drill-target.data",
          "kpis-drill-table.page_current", "_pages_location.pathname", "_pages_location.search"}
CLICKS = ("n_clicks", "n_intervals")
VALID_VALUES = {"kpis-district.value": ("",), "_pages_location.search": ("",)}   # '': the whole scope, no query
# Pattern ids whose values select what a callback does (a drill button's 'src' only keeps ids unique).
STRICT_ID_KEYS = {"kpi", "at", "district", "index"}


# --- the server and a raw HTTP client ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def app_info(loaded_city, tmp_path_factory):
    """A server over the loaded city with its own ops database (sign-in failures, acknowledgements), its page
    paths (dash.page_registry) and server-side callbacks (the app's callback_map), and signed-in clients."""
    settings, _, _ = loaded_city
    root = tmp_path_factory.mktemp("fuzz")
    shutil.copytree(settings.parent, root / "config")
    own = root / "config" / "settings.yaml"
    code = ("import dash, json; from dashboard.app import create_app; app = create_app(); print(json.dumps("
            "{'pages': sorted(p['path'] for p in dash.page_registry.values()), "
            "'server': sorted(k for k, v in app.callback_map.items() if 'callback' in v)}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "CITYOPS_CONFIG": str(own)},
                         capture_output=True, text=True, timeout=120, check=True)
    info = json.loads(out.stdout.strip().splitlines()[-1])
    with dashboard_server(own) as base:
        clients = {user: Client(base, user) for user in ("admin", "operator", "leader-d01")}
        yield {**info, "base": base, "clients": clients, "anonymous": Client(base, None)}


class Reply:
    def __init__(self, status: int, headers: dict, text: str):
        self.status, self.headers, self.text = status, headers, text

    def json(self):
        return json.loads(self.text)


class Client:
    """Exact request targets and bodies (no client-side normalising or quoting), one session cookie."""

    def __init__(self, base: str, user: str | None):
        parts = urlsplit(base)
        self.host, self.port, self.cookie = parts.hostname, parts.port, None
        if user:
            reply = self.send("POST", "/login", urlencode({"username": user, "password": DEMO_PASSWORDS[user]}),
                              {"Content-Type": "application/x-www-form-urlencoded"})
            assert reply.status == 303 and self.cookie, f"sign-in as {user}: {reply.status}"

    def send(self, method: str, target: str, body: bytes | str | None = None, headers: dict | None = None) -> Reply:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            conn.putrequest(method, target, skip_accept_encoding=True)
            data = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
            for name, value in {**({"Cookie": self.cookie} if self.cookie else {}), **(headers or {}),
                                **({"Content-Length": str(len(data))} if data is not None else {})}.items():
                conn.putheader(name, value)
            conn.endheaders(data)
            response = conn.getresponse()
            text = response.read().decode("utf-8", "replace")
            headers_out = {k.lower(): v for k, v in response.getheaders()}
        finally:
            conn.close()
        cookie = headers_out.get("set-cookie", "")
        if cookie.startswith("cityops_"):
            self.cookie = cookie.split(";", 1)[0]
        return Reply(response.status, headers_out, text)

    def post_json(self, body) -> Reply:
        raw = body if isinstance(body, (str, bytes)) else json.dumps(body)
        return self.send("POST", UPDATE, raw, {"Content-Type": "application/json"})


class Findings:
    """Problems found, each naming its request; the test fails once, listing them all."""

    def __init__(self):
        self.problems, self.count = [], 0

    def check(self, what: str, reply: Reply, statuses=None, hostile=None) -> Reply:
        self.count += 1
        problem = _problem(reply, statuses, hostile)
        if problem:
            self.problems.append(f"{what[:300]} -> {reply.status}: {problem}; body {reply.text[:160]!r}")
        return reply

    def assert_none(self, minimum: int) -> None:
        assert self.count >= minimum, f"only {self.count} requests sent"
        assert not self.problems, f"{len(self.problems)} of {self.count} requests failed:\n" + "\n".join(
            self.problems[:80])


def _problem(reply: Reply, statuses, hostile) -> str | None:
    if reply.status >= 500 or reply.status not in ALLOWED:
        return "server error" if reply.status >= 500 else "unexpected status"
    leaked = [m for m in LEAKS if m in reply.text] + (["duckdb"] if "duckdb" in reply.text.lower() else [])
    if leaked:
        return f"body shows {leaked}"
    if statuses is not None and reply.status not in statuses:
        return f"expected one of {sorted(statuses)}"
    if reply.status == 200 and _echoed(hostile, reply.text):
        return "the hostile value was carried into the result"
    return None


def _echoed(value, text: str) -> bool:
    if not isinstance(value, str) or len(value.strip()) < 4:
        return False
    forms = {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1], quote(value, safe="")}
    return any(form in text for form in forms)


def _encoded(value: str) -> str:
    return quote(value, safe="")


# --- 1. page addresses ------------------------------------------------------------------------------------------

def _page_cases(pages: list[str], rng: random.Random) -> list[tuple[str, str, set | None]]:
    """(method, target, statuses expected or None for 'any but 5xx')."""
    cases = [("GET", page, {200}) for page in pages]
    for page in pages:
        for name in sorted(PAGE_PARAMS):
            for value in HOSTILE_TEXT + sorted(VALID[name]):
                ok = value in VALID[name]
                cases.append(("GET", f"{page}?{name}={_encoded(value)}", {200} if ok else {400}))
            cases += [("GET", f"{page}?{name}={raw}", {400}) for raw in RAW_ESCAPES]
            good = max(VALID[name])
            cases.append(("GET", f"{page}?{name}={_encoded(good)}&{name}={_encoded(good)}", {400}))
        cases.append(("GET", f"{page}?nope=1", {400}))
        cases.append(("GET", f"{page}?lang=en&utm_source=x", {400}))
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            cases.append((method, page, {405}))
        cases += [("HEAD", page, {200}), ("HEAD", f"{page}?kiosk=yes", {400}), ("OPTIONS", page, {200, 204})]
        for _ in range(25):          # random mixtures: several parameters, repeated, unknown, raw escapes
            names = rng.sample(sorted(PAGE_PARAMS) + ["zzz"], rng.randint(1, 4))
            query = "&".join(f"{n}={_encoded(rng.choice(HOSTILE_TEXT))}" if rng.random() < 0.8
                             else f"{n}={rng.choice(RAW_ESCAPES)}" for n in names)
            cases.append(("GET", f"{page}?{query}", {400}))
    cases += [("GET", path, None) for path in ODD_PATHS]
    cases += [("HEAD", "/no/such/page", {404}), ("GET", "/" + "%41" * 3000, {404})]
    return cases


def _served_path(target: str) -> str:
    """The path a page request names (werkzeug's development server reads a leading '//' as '/')."""
    return re.sub("^/+", "/", unquote(re.split("[?#]", target)[0]))


def test_page_addresses_get_a_4xx_for_anything_invalid(app_info):
    rng = random.Random(SEED)
    admin = app_info["clients"]["admin"]
    found = Findings()
    for method, target, statuses in _page_cases(app_info["pages"], rng):
        reply = found.check(f"{method} {target}", admin.send(method, target), statuses)
        if target in ODD_PATHS and reply.status == 200 and _served_path(target) not in app_info["pages"]:
            found.problems.append(f"{method} {target} -> 200: not a page, yet answered as one")
        if "users.yaml" in target and "password" in reply.text:
            found.problems.append(f"{method} {target} -> {reply.status}: served a config file")
    found.assert_none(500)


# --- 2. Dash callbacks ------------------------------------------------------------------------------------------

def _walk(node, found: dict) -> None:
    """Every component of a layout (Dash's JSON) by its stringified id: its props."""
    if isinstance(node, list):
        for child in node:
            _walk(child, found)
    elif isinstance(node, dict) and "props" in node and "type" in node:
        props = node["props"]
        if "id" in props:
            found[_sid(props["id"])] = props
        _walk(props.get("children"), found)


def _sid(id_) -> str:
    """An id as the renderer writes it in changedPropIds (stringifyId): dicts as compact JSON with sorted keys,
    non-ASCII text unescaped (JSON.stringify)."""
    if isinstance(id_, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{json.dumps(id_[k], ensure_ascii=False)}" for k in sorted(id_)) + "}"
    return id_


def _router_body(pathname, search) -> dict:
    return {"output": ROUTER, "outputs": [{"id": "_pages_content", "property": "children"},
                                          {"id": "_pages_store", "property": "data"}],
            "inputs": [{"id": "_pages_location", "property": "pathname", "value": pathname},
                       {"id": "_pages_location", "property": "search", "value": search}],
            "changedPropIds": ["_pages_location.pathname", "_pages_location.search"]}


def _components(client: Client, pages: list[str]) -> dict:
    """The props of every component of every page, as the browser holds them after loading each page."""
    found = {}
    _walk(client.send("GET", "/_dash-layout").json(), found)
    for page in pages:
        reply = client.post_json(_router_body(page, ""))
        assert reply.status == 200, f"{page}: {reply.status} {reply.text[:300]}"
        _walk(reply.json()["response"]["_pages_content"]["children"], found)
    return found


def _outputs(output: str) -> list[dict]:
    names = output[2:-2].split("...") if output.startswith("..") else [output]
    return [{"id": n.rpartition(".")[0], "property": n.rpartition(".")[2]} for n in names]


def _matches(pattern: dict, id_) -> bool:
    return isinstance(id_, dict) and set(id_) == set(pattern) and all(
        isinstance(v, list) or id_[k] == v for k, v in pattern.items())


def _slot(dep: dict, components: dict):
    """One input or state as the renderer sends it: {id, property, value}, or a list of them for a pattern."""
    prop = dep["property"]
    if dep["id"].startswith("{"):
        pattern = json.loads(dep["id"])
        return [{"id": json.loads(sid), "property": prop, **({"value": p[prop]} if prop in p else {})}
                for sid, p in components.items() if sid.startswith("{") and _matches(pattern, json.loads(sid))]
    props = components.get(dep["id"], {})
    return {"id": dep["id"], "property": prop, **({"value": props[prop]} if prop in props else {})}


def _trigger(item) -> str:
    item = item[0] if isinstance(item, list) else item
    return f"{_sid(item['id'])}.{item['property']}"


class Callback:
    """A server callback and the valid request the renderer sends for it, built from the real layouts."""

    def __init__(self, dep: dict, components: dict):
        self.output, self.dep = dep["output"], dep
        outputs = _outputs(self.output)
        self.outputs = outputs if self.output.startswith("..") else outputs[0]
        self.inputs = [_slot(d, components) for d in dep["inputs"]]
        self.state = [_slot(d, components) for d in dep["state"]]
        for item in self.inputs:                   # the browser's address, which no layout holds
            if isinstance(item, dict) and item["id"] == "_pages_location":
                item["value"] = {"pathname": "/kpis", "search": "?lang=en"}[item["property"]]
        self.first = 0
        for i, item in enumerate(self.inputs):      # trigger a control that can be changed or clicked
            self._make_changed(item)
            if not isinstance(item, list) or item:
                self.first = i
                break
        self.trigger = _trigger(self.inputs[self.first])

    @staticmethod
    def _make_changed(item) -> None:
        item = item[0] if isinstance(item, list) and item else item
        if not isinstance(item, dict):
            return
        if item["property"] in CLICKS:
            item["value"] = 1
        elif item["id"] == "wall-time":
            item["value"] = 20                    # an earlier hour
        elif item["id"] == "kpis-grain":
            item["value"] = "quarter"

    def body(self, inputs=None, state=None, changed=None) -> dict:
        body = {"output": self.output, "outputs": self.outputs, "inputs": inputs or self.inputs,
                "changedPropIds": [changed or self.trigger]}
        if self.state:
            body["state"] = state or self.state
        return json.loads(json.dumps(body))

    def slots(self):
        """(kind, index, name) of every input and state."""
        for kind in ("inputs", "state"):
            for i, dep in enumerate(self.dep[kind]):
                yield kind, i, f"{dep['id']}.{dep['property']}"


@pytest.fixture(scope="module")
def callbacks(app_info):
    admin = app_info["clients"]["admin"]
    deps = admin.send("GET", "/_dash-dependencies").json()
    served = [d for d in deps if not d.get("clientside_function")]
    assert sorted(d["output"] for d in served) == app_info["server"], "dependencies and callback_map disagree"
    components = _components(admin, app_info["pages"])
    built = {d["output"]: Callback(d, components) for d in served}
    target = next(sid for sid in components if '"type":"kpis-drill"' in sid)
    good = {k: v for k, v in json.loads(target).items() if k in ("kpi", "at", "district")}
    records = next(c for c in built.values() if c.dep["inputs"][0]["id"] == "kpis-drill-target")
    records.inputs[0]["value"] = good
    return built


def _describe(cb: Callback, note: str) -> str:
    return f"POST {UPDATE} [{cb.output[:70]}] {note}"


def test_every_callback_answers_its_valid_request(app_info, callbacks):
    admin = app_info["clients"]["admin"]
    found = Findings()
    for cb in callbacks.values():
        found.check(_describe(cb, f"valid, changed {cb.trigger}"), admin.post_json(cb.body()), {200})
    found.assert_none(len(callbacks))


def _mutations(cb: Callback, rng: random.Random):
    """(description, body, statuses, hostile value) for each input and state value replaced by a hostile one."""
    for kind, i, name in cb.slots():
        values = HOSTILE_VALUES if name in STRICT or rng.random() < 0.5 else rng.sample(HOSTILE_VALUES, 10)
        for value in values:
            items = json.loads(json.dumps(getattr(cb, kind)))
            target = items[i][0] if isinstance(items[i], list) and items[i] else items[i]
            if isinstance(target, list):
                continue                                   # an empty pattern list: covered below
            target["value"] = value
            changed = _trigger(items[i]) if kind == "inputs" else None
            body = cb.body(**{kind: items}, changed=changed)
            strict = name in STRICT and value is not None and value not in VALID_VALUES.get(name, ())
            yield f"{name}={json.dumps(value)[:40]}", body, _strict(name) if strict else None, value
        if isinstance(getattr(cb, kind)[i], list):
            yield from _pattern_mutations(cb, kind, i, name)


def _strict(name: str) -> set:
    return {400, 403, 404} if name.startswith("_pages") else {204, 400, 403, 404}


def _pattern_mutations(cb: Callback, kind: str, i: int, name: str):
    """A pattern-matching input's components with forged ids: unknown, hostile or of the wrong type."""
    items = getattr(cb, kind)[i]
    if not items:
        return
    for key in sorted(k for k in items[0]["id"] if k != "type"):
        for forged in ("' OR 1=1 --", "x" * 10_000, "", 7, None, ["a"], {"a": 1}, "unknown-id", "区一"):
            changed = json.loads(json.dumps(items))
            changed[0]["id"][key] = forged
            body = cb.body(**{kind: [changed if j == i else x for j, x in enumerate(getattr(cb, kind))]},
                           changed=_trigger(changed) if kind == "inputs" else None)
            strict = key in STRICT_ID_KEYS and not (key == "district" and forged == "")
            yield f"{name} id.{key}={json.dumps(forged)[:40]}", body, {204, 400} if strict else None, forged


def test_hostile_callback_values_are_refused_or_harmless(app_info, callbacks):
    rng = random.Random(SEED)
    admin = app_info["clients"]["admin"]
    found = Findings()
    for cb in callbacks.values():
        for note, body, statuses, value in _mutations(cb, rng):
            found.check(_describe(cb, note), admin.post_json(body), statuses, value)
    found.assert_none(300)


def test_the_page_router_checks_the_address_as_a_full_load_does(app_info):
    clients, found = app_info["clients"], Findings()
    cases = [(p, "", {200}) for p in app_info["pages"]]
    cases += [("/kpis", f"?{n}={_encoded(v)}", {400}) for n in ("kpi", "at", "district", "lang", "grain")
              for v in HOSTILE_TEXT if v not in VALID[n]]
    cases += [("/kpis", "?kpi=response_rate&kpi=city_score", {400}), ("/kpis", "?nope=1", {400}),
              ("/wall", "?layers=nope", {400}), ("/", "?lang=%FF%FE", {400}), ("/", "?" + "a" * 10_000, {400}),
              ("/", "kpi=x", {400}), ("/nope", "", {404}), ("/kpis/", "", {404}), ("//kpis", "", {404}),
              ("/kpis/../wall", "", {404}), ("/" + "x" * 10_000, "", {404}), ("", "", {404}),
              ("javascript:alert(1)", "", {404}), (None, "", {400}), (5, "", {400}), (["/"], "", {400}),
              ({"a": 1}, "", {400}), ("/", None, {200}), ("/", 5, {400}), ("/", ["?lang=en"], {400}),
              ("/", {"lang": "en"}, {400})]
    for pathname, search, statuses in cases:
        body = _router_body(pathname, search)
        found.check(f"POST {UPDATE} [router] pathname={str(pathname)[:40]!r} search={str(search)[:60]!r}",
                    clients["admin"].post_json(body), statuses, search if isinstance(search, str) else None)
    for user, pathname, search, statuses in (("operator", "/kpis", "", {403}), ("operator", "/wall", "", {200}),
                                             ("leader-d01", "/wall", "", {403}),
                                             ("leader-d01", "/kpis", "?district=D02", {400}),
                                             ("leader-d01", "/kpis", "?district=D01", {200})):
        found.check(f"POST {UPDATE} [router as {user}] {pathname}{search}",
                    clients[user].post_json(_router_body(pathname, search)), statuses)
    found.assert_none(100)


def _malformed(cb: Callback) -> list[tuple[str, object]]:
    body = cb.body()
    out = [("not JSON", "{"), ("JSON null", "null"), ("a JSON list", "[]"), ("a JSON string", '"x"'),
           ("a number", "1"), ("empty object", {}), ("output unknown", {**body, "output": "nope.children"}),
           ("output not a string", {**body, "output": ["x"]}),
           ("output of a clientside callback", {**body, "output": "wall-scale.data"}),
           ("outputs of another component", {**body, "outputs": {"id": "nope", "property": "children"}}),
           ("outputs wrong shape", {**body, "outputs": "x"}), ("inputs not a list", {**body, "inputs": {"a": 1}}),
           ("inputs empty", {**body, "inputs": []}), ("an input not a dict", {**body, "inputs": [5] * len(cb.inputs)}),
           ("an input without id", {**body, "inputs": [{"property": "value"}] * len(cb.inputs)}),
           ("inputs of another component", {**body, "inputs": [{"id": "nope", "property": "value", "value": 1}]
                                            * len(cb.inputs)}),
           ("inputs one too many", {**body, "inputs": body["inputs"] + body["inputs"][:1]}),
           ("changedPropIds not a list", {**body, "changedPropIds": "x"}),
           ("changedPropIds naming nothing sent", {**body, "changedPropIds": ["nope.value"]}),
           ("changedPropIds bad JSON id", {**body, "changedPropIds": ['{"type":.n_clicks']}),
           ("changedPropIds a number", {**body, "changedPropIds": [5]})]
    for key in ("output", "outputs", "inputs", "changedPropIds"):
        out.append((f"without {key}", {k: v for k, v in body.items() if k != key}))
    if cb.state:
        out += [("without state", {k: v for k, v in body.items() if k != "state"}),
                ("state one short", {**body, "state": body["state"][:-1]}),
                ("state not a list", {**body, "state": 5})]
    return out


def test_a_pattern_id_is_matched_as_the_browser_writes_it():
    """Non-ASCII text in a pattern id: the renderer writes it unescaped in changedPropIds, json.dumps would not."""
    from dashboard import callback_requests
    dep = {"id": '{"index":["ALL"],"type":"alarm-ack"}', "property": "n_clicks"}
    callback_map = {"x.children": {"callback": None, "inputs": [dep], "state": []}}
    item = {"id": {"index": "sensor:区一:warning", "type": "alarm-ack"}, "property": "n_clicks", "value": 1}
    body = {"output": "x.children", "outputs": {"id": "x", "property": "children"}, "inputs": [[item]],
            "changedPropIds": ['{"index":"sensor:区一:warning","type":"alarm-ack"}.n_clicks']}
    assert callback_requests.problem(body, callback_map) is None
    other = {**body, "changedPropIds": ['{"index":"sensor:区二:warning","type":"alarm-ack"}.n_clicks']}
    assert callback_requests.problem(other, callback_map) == "changedPropIds: not inputs of this request"


def test_malformed_callback_bodies_get_400(app_info, callbacks):
    admin, found = app_info["clients"]["admin"], Findings()
    for cb in callbacks.values():
        for note, body in _malformed(cb):
            found.check(_describe(cb, note), admin.post_json(body), {400})
    cb = next(iter(callbacks.values()))
    for note, headers in (("as text/plain", {"Content-Type": "text/plain"}), ("no content type", {})):
        found.check(_describe(cb, note), admin.send("POST", UPDATE, json.dumps(cb.body()), headers), {400, 415})
    for method in ("GET", "PUT", "DELETE"):
        found.check(f"{method} {UPDATE}", admin.send(method, UPDATE), {404, 405})
    found.check(f"POST {UPDATE} 2 MB of JSON", admin.post_json({"output": "x" * 2_000_000}), {400, 413})
    found.assert_none(200)


def test_callbacks_run_only_for_a_signed_in_user_who_may_open_the_page(app_info, callbacks):
    anonymous, operator, found = app_info["anonymous"], app_info["clients"]["operator"], Findings()
    for cb in callbacks.values():
        found.check(_describe(cb, "not signed in"), anonymous.post_json(cb.body()), {401})
        if cb.output.find("kpis-") >= 0:
            found.check(_describe(cb, "as operator (no /kpis)"), operator.post_json(cb.body()), {403})
    leader = app_info["clients"]["leader-d01"]
    for cb in callbacks.values():
        if "wall-" in cb.output:
            found.check(_describe(cb, "as leader (no /wall)"), leader.post_json(cb.body()), {403})
    for path in ("/_dash-layout", "/_dash-dependencies", "/_reload-hash"):
        found.check(f"GET {path} not signed in", anonymous.send("GET", path), {302, 401})
    found.check("GET /kpis not signed in", anonymous.send("GET", "/kpis?lang=zh"), {302})
    found.assert_none(len(callbacks) + 5)


# --- 3. tiles, sign-in and sign-out -----------------------------------------------------------------------------

TILES = ["/tiles/0/0/0.png", "/tiles/a/b/c", "/tiles/-1/0/0.png", "/tiles/99999999999999999999/0/0.png",
         "/tiles/31/0/0.png", "/tiles/%00/0/0.png", "/tiles/0/0/0", "/tiles/0/0/0.png.png", "/tiles/0/0/..png",
         "/tiles/", "/tiles", "/tiles/1/1/1.png?x=1", "/tiles/%EF%BC%91/0/0.png", "/tiles/1/2/0.png",
         "/tiles/0/0/0.exe", "/tiles/0/0/%FF.png", "/tiles/" + "9" * 5000 + "/0/0.png", "/tiles/1/1/1/1.png",
         "/tiles/../../etc/passwd", "/tiles/0/0/0.png%00.js", "/tiles/01/0/0.png", "/tiles/+1/0/0.png"]


def test_tile_addresses_get_4xx_and_need_a_session(app_info):
    admin, anonymous, found = app_info["clients"]["admin"], app_info["anonymous"], Findings()
    for target in TILES:
        found.check(f"GET {target}", admin.send("GET", target), {400, 404})
        found.check(f"GET {target} not signed in", anonymous.send("GET", target), {302, 404})
        found.check(f"POST {target}", admin.send("POST", target), {405, 404})
    found.assert_none(len(TILES) * 3)


OFF_SITE = ["//evil.example/x", "https://evil.example/", "/\\evil.example", "\\\\evil.example", "/\\/evil.example",
            "/\t/evil.example", "/\n/evil.example", " //evil.example", "///evil.example", "http:/evil.example",
            "https:evil.example", "javascript:alert(1)", "/%2F%2Fevil.example", "/%5Cevil.example", "\x00//evil.example",
            "//evil.example@127.0.0.1/", "/kpis\r\nLocation: //evil.example", "data:text/html,<script>1</script>",
            "/.//evil.example", "/\\\\evil.example/", "\u3002/evil.example", "/\u2215evil.example"]


def _browser_target(base: str, location: str) -> str:
    """Where a browser goes for this Location header (WHATWG URL parsing: leading C0 and spaces dropped, tabs and
    newlines removed anywhere, backslashes read as slashes in http(s) URLs)."""
    cleaned = location.strip("".join(map(chr, range(0x21))))
    cleaned = "".join(c for c in cleaned if c not in "\t\n\r").replace("\\", "/")
    return urljoin(base + "/", cleaned)


def test_sign_in_never_redirects_off_site_and_survives_hostile_forms(app_info):
    base, found = app_info["base"], Findings()
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    for user in ("analyst", "admin"):
        for target in OFF_SITE + ["/wall?lang=zh", "/kpis?kpi=response_rate"]:
            client = Client(base, None)
            data = urlencode({"username": user, "password": DEMO_PASSWORDS[user], "next": target})
            reply = found.check(f"POST /login as {user} next={target!r}", client.send("POST", "/login", data, form),
                                {303})
            where = urlsplit(_browser_target(base, reply.headers.get("location", "")))
            if (where.hostname, where.port) != ("127.0.0.1", urlsplit(base).port):
                found.problems.append(f"POST /login as {user} next={target!r} -> {reply.headers.get('location')!r}:"
                                      f" a browser would go to {where.geturl()[:80]}")
    rng = random.Random(SEED)
    anonymous = Client(base, None)
    for _ in range(60):
        fields = {name: rng.choice(HOSTILE_TEXT + ["admin"]) for name in rng.sample(["username", "password",
                                                                                      "next", "lang"], 3)}
        reply = found.check(f"POST /login {fields!r:.200}", anonymous.send("POST", "/login", urlencode(fields), form),
                            {200, 400, 401, 429})
        if "<script>" in reply.text and "<script>" in "".join(fields.values()):
            found.problems.append(f"POST /login {fields!r:.200}: the form echoes markup unescaped")
    for raw in ("username=%FF%FE&password=%00", "username=" + "a" * 100_000, "%%%", "next=%0D%0A&username=x",
                "username=admin&password=admin-demo&next=%FF%FE"):
        found.check(f"POST /login body {raw[:60]!r}", anonymous.send("POST", "/login", raw, form),
                    {200, 303, 400, 401, 429})
    for query in ("next=//evil.example", "next=" + "x" * 10_000, "next=%22%3E%3Cscript%3Ealert(1)%3C/script%3E",
                  "lang=%FF%FE", "lang=zh&lang=en", "expired=%00"):
        reply = found.check(f"GET /login?{query[:80]}", anonymous.send("GET", f"/login?{query}"), {200, 400})
        if "<script>alert(1)" in reply.text:
            found.problems.append(f"GET /login?{query}: the form echoes markup unescaped")
    for method in ("GET", "POST", "PUT", "DELETE", "HEAD"):
        found.check(f"{method} /logout?next=//evil.example", anonymous.send(method, "/logout?next=//evil.example"),
                    {303, 405})
    found.check("PUT /login", anonymous.send("PUT", "/login"), {405})
    found.assert_none(120)
