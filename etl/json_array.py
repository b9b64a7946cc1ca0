"""JSON feed files that are one array of records, or JSON Lines, read by DuckDB: the frames the Python reader gives,
4-7 times faster (the 10M city's 2M Open311 requests: 8.3 s against 54 s in Python, which holds the GIL).

One query reads each record's values at the first record's keys (JSON paths: one parse per record) and checks that
the record has exactly those keys, so nothing rests on a sample of the file. From the chunk of a record that has
other keys on, records are read as MAP(VARCHAR, JSON), every key they have. Frames are built in Arrow: strings
unquoted, objects flattened into "a.b" fields as extract._flat does, other values kept as DuckDB writes them,
which is the text etl/jsontext.py defines.

The Python reader stays the definition. Input it would read differently raises Unsupported with the number of
records already given, and extract goes on from there in Python: DuckDB's parser accepts "inf" and commas before
a closing bracket (Python refuses the document), and a record naming one field twice is left to Python's rule.
Each chunk is checked before it is given, so the frames given so far are exact.
"""
import gzip
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from etl import jsontext

_SOURCE = "read_json($path, format=$format, compression=$compression, {})"
_RECORDS = _SOURCE.format("records=false, columns={'json': 'JSON'}")
_FIRST_KEYS = f"SELECT json_keys(json) FROM {_RECORDS} LIMIT 1"
# Each record's values at the first record's keys, and whether it has exactly those keys (then nothing is left out).
_PATHS = ("FROM (SELECT json_keys(json) IS NOT DISTINCT FROM $keys AS same, "
          f"json_extract(json, $paths) AS e FROM {_RECORDS})")
_MAPS = ("SELECT json FROM " + _SOURCE.format("records=false, columns={'json': 'MAP(VARCHAR, JSON)'}")
         + " OFFSET $skip")
_FIRST_OBJECT_KEYS = "SELECT json_keys(v) FROM objects LIMIT 1"
_OTHER_OBJECT_KEYS = "SELECT 1 FROM objects WHERE json_keys(v) IS DISTINCT FROM $keys LIMIT 1"
_OBJECT = "CAST(v::JSON AS MAP(VARCHAR, JSON))"
# A value that is neither a string, an object nor a list must be a JSON number or constant as Python reads them.
_SCALAR = r"^(-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?|true|false|null|NaN|-?Infinity)$"
_QUOTE = pa.scalar(b'"')
SCAN_BYTES = 64 << 20
_TRAILING_COMMA = r",[ \t\r\n]*[}\]]"
_NOT_OBJECT = "record is not a JSON object"


class Unsupported(Exception):
    """This file, from record `done` on, is for the Python reader."""

    def __init__(self, done: int, reason: str):
        super().__init__(reason)
        self.done = done


def frames(path: Path, chunk_rows: int, compressed: bool, reached=None, lines: bool = False) -> Iterator[pd.DataFrame]:
    """Frames of chunk_rows records, `_line` the record's index in the array (JSON Lines, `lines`: its number among
    the non-blank lines, from 1), `_error` set for a record that is not an object; raises Unsupported where the
    Python reader must go on. `reached(size)` is told, before each frame, how many bytes the records read so far
    take as compact JSON (DuckDB does not say how far it has read), and None before the last."""
    reached = reached or (lambda size: None)
    con = duckdb.connect()
    scan = _Scan(path, compressed)
    file = {"path": str(path), "compression": "gzip" if compressed else "none",
            "format": "newline_delimited" if lines else "array"}
    first_line = 1 if lines else 0
    size = done = 0
    try:
        parts = _batches(con, file, chunk_rows)
        part = next(parts, None)
        while part is not None:
            following = next(parts, None)     # read ahead, so that the last frame reports the whole file read
            # Python stops at such a comma; from `done` on it parses the records before it too, to skip them.
            if scan.found(wait=following is None):
                raise Unsupported(done, "a comma before a closing bracket (or a text like one)")
            build, batch, batch_size = part
            frame = build(batch, done, first_line)
            size += batch_size
            reached(size if following is not None else None)
            yield frame
            done += len(frame)
            part = following
    except (duckdb.Error, OSError) as exc:     # through Arrow's batch reader, DuckDB's errors come as OSError
        raise Unsupported(done, str(exc).splitlines()[0]) from None
    except RecursionError:                     # nested objects are read a level per call
        raise Unsupported(done, "objects nested too deeply") from None
    finally:
        scan.stop()
        con.close()


