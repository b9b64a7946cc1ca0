"""JSON record arrays are read by DuckDB (etl/json_array.py) and, where DuckDB cannot give the same frame, by the
Python reader, which stays the definition. These tests hold the two to the same frames on generated documents,
and check that what Python refuses is refused whichever reader starts."""
import gzip
import json
import random
from pathlib import Path
from types import SimpleNamespace

import duckdb
import pandas as pd
import pytest

from core.errors import FeedError
from etl import extract, json_array, jsontext

SOURCE = SimpleNamespace(format="json", encoding="utf-8", records_path=None)
LINES = SimpleNamespace(format="jsonl", encoding="utf-8", records_path=None)


def python_frames(path: Path, chunk_rows: int) -> list[pd.DataFrame]:
    records = extract._json_records(path, SOURCE, None, extract.Position(0))
    return list(extract._records_frames(records, chunk_rows, extract.Position(0)))


def read_frames(path: Path, chunk_rows: int) -> list[pd.DataFrame]:
    return read_frames_of(path, SOURCE, chunk_rows)


def read_frames_of(path: Path, source, chunk_rows: int) -> list[pd.DataFrame]:
    return list(extract.read(path, source, chunk_rows))


def assert_same_frames(got: list[pd.DataFrame], expected: list[pd.DataFrame]) -> None:
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        pd.testing.assert_frame_equal(a, b)


def duckdb_reads_it_all(path: Path, chunk_rows: int) -> bool:
    try:
        list(json_array.frames(path, chunk_rows, False))
    except json_array.Unsupported:
        return False
    return True


# --- generated documents ---------------------------------------------------------------------------------------

KEYS = ["id", "type", "lat", "a.b", "a", "x y", "名称", "Type", "status", "é"]


def _number(rng: random.Random) -> str:
    return rng.choice([
        str(rng.randint(-10**6, 10**6)), "-0", "0", str(rng.randint(10**18, 10**25)),
        repr(rng.uniform(-1e3, 1e3)), f"{rng.uniform(0, 10):.2f}0", f"{rng.randint(1, 9)}E{rng.randint(-9, 25)}",
        repr(rng.random() * 10 ** rng.randint(-12, 30)), "1e400", "NaN", "-Infinity", "2.50", "100.0"])


def _string(rng: random.Random) -> str:
    text = rng.choice(["plain", "", "{not an object}", "[1]", "tab\there", 'say "hi"', "back\\slash", "行政审批",
                       "\u2028", "😀", "5", "true", "null", "a\x01b", "/path"])
    return json.dumps(text, ensure_ascii=rng.random() < 0.5)


def _value(rng: random.Random, depth: int) -> str:
    kind = rng.random()
    if kind < 0.35:
        return _string(rng)
    if kind < 0.6:
        return _number(rng)
    if kind < 0.7:
        return rng.choice(["true", "false", "null"])
    if kind < 0.8 and depth < 3:
        return "[" + ",".join(_value(rng, depth + 1) for _ in range(rng.randint(0, 3))) + "]"
    if depth < 3:
        return _object(rng, depth + 1)
    return _string(rng)


def _object(rng: random.Random, depth: int, keys=None) -> str:
    keys = keys or rng.sample(KEYS, rng.randint(0, 4))
    return "{" + ",".join(f"{json.dumps(k)}:{_value(rng, depth)}" for k in keys) + "}"


def _document(rng: random.Random, records: int) -> str:
    if rng.random() < 0.5:      # the usual export: every record has the same keys in the same order
        keys = rng.sample(KEYS, rng.randint(1, 5))
        inner = rng.sample(KEYS, rng.randint(1, 4))     # and often an object of attributes, the same in each
        shared = rng.random() < 0.7
        return "[\n" + ",\n".join(_shared_shape(rng, keys, inner if shared else None) for _ in range(records)) \
            + "\n]"
    return "[" + ",".join(_object(rng, 0) for _ in range(records)) + "]"


def _shared_shape(rng: random.Random, keys: list[str], inner: list[str] | None) -> str:
    first = _object(rng, 1, inner) if inner and rng.random() < 0.9 else _value(rng, 0)
    rest = [f"{json.dumps(k)}:{_value(rng, 0)}" for k in keys[1:]]
    return "{" + ",".join([f"{json.dumps(keys[0])}:{first}"] + rest) + "}"


def test_duckdb_and_python_give_the_same_frames_for_generated_documents(tmp_path):
    rng = random.Random(20261127)
    path = tmp_path / "requests.json"
    read_by_duckdb = 0
    for _ in range(200):
        path.write_text(_document(rng, rng.randint(1, 12)), encoding="utf-8")
        chunk_rows = rng.choice([1, 3, 50])
        assert_same_frames(read_frames(path, chunk_rows), python_frames(path, chunk_rows))
        read_by_duckdb += duckdb_reads_it_all(path, chunk_rows)
    # Most documents must go through DuckDB, or the comparison above would only compare Python with itself.
    assert read_by_duckdb > 130


