"""Reading feed files into frames of source text, chunk by chunk, each row carrying where it came from.

Every row gets `_line` (CSV: 1-based physical line, header = 1; JSON: 0-based array index) and `_error`
(a reason when the row itself could not be read: wrong field count, undecodable bytes). Rows are never dropped here.
Text files (CSV, JSON, JSON lines, GeoJSON) may be gzip-compressed, whatever their name: the first bytes tell.
A `Position` passed to `read` follows how far the reader has got, in bytes of the file as stored (for progress).
"""
import codecs
import csv
import gzip
import io
import json
import re
import sys
import zlib
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from core.errors import FeedError
from etl import json_array, jsonstream, jsontext

CHUNK_BYTES = 64 << 20
GZIP_MAGIC = b"\x1f\x8b"
# The csv module refuses a field past 128 KiB with an error that failed the whole load; a field is bounded by its
# block anyway (pyarrow takes any size).
csv.field_size_limit(max(csv.field_size_limit(), 2 * CHUNK_BYTES))


class Position:
    """How far a reader has got through a file: `done` of `size` bytes as stored (compressed bytes for gzip).
    CSV: the bytes read so far, interpolated within a block; JSON family: the bytes the decoder has taken;
    Excel: the share of records yielded."""

    def __init__(self, size: int):
        self.size = size
        self.done = 0

    def share(self, fraction: float) -> None:
        self.done = int(self.size * min(1.0, fraction))


def open_binary(path: Path):
    """The file's bytes, decompressed when it is gzip (a city's exports often are)."""
    with open(path, "rb") as fh:
        magic = fh.read(2)
    return gzip.open(path, "rb") if magic == GZIP_MAGIC else open(path, "rb")


def read(path: Path, source, chunk_rows: int, position: Position | None = None) -> Iterator[pd.DataFrame]:
    readers = {"csv": _csv, "json": _json, "jsonl": _jsonl, "geojson": _geojson, "excel": _excel}
    yield from readers[source.format](path, source, chunk_rows, position or Position(0))


# --- CSV --------------------------------------------------------------------------------------------------

def _decode(data: bytes, first_line: int, source) -> tuple[str, dict[int, str]]:
    """Decode a block of whole lines; lines invalid in the feed's encoding fall back line by line. The block is
    decoded once with undecodable bytes escaped; only the lines holding escapes are decoded again (a line-by-line
    decode of every block that holds one GBK line cost 5 s of a 1M-incident load)."""
    try:
        text = data.decode(source.encoding, errors="surrogateescape")
    except UnicodeError:                 # a codec without escapes
        return _decode_by_line(data, first_line, source)
    parts, bad, done, line = [], {}, 0, first_line
    for match in ESCAPED.finditer(text):
        if match.start() < done:         # on a line already handled
            continue
        start = text.rfind("\n", 0, match.start()) + 1
        end = text.find("\n", match.start())
        end = len(text) if end < 0 else end
        line += text.count("\n", done, start)
        parts.append(text[done:start])
        parts.append(_fallback(text[start:end].encode(source.encoding, "surrogateescape"), line, source, bad))
        done = end
    parts.append(text[done:])
    return "".join(parts), bad


ESCAPED = re.compile("[\udc80-\udcff]")   # how errors="surrogateescape" keeps bytes it could not decode


def _decode_by_line(data: bytes, first_line: int, source) -> tuple[str, dict[int, str]]:
    lines, bad = [], {}
    for offset, raw in enumerate(data.split(b"\n")):
        try:
            lines.append(raw.decode(source.encoding))
        except UnicodeDecodeError:
            lines.append(_fallback(raw, first_line + offset, source, bad))
    return "\n".join(lines), bad


def _fallback(raw: bytes, line: int, source, bad: dict[int, str]) -> str:
    """A line invalid in the feed's encoding: in the fallback encoding, else with replacement characters and a
    reason for quarantine."""
    if source.fallback_encoding:
        try:
            return raw.decode(source.fallback_encoding)
        except UnicodeDecodeError:
            pass
    bad[line] = f"bytes not valid {source.encoding}" + (
        f" nor {source.fallback_encoding}" if source.fallback_encoding else "")
    return raw.decode(source.encoding, errors="replace")


