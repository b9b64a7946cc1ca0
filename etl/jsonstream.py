"""The records array of a JSON document, element by element, without holding the document.

`json.load` of a 1.3 GB Open311 export held about 5 GiB of Python objects before the first record was checked.
This reader walks the document text with `json.JSONDecoder.raw_decode`: objects on the way to the records array
(`records_path`, dotted) are scanned key by key, other keys' values are decoded and dropped, and each element of
the array is decoded on its own. Elements are the Python objects `json.load` gives, but with numbers as
jsontext.Number texts. Errors name the line and column in the whole document, as `json.load` does.
"""
import json
from collections.abc import Iterator

from etl import jsontext

READ_CHARS = 1 << 20
WHITESPACE = " \t\n\r"


class NotFound(Exception):
    """A part of records_path is missing, or what it names is not an array."""


class Syntax(Exception):
    def __init__(self, msg: str, line: int, column: int):
        super().__init__(f"line {line}, column {column}: {msg}")
        self.msg, self.line, self.column = msg, line, column


class _Text:
    """A window on the document: decoded values, skipped whitespace, positions as line and column."""

    def __init__(self, fh):
        self.fh = fh
        self.buf = ""
        self.pos = 0
        self.base = 0                  # offset in the document of the window's first character
        self.lines_before = 0          # newlines before the window
        self.line_start = 0            # offset in the document where the line the window starts in begins
        self.eof = False
        self.decoder = jsontext.DECODER

    def _more(self) -> bool:
        if self.eof:
            return False
        data = self.fh.read(READ_CHARS)
        if not data:
            self.eof = True
            return False
        dropped = self.buf[:self.pos]
        newlines = dropped.count("\n")
        if newlines:
            self.lines_before += newlines
            self.line_start = self.base + dropped.rfind("\n") + 1
        self.base += self.pos
        self.buf = self.buf[self.pos:] + data
        self.pos = 0
        return True

    def peek(self) -> str:
        """The next character that is not whitespace ('' at the end)."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in WHITESPACE:
                self.pos += 1
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._more():
                return ""

    def expect(self, chars: str) -> str:
        c = self.peek()
        if not c or c not in chars:
            self.fail("Expecting " + " or ".join(f"'{x}'" for x in chars), self.pos)
        self.pos += 1
        return c

    def value(self):
        self.peek()
        while True:
            try:
                value, end = self.decoder.raw_decode(self.buf, self.pos)
            except RecursionError:       # Python's decoder recurses per level: a value this deep fails the file
                self.fail("Nested too deeply to read (about a thousand levels)", self.pos)
            except json.JSONDecodeError as exc:
                # incomplete in the window (or a number cut at its end): read on; at the end it is an error
                if self._more():
                    continue
                self.fail(exc.msg, exc.pos)
            if end == len(self.buf) and self._more():      # a number may go on in the next block
                continue
            self.pos = end
            return value

    def fail(self, msg: str, pos: int):
        before = self.buf[:pos]
        newlines = before.count("\n")
        line = self.lines_before + newlines + 1
        column = pos - before.rfind("\n") if newlines else self.base + pos - self.line_start + 1
        raise Syntax(msg, line, column)


def records(fh, records_path: str | None) -> Iterator:
    """The elements of the array at records_path (dotted; None: the document itself) of the text stream fh."""
    text = _Text(fh)
    parts = records_path.split(".") if records_path else []
    for part in parts:
        if text.peek() != "{":
            raise NotFound(part)
        _find_key(text, part)
    if text.peek() != "[":
        raise NotFound(None)
    text.expect("[")
    if text.peek() == "]":
        text.pos += 1
    else:
        while True:
            yield text.value()
            if text.expect(",]") == "]":
                break
    if not parts and text.peek():          # a second document, or the end of a damaged one: records left unread
        text.fail("Extra data after the records array", text.pos)


def _find_key(text: _Text, wanted: str) -> None:
    """Move past `"wanted":` in the object that starts here; values of other keys are decoded and dropped."""
    text.expect("{")
    if text.peek() == "}":
        raise NotFound(wanted)
    while True:
        if text.peek() != '"':
            text.fail("Expecting property name enclosed in double quotes", text.pos)
        key = text.value()
        text.expect(":")
        if key == wanted:
            return
        text.value()
        if text.expect(",}") == "}":
            raise NotFound(wanted)