def _batches(con, file: dict, chunk_rows: int) -> Iterator[tuple]:
    """(frame builder, batch, its size as compact JSON) in file order: the records' values at the first record's
    keys (JSON paths, parsed once) for as long as each record has exactly those keys, the usual export; from the
    batch of the first that does not, each record as a map of all its keys (the 10M city's Open311 file: 25 s
    as maps against 8 s)."""
    objects = con.cursor()          # nested objects are parsed while the file's result is open
    skip = 0
    first = con.sql(_FIRST_KEYS, params=file).fetchall()
    keys = first[0][0] if first else None
    if keys and len(set(keys)) == len(keys):
        def build(batch, start, first_line): return _frame_of_columns(objects, batch, keys, start, first_line)
        per_record = sum(len(key.encode()) + 4 for key in keys) + 2
        query = f"SELECT same, {', '.join(f'e[{i + 1}]' for i in range(len(keys)))} {_PATHS}"
        params = {**file, "keys": keys, "paths": [_pointer(key) for key in keys]}
        for batch in _rebatched(con.sql(query, params=params).to_arrow_reader(chunk_rows), chunk_rows):
            if not pc.all(batch.column(0)).as_py():
                break           # maps from this batch's first record on: frames stay chunk_rows long
            yield build, batch, sum(_bytes(c) for c in batch.columns[1:]) + per_record * len(batch)
            skip += len(batch)
        else:
            return
    def build_maps(batch, start, first_line): return _frame_of_maps(objects, batch.column(0), start, first_line)
    maps_reader = con.cursor().sql(_MAPS, params={**file, "skip": skip}).to_arrow_reader(chunk_rows)
    for batch in _rebatched(maps_reader, chunk_rows):
        maps = batch.column(0)
        yield build_maps, batch, _bytes(maps.keys) + _bytes(maps.items) + 4 * len(maps.keys) + 2 * len(maps)


def _rebatched(reader: pa.RecordBatchReader, rows: int) -> Iterator[pa.RecordBatch]:
    """Batches of exactly `rows` (the last may be shorter): DuckDB's reader of JSON lines gives the parts its
    threads read, and frames must be the chunks the Python reader would give."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in reader:
        pending.append(batch)
        count += len(batch)
        while count >= rows:
            table = pa.Table.from_batches(pending, reader.schema)
            yield table.slice(0, rows).combine_chunks().to_batches()[0]
            pending, count = table.slice(rows).to_batches(), count - rows
    if count:
        yield pa.Table.from_batches(pending, reader.schema).combine_chunks().to_batches()[0]


def _pointer(key: str) -> str:
    """The JSON pointer (RFC 6901) of a key: DuckDB's paths take them exactly, whatever the key holds."""
    return "/" + key.replace("~", "~0").replace("/", "~1")


def _shared_keys(con) -> list[str] | None:
    """The keys every object in the view `objects` has, in order, when all have the same keys (none twice)."""
    first = con.sql(_FIRST_OBJECT_KEYS).fetchall()
    keys = first[0][0] if first else None
    if not keys or len(set(keys)) != len(keys):
        return None
    return None if con.sql(_OTHER_OBJECT_KEYS, params={"keys": keys}).fetchall() else keys