def _stored_offset(fh) -> int:
    """Bytes of the file as stored that a reader has consumed (the compressed stream's offset for gzip)."""
    return (getattr(fh, "fileobj", None) or fh).tell()


def _blocks(path: Path) -> Iterator[tuple[bytearray, int, int, int, int]]:
    """Blocks of whole records (never splitting a quoted field), with the line number each starts on, the
    stored-byte offsets read before and after it, and its newlines (counted once: 40 ms per 64 MB block).
    Each block is read into its own buffer after the partial line carried from the one before, and cut in place:
    joining the carry to each read and slicing the block from that copied 128 MB per 64 MB block (5.3 s against
    2.2 s to cut the 10M demo hotline's 2.3 GB)."""
    line = 1
    carry = b""
    before = 0
    with open_binary(path) as fh:
        while True:
            block = bytearray(len(carry) + CHUNK_BYTES)
            block[:len(carry)] = carry
            view = memoryview(block)
            try:
                read = fh.readinto(view[len(carry):])
            except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
                raise FeedError(f"{path}: damaged gzip file ({exc}); expected a complete gzip stream") from None
            finally:
                view.release()
            after = _stored_offset(fh)
            end = len(carry) + read
            del block[end:]
            if not read:
                if block:
                    yield block, line, before, after, block.count(b"\n")
                return
            cut = _safe_cut(block)
            if cut <= 0:
                carry = bytes(block)
                continue
            newlines = block.count(b"\n", 0, cut)
            carry = bytes(block[cut:])
            del block[cut:]
            yield block, line, before, after, newlines
            before = after
            line += newlines


def _safe_cut(block: bytes | bytearray) -> int:
    """Offset just after the last newline outside quotes (quote parity from the block start)."""
    end = block.rfind(b"\n")
    if b'"' not in block:          # most exports quote nothing: skip counting quotes over 64 MB
        return end + 1 if end >= 0 else -1
    while end >= 0:
        if block.count(b'"', 0, end) % 2 == 0:
            return end + 1
        end = block.rfind(b"\n", 0, end)
    return -1


def _csv(path: Path, source, chunk_rows: int, position: Position) -> Iterator[pd.DataFrame]:
    header = None
    utf8 = codecs.lookup(source.encoding).name in ("utf-8", "utf-8-sig")   # a BOM is only in the header
    for block, first_line, before, after, newlines in _blocks(path):
        if header is None:
            head, newline, block = block.partition(b"\n")
            header = _header(head, first_line, source, path)
            first_line += 1
            newlines -= bool(newline)
        if not block or block.isspace():      # not block.strip(): that copies the block
            position.done = after
            continue
        lines = newlines + (not block.endswith(b"\n"))

        def reached(lines_done, before=before, after=after, total=lines):
            position.done = before + int((after - before) * min(1.0, lines_done / total))
        # A UTF-8 feed's block goes to pyarrow as it is (pyarrow checks the encoding); a block with bad bytes gets
        # those lines alone replaced, in bytes. Other encodings are decoded in Python, and rows pyarrow cannot
        # number go to the csv module.
        table = _arrow_table(block, header, source, lines) if utf8 else None
        bad_lines: dict[int, str] = {}
        if table is None:
            data, bad_lines = (_utf8_repaired if utf8 else _utf8_of)(block, first_line, source)
            table = _arrow_table(data, header, source, lines)
            if table is None:
                yield from _parse_rows(data.decode("utf-8"), header, first_line, bad_lines, source, chunk_rows,
                                       reached)
                continue
        for start in range(0, table.num_rows, chunk_rows):
            yield _arrow_frame(table, start, chunk_rows, header, first_line, bad_lines, reached)


def _utf8_of(block: bytes, first_line: int, source) -> tuple[bytes, dict[int, str]]:
    text, bad_lines = _decode(block, first_line, source)
    return text.encode("utf-8"), bad_lines