def test_json_lines_are_read_by_duckdb_as_python_reads_them(tmp_path):
    rng = random.Random(112)
    path = tmp_path / "requests.jsonl"
    read_by_duckdb = 0
    for _ in range(120):
        keys, inner = rng.sample(KEYS, rng.randint(1, 4)), rng.sample(KEYS, 2)
        lines = [_shared_shape(rng, keys, inner) if rng.random() < 0.8 else _object(rng, 0)
                 for _ in range(rng.randint(1, 12))]
        for _ in range(rng.choice([0, 0, 1, 2])):        # blank lines, and lines that are not one JSON object
            lines.insert(rng.randrange(len(lines) + 1), rng.choice(["", "  ", '{"a":', "5", "null", "[1]", "{} {}"]))
        path.write_text("\n".join(lines) + rng.choice(["", "\n"]), encoding="utf-8")
        chunk_rows = rng.choice([1, 3, 50])
        expected = list(extract._records_frames(extract._json_lines(path, LINES, extract.Position(0)), chunk_rows,
                                                extract.Position(0), offset=1))
        assert_same_frames(list(extract.read(path, LINES, chunk_rows)), expected)
        try:
            list(json_array.frames(path, chunk_rows, False, lines=True))
            read_by_duckdb += 1
        except json_array.Unsupported:
            pass
    assert read_by_duckdb > 60


def test_json_lines_come_in_chunks_of_chunk_rows(tmp_path):
    """DuckDB's threads read a JSON Lines file in parts of their own size (about 16 MB); frames are still the
    chunks the Python reader gives, each line in its place."""
    path = tmp_path / "requests.jsonl"
    lines = 110_000                                     # 400 bytes each: 20 MB a chunk, 44 MB in all
    with path.open("w") as out:
        for i in range(lines):
            out.write(f'{{"id":"R{i}","text":"{"x" * (350 + i % 50)}"}}\n')
    got = read_frames_of(path, LINES, 50_000)
    assert [len(f) for f in got] == [50_000] * 2 + [10_000]
    everything = pd.concat(got, ignore_index=True)
    assert everything["_line"].tolist() == list(range(1, lines + 1))
    assert (everything["id"] == "R" + (everything["_line"] - 1).astype(str)).all()
    assert everything["text"].str.len().tolist() == [350 + i % 50 for i in range(lines)]


@pytest.mark.parametrize("document", [
    '[{"a": 1,}]',                              # a trailing comma DuckDB's parser would take
    '[{"a": {"b": [1, 2,]}}]',
    '[{"a": 1}, {"a": inf}]',                   # a constant Python does not know
    '[{"a": [nan]}]',
    '[{"a": 1}\n,\n{"b": 2},\n]',
    # each of these failed with a traceback (DuckDB's error through Arrow's reader, Python's recursion limit), or
    # read the first array alone
    '[{"a": 1}, {"a": 2}, {"a": 3',
    '[{"a": 1}, {"a": 2}] [{"a": 3}]',
    '[{"a": 1}] x',
    '[{"a": ' + "[" * 5000 + "]" * 5000 + '}]',
    '[{"a": ' + '{"b": ' * 5000 + "1" + "}" * 5000 + '}]',
])
def test_what_python_refuses_is_refused_whichever_reader_starts(tmp_path, document):
    path = tmp_path / "requests.json"
    path.write_text(document)
    with pytest.raises(FeedError) as expected:
        python_frames(path, 10)
    with pytest.raises(FeedError) as got:
        read_frames(path, 10)
    assert str(got.value) == str(expected.value)
    assert "not valid JSON at line" in str(got.value)


@pytest.mark.parametrize("document", [
    '[{"a": 1}, null, 5, "x", [1], {"b": 2}]',   # records that are not objects
    '[{"a": 1, "a": 2}]',                         # a key twice: Python keeps the last
    '[{"a": {"b": 1, "b": 2}}]',
    '[{"a.b": 1, "a": {"b": 2}}]',                # a flattened name twice: the object's value wins
    '[{"A": 1, "a": 2}, {"": 3}]',                # names DuckDB cannot take as columns
])
def test_records_duckdb_leaves_to_python_read_as_python_reads_them(tmp_path, document):
    path = tmp_path / "requests.json"
    path.write_text(document)
    assert_same_frames(read_frames(path, 2), python_frames(path, 2))


def test_python_goes_on_from_the_record_where_duckdb_stopped(tmp_path):
    records = [{"id": i, "tags": {"b": i}} for i in range(6)]
    path = tmp_path / "requests.json"
    path.write_text(json.dumps(records)[:-1] + ', {"id": 6, "tags": {"b": 1, "b": 2}}]')   # a key twice, nested
    with pytest.raises(json_array.Unsupported) as stopped:
        list(json_array.frames(path, 2, False))
    assert stopped.value.done == 6
    got = read_frames(path, 2)
    assert_same_frames(got, python_frames(path, 2))
    assert got[-1]["tags.b"].tolist() == ["2"]


