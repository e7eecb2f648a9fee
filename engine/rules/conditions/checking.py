"""Type checking: parsed syntax against the feature vocabulary, into negation normal form.

``check(syntax, vocabulary, trigger)`` refuses unknown features (with the closest known name),
comparisons a feature's kind cannot take (``tier > 3``), values outside a category, lists too long
for durable_rules and out-of-range numbers, each as a ``ConditionError`` a marketer can act on.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from engine.features import FeatureDef
from engine.rules.conditions.nodes import Atom, Node, conjoin, disjoin, negate
from engine.rules.conditions.syntax import AllOf, AnyOf, Comparison, ConditionError, NotOf, Syntax, Value, suggest

MAX_LIST_VALUES = 256
"""Values in one ``in`` / ``contains any`` list; durable_rules hangs past 512 branches under one node."""
MAX_ABS_NUMBER = 1e15
MAX_TEXT_LENGTH = 128
NUMERIC_KINDS = frozenset({"int", "float"})
_OP_NAMES = {"==": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}
"""Written comparison operators -> atom operators."""


@dataclass(frozen=True)
class Vocabulary:
    """What conditions may refer to: feature definitions, and which triggers know each one."""

    features: Mapping[str, FeatureDef]
    only_for: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """feature -> the triggers it is known for (absent: every trigger)."""

    def lookup(self, name: str) -> FeatureDef:
        """The definition of a name, or a ``ConditionError`` with the closest known name."""
        definition = self.features.get(name)
        if definition is None:
            raise ConditionError(f"unknown feature {name!r}{suggest(name, self.features)}")
        return definition


def check(syntax: Syntax, vocabulary: Vocabulary, trigger: str | None = None) -> Node:
    """Type-check parsed syntax and return it in negation normal form; raises ``ConditionError``."""
    return _check(syntax, vocabulary, trigger, negated=False)


def _check(syntax: Syntax, vocabulary: Vocabulary, trigger: str | None, negated: bool) -> Node:
    if isinstance(syntax, NotOf):
        return _check(syntax.item, vocabulary, trigger, not negated)
    if isinstance(syntax, (AllOf, AnyOf)):
        if not syntax.items:
            raise ConditionError(f"'{'all' if isinstance(syntax, AllOf) else 'any'}' needs at least one condition")
        items = [_check(item, vocabulary, trigger, negated) for item in syntax.items]
        conjunctive = isinstance(syntax, AllOf) != negated  # not(all) is any(not)
        return conjoin(items) if conjunctive else disjoin(items)
    node = _check_comparison(syntax, vocabulary, trigger)
    return negate(node) if negated else node


def _check_comparison(c: Comparison, vocabulary: Vocabulary, trigger: str | None) -> Node:
    definition = vocabulary.lookup(c.feature)
    allowed_triggers = vocabulary.only_for.get(c.feature)
    if trigger is not None and allowed_triggers is not None and trigger not in allowed_triggers:
        raise ConditionError(
            f"{c.feature!r} is not known on trigger {trigger!r} (only on {', '.join(sorted(allowed_triggers))})"
        )
    kind = definition.kind
    name = c.feature
    if c.op == "truth":
        if kind != "bool":
            raise ConditionError(f"{name!r} is {_kind_text(definition)}, not true/false; compare it, e.g. '{name} > 0'")
        return Atom(name, "eq", (True,), c.text)
    if c.op in ("is_null", "not_null"):
        if not definition.nullable and c.op == "is_null":
            raise ConditionError(f"{c.text!r} never holds: {name!r} always has a value")
        return Atom(name, "missing" if c.op == "is_null" else "exists", (), c.text)
    if c.op.startswith("contains"):
        if kind != "list[str]":
            raise ConditionError(f"'contains' needs a list feature, but {name!r} is {_kind_text(definition)}; use == or in")
        values = _unique([_text_value(v, definition) for v in c.operands], c.text)
        if c.op == "contains_all":
            return conjoin([Atom(name, "contains_any", (v,), c.text) for v in values])
        return Atom(name, "contains_any", values, c.text)
    if kind == "list[str]":
        raise ConditionError(f"{name!r} is a list; test it with 'contains', e.g. '{name} contains X'")
    if c.op == "in":
        values = _unique([_typed(v, definition, c.text) for v in c.operands], c.text)
        if kind == "bool":
            raise ConditionError(f"{name!r} is true/false; write '{name}' or 'not {name}'")
        return Atom(name, "in", values, c.text) if len(values) > 1 else Atom(name, "eq", values, c.text)
    if c.op == "between":
        if kind not in NUMERIC_KINDS:
            raise ConditionError(f"'between' needs a number, but {name!r} is {_kind_text(definition)}")
        low, high = (_typed(v, definition, c.text) for v in c.operands)
        if low > high:
            raise ConditionError(f"{c.text!r} never holds: {c.operands[0].raw} is above {c.operands[1].raw}")
        return Atom(name, "inside", (low, high), c.text)
    op = _OP_NAMES[c.op]
    if op not in ("eq", "ne") and kind not in NUMERIC_KINDS:
        hint = ""
        if definition.values:
            hint = f"; use 'in', e.g. '{name} in [{', '.join(definition.values[-2:])}]'"
        raise ConditionError(f"in {c.text!r}: {name!r} is {_kind_text(definition)}; it can't be compared with {c.op}{hint}")
    value = _typed(c.operands[0], definition, c.text)
    return Atom(name, op, (value,), c.text)


def _kind_text(definition: FeatureDef) -> str:
    if definition.values:
        return f"a category ({', '.join(definition.values)})"
    return {"int": "a whole number", "float": "a number", "str": "text", "bool": "true/false",
            "list[str]": "a list"}.get(definition.kind, definition.kind)


def _typed(value: Value, definition: FeatureDef, text: str) -> object:
    kind = definition.kind
    if kind in NUMERIC_KINDS:
        if value.kind != "number":
            raise ConditionError(f"in {text!r}: {definition.name!r} is {_kind_text(definition)}, and {value.raw} is not a number")
        number = value.value
        if not math.isfinite(float(number)) or abs(float(number)) > MAX_ABS_NUMBER:
            raise ConditionError(f"in {text!r}: {value.raw} is out of range")
        return number
    if kind == "bool":
        if value.kind != "bool":
            raise ConditionError(f"in {text!r}: {definition.name!r} is true/false, and {value.raw} is not")
        return value.value
    return _text_value(value, definition, text)


def _text_value(value: Value, definition: FeatureDef, text: str = "") -> str:
    if value.kind == "bool":
        raise ConditionError(f"in {text!r}: {definition.name!r} is {_kind_text(definition)}, and {value.raw} is true/false")
    result = value.raw if value.kind == "number" else str(value.value)
    if len(result) > MAX_TEXT_LENGTH:
        raise ConditionError(f"in {text!r}: a value is longer than {MAX_TEXT_LENGTH} characters")
    if definition.values and result not in definition.values:
        raise ConditionError(
            f"in {text!r}: {result!r} is not a {definition.name} value; {definition.name} is one of "
            f"{', '.join(definition.values)}{suggest(result, definition.values)}"
        )
    return result


def _unique(values: Iterable[object], text: str) -> tuple[object, ...]:
    # Duplicates would be two matching branches of one durable_rules disjunction: two firings.
    seen: list[object] = []
    for value in values:
        if all(value != other for other in seen):  # one feature, one type: == is enough
            seen.append(value)
    if len(seen) > MAX_LIST_VALUES:
        raise ConditionError(f"{text[:40]!r}...: a list holds at most {MAX_LIST_VALUES} values, this one {len(seen)}")
    return tuple(seen)
