"""A plain-Python evaluator of compiled conditions: the durable_rules JSON, interpreted.

It reads exactly the JSON the compiler hands to durable_rules and gives it durable_rules'
semantics as measured: a test on a missing property is false (``$neq`` included), ``$nex`` is
its only way in, ``$iany`` needs one matching item, ``$iall`` needs a non-empty list whose items
all match. Property tests check it against durable_rules on random rules and members; the runtime
uses it only to say which written conditions held for a rule durable_rules fired.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

Fact = Mapping[str, object]
Predicate = Callable[[Fact], bool]

_ORDER = {"$lt": operator.lt, "$lte": operator.le, "$gt": operator.gt, "$gte": operator.ge}
_MISSING = object()


def predicate(condition: Mapping[str, Any]) -> Predicate:
    """A function fact -> bool for one compiled condition (built once, called many times)."""
    tests = [_test(key, value) for key, value in condition.items()]
    if len(tests) == 1:
        return tests[0]
    return lambda fact: all(test(fact) for test in tests)


def _test(key: str, value: Any) -> Predicate:
    if key == "$and":
        items = [predicate(item) for item in value]
        return lambda fact: all(item(fact) for item in items)
    if key == "$or":
        items = [predicate(item) for item in value]
        return lambda fact: any(item(fact) for item in items)
    if key in ("$ex", "$nex"):
        (name,) = value
        present = key == "$ex"
        return lambda fact: (fact.get(name, _MISSING) is not _MISSING and fact.get(name) is not None) == present
    if key in ("$iany", "$iall"):
        ((name, item_condition),) = value.items()
        item = _item_predicate(item_condition)
        if key == "$iany":
            return lambda fact: isinstance(items := fact.get(name), list) and any(item(x) for x in items)
        return lambda fact: isinstance(items := fact.get(name), list) and bool(items) and all(item(x) for x in items)
    if key == "$neq":
        ((name, expected),) = value.items()
        return lambda fact: (actual := fact.get(name)) is not None and actual != expected
    if key in _ORDER:
        ((name, bound),) = value.items()
        compare = _ORDER[key]
        return lambda fact: (actual := fact.get(name)) is not None and compare(actual, bound)
    expected = value
    return lambda fact: (actual := fact.get(key)) is not None and actual == expected


def _item_predicate(condition: Mapping[str, Any]) -> Callable[[object], bool]:
    (key, value), = condition.items()
    if key == "$and":
        items = [_item_predicate(c) for c in value]
        return lambda x: all(item(x) for item in items)
    if key == "$or":
        items = [_item_predicate(c) for c in value]
        return lambda x: any(item(x) for item in items)
    if key == "$neq":
        expected = value["$i"]
        return lambda x: x != expected
    if key == "$i":
        return lambda x: x == value
    raise ValueError(f"unsupported item condition {condition!r}")


def evaluate(condition: Mapping[str, Any], fact: Fact) -> bool:
    """Whether a compiled condition holds for a fact (one-off; use ``predicate`` in loops)."""
    return predicate(condition)(fact)