class _Scan:
    """Whether the document may hold a comma before a closing bracket (or, rarely, a text that looks like one),
    found by a thread: DuckDB's parser reads past such a comma in an object where Python's stops with an error.
    RE2 in Arrow, by blocks: 1.4 s for 1.35 GB against 2.4 s for Python's `re`, and without holding the GIL."""

    def __init__(self, path: Path, compressed: bool):
        self._found: list[bool] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(path, compressed), name="etl-json-scan", daemon=True)
        self._thread.start()

    def found(self, wait: bool) -> bool:
        """True once a comma has been found; with `wait`, the scan's answer (True when the file could not be read:
        the Python reader reports that)."""
        if wait:
            self._thread.join()
        return self._found[0] if self._found else wait

    def stop(self) -> None:
        """End the scan at its next block (the reader was closed early) and wait for it."""
        self._stop.set()
        self._thread.join()

    def _run(self, path: Path, compressed: bool) -> None:
        try:
            with (gzip.open if compressed else open)(path, "rb") as fh:
                block = fh.read(SCAN_BYTES)
                while block and not self._stop.is_set():
                    following = fh.read(SCAN_BYTES)
                    # the whitespace between a comma and its bracket may run into the next block
                    if pc.match_substring_regex(pa.array([block + following[:4096]], pa.binary()),
                                                _TRAILING_COMMA)[0].as_py():
                        self._found.append(True)
                        return
                    block = following
            self._found.append(False)
        except (OSError, EOFError, zlib.error):      # gzip.BadGzipFile is an OSError
            pass                # no answer: found() says True, and the Python reader reports the file


def _bytes(texts: pa.Array) -> int:
    return pc.sum(pc.binary_length(texts)).as_py() or 0


def _frame_of_maps(con, maps: pa.MapArray, start: int, first_line: int) -> pd.DataFrame:
    fields: dict[str, list] = {}
    _collect(con, maps, np.arange(len(maps)), [], "", fields, start)
    errors = np.where(maps.is_null().to_numpy(zero_copy_only=False), _NOT_OBJECT, None).tolist()
    return _assembled_frame(fields, len(maps), start, first_line, errors)


def _frame_of_columns(con, batch: pa.RecordBatch, keys: list[str], start: int, first_line: int) -> pd.DataFrame:
    fields: dict[str, list] = {}
    n = batch.num_rows
    rows = np.arange(n)
    for place, key in enumerate(keys):
        _add(con, key, batch.column(place + 1), rows, [np.full(n, place)], True, fields, start)
    return _assembled_frame(fields, n, start, first_line, None)


def _assembled_frame(fields: dict, n: int, start: int, first_line: int, errors) -> pd.DataFrame:
    ordered = sorted(fields.items(), key=lambda item: min(first for first, _, _ in item[1]))
    columns = {name: _assembled(parts, n, name, start) for name, parts in ordered}
    frame = pa.table(columns).to_pandas(types_mapper={pa.string(): pd.StringDtype()}.get) if columns \
        else pd.DataFrame(index=range(n))
    frame["_line"] = range(first_line + start, first_line + start + n)
    frame["_error"] = errors
    return frame


def _collect(con, maps, rows, ranks, prefix, fields, start) -> None:
    """Add the fields of `maps` (element i is frame row rows[i]) to `fields`: name -> [(order, rows, texts)].
    A field's order is (first row, place in that record), the order pandas gives a list of flat records. At the top
    a record's own fields come before those of its objects (extract._flat); inside an object, depth first."""
    offsets = maps.offsets.to_numpy()
    lengths = np.diff(offsets)
    parent = np.repeat(np.arange(len(maps)), lengths)
    place = np.arange(len(parent)) - np.repeat(offsets[:-1] - offsets[0], lengths)
    keys = maps.keys.slice(offsets[0], len(parent)).dictionary_encode()
    values = maps.items.slice(offsets[0], len(parent))
    top = not ranks
    codes = keys.indices.to_numpy()
    by_key = np.argsort(codes, kind="stable")
    ends = np.cumsum(np.bincount(codes, minlength=len(keys.dictionary)))
    for code, key in enumerate(keys.dictionary.to_pylist()):
        chosen = by_key[ends[code - 1] if code else 0:ends[code]]
        owner = parent[chosen]
        _add(con, f"{prefix}.{key}" if prefix else key, pc.take(values, pa.array(chosen)), rows[owner],
             [r[owner] for r in ranks] + [place[chosen]], top, fields, start)


def _add(con, name, values, rows, ranks, top, fields, start) -> None:
    """Add one key's values (values[i] belongs to frame row rows[i], at place `ranks` in its record) to `fields`:
    a scalar or list as the field `name`, an object's fields under it."""
    nested = pc.fill_null(pc.starts_with(values, "{"), False).to_numpy(zero_copy_only=False)
    if nested.any():
        inner = pc.filter(values, pa.array(nested))
        child_ranks = ([np.ones(nested.sum(), dtype=np.int64)] if top else []) + [r[nested] for r in ranks]
        _add_objects(con, name, inner, rows[nested], child_ranks, fields, start)
    own = ~nested
    if own.any():
        first = np.flatnonzero(own)[0]
        order = (int(rows[first]),) + ((0,) if top else ()) + tuple(int(r[first]) for r in ranks)
        texts = _texts(values if own.all() else pc.filter(values, pa.array(own)), start, name)
        fields.setdefault(name, []).append((order, rows[own], texts))