def _utf8_repaired(data: bytes, first_line: int, source) -> tuple[bytes, dict[int, str]]:
    """A UTF-8 block with each line that is not UTF-8 replaced by its text in the fallback encoding (else with
    replacement characters and a reason in the returned {line: reason}), the same text `_decode` gives. Only bad
    lines are decoded in Python; the rest stays bytes (decoding the whole block, scanning it for escapes and
    encoding it again took 2 s of the 1M demo hotline, whose every block holds a GBK line)."""
    view, parts, bad, start, line = memoryview(data), [], {}, 0, first_line
    at, size = 0, len(data)
    while at < size:
        end = min(at + UTF8_WINDOW, size)
        try:                             # not final before the end: a character may straddle the window's end
            at += codecs.utf_8_decode(view[at:end], "strict", end == size)[1]
            continue
        except UnicodeDecodeError as exc:
            bad_byte = at + exc.start
        line_start = data.rfind(b"\n", 0, bad_byte) + 1
        line_end = data.find(b"\n", bad_byte)
        line_end = size if line_end < 0 else line_end
        line += data.count(b"\n", start, line_start)
        parts += [view[start:line_start], _fallback(data[line_start:line_end], line, source, bad).encode("utf-8")]
        start = at = line_end
    if not parts:
        return data, bad
    parts.append(view[start:])
    return b"".join(parts), bad


UTF8_WINDOW = 1 << 20     # the C decoder sizes its output by its input: checked a window at a time


def _header(head: bytes, line: int, source, path: Path) -> list[str]:
    """The header's field names; a header that cannot name each field once fails the file (mapping by name would
    pick one of two columns, or none)."""
    text = _decode(head, line, source)[0].removeprefix("\ufeff")
    if "\r" in text.rstrip("\r"):
        raise FeedError(f"{path}: lines end with a carriage return alone (classic Mac OS); expected lines ending in "
                        "a line feed (\\n or \\r\\n)")
    try:
        names = [h.strip() for h in next(csv.reader([text], delimiter=source.delimiter))]
    except csv.Error as exc:
        raise FeedError(f"{path}: the header line cannot be read as CSV ({exc}); expected field names separated "
                        f"by {source.delimiter!r} on the first line") from None
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise FeedError(f"{path}: the header names {', '.join(map(repr, twice))} more than once; expected each field "
                        "once")
    return names


def _parse_rows(text, header, first_line, bad_lines, source, chunk_rows, reached=None) -> Iterator[pd.DataFrame]:
    """csv module rows (exact line numbers, tolerant of ragged rows) gathered into frames of chunk_rows;
    `reached(lines)` is told how many of the text's lines are behind each frame."""
    reached = reached or (lambda lines_done: None)
    reader = csv.reader(io.StringIO(text), delimiter=source.delimiter, strict=False)
    width = len(header)
    rows, lines, errors = [], [], []
    start = 0
    for record, unreadable in _records(reader):
        line = first_line + start
        start = reader.line_num
        if not unreadable and (not record or record == [""]):
            continue
        error = unreadable
        if unreadable:
            record = [""] * width
        elif len(record) != width:
            error = f"expected {width} fields, got {len(record)}"
            record = (record + [""] * width)[:width]
        spans = range(line, first_line + reader.line_num)
        bad = next((bad_lines[n] for n in spans if n in bad_lines), None)
        rows.append(record)
        lines.append(line)
        errors.append(error or bad)
        if len(rows) >= chunk_rows:
            reached(reader.line_num)
            yield _frame(rows, header, lines, errors)
            rows, lines, errors = [], [], []
    reached(reader.line_num + 1)
    if rows:
        yield _frame(rows, header, lines, errors)


def _records(reader) -> Iterator[tuple[list[str], str | None]]:
    """The reader's records, and why one cannot be read (a bare carriage return in an unquoted field): such a record
    keeps its line and reason but none of its text, which could hold personal data no field rule would mask. The
    csv module starts afresh on the next line."""
    while True:
        try:
            yield next(reader), None
        except StopIteration:
            return
        except csv.Error as exc:
            yield [], f"unreadable CSV record: {exc}"


