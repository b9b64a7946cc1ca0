"""`python -m etl` commands beyond plain loads, through real processes, DuckDB files and published generations:

- replay: quarantined records through the feed's current mapping after the city adds category aliases; exactly
  the fixed records move into fct_incident, stored as a direct load would store them (caller hash included), the
  rest stay with their current reason, the run's accounting is exact, and a second replay changes nothing.
- progress: rows, rows/s, share of bytes and ETA on stderr with --progress (no terminal needed), on a real
  pseudo-terminal without the flag, and nothing when stderr is a pipe.
"""
import csv
import hashlib
import hmac
import os
import pty
import re
import shutil
import subprocess
import time

import pandas as pd
import pytest

from core.settings import load_config
from core.warehouse import Reader
from tests.conftest import PYTHON, ROOT, edit_yaml, make_city, run

FEED = "hotline_12345"
PII_KEY = "test-key-for-replay"


def _reader(settings) -> Reader:
    config = load_config(settings)
    return Reader(config.warehouse_dir, config.settings.city.timezone)


def _etl(settings, *args, check=True):
    return run("-m", "etl", "--config", str(settings), *args, env={**os.environ, "CITYOPS_PII_KEY": PII_KEY},
               check=check)


def _source_rows(path) -> dict[int, dict]:
    """Physical line -> record of the hotline export (lines in GBK decoded as such), parsed with the csv module."""
    out = {}
    header = None
    for number, raw in enumerate(path.read_bytes().split(b"\n"), start=1):
        if not raw:
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            line = raw.decode("gbk")
        row = next(csv.reader([line]))
        if header is None:
            header = row
        elif len(row) == len(header):
            out[number] = dict(zip(header, row))
    return out


def _phone_hash(phone: str) -> str:
    """The documented caller hash (docs/SCHEMA.md): keyed HMAC-SHA256 of the number's last 11 digits."""
    digits = re.sub(r"\D", "", phone)[-11:]
    return hmac.new(PII_KEY.encode(), digits.encode(), hashlib.sha256).hexdigest()[:24]


def _quarantine(settings) -> pd.DataFrame:
    return _reader(settings).df("SELECT run_id, file, line, record_key, reason, raw_json FROM etl_quarantine "
                                "WHERE feed_id = ? ORDER BY file, line", [FEED])


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    root = tmp_path_factory.mktemp("replay")
    settings, city = make_city(root)
    _etl(settings, "load-all")
    reader = _reader(settings)
    before = _quarantine(settings)
    unknown = before[before.reason.str.startswith("unknown category '")].copy()
    source = _source_rows(city / "incidents" / "hotline_12345.csv")
    unknown["label"] = [source[line]["category"] for line in unknown.line]
    unknown["channel"] = [source[line]["channel"] for line in unknown.line]
    assert (unknown.reason == "unknown category '" + unknown.label + "'").all()
    counts = unknown.label.value_counts()
    assert len(counts) >= 2, "the demo city should plant several unknown category labels"
    kept_label = min(counts.index, key=lambda label: (counts[label], label))    # stays unknown
    aliased = unknown[unknown.label != kept_label]
    channels = aliased.channel.value_counts()
    assert len(channels) >= 2, "the fixed records should come in more than one channel"
    dropped_channel = min(channels.index, key=lambda c: (channels[c], c))     # becomes their new reason

    # The city maps its leftover labels to 'consult' and, in the same edit, stops accepting one channel label.
    config_dir = settings.parent
    edit_yaml(config_dir / "categories.yaml",
              lambda d: d["categories"]["consult"]["aliases"].extend(sorted(set(aliased.label))))
    edit_yaml(config_dir / "feeds" / f"{FEED}.yaml", lambda d: d["fields"]["channel"]["map"].pop(dropped_channel))

    incidents_before = set(reader.df("SELECT incident_id FROM fct_incident").incident_id)
    checksum = ("SELECT count(*), coalesce(sum(hash(i)), 0) FROM fct_incident i "
                "WHERE incident_id NOT IN (SELECT unnest(?::VARCHAR[]))")
    runs_before = reader.df("SELECT * FROM etl_run ORDER BY run_id")
    generation_before = reader.current()
    others_before = {t: reader.rows(f"SELECT count(*), coalesce(sum(hash(x)), 0) FROM {t} x")[0]
                     for t in ("fct_sensor_reading", "fct_service_case", "dim_sensor")}
    first = _etl(settings, "replay", "--feed", FEED, "--reason", "unknown category")
    moved = aliased[aliased.channel != dropped_channel]
    moved_ids = [f"{FEED}:{source[line]['case_id']}" for line in moved.line]

    # The same source records loaded directly, with the new config from the start, into a second warehouse.
    direct_root = root / "direct"
    shutil.copytree(config_dir, direct_root / "config")
    direct = direct_root / "config" / "settings.yaml"
    edit_yaml(direct, lambda d: d["warehouse"].update(dir=str(direct_root / "var" / "warehouse")))
    _etl(direct, "load-all")
    return dict(settings=settings, city=city, source=source, before=before, unknown=unknown, kept_label=kept_label,
                aliased=aliased, dropped_channel=dropped_channel, moved=moved, moved_ids=moved_ids,
                incidents_before=incidents_before, checksum=checksum, runs_before=runs_before,
                generation_before=generation_before, others_before=others_before, first=first, direct=direct,
                checksum_before=reader.rows(checksum, [moved_ids])[0])