def _add_objects(con, name, objects, rows, ranks, fields, start) -> None:
    """The fields of one key's objects. When they all have the same keys in the same order (an export's nested
    attributes), each key is one JSON path: three times faster than reading them as maps."""
    con.register("objects", pa.table({"v": objects}))
    try:                        # the view is gone before the recursion below registers its own
        keys = _shared_keys(con)
        if keys is None:
            maps = con.sql(f"SELECT {_OBJECT} FROM objects").to_arrow_table().column(0).combine_chunks()
        else:
            picks = ", ".join(f"e[{i + 1}]" for i in range(len(keys)))
            table = con.sql(f"SELECT {picks} FROM (SELECT json_extract(v, $paths) AS e FROM objects)",
                            params={"paths": [_pointer(key) for key in keys]}).to_arrow_table()
    finally:
        con.unregister("objects")
    if keys is None:
        _collect(con, maps, rows, ranks, name, fields, start)
        return
    for place, key in enumerate(keys):
        _add(con, f"{name}.{key}" if name else key, table.column(place).combine_chunks(), rows,
             ranks + [np.full(len(rows), place)], False, fields, start)


def _texts(values: pa.Array, start: int, name: str) -> pa.Array:
    """JSON texts as the frame's texts: strings unquoted, null missing, numbers, constants and lists checked.
    Byte slices, not character slices: the quotes are one byte each, and the rest stays valid UTF-8."""
    data = values.view(pa.binary())
    strings = pc.fill_null(pc.equal(pc.binary_slice(data, 0, 1), _QUOTE), False)
    out = pc.if_else(strings, pc.binary_slice(data, 1, -1), data).view(pa.string())
    escaped = pc.fill_null(pc.and_(strings, pc.match_substring(data, "\\")), False)
    if pc.any(escaped).as_py():
        decoded = [jsontext.loads(v) for v in pc.filter(values, escaped).to_pylist()]
        out = pc.replace_with_mask(out, escaped, pa.array(decoded, pa.string()))
    if pc.sum(strings).as_py() == len(values) - values.null_count:
        return out
    others = pc.filter(values, pc.invert(strings))
    if pc.any(pc.equal(others, "null")).as_py():       # a nested object's null, as JSON paths give it
        out = pc.if_else(pc.equal(values, "null"), pa.scalar(None, pa.string()), out)
    for text in pc.filter(others, pc.fill_null(pc.starts_with(others, "["), False)).to_pylist():
        if _python_text(text) != text:
            raise Unsupported(start, f"field '{name}': a list DuckDB writes as {text[:80]}")
    scalars = pc.drop_null(pc.filter(others, pc.invert(pc.starts_with(others, "["))))
    odd = pc.invert(pc.match_substring_regex(scalars, _SCALAR))
    if pc.any(odd).as_py():
        raise Unsupported(start, f"field '{name}': value {pc.filter(scalars, odd)[0]} is not JSON")
    return out


def _python_text(text: str) -> str | None:
    try:
        return jsontext.text(jsontext.loads(text))
    except (ValueError, RecursionError):   # a constant Python's parser does not take (nan, inf), or too deep
        return None


def _assembled(parts: list, n: int, name: str, start: int) -> pa.Array:
    """One field's texts for all n rows, from the parts that give it (null where no part does)."""
    if len(parts) == 1 and len(parts[0][1]) == n:
        return parts[0][2]
    rows = np.concatenate([r for _, r, _ in parts])
    if len(np.unique(rows)) != len(rows):
        raise Unsupported(start, f"a record gives field '{name}' twice")
    texts = pa.concat_arrays([t for _, _, t in parts])
    where = np.full(n, -1, dtype=np.int64)
    where[rows] = np.arange(len(rows))
    return pc.take(texts, pa.array(where, mask=where < 0))