def _arrow_table(data: bytes, header, source, lines: int) -> pa.Table | None:
    """pyarrow's parser (about 7x the csv module) for a UTF-8 block whose every physical line is one record, the
    usual case; then a row's line is the block's first line plus its index. None when that does not hold: bytes
    that are not UTF-8, a ragged row, a blank line or a record spanning lines (fewer rows than lines)."""
    width = len(header)
    ragged = _Ragged()
    try:
        table = pa_csv.read_csv(
            pa.py_buffer(data),
            read_options=pa_csv.ReadOptions(column_names=[f"f{i}" for i in range(width)]),
            # Without a quote no value can hold a newline, and pyarrow then splits rows twice as fast.
            parse_options=pa_csv.ParseOptions(delimiter=source.delimiter, newlines_in_values=b'"' in data,
                                              invalid_row_handler=ragged),
            convert_options=pa_csv.ConvertOptions(column_types={f"f{i}": pa.string() for i in range(width)},
                                                  strings_can_be_null=False, quoted_strings_can_be_null=False))
    except pa.ArrowInvalid:
        return None
    return None if ragged or table.num_rows != lines else table


class _Ragged(list):
    """pyarrow's invalid_row_handler: notes each row with the wrong number of fields and skips it."""

    def __call__(self, row) -> str:
        self.append(row)
        return "skip"


def _unraisable(report, passed_on=sys.unraisablehook) -> None:
    """pyarrow decodes a ragged row's text before it calls _Ragged; when the row's bytes are not UTF-8 that fails
    inside pyarrow, which prints 'Exception ignored' and a traceback on stderr, then refuses the block. The block's
    bad lines are then repaired and read again (a broken row keeps its reason in quarantine): that report alone is
    dropped, any other is passed on."""
    if not (isinstance(report.object, _Ragged) and isinstance(report.exc_value, UnicodeDecodeError)):
        passed_on(report)


sys.unraisablehook = _unraisable


def _arrow_frame(table, start, chunk_rows, header, first_line, bad_lines, reached) -> pd.DataFrame:
    part = table.slice(start, chunk_rows)
    frame = part.to_pandas(types_mapper={pa.string(): pd.StringDtype()}.get)
    frame.columns = header
    lines = np.arange(first_line + start, first_line + start + part.num_rows)
    frame["_line"] = lines
    frame["_error"] = [bad_lines.get(line) for line in lines.tolist()] if bad_lines else None
    reached(start + part.num_rows)
    return frame


def _frame(rows, header, lines, errors) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=header, dtype="string")
    frame["_line"] = lines
    frame["_error"] = errors
    return frame


# --- JSON family ------------------------------------------------------------------------------------------
# Streamed record by record (etl/jsonstream.py): memory follows the chunk, not the file.

