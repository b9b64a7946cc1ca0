"""Publishing a generation: fact tables go out as one Parquet file per month; a publish rewrites only the months
whose rows changed (found by a fingerprint, whatever changed them) and hard-links the others, and readers see
exactly the writer's rows either way."""
import json
import shutil
from datetime import UTC, datetime

from core import warehouse
from core.warehouse import Reader, publish, writer


def _incident(iid: str, closed: datetime | None, status: str = "closed") -> tuple:
    """An incident closed at `closed` (None: still open), created a day before or on 1 Oct."""
    created = closed.replace(day=1) if closed else datetime(2026, 10, 1, tzinfo=UTC)
    return (iid, iid, "road", status if closed else "received", created, closed)


def _insert(con, rows, feed: str | None = None) -> None:
    con.executemany("INSERT INTO fct_incident (incident_id, source_key, category, status, created_at, closed_at, "
                    "feed_id) VALUES (?, ?, ?, ?, ?, ?, ?)", [(*row, feed) for row in rows])


def _files(generation_dir, table="fct_incident") -> dict[str, int]:
    """month -> inode of its file(s)."""
    return {part.parent.name: part.stat().st_ino for part in (generation_dir / table).glob("*/*.parquet")}


def _read(root, sql):
    return Reader(root, "UTC").rows(sql)


def test_only_changed_months_are_rewritten_and_readers_see_every_row(tmp_path):
    root = tmp_path / "wh"
    months = [datetime(2026, m, 10, tzinfo=UTC) for m in (8, 9, 10, 11)]
    with writer(root) as con:
        _insert(con, [_incident(f"a{m.month}-{i}", m) for m in months for i in range(3)])
        _insert(con, [_incident("open-1", None)])
        first = publish(con, root)
        _insert(con, [_incident("new-1", datetime(2026, 11, 20, tzinfo=UTC))])       # closed this month
        con.execute("UPDATE fct_incident SET satisfaction = 2 WHERE incident_id = 'a8-0'")   # a rating corrected
        second = publish(con, root, changed={"fct_incident"})
        expected = con.execute("SELECT incident_id, status FROM fct_incident ORDER BY 1").fetchall()
    before, after = _files(root / "published" / first), _files(root / "published" / second)
    assert set(before) == set(after) == {"month=2026-08", "month=2026-09", "month=2026-10", "month=2026-11",
                                         "month=none"}
    assert all(after[m] == before[m] for m in ("month=2026-09", "month=2026-10", "month=none")), \
        "untouched months are the previous generation's files, linked"
    assert after["month=2026-08"] != before["month=2026-08"], "a change to a case closed in an old month rewrites it"
    assert after["month=2026-11"] != before["month=2026-11"], "a case closed this month rewrites this month"
    assert _read(root, "SELECT incident_id, status FROM fct_incident ORDER BY 1") == expected
    assert "month" not in [r[0] for r in _read(root, "DESCRIBE fct_incident")], "the partition is not a column"


def test_one_feeds_load_rewrites_its_own_files_and_links_the_other_feeds(tmp_path):
    """Two feeds' incidents in the same months: a change to one feed's rows leaves the other's files linked."""
    root = tmp_path / "wh"
    closed = [datetime(2026, 10, 3, tzinfo=UTC), datetime(2026, 11, 3, tzinfo=UTC), None]
    with writer(root) as con:
        for feed in ("hotline", "open311"):
            _insert(con, [_incident(f"{feed}:{i}", c) for i, c in enumerate(closed)], feed)
        # A history row's feed is its run's: each feed's load, then a replay of open311's quarantine.
        con.execute("INSERT INTO etl_run (run_id, feed_id) VALUES (1, 'hotline'), (2, 'open311'), (3, 'replay:open311')")
        con.execute("INSERT INTO fct_incident_status SELECT incident_id, status, created_at, "
                    "CASE feed_id WHEN 'hotline' THEN 1 ELSE 2 END FROM fct_incident")
        first = publish(con, root)
        con.execute("UPDATE fct_incident SET satisfaction = 5 WHERE feed_id = 'open311'")
        con.execute("INSERT INTO fct_incident_status VALUES ('open311:2', 'dispatched', '2026-10-02 00:00:00+00', 3)")
        second = publish(con, root, changed={"fct_incident", "fct_incident_status"})
        expected = {t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall()
                    for t in ("fct_incident", "fct_incident_status")}
    rewritten = {"fct_incident": {"month=2026-10/open311", "month=2026-11/open311", "month=none/open311"},
                 "fct_incident_status": {"month=2026-10/open311"}}
    for table, files in rewritten.items():
        inodes = [_inodes(root / "published" / g / table) for g in (first, second)]
        assert set(inodes[0]) == set(inodes[1]) and len(inodes[0]) == (6 if table == "fct_incident" else 4)
        assert {f for f in inodes[1] if inodes[1][f] != inodes[0][f]} == files, table
        assert _read(root, f"SELECT * FROM {table} ORDER BY ALL") == expected[table]


def _inodes(table_dir) -> dict[str, int]:
    """'month=…/feed' -> inode of its file."""
    return {f"{f.parent.name}/{f.name.split('.')[0]}": f.stat().st_ino for f in table_dir.glob("*/*.parquet")}


