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
import zlib
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from core.errors import FeedError

CHUNK_BYTES = 64 << 20
GZIP_MAGIC = b"\x1f\x8b"


class Position:
    """How far a reader has got through a file: `done` of `size` bytes as stored (compressed bytes for gzip).
    CSV: the bytes read so far, interpolated within a block; JSON, Excel: the share of records yielded."""

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


def _open_text(path: Path, encoding: str, errors: str = "strict"):
    """Text of a JSON-family file; a UTF-8 byte-order mark is skipped."""
    if codecs.lookup(encoding).name == "utf-8":
        encoding = "utf-8-sig"
    return io.TextIOWrapper(open_binary(path), encoding=encoding, errors=errors)


def read(path: Path, source, chunk_rows: int, position: Position | None = None) -> Iterator[pd.DataFrame]:
    readers = {"csv": _csv, "json": _json, "jsonl": _jsonl, "geojson": _geojson, "excel": _excel}
    yield from readers[source.format](path, source, chunk_rows, position or Position(0))


# --- CSV --------------------------------------------------------------------------------------------------

def _decode(data: bytes, first_line: int, source) -> tuple[str, dict[int, str]]:
    """Decode a block of whole lines; lines invalid in the feed's encoding fall back line by line."""
    try:
        return data.decode(source.encoding), {}
    except UnicodeDecodeError:
        pass
    lines, bad = [], {}
    for offset, raw in enumerate(data.split(b"\n")):
        try:
            lines.append(raw.decode(source.encoding))
            continue
        except UnicodeDecodeError:
            pass
        try:
            if not source.fallback_encoding:
                raise UnicodeDecodeError(source.encoding, raw, 0, 1, "no fallback")
            lines.append(raw.decode(source.fallback_encoding))
        except UnicodeDecodeError:
            lines.append(raw.decode(source.encoding, errors="replace"))
            bad[first_line + offset] = f"bytes not valid {source.encoding}" + (
                f" nor {source.fallback_encoding}" if source.fallback_encoding else "")
    return "\n".join(lines), bad


def _stored_offset(fh) -> int:
    """Bytes of the file as stored that a reader has consumed (the compressed stream's offset for gzip)."""
    return (getattr(fh, "fileobj", None) or fh).tell()


def _blocks(path: Path) -> Iterator[tuple[bytes, int, int, int]]:
    """Blocks of whole records (never splitting a quoted field), with the line number each starts on and the
    stored-byte offsets read before and after it."""
    line = 1
    carry = b""
    before = 0
    with open_binary(path) as fh:
        while True:
            try:
                data = fh.read(CHUNK_BYTES)
            except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
                raise FeedError(f"{path}: damaged gzip file ({exc}); expected a complete gzip stream") from None
            after = _stored_offset(fh)
            block = carry + data
            if not data:
                if block:
                    yield block, line, before, after
                return
            cut = _safe_cut(block)
            if cut <= 0:
                carry = block
                continue
            yield block[:cut], line, before, after
            before = after
            line += block.count(b"\n", 0, cut)
            carry = block[cut:]


def _safe_cut(block: bytes) -> int:
    """Offset just after the last newline outside quotes (quote parity from the block start)."""
    end = block.rfind(b"\n")
    while end >= 0:
        if block.count(b'"', 0, end) % 2 == 0:
            return end + 1
        end = block.rfind(b"\n", 0, end)
    return -1


def _csv(path: Path, source, chunk_rows: int, position: Position) -> Iterator[pd.DataFrame]:
    header = None
    for block, first_line, before, after in _blocks(path):
        text, bad_lines = _decode(block, first_line, source)
        if header is None:
            if text.startswith("\ufeff"):
                text = text[1:]
            head, _, text = text.partition("\n")
            header = next(csv.reader([head], delimiter=source.delimiter))
            header = [h.strip() for h in header]
            first_line += 1
        if text.strip():
            total = max(1, text.count("\n") + (not text.endswith("\n")))

            def reached(lines_done, before=before, after=after, total=total):
                position.done = before + int((after - before) * min(1.0, lines_done / total))
            yield from _parse_rows(text, header, first_line, bad_lines, source, chunk_rows, reached)
        else:
            position.done = after


