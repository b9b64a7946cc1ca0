"""The text a JSON value stands for in a feed's frame: one definition for every JSON reader.

Frames hold source text, and JSON has no text for its numbers, booleans and lists until one is chosen. pandas' choice
depended on the record's neighbours: 5 became "5.0" in a chunk where some record had no value there, and booleans
and lists came out in Python's spelling. The texts here are what DuckDB's JSON reader (yyjson) writes, so that the
DuckDB reader of record arrays (etl/json_array.py) and the Python readers give the same frame:
- a string is itself; null is missing;
- true and false are "true" and "false";
- an integer is its digits ("-0" is "0"), however long;
- a fraction is the shortest text that reads back as the same double, written out in full between 1e-6 and 1e21
  with ".0" when whole ("100000.0", "0.000001"), else as "1.5e300" / "1e-7"; a literal beyond the double range keeps
  its source text; NaN, Infinity and -Infinity are themselves;
- a list is compact JSON, its strings as UTF-8 (an object inside a list likewise; objects elsewhere are flattened).
"""
import json
import math
from decimal import Decimal


class Number(str):
    """A JSON number or constant as text, kept apart from strings so that a list can write it unquoted."""


def number_text(literal: str) -> Number:
    value = float(literal)
    if math.isinf(value):
        return Number(literal)
    size = abs(value)
    shortest = repr(value)
    if size == 0 or 1e-6 <= size < 1e21:
        if "e" in shortest:
            shortest = format(Decimal(shortest), "f")
        return Number(shortest if "." in shortest else shortest + ".0")
    mantissa, exponent = shortest.split("e")
    return Number(f"{mantissa.removesuffix('.0')}e{int(exponent)}")


def _integer_text(literal: str) -> Number:
    return Number(str(int(literal)))


DECODER = json.JSONDecoder(parse_float=number_text, parse_int=_integer_text, parse_constant=Number)


def loads(text: str):
    """The JSON value of `text` with its numbers as Number texts."""
    return DECODER.decode(text)


def text(value) -> str | None:
    """The frame's text of a decoded value that is not an object."""
    if value is None or type(value) is str:
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if value is True or value is False:
        return "true" if value else "false"
    return _compact(value)


def _compact(value) -> str:
    if isinstance(value, Number):
        return str.__str__(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if value is None or value is True or value is False:
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ",".join(_compact(v) for v in value) + "]"
    return "{" + ",".join(f"{json.dumps(k, ensure_ascii=False)}:{_compact(v)}" for k, v in value.items()) + "}"