def test_replay_moves_exactly_the_fixed_records(replayed):
    r = replayed
    assert len(r["moved"]) >= 3 and len(r["aliased"]) > len(r["moved"]), "guards the test itself"
    reader = _reader(r["settings"])
    now = set(reader.df("SELECT incident_id FROM fct_incident").incident_id)
    assert now - r["incidents_before"] == set(r["moved_ids"])
    assert r["incidents_before"] <= now
    # every other incident, and every other table, exactly as before
    assert reader.rows(r["checksum"], [r["moved_ids"]])[0] == r["checksum_before"]
    for table, state in r["others_before"].items():
        assert reader.rows(f"SELECT count(*), coalesce(sum(hash(x)), 0) FROM {table} x")[0] == state, table
    assert reader.current() != r["generation_before"], "a replay that loads records publishes them"


def test_replay_leaves_the_rest_in_quarantine_with_their_current_reason(replayed):
    r = replayed
    after = _quarantine(r["settings"]).set_index(["file", "line"])
    before = r["before"].set_index(["file", "line"])
    moved = set(zip(r["moved"].file, r["moved"].line))
    assert set(after.index) == set(before.index) - moved
    new_reason = f"unknown channel '{r['dropped_channel']}'"
    for where, row in after.iterrows():
        line = where[1]
        if line in set(r["aliased"].line):
            assert r["source"][line]["channel"] == r["dropped_channel"]
            assert row.reason == new_reason, (where, row.reason)
        else:
            assert row.reason == before.loc[where, "reason"], where
        # the record, its key, its source position and the run that quarantined it do not change
        assert (row.raw_json, row.record_key, row.run_id) == tuple(before.loc[where, ["raw_json", "record_key",
                                                                                       "run_id"]])
    kept = after[after.reason.str.startswith("unknown category")]
    assert len(kept) and (kept.reason == f"unknown category '{r['kept_label']}'").all()


