"""A vectorised evaluator of compiled conditions: the same durable_rules JSON over columns of facts.

For the backtest: a million members' facts as numpy columns, one boolean mask per rule. Each
column carries its values and a presence mask (a missing value is absent from the fact, so every
test on it is false but ``$nex``); list properties are exploded to (row, item) pairs so ``$iany``
and ``$iall`` are reductions. Property tests check it against durable_rules and the reference
evaluator on random rules and members.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

_ORDER = {"$lt": np.less, "$lte": np.less_equal, "$gt": np.greater, "$gte": np.greater_equal}


@dataclass(frozen=True)
class Column:
    """One fact property over all rows: values (float for numbers, object otherwise) and presence."""

    values: np.ndarray
    present: np.ndarray
    numeric: bool


@dataclass(frozen=True)
class ListColumn:
    """A list property: for each item, its row and its text; ``present`` and ``length`` per row."""

    rows: np.ndarray
    items: np.ndarray
    present: np.ndarray
    length: np.ndarray


class FactColumns:
    """Facts of ``n`` rows as columns, built from per-property sequences (None: missing)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.columns: dict[str, Column | ListColumn] = {}

    def add(self, name: str, values: Sequence[object] | np.ndarray) -> None:
        """A scalar property (numbers, bools or text; None where missing)."""
        array = np.asarray(values, dtype=object) if not isinstance(values, np.ndarray) else values
        if array.dtype.kind in "fiu":
            numbers = array.astype(float)
            self.columns[name] = Column(numbers, ~np.isnan(numbers), True)
            return
        present = np.array([v is not None and v == v for v in array], dtype=bool)
        sample = next((v for v, p in zip(array, present) if p), None)
        numeric = isinstance(sample, (int, float)) and not isinstance(sample, bool)
        if numeric:
            numbers = np.array([float(v) if p else np.nan for v, p in zip(array, present)], dtype=float)
            self.columns[name] = Column(numbers, present, True)
        else:
            self.columns[name] = Column(array.astype(object), present, False)

    def add_constant(self, name: str, value: object) -> None:
        """A property with the same value in every row (None: missing everywhere)."""
        if value is None:
            self.columns[name] = Column(np.full(self.n, None, dtype=object), np.zeros(self.n, dtype=bool), False)
        elif isinstance(value, list):
            self.add_lists(name, [value] * self.n)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            self.columns[name] = Column(np.full(self.n, float(value)), np.ones(self.n, dtype=bool), True)
        else:
            self.columns[name] = Column(np.full(self.n, value, dtype=object), np.ones(self.n, dtype=bool), False)

    def add_lists(self, name: str, values: Sequence[list[str] | None], length_name: str | None = None) -> None:
        """A list property (and, if named, its length property as the compiler's ``<list>__n``)."""
        present = np.array([v is not None for v in values], dtype=bool)
        length = np.array([len(v) if v is not None else 0 for v in values], dtype=np.int64)
        rows = np.repeat(np.arange(self.n), length)
        items = np.array([item for v in values if v is not None for item in v], dtype=object)
        self.columns[name] = ListColumn(rows, items, present, length)
        if length_name is not None:
            numbers = np.where(present, length.astype(float), np.nan)
            self.columns[length_name] = Column(numbers, present, True)

    def mask(self, condition: Mapping[str, Any]) -> np.ndarray:
        """Rows for which a compiled condition holds."""
        result = np.ones(self.n, dtype=bool)
        for key, value in condition.items():
            result &= self._test(key, value)
        return result

    def _column(self, name: str) -> Column | ListColumn | None:
        return self.columns.get(name)

    def _test(self, key: str, value: Any) -> np.ndarray:
        if key == "$and":
            result = np.ones(self.n, dtype=bool)
            for item in value:
                result &= self.mask(item)
            return result
        if key == "$or":
            result = np.zeros(self.n, dtype=bool)
            for item in value:
                result |= self.mask(item)
            return result
        if key in ("$ex", "$nex"):
            (name,) = value
            column = self._column(name)
            present = column.present if column is not None else np.zeros(self.n, dtype=bool)
            return present.copy() if key == "$ex" else ~present
        if key in ("$iany", "$iall"):
            ((name, item_condition),) = value.items()
            column = self._column(name)
            if not isinstance(column, ListColumn):
                return np.zeros(self.n, dtype=bool)
            matched = _items(item_condition, column.items)
            hits = np.bincount(column.rows, weights=matched.astype(float), minlength=self.n)
            if key == "$iany":
                return column.present & (hits > 0)
            return column.present & (column.length > 0) & (hits == column.length)
        if key == "$neq":
            ((name, expected),) = value.items()
            return self._compare(name, expected, np.not_equal)
        if key in _ORDER:
            ((name, bound),) = value.items()
            return self._compare(name, bound, _ORDER[key])
        return self._compare(key, value, np.equal)

    def _compare(self, name: str, expected: object, compare) -> np.ndarray:
        column = self._column(name)
        if not isinstance(column, Column):
            return np.zeros(self.n, dtype=bool)
        if column.numeric:
            with np.errstate(invalid="ignore"):
                return column.present & compare(column.values, float(expected))
        result = np.zeros(self.n, dtype=bool)
        rows = np.flatnonzero(column.present)
        # Object arrays compare element by element with Python's ==, as the reference evaluator does.
        result[rows] = compare(column.values[rows], np.array(expected, dtype=object)).astype(bool)
        return result


def _items(condition: Mapping[str, Any], items: np.ndarray) -> np.ndarray:
    (key, value), = condition.items()
    if key == "$and":
        result = np.ones(len(items), dtype=bool)
        for c in value:
            result &= _items(c, items)
        return result
    if key == "$or":
        result = np.zeros(len(items), dtype=bool)
        for c in value:
            result |= _items(c, items)
        return result
    if key == "$neq":
        return items != value["$i"]
    if key == "$i":
        return items == value
    raise ValueError(f"unsupported item condition {condition!r}")