def test_a_record_with_other_keys_switches_duckdb_to_maps_from_its_chunk(tmp_path):
    """Records are read at the first record's keys while each has exactly those; a later one with a key more (an
    export that gained a field) or one less is read with every key it has, from its chunk on."""
    records = [{"id": f"R{i}", "state": "open", "attrs": {"n": i}} for i in range(10)]
    records[7]["added"] = "late field"
    del records[8]["state"]
    path = tmp_path / "requests.json"
    path.write_text(json.dumps(records))
    assert duckdb_reads_it_all(path, 3)
    got = read_frames(path, 3)
    assert_same_frames(got, python_frames(path, 3))
    assert "added" not in got[1] and got[2]["added"].tolist() == [pd.NA, "late field", pd.NA]


def test_a_number_keeps_its_text_whatever_its_neighbours(tmp_path):
    """pandas wrote 5 as "5.0" in a chunk where another record had no value there: a key read from such a field
    changed with the chunk it fell in."""
    path = tmp_path / "requests.json"
    path.write_text('[{"id": 5, "ok": true, "tags": [1, "a"]}, {"ok": null}, {"id": 12345678901234567890123}]')
    for frames in (read_frames(path, 10), python_frames(path, 10)):
        assert frames[0]["id"].tolist() == ["5", pd.NA, "12345678901234567890123"]
        assert frames[0]["ok"].tolist() == ["true", pd.NA, pd.NA]
        assert frames[0]["tags"].tolist() == ['[1,"a"]', pd.NA, pd.NA]


@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_damaged_gzip_file_is_the_python_readers_error_with_nothing_on_stderr(tmp_path, capfd):
    path = tmp_path / "requests.json"
    whole = gzip.compress(json.dumps([{"id": i, "text": "x" * 100} for i in range(5000)]).encode())
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(FeedError) as failed:
        read_frames(path, 1000)
    assert "cannot be read as utf-8 JSON" in str(failed.value)
    assert capfd.readouterr().err == ""          # the scan thread's read error is not printed (nor raised)


def test_number_texts_are_the_texts_duckdb_writes(tmp_path):
    rng = random.Random(7)
    literals = [repr(rng.random() * 10 ** rng.randint(-30, 30) * rng.choice([1, -1])) for _ in range(3000)]
    literals += ["1e15", "1e16", "1e20", "1e21", "1e-6", "1e-7", "0.00001", "-0.0", "-0", "1E2", "2.50", "1e400",
                 "5e-324", "123456789012345678901234567890", "NaN", "Infinity", "-Infinity"]
    path = tmp_path / "numbers.json"
    path.write_text("[" + ",".join(f'{{"n": {x}}}' for x in literals) + "]")
    written = duckdb.sql(f"SELECT json FROM read_json('{path}', format='array', records=false, "
                         "columns={'json': 'MAP(VARCHAR, JSON)'})").fetchall()
    assert [m["n"] for (m,) in written] == [jsontext.text(jsontext.loads(x)) for x in literals]


def test_gzip_and_a_byte_order_mark_are_read_by_duckdb_with_progress(tmp_path):
    records = [{"id": f"R{i}", "lat": 30 + i / 1000, "attrs": {"state": "open", "n": i}} for i in range(3000)]
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps(records, separators=(",", ":")))
    for path, data, compressed in ((tmp_path / "bom.json", b"\xef\xbb\xbf" + plain.read_bytes(), False),
                                   (tmp_path / "export.json", gzip.compress(plain.read_bytes()), True)):
        path.write_bytes(data)
        assert len(list(json_array.frames(path, 1000, compressed))) == 3
        position = extract.Position(path.stat().st_size)
        shares, frames = [], []
        for frame in extract.read(path, SOURCE, 1000, position):
            shares.append(position.done / position.size)
            frames.append(frame)
        assert_same_frames(frames, python_frames(plain, 1000))
        assert 0.25 < shares[0] < 0.4 and 0.6 < shares[1] < 0.75 and position.done == position.size


def test_objects_nested_hundreds_deep_read_alike_and_a_deeper_line_is_refused_alone(tmp_path):
    """DuckDB's reader flattens a level per call: past Python's recursion limit it leaves the file to the Python
    reader, which reads the same. A JSON Lines record too deep for Python's parser is refused with its reason, and
    the lines after it read on."""
    path = tmp_path / "requests.json"
    path.write_text('[{"id": 1, "a": ' + '{"b": ' * 400 + "1" + "}" * 400 + '}, {"id": 2}]')
    frame = pd.concat(read_frames(path, 10))
    assert_same_frames([frame], python_frames(path, 10))
    assert frame["a" + ".b" * 400].tolist() == ["1", pd.NA] and frame["_error"].isna().all()
    lines = tmp_path / "requests.jsonl"
    lines.write_text('{"id": 1}\n{"id": 2, "a": ' + "[" * 5000 + "]" * 5000 + '}\n{"id": 3}\n')
    frame = pd.concat(read_frames_of(lines, LINES, 10))
    assert frame["id"].tolist() == ["1", pd.NA, "3"] and frame["_line"].tolist() == [1, 2, 3]
    assert frame["_error"].tolist()[1] == "not readable JSON: nested too deeply (about a thousand levels)"