def _json_records(path: Path, source, records_path: str | None, position: Position) -> Iterator[tuple]:
    """(record, None) for each element of the records array; a damaged document is a FeedError."""
    try:
        with open_binary(path) as binary, _text(binary, source.encoding) as fh:
            for record in jsonstream.records(fh, records_path):
                position.done = min(_stored_offset(binary), position.size)
                yield record, None
    except jsonstream.Syntax as exc:
        raise FeedError(f"{path}: not valid JSON at line {exc.line}, column {exc.column}: {exc.msg}") from None
    except jsonstream.NotFound as exc:
        if exc.args[0] is not None:
            raise FeedError(f"{path}: no '{records_path}' in the document (feed key 'source.records_path')") from None
        raise FeedError(f"{path}: expected a JSON array of records"
                        + (f" at '{records_path}'" if records_path else " (set 'source.records_path')")) from None
    except (UnicodeDecodeError, gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise FeedError(f"{path}: cannot be read as {source.encoding} JSON: {exc}") from None


def _text(binary, encoding: str, errors: str = "strict"):
    """Text of a JSON-family file; a UTF-8 byte-order mark is skipped."""
    if codecs.lookup(encoding).name == "utf-8":
        encoding = "utf-8-sig"
    return io.TextIOWrapper(binary, encoding=encoding, errors=errors)


def _records_frames(records: Iterator[tuple], chunk_rows: int, position: Position,
                    offset: int = 0) -> Iterator[pd.DataFrame]:
    """Frames of chunk_rows (record, read error) pairs; `_line` is the record's index plus offset. One record is
    read ahead, so the last frame is known as the last and reports the whole file read."""
    pending, start = [], offset
    for item in records:
        if len(pending) == chunk_rows:
            yield _records_frame(pending, start)
            start += len(pending)
            pending = []
        pending.append(item)
    if pending:
        position.done = position.size
        yield _records_frame(pending, start)


def _records_frame(pending: list[tuple], start: int) -> pd.DataFrame:
    rows, errors = [], []
    for record, error in pending:
        row, problem = _record_texts(record)
        rows.append(row)
        errors.append(error or problem)
    frame = pd.DataFrame(rows, dtype="string")
    frame["_line"] = range(start, start + len(rows))
    frame["_error"] = errors
    return frame


def _record_texts(record) -> tuple[dict, str | None]:
    """A record's flat fields as texts, and why it cannot be read, if so."""
    if not isinstance(record, dict):
        return {}, "record is not a JSON object"
    try:
        return _texts(_flat(record)), None
    except RecursionError:        # flattening and list texts recurse per level
        return {}, "record nested too deeply to read (about a thousand levels)"


def _flat(record: dict) -> dict:
    """pd.json_normalize's flattening of one record, done here in one pass (json_normalize took 6.6 s of the 7.5 s
    of reading 200k Open311 requests): a nested object's fields become 'a.b' fields after the record's own, and
    win over an own field of the same name. A flat record is returned as it is."""
    flat: dict = {}
    nested = None
    for key, value in record.items():
        if isinstance(value, dict):
            if nested is None:
                nested = {}
            _flatten_into(nested, f"{key}", value)
        else:
            flat[key] = value
    if nested is None:
        return record
    flat.update(nested)
    return flat


def _texts(record: dict) -> dict:
    """A flat record's values as the frame's texts (etl/jsontext.py)."""
    return {key: value if value is None or type(value) is str else jsontext.text(value)
            for key, value in record.items()}


def _flatten_into(out: dict, prefix: str, fields: dict) -> None:
    for key, value in fields.items():
        name = f"{prefix}.{key}" if prefix else f"{key}"
        if isinstance(value, dict):
            _flatten_into(out, name, value)
        else:
            out[name] = value


def _json(path: Path, source, chunk_rows: int, position: Position) -> Iterator[pd.DataFrame]:
    done = 0
    if _is_record_array(path, source):
        try:
            yield from _duckdb_frames(path, chunk_rows, position)
            return
        except json_array.Unsupported as exc:
            done = exc.done
    records = islice(_json_records(path, source, source.records_path, position), done, None)
    yield from _records_frames(records, chunk_rows, position, offset=done)


def _jsonl(path: Path, source, chunk_rows: int, position: Position) -> Iterator[pd.DataFrame]:
    """JSON Lines: by DuckDB while it can; a line that is not one JSON value makes the Python reader go on from its
    chunk, and that reader quarantines each such line with its reason."""
    done = 0
    if codecs.lookup(source.encoding).name == "utf-8":
        try:
            yield from _duckdb_frames(path, chunk_rows, position, lines=True)
            return
        except json_array.Unsupported as exc:
            done = exc.done
    records = islice(_json_lines(path, source, position), done, None)
    yield from _records_frames(records, chunk_rows, position, offset=1 + done)


def _json_lines(path: Path, source, position: Position) -> Iterator[tuple]:
    with open_binary(path) as binary, _text(binary, source.encoding, errors="replace") as fh:
        for line in fh:
            if not line.strip():
                continue
            position.done = min(_stored_offset(binary), position.size)
            try:
                yield jsontext.loads(line), None
            except json.JSONDecodeError as exc:
                yield {}, f"not valid JSON: {exc.msg}"
            except RecursionError:
                yield {}, "not readable JSON: nested too deeply (about a thousand levels)"


def _is_record_array(path: Path, source) -> bool:
    """Whether DuckDB may read the file (etl/json_array.py): UTF-8, and the document itself an array."""
    if source.records_path or codecs.lookup(source.encoding).name != "utf-8":
        return False
    try:
        with open_binary(path) as binary:
            return binary.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"["
    except (OSError, EOFError, zlib.error):
        return False            # the Python reader reports it


def _duckdb_frames(path: Path, chunk_rows: int, position: Position, lines: bool = False) -> Iterator[pd.DataFrame]:
    """DuckDB's frames; progress is the share of the document the records read so far would take as compact
    JSON, so it runs behind for an indented document and catches up at the end."""
    with open(path, "rb") as fh:
        compressed = fh.read(2) == GZIP_MAGIC
        document = _gzip_size(fh, position.size) if compressed else position.size
    def reached(size: int | None) -> None:
        position.share(1.0 if size is None else size / max(document, 1))
    yield from json_array.frames(path, chunk_rows, compressed, reached, lines)


def _gzip_size(fh, stored: int) -> int:
    """About the decompressed size of a gzip file: its trailer holds it modulo 4 GiB (of its last member only)."""
    fh.seek(-4, io.SEEK_END)
    size = int.from_bytes(fh.read(4), "little")
    while size < stored:
        size += 1 << 32
    return size


def _geojson(path: Path, source, chunk_rows: int, position: Position) -> Iterator[pd.DataFrame]:
    def properties():
        for feature, error in _json_records(path, source, source.records_path or "features", position):
            props, problem = _feature_fields(feature)
            yield props, error or problem
    yield from _records_frames(properties(), chunk_rows, position)


def _feature_fields(feature) -> tuple[dict, str | None]:
    """A GeoJSON feature's properties, with a Point's coordinates as geometry.lon and geometry.lat, and why the
    feature cannot be read, if so (it then goes to quarantine: a malformed one failed the whole load)."""
    if not isinstance(feature, dict):
        return {}, "feature is not a GeoJSON object"
    props, geometry = feature.get("properties"), feature.get("geometry")
    if props is not None and not isinstance(props, dict):
        return {}, "feature properties are not an object"
    props = dict(props or {})
    if geometry is not None and not isinstance(geometry, dict):
        return props, "feature geometry is not an object"
    if geometry and geometry.get("type") == "Point":
        coordinates = geometry.get("coordinates")
        # numbers come as jsontext.Number texts; a quoted one too is left to the mapping's number check
        if not (isinstance(coordinates, list) and len(coordinates) >= 2
                and all(isinstance(c, str | int | float) and not isinstance(c, bool) for c in coordinates[:2])):
            return props, "a Point's coordinates are not [longitude, latitude]"
        props["geometry.lon"], props["geometry.lat"] = coordinates[:2]
    return props, None


def _excel(path: Path, source, chunk_rows: int, position: Position) -> Iterator[pd.DataFrame]:
    try:
        frame = pd.read_excel(path, sheet_name=source.sheet or 0, dtype=str).astype("string")
    except Exception as exc:  # noqa: BLE001 - the readers raise what they meet (zip, XML, format errors): all mean this
        raise FeedError(f"{path}: cannot be read as an Excel workbook ({type(exc).__name__}: {exc}); expected an "
                        f".xlsx or .xls file" + (f" with a sheet {source.sheet!r}" if source.sheet else "")) from None
    frame["_line"] = range(2, len(frame) + 2)
    frame["_error"] = None
    for start in range(0, len(frame), chunk_rows):
        position.share((start + chunk_rows) / len(frame))
        yield frame.iloc[start:start + chunk_rows].reset_index(drop=True)