def _parse_rows(text, header, first_line, bad_lines, source, chunk_rows, reached=None) -> Iterator[pd.DataFrame]:
    """csv module rows (exact line numbers, tolerant of ragged rows) gathered into frames of chunk_rows;
    `reached(lines)` is told how many of the text's lines are behind each frame."""
    reached = reached or (lambda lines_done: None)
    reader = csv.reader(io.StringIO(text), delimiter=source.delimiter, strict=False)
    width = len(header)
    rows, lines, errors = [], [], []
    start = 0
    for record in reader:
        line = first_line + start
        start = reader.line_num
        if not record or record == [""]:
            continue
        error = None
        if len(record) != width:
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


def _frame(rows, header, lines, errors) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=header, dtype="string")
    frame["_line"] = lines
    frame["_error"] = errors
    return frame


# --- JSON family ------------------------------------------------------------------------------------------

def _load_json(path: Path, source):
    try:
        with _open_text(path, source.encoding) as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise FeedError(f"{path}: not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except (UnicodeDecodeError, gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise FeedError(f"{path}: cannot be read as {source.encoding} JSON: {exc}") from None


def _records_at(data, path: Path, records_path: str | None) -> list:
    for part in (records_path.split(".") if records_path else []):
        if not isinstance(data, dict) or part not in data:
            raise FeedError(f"{path}: no '{records_path}' in the document (feed key 'source.records_path')")
        data = data[part]
    if not isinstance(data, list):
        raise FeedError(f"{path}: expected a JSON array of records"
                        + (f" at '{records_path}'" if records_path else " (set 'source.records_path')"))
    return data


def _records_frames(records: list, chunk_rows: int, offset: int = 0,
                    position: Position | None = None) -> Iterator[pd.DataFrame]:
    for start in range(0, len(records), chunk_rows):
        part = records[start:start + chunk_rows]
        if position is not None:
            position.share((start + len(part)) / len(records))
        errors = [None if isinstance(r, dict) else "record is not a JSON object" for r in part]
        frame = pd.json_normalize([r if isinstance(r, dict) else {} for r in part], sep=".")
        frame = frame.astype("string")
        frame["_line"] = range(offset + start, offset + start + len(part))
        frame["_error"] = errors
        yield frame


def _json(path: Path, source, chunk_rows: int, position: Position) -> Iterator[pd.DataFrame]:
    records = _records_at(_load_json(path, source), path, source.records_path)
    yield from _records_frames(records, chunk_rows, position=position)


def _jsonl(path: Path, source, chunk_rows: int, position: Position) -> Iterator[pd.DataFrame]:
    records, errors = [], {}
    with _open_text(path, source.encoding, errors="replace") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                records.append({})
                errors[len(records) - 1] = f"not valid JSON: {exc.msg}"
    for frame in _records_frames(records, chunk_rows, offset=1, position=position):
        frame["_error"] = [errors.get(i - 1, e) for i, e in zip(frame["_line"], frame["_error"])]
        yield frame


def _geojson(path: Path, source, chunk_rows: int, position: Position) -> Iterator[pd.DataFrame]:
    features = _records_at(_load_json(path, source), path, source.records_path or "features")
    records = []
    for feature in features:
        props = dict(feature.get("properties") or {}) if isinstance(feature, dict) else {}
        geometry = feature.get("geometry") if isinstance(feature, dict) else None
        if geometry and geometry.get("type") == "Point":
            props["geometry.lon"], props["geometry.lat"] = geometry["coordinates"][:2]
        records.append(props)
    yield from _records_frames(records, chunk_rows, position=position)


def _excel(path: Path, source, chunk_rows: int, position: Position) -> Iterator[pd.DataFrame]:
    frame = pd.read_excel(path, sheet_name=source.sheet or 0, dtype=str).astype("string")
    frame["_line"] = range(2, len(frame) + 2)
    frame["_error"] = None
    for start in range(0, len(frame), chunk_rows):
        position.share((start + chunk_rows) / len(frame))
        yield frame.iloc[start:start + chunk_rows].reset_index(drop=True)