def test_replay_run_accounting(replayed):
    r = replayed
    runs = _reader(r["settings"]).df("SELECT * FROM etl_run ORDER BY run_id")
    new = runs[runs.run_id > r["runs_before"].run_id.max()]
    assert len(new) == 1, new
    run_row = new.iloc[0]
    read, moved = len(r["unknown"]), len(r["moved"])
    assert (run_row.feed_id, run_row.status, run_row.rows_read, run_row.rows_inserted, run_row.rows_updated,
            run_row.rows_merged, run_row.rows_quarantined) == \
        (f"replay:{FEED}", "ok", read, moved, 0, 0, read - moved), run_row.to_dict()
    assert run_row.rows_read == run_row.rows_inserted + run_row.rows_updated + run_row.rows_merged + \
        run_row.rows_quarantined
    assert f"read={read:,} inserted={moved:,}" in r["first"].stdout
    stored = _reader(r["settings"]).df("SELECT feed_id, run_id FROM fct_incident WHERE incident_id IN "
                                       "(SELECT unnest(?::VARCHAR[]))", [r["moved_ids"]])
    assert (stored.feed_id == FEED).all() and (stored.run_id == run_row.run_id).all()


def test_replayed_records_are_stored_as_a_direct_load_stores_them(replayed):
    r = replayed
    replay_reader, direct_reader = _reader(r["settings"]), _reader(r["direct"])
    for table, order in (("fct_incident", "incident_id"), ("fct_incident_status", "incident_id, status, changed_at")):
        query = (f"SELECT * EXCLUDE (run_id) FROM {table} WHERE incident_id IN (SELECT unnest(?::VARCHAR[])) "
                 f"ORDER BY {order}")
        got, expected = replay_reader.df(query, [r["moved_ids"]]), direct_reader.df(query, [r["moved_ids"]])
        assert len(got) >= len(r["moved_ids"])
        pd.testing.assert_frame_equal(got, expected)
    # and independently of the ETL's code: the category alias, the keyed hash of the caller's number (hashed
    # once, not the hash of the stored hash), the address cut to street level
    rows = replay_reader.df("SELECT incident_id, category, caller_hash, address, description FROM fct_incident "
                            "WHERE incident_id IN (SELECT unnest(?::VARCHAR[]))", [r["moved_ids"]])
    by_id = rows.set_index("incident_id")
    for line in r["moved"].line:
        record = r["source"][line]
        stored = by_id.loc[f"{FEED}:{record['case_id']}"]
        assert stored.category == "consult"
        assert stored.caller_hash == _phone_hash(record["caller_phone"])
        assert record["caller_phone"] not in " ".join(str(v) for v in stored.values)
        assert record["address"].startswith(stored.address) and len(stored.address) < len(record["address"])
        assert not re.search(r"\d", stored.address)


def test_second_replay_changes_nothing(replayed):
    r = replayed
    reader = _reader(r["settings"])
    state = lambda: (reader.current(), len(reader.df("SELECT run_id FROM etl_run")),
                     reader.df("SELECT * FROM etl_quarantine ORDER BY feed_id, file, line").to_dict("records"),
                     reader.rows("SELECT count(*), sum(hash(x)) FROM fct_incident x")[0],
                     reader.rows("SELECT count(*), sum(hash(x)) FROM fct_incident_status x")[0])
    before = state()
    again = _etl(r["settings"], "replay", "--feed", FEED, "--reason", "unknown category")
    assert " unchanged " in again.stdout and "published" not in again.stdout, again.stdout
    assert f"read={len(r['unknown']) - len(r['aliased'])} " in again.stdout, again.stdout   # the kept label only
    assert state() == before


