"""YAML with a line number for every node, and pydantic's errors as sentences at those lines.

``read_yaml(text)`` gives the data and ``{path: line}`` for every key and item (``("then", 0,
"issue_coupon")`` -> 12); ``line_for`` finds the closest known line of any path, so a problem can
say ``file:line``. A syntax error or a duplicate key is a ``YamlProblem`` at its line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

import yaml
from pydantic import BaseModel

from engine.rules.conditions import suggest
from engine.rules.schema import Rule

Path_ = tuple[Any, ...]
"""Where a node is in a YAML document: its keys and item indexes from the top."""


class YamlProblem(Exception):
    """A file that is not valid YAML (or has a duplicate key), at a line."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


def read_yaml(text: str) -> tuple[Any, dict[Path_, int]]:
    """Parse one YAML document; returns the data and the line (1-based) of every key and item."""
    try:
        loader = yaml.SafeLoader(text)  # reads the whole text: refuses control characters here
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        raise YamlProblem(line, f"YAML: the character U+{code:04X} is not allowed (a control character?)") from None
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        lines: dict[Path_, int] = {(): node.start_mark.line + 1}
        data = _construct(loader, node, (), lines)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise YamlProblem(line, f"YAML: {exc.problem or exc.context}") from None
    finally:
        loader.dispose()
    return data, lines


def _construct(loader: yaml.SafeLoader, node: yaml.Node, path: Path_, lines: dict[Path_, int]) -> Any:
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool, date)) or key is None:
                raise YamlProblem(key_node.start_mark.line + 1, "YAML: a mapping key must be a plain value")
            if key in result:
                raise YamlProblem(key_node.start_mark.line + 1, f"duplicate key {key!r}")
            lines[path + (key,)] = key_node.start_mark.line + 1
            result[key] = _construct(loader, value_node, path + (key,), lines)
        return result
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            lines[path + (index,)] = item.start_mark.line + 1
            items.append(_construct(loader, item, path + (index,), lines))
        return items
    return loader.construct_object(node, deep=True)


def line_for(lines: Mapping[Path_, int], path: Sequence[Any], default: int) -> int:
    """The line of the deepest known node on ``path`` (unknown steps, e.g. pydantic's tags, are skipped)."""
    best = lines.get((), default)
    current: Path_ = ()
    for step in path:
        candidate = current + (step,)
        if candidate in lines:
            current = candidate
            best = lines[candidate]
    return best


def describe_error(error: Mapping[str, Any], data: Any) -> str:
    """A pydantic error as a sentence: where (dotted path) and what, with a suggestion for unknown fields."""
    loc = clean_loc(error["loc"], data)
    where = _dotted(loc)
    kind = error["type"]
    if kind == "extra_forbidden":
        known = _known_fields(loc[:-1])
        return f"unknown field {loc[-1]!r}{suggest(str(loc[-1]), known)}" + (f" in {_dotted(loc[:-1])}" if loc[:-1] else "")
    if kind == "missing":
        return f"missing field {loc[-1]!r}" + (f" in {_dotted(loc[:-1])}" if loc[:-1] else "")
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    if kind == "string_pattern_mismatch" and loc and loc[-1] == "trigger":
        message = "a trigger is checkout, schedule.daily or event.<type>"
    return f"{where}: {message}" if where else message


_TAGS = frozenset({"text", "all", "any", "not", "issue_coupon", "award_points", "recommend", "send_message", "tag",
                   "list[Rule]", "Rule", "str", "bool", "int", "float", "list[str]", "date", "datetime"})


def clean_loc(loc: Sequence[Any], data: Any) -> list[Any]:
    """A pydantic error location without the union tags pydantic inserts (walking the data to tell them apart)."""
    cleaned: list[Any] = []
    current = data
    for step in loc:
        if isinstance(current, dict) and step in current:
            cleaned.append(step)
            current = current[step]
        elif isinstance(current, list) and isinstance(step, int) and 0 <= step < len(current):
            cleaned.append(step)
            current = current[step]
        elif isinstance(step, str) and step in _TAGS:
            continue  # a tag of a union member, not a key of the data
        else:
            cleaned.append(step)
            current = None
    return cleaned


def _dotted(loc: Sequence[Any]) -> str:
    text = ""
    for step in loc:
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else str(step))
    return text


def _known_fields(loc: Sequence[Any]) -> list[str]:
    """The field names of the model at ``loc`` of a rule (to suggest a close name for a misspelt one)."""
    candidates: list[type[BaseModel]] = [Rule]
    for step in loc:
        if isinstance(step, int):
            continue
        following: list[type[BaseModel]] = []
        for model in candidates:
            info = model.model_fields.get(step) or next(
                (f for f in model.model_fields.values() if f.alias == step), None)
            if info is not None:
                following.extend(_models_in(info.annotation))
        candidates = following
        if not candidates:
            return []
    return sorted({f.alias or name for model in candidates for name, f in model.model_fields.items()})


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    from typing import get_args

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in get_args(annotation) for model in _models_in(arg)]