def test_a_case_closing_moves_from_the_open_cases_to_its_month(tmp_path):
    root = tmp_path / "wh"
    with writer(root) as con:
        _insert(con, [_incident("x", None), _incident("y", datetime(2026, 10, 2, tzinfo=UTC))])
        publish(con, root)
        con.execute("UPDATE fct_incident SET status = 'closed', closed_at = '2026-11-01 01:00:00+00' "
                    "WHERE incident_id = 'x'")
        publish(con, root, changed={"fct_incident"})
    assert _read(root, "SELECT incident_id, status, month(closed_at) FROM fct_incident ORDER BY 1") == \
        [("x", "closed", 11), ("y", "closed", 10)]
    assert set(_files(root / "published" / warehouse.current_generation(root))) == {"month=2026-10", "month=2026-11"}


def test_empty_and_timeless_rows_are_published_too(tmp_path):
    root = tmp_path / "wh"
    with writer(root) as con:
        publish(con, root)
        assert _read(root, "SELECT count(*) FROM fct_incident") == [(0,)], "an empty table stays readable"
        con.execute("INSERT INTO fct_incident_status VALUES ('a', 'received', NULL, 1), ('a', 'closed', "
                    "'2026-11-02 00:00:00+00', 2)")
        publish(con, root, changed={"fct_incident_status"})
    assert _read(root, "SELECT count(*) FROM fct_incident_status") == [(2,)]
    generation = warehouse.current_generation(root)
    assert set(_files(root / "published" / generation, "fct_incident_status")) == {"month=none", "month=2026-11"}


def test_a_generation_published_before_monthly_files_is_still_read_and_then_replaced(tmp_path):
    """An upgraded deployment: its current generation has one file per table until the next load publishes."""
    root = tmp_path / "wh"
    with writer(root) as con:
        _insert(con, [_incident("old", datetime(2026, 10, 1, tzinfo=UTC))])
        first = publish(con, root)
        gen_dir = root / "published" / first
        con.execute(f"COPY fct_incident TO '{gen_dir / 'fct_incident.parquet'}' (FORMAT parquet)")
        shutil.rmtree(gen_dir / "fct_incident")           # as the previous release wrote it
        manifest = json.loads((gen_dir / "manifest.json").read_text())
        del manifest["months"]
        (gen_dir / "manifest.json").write_text(json.dumps(manifest))
        assert _read(root, "SELECT incident_id FROM fct_incident") == [("old",)]
        _insert(con, [_incident("new", datetime(2026, 11, 1, tzinfo=UTC))])
        second = publish(con, root, changed={"fct_incident"})
    assert set(_files(root / "published" / second)) == {"month=2026-10", "month=2026-11"}
    assert _read(root, "SELECT incident_id FROM fct_incident ORDER BY 1") == [("new",), ("old",)]


def test_a_rows_month_is_its_utc_month_to_the_microsecond(tmp_path):
    """The month a row is filed under is its UTC calendar month, whatever the session's time zone, for times a
    microsecond before midnight at a month's end (a millisecond clock would round them into the next month)."""
    key = warehouse._month_key_sql("fct_incident").replace("closed_at", "ts")
    with writer(tmp_path / "wh") as con:
        con.execute("SET TimeZone = 'Asia/Shanghai'")
        groups = con.execute(f"""
            SELECT {key}, coalesce(strftime(timezone('UTC', ts), '%Y-%m'), 'none'), count(*)
            FROM (SELECT timezone('UTC', TIMESTAMP '2026-02-01' + INTERVAL (i) MONTH - INTERVAL (j) MICROSECOND)
                         AS ts FROM range(-400, 400) a(i), range(1, 1001) b(j)
                  UNION ALL SELECT NULL)
            GROUP BY ALL""").fetchall()
    assert len(groups) == 801 and len({k for k, _, _ in groups}) == 801
    assert [(warehouse._month_name(k), n) for k, _, n in groups] == [(name, n) for _, name, n in groups]
    assert {warehouse._month_name(k) for k, _, _ in groups} >= {"none", "1992-09", "2059-04"}


def test_a_generation_with_one_file_per_month_is_replaced_without_doubling_rows(tmp_path):
    """An upgraded deployment whose current generation has a month's rows in one data_0.parquet (no feed files)
    and one fingerprint per month: the next publish writes the feed files and leaves the old files behind."""
    root = tmp_path / "wh"
    with writer(root) as con:
        _insert(con, [_incident("h:1", datetime(2026, 10, 1, tzinfo=UTC))], "hotline")
        first = publish(con, root)
        gen_dir = root / "published" / first
        for f in (gen_dir / "fct_incident").glob("*/*.parquet"):
            f.rename(f.with_name("data_0.parquet"))                        # as the previous release wrote it
        manifest = json.loads((gen_dir / "manifest.json").read_text())
        manifest["months"]["fct_incident"] = {m: parts["hotline"] for m, parts in
                                              manifest["months"]["fct_incident"].items()}
        (gen_dir / "manifest.json").write_text(json.dumps(manifest))
        _insert(con, [_incident("o:1", datetime(2026, 10, 2, tzinfo=UTC))], "open311")
        second = publish(con, root, changed={"fct_incident"})
    assert sorted(_inodes(root / "published" / second / "fct_incident")) == \
        ["month=2026-10/hotline", "month=2026-10/open311"]
    assert _read(root, "SELECT incident_id FROM fct_incident ORDER BY 1") == [("h:1",), ("o:1",)]