def test_replay_keeps_a_record_the_reader_could_not_split(replayed):
    """A line with a field missing is padded to be read; its fields cannot be trusted, so no config fix lets it in
    (here the missing field is the last, optional one: mapped again, the padded record would pass every check)."""
    r = replayed
    source = r["city"] / "incidents" / "hotline_12345.csv"
    header, first = (line.decode("utf-8") for line in source.read_bytes().split(b"\n")[:2])
    fields = next(csv.reader([first]))
    fields[0] = "12345-99999999"
    ragged = r["city"] / "incidents" / "hotline_12345_ragged.csv"
    ragged.write_text(header + "\n" + ",".join(fields[:-1]) + "\n", encoding="utf-8")
    _etl(r["settings"], "load", "--feed", FEED, str(ragged))
    reason = f"expected {len(fields)} fields, got {len(fields) - 1}"
    held = _quarantine(r["settings"])
    assert held[held.file == str(ragged)].reason.tolist() == [reason]
    again = _etl(r["settings"], "replay", "--feed", FEED, "--reason", "fields")
    assert " unchanged read=1 " in again.stdout, again.stdout
    assert _reader(r["settings"]).rows("SELECT count(*) FROM fct_incident WHERE incident_id = ?",
                                       [f"{FEED}:12345-99999999"])[0][0] == 0


def test_replay_refuses_an_unknown_feed(replayed):
    result = _etl(replayed["settings"], "replay", "--feed", "no_such_feed", check=False)
    assert result.returncode == 2 and "unknown feed 'no_such_feed'" in result.stderr


# --- progress -----------------------------------------------------------------------------------------------

PROGRESS = re.compile(r"progress (?P<feed>\w+): (?P<rows>[\d,]+) rows, (?P<rate>[\d,]+) rows/s, "
                      r"(?P<share>[\d.]+)% of (?P<size>[\d.,]+ [KMG]?B), ETA (?P<eta>\d+:\d\d:\d\d)")


def _size_label(size: int) -> str:
    return f"{size} B" if size < 1000 else f"{size / 1000:.1f} KB" if size < 1e6 else f"{size / 1e6:.1f} MB"


def _seconds(eta: str) -> int:
    h, m, s = (int(x) for x in eta.split(":"))
    return h * 3600 + m * 60 + s


@pytest.fixture(scope="module")
def small_chunks(tmp_path_factory):
    root = tmp_path_factory.mktemp("progress")
    settings, city = make_city(root)
    edit_yaml(settings, lambda d: d["etl"].update(chunk_rows=1000))
    return settings, city


