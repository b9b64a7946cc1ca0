"""incidents/open311_requests.json: GeoReport v2 requests (English), streamed
as a JSON array with one record per line."""
from __future__ import annotations

import numpy as np

from . import catalog, defects
from .geography import Geography
from .hotline import pick_template, _templates
from .incidents import Window, chunk_bounds, expand, plan_counts, simulate
from .locations import LocationSampler
from .people import mobiles
from .randomness import stream
from .timefmt import iso_strings
from .writers import HashedFile, dumps

PATH = "incidents/open311_requests.json"
DESC, DESC_OFF, DESC_CNT = _templates(catalog.DESCRIPTIONS_EN)
AGENCY = [catalog.department(c.department).name_en for c in catalog.CATEGORIES]
NOTES = ("Request received.", "Assigned to {}.", "{} is working on it.", "Resolved by {}.")


def columns(d: dict, first: int, geo: Geography, street_en, dist_en, rng) -> dict:
    n = len(d["cat"])
    desc = pick_template(d["cat"], d["template"], DESC, DESC_OFF, DESC_CNT)
    ep = d["embed_phone"]
    desc[ep] = desc[ep] + ", call me at " + mobiles(int(ep.sum()), rng, prefix=139)
    cell = d["cell"]
    address = (np.array(list(map(str, d["house"].tolist())), dtype=object) + " "
               + street_en[geo.cell_street[cell]] + ", " + dist_en[geo.cell_district[cell]])
    return {
        "id": [f"O311-{i:07d}" for i in range(first, first + n)],
        "cat": d["cat"].tolist(), "status": d["status"].tolist(), "desc": desc.tolist(),
        "address": address.tolist(),
        "lat": np.round(d["lat"], 6).tolist(), "lon": np.round(d["lon"], 6).tolist(),
        "requested": iso_strings(d["created"]).tolist(), "updated": iso_strings(d["updated"]).tolist(),
        "expected": iso_strings(d["due"]).tolist(),
        "dispatched": np.where(d["dispatched"], iso_strings(d["dispatch"]), None).tolist(),
        "closed": np.where(d["closed"], iso_strings(np.where(d["closed"], d["close"], 0)), None).tolist(),
        "urgent": d["urgent"].tolist(), "satisfaction": d["satisfaction"].tolist(),
        "channel": np.where(rng.random(n) < catalog.OPEN311_CHANNEL_SHARE[0], "web", "app").tolist(),
    }


def record(c: dict, i: int) -> dict:
    cat = catalog.CATEGORIES[c["cat"][i]]
    agency = AGENCY[c["cat"][i]]
    st = c["status"][i]
    return {
        "service_request_id": c["id"][i],
        "status": "closed" if st == 3 else "open",
        "status_notes": NOTES[st].format(agency),
        "service_name": cat.name_en,
        "service_code": cat.service_code,
        "description": c["desc"][i],
        "agency_responsible": agency,
        "address": c["address"][i],
        "lat": c["lat"][i],
        "long": c["lon"][i],
        "requested_datetime": c["requested"][i],
        "updated_datetime": c["updated"][i],
        "expected_datetime": c["expected"][i],
        "media_url": None,
        "extended_attributes": {
            "dispatched_datetime": c["dispatched"][i],
            "closed_datetime": c["closed"][i],
            "priority": catalog.PRIORITY_EN[int(c["urgent"][i])],
            "satisfaction": c["satisfaction"][i] or None,
            "channel": c["channel"][i],
            "state": catalog.STATUS_OPEN311[st],
        },
    }


def mutate(rec: dict, kind: str, rng) -> None:
    if kind == "missing_coordinates":
        rec["lat"] = rec["long"] = None
    elif kind == "unknown_category":
        rec["service_code"] = catalog.UNKNOWN_SERVICE_CODES[int(rng.integers(0, len(catalog.UNKNOWN_SERVICE_CODES)))]
        rec["service_name"] = "Other"
    elif kind == "unparseable_timestamp":
        rec["requested_datetime"] = defects.BAD_ISO_TIMES[int(rng.integers(0, len(defects.BAD_ISO_TIMES)))]


def write(root: str, geo: Geography, sampler: LocationSampler, win: Window, total: int,
          registry: defects.Registry) -> tuple[str, dict]:
    counts = plan_counts(total, win, geo, "open311-plan")
    plan = defects.json_plan(total, stream(win.seed, "open311-defects")) if total else {}
    street_en = np.array([s["name_en"] for s in geo.streets], dtype=object)
    dist_en = np.array([d.name_en for d in catalog.DISTRICTS], dtype=object)
    first, index = 1, 0
    with HashedFile(root, PATH) as sink:
        sink.write(b"[")
        for k, (h0, h1) in enumerate(chunk_bounds(counts)):
            rng = stream(win.seed, "open311", k + 1)
            comp, created = expand(counts, win.hours, h0, h1, rng)
            d = simulate(comp, created, sampler, win.end, rng)
            c = columns(d, first, geo, street_en, dist_en, rng)
            planned = [plan.get(first - 1 + i) for i in range(len(comp))]
            dup_src = [i for i, kd in enumerate(planned) if kd == "duplicate"]
            kinds = np.array([catalog.OPEN311_DEFECTS.index(kd) if kd and kd != "duplicate" else -1
                              for kd in planned], dtype=np.int64)
            texts = []
            for i in range(len(comp)):
                rec = record(c, i)
                if kinds[i] >= 0:
                    mutate(rec, catalog.OPEN311_DEFECTS[kinds[i]], rng)
                texts.append(dumps(rec))
            (texts, keys), kinds = defects.insert_duplicates(
                [np.array(texts, dtype=object), np.array(c["id"], dtype=object)], kinds, 0.0, rng,
                catalog.OPEN311_DEFECTS.index("duplicate"), sources=dup_src)
            for i in np.flatnonzero(kinds >= 0).tolist():
                registry.add(PATH, keys[i], catalog.OPEN311_DEFECTS[kinds[i]], index=index + i)
            sep = ",\n" if index else "\n"
            sink.write((sep + ",\n".join(texts.tolist())).encode("utf-8"))
            index += len(texts)
            first += len(comp)
        sink.write(b"\n]\n")
        sink.rows = index
        return PATH, sink.close()
