"""fct_incident.previous_same_at, kept by the ETL in each merge (etl/derived.py): after any sequence of loads it
equals the window function over the whole table that the KPI layer used to compute for every query."""
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from core.warehouse import writer
from etl import derived, merge

T0 = datetime(2026, 11, 1, 8, tzinfo=UTC)
FULL = """SELECT incident_id, lag(created_at) OVER (PARTITION BY caller_hash, category, district_id
                                                  ORDER BY created_at, incident_id) AS previous
          FROM fct_incident WHERE caller_hash IS NOT NULL"""


def inc(key, hours, caller="X", category="noise", district="D01", updated=0, **extra):
    created = T0 + timedelta(hours=hours)
    return {"incident_id": f"f:{key}", "source_key": key, "category": category, "status": "received",
            "created_at": created, "updated_at": created + timedelta(minutes=updated), "caller_hash": caller,
            "district_id": district, "feed_id": "f", "run_id": 1, **extra}


def load(con, *rows, without=()):
    frame = pd.DataFrame([{k: v for k, v in r.items() if k not in without} for r in rows])
    con.execute("BEGIN TRANSACTION")
    merge.merge(con, frame, "incidents")
    con.execute("COMMIT")


def stored(con) -> dict:
    return dict(con.execute("SELECT source_key, previous_same_at FROM fct_incident").fetchall())


def hours(h):
    return T0 + timedelta(hours=h)


@pytest.fixture
def con(tmp_path):
    with writer(tmp_path) as c:
        yield c


def assert_consistent(con):
    full = dict(con.execute(FULL).fetchall())
    mine = dict(con.execute("SELECT incident_id, previous_same_at FROM fct_incident").fetchall())
    assert mine == {k: full.get(k) for k in mine}


def test_kept_through_out_of_order_loads_moves_and_callers_going(con):
    load(con, inc("a", 0), inc("c", 48), inc("y", 1, caller="Y"), inc("n", 2, caller=None))
    assert stored(con) == {"a": None, "c": hours(0), "y": None, "n": None}

    load(con, inc("b", 24))                                 # arrives late, between a and c
    assert stored(con)["c"] == hours(24) and stored(con)["b"] == hours(0)

    load(con, inc("b", 24, category="waste", updated=5))     # b corrected to another category: c's group changes
    assert stored(con) == {"a": None, "b": None, "c": hours(0), "y": None, "n": None}

    load(con, inc("d", 60, district="D02"), inc("e", 72, district="D02"))   # another district: its own group
    assert stored(con)["e"] == hours(60) and stored(con)["d"] is None

    load(con, inc("e", 72, district="D01", updated=5))        # e relocated into D01: after c there, alone in D02
    assert stored(con)["e"] == hours(48) and stored(con)["d"] is None

    load(con, inc("c", 48, caller=None, updated=5))            # c's caller withdrawn: no repeat, e follows a
    assert stored(con)["c"] is None and stored(con)["e"] == hours(0)
    assert_consistent(con)


def test_a_feed_without_phone_numbers_leaves_the_stored_caller_and_its_group(con):
    load(con, inc("a", 0), inc("b", 24))
    # A newer version from a feed that maps no phone: caller_hash stays as stored, so b is still a repeat of a.
    load(con, inc("a", 0, updated=30, category="noise", status="closed"), without=("caller_hash",))
    assert stored(con)["b"] == hours(0)
    load(con, inc("a", 0, updated=60, category="waste"), without=("caller_hash",))    # but a did move away
    assert stored(con)["b"] is None
    assert_consistent(con)


def test_a_first_load_with_versions_of_one_case_and_one_without_callers(con):
    # A first load computes previous_same_at while inserting; versions of "a" in one file: the newer one counts,
    # and it moved "a" out of b's group.
    load(con, inc("a", 0), inc("b", 24), inc("a", 0, updated=5, category="waste"), inc("c", 30, caller=None))
    assert stored(con) == {"a": None, "b": None, "c": None}
    assert_consistent(con)


def test_a_first_load_of_a_feed_without_callers_has_no_repeats(con):
    load(con, inc("a", 0), inc("b", 24), without=("caller_hash",))
    assert stored(con) == {"a": None, "b": None}
    load(con, inc("c", 30))
    assert stored(con)["c"] is None and con.execute("SELECT count(*) FROM fct_incident").fetchall()[0][0] == 3


def test_versions_read_in_one_load_add_each_event_once(con):
    closed = {"status": "closed", "closed_at": hours(3)}
    load(con, inc("a", 0), inc("a", 0, updated=5, **closed), inc("a", 0, updated=5, **closed), inc("b", 1))
    load(con, inc("a", 0, updated=9, **closed), inc("b", 1, updated=2))
    events = con.execute("SELECT incident_id, status, changed_at FROM fct_incident_status ORDER BY ALL").fetchall()
    assert events == [("f:a", "closed", hours(3)), ("f:a", "received", hours(0)), ("f:b", "received", hours(1))]


def test_a_random_history_of_loads_stays_equal_to_the_full_window(con):
    import random
    rnd = random.Random(7)
    for _ in range(25):
        rows = {}
        for _ in range(rnd.randint(1, 12)):
            key = f"k{rnd.randint(0, 40)}"
            rows[key] = inc(key, rnd.randint(0, 500), caller=rnd.choice(["X", "Y", "Z", None]),
                            category=rnd.choice(["noise", "waste"]), district=rnd.choice(["D01", "D02", None]),
                            updated=rnd.randint(0, 10_000))
        load(con, *rows.values())
        assert_consistent(con)


def test_an_older_warehouse_is_upgraded_once(con):
    load(con, inc("a", 0), inc("b", 24), inc("c", 30, caller="Y"))
    con.execute("ALTER TABLE fct_incident DROP COLUMN previous_same_at")      # as an older release left it
    assert derived.upgrade(con) == {"fct_incident"}
    assert stored(con) == {"a": None, "b": hours(0), "c": None}
    assert derived.upgrade(con) == set()