def test_progress_flag_reports_rows_rate_share_and_eta(small_chunks):
    settings, _ = small_chunks
    started = time.monotonic()
    result = _etl(settings, "load-all", "--progress")
    wall = time.monotonic() - started
    lines = [m.groupdict() for m in map(PROGRESS.match, result.stderr.splitlines()) if m]
    runs = _reader(settings).df("SELECT feed_id, file, rows_read FROM etl_run WHERE feed_id <> 'boundaries'")
    assert {line["feed"] for line in lines} == set(runs.feed_id)
    for _, run_row in runs.iterrows():
        mine = [line for line in lines if line["feed"] == run_row.feed_id]
        rows = [int(line["rows"].replace(",", "")) for line in mine]
        shares = [float(line["share"]) for line in mine]
        assert rows == sorted(rows) and len(set(rows)) == len(rows) and rows[-1] == run_row.rows_read, mine
        assert all(b - a <= 1000 for a, b in zip([0] + rows, rows)), rows           # one line per chunk
        assert len(rows) == -(-run_row.rows_read // 1000)
        assert shares == sorted(shares) and shares[-1] == 100.0 and 0 < shares[0], shares
        assert {line["size"] for line in mine} == {_size_label(os.path.getsize(run_row.file))}
        assert _seconds(mine[-1]["eta"]) == 0
        for line, n in zip(mine, rows):
            rate = int(line["rate"].replace(",", ""))
            assert rate >= n / wall, (line, wall)      # the file took less than the whole process
        if run_row.file.endswith(".csv") and len(rows) > 2:
            # a CSV's byte share follows its row share (rows are of similar length)
            for share, n in zip(shares, rows):
                assert abs(share / 100 - n / run_row.rows_read) < 0.1, (share, n)
            assert shares[0] < 50 and _seconds(mine[0]["eta"]) >= 0


def test_no_progress_into_a_pipe_without_the_flag(small_chunks):
    settings, city = small_chunks
    result = _etl(settings, "load", "--force", "--feed", FEED, str(city / "incidents" / "hotline_12345.csv"))
    assert "rows/s" not in result.stderr and "ETA" not in result.stderr, result.stderr
    assert " ok " in result.stdout and "read=" in result.stdout, result.stdout


def test_progress_on_a_terminal_updates_one_line(small_chunks):
    """stderr on a real pseudo-terminal: no flag needed, each update overwrites the line, cleared at the end."""
    settings, city = small_chunks
    master, slave = pty.openpty()
    process = subprocess.Popen([PYTHON, "-m", "etl", "--config", str(settings), "load", "--force", "--feed", FEED,
                                str(city / "incidents" / "hotline_12345.csv")], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=slave, env={**os.environ, "CITYOPS_PII_KEY": PII_KEY})
    os.close(slave)
    output = b""
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:            # the pty closes when the process ends
            break
        if not data:
            break
        output += data
    stdout, _ = process.communicate(timeout=120)
    os.close(master)
    assert process.returncode == 0, (stdout, output)
    text = output.decode("utf-8", "replace")
    updates = re.findall(r"\r\x1b\[K  hotline_12345: ([\d,]+) rows, [\d,]+ rows/s, ([\d.]+)% of [\d.]+ MB, ETA "
                         r"\d+:\d\d:\d\d", text)
    rows_read = _reader(settings).rows("SELECT rows_read FROM etl_run ORDER BY run_id DESC LIMIT 1")[0][0]
    rows = [int(n.replace(",", "")) for n, _ in updates]
    assert len(rows) == -(-rows_read // 1000) and rows == sorted(rows) and rows[-1] == rows_read, text
    assert updates[-1][1] == "100.0" and "\n" not in text and "progress " not in text, repr(text)
    assert text.endswith("\r\x1b[K"), "the progress line is cleared when the load ends"
    assert b" ok " in stdout


def test_a_ragged_row_of_bad_bytes_is_quarantined_without_noise_on_stderr(tmp_path):
    """pyarrow fails to decode such a row for its ragged-row handler and reports it on stderr as an ignored
    exception with a traceback; the load must say nothing of the kind, and the row must reach quarantine."""
    settings, city = make_city(tmp_path)
    source = city / "incidents" / "hotline_12345.csv"
    with open(source, "rb") as fh:
        head = fh.readline() + fh.readline()
    broken = city / "incidents" / "hotline_12345_broken.csv"
    broken.write_bytes(head + b"BRK-1,\xff\xfe not text\n")
    result = _etl(settings, "load", "--feed", FEED, str(broken))
    assert "Exception ignored" not in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert "read=2 inserted=1" in result.stdout and "quarantined=1" in result.stdout, result.stdout
    rows = _quarantine(settings)
    assert rows[rows.file == str(broken)].reason.tolist() == ["expected 18 fields, got 2"]


def test_load_all_into_a_reader_that_stops_early_still_loads_and_publishes_everything(tmp_path):
    """`python -m etl load-all | head -1`: the reports are printed between loads, so a broken pipe used to stop the
    loads after the first report with a BrokenPipeError traceback, leaving the rest unloaded and unpublished."""
    settings, _ = make_city(tmp_path)
    child = subprocess.Popen([PYTHON, "-m", "etl", "--config", str(settings), "load-all"], cwd=ROOT,
                             env={**os.environ, "CITYOPS_PII_KEY": PII_KEY}, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    first = child.stdout.readline()
    child.stdout.close()                                  # what `head -1` does after its line
    stderr = child.stderr.read()
    assert child.wait(timeout=600) == 0, stderr
    assert first.strip() and "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
    runs = _reader(settings).df("SELECT feed_id, status FROM etl_run")
    assert set(runs.status) == {"ok"} and len(runs) >= 7, runs
    assert _reader(settings).df("SELECT count(*) AS n FROM fct_incident").n[0] > 0      # published
