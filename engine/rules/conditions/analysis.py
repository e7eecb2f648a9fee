"""Analysis of checked conditions: durable_rules paths and cost, satisfiability, overlap.

Used by the loader to refuse conditions that can never hold (``x > 5 and x < 3``), rules too
complex for durable_rules, and overlapping exclusive rules of equal priority.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

from engine.features import FeatureDef
from engine.rules.conditions.checking import NUMERIC_KINDS
from engine.rules.conditions.nodes import And, Atom, Node, Or, atoms


def paths(node: Node) -> int:
    """How many alpha-network paths of durable_rules can match at once (a disjunction adds, a conjunction multiplies)."""
    if isinstance(node, Atom):
        return 1  # list atoms lower to mutually exclusive branches: one path at most
    if isinstance(node, And):
        return math.prod(paths(item) for item in node.items)
    return sum(paths(item) for item in node.items)


def dnf(node: Node, limit: int = 256) -> list[tuple[Atom, ...]] | None:
    """The disjunctive normal form as conjunctions of atoms, or None if it has more than ``limit`` terms."""
    if isinstance(node, Atom):
        return [(node,)]
    parts = [dnf(item, limit) for item in node.items]
    if any(part is None for part in parts):
        return None
    if isinstance(node, Or):
        terms = [term for part in parts for term in part]
        return terms if len(terms) <= limit else None
    size = math.prod(len(part) for part in parts)
    if size > limit:
        return None
    return [tuple(itertools.chain.from_iterable(combo)) for combo in itertools.product(*parts)]


def conflict(term: Sequence[Atom], features: Mapping[str, FeatureDef]) -> tuple[Atom, ...] | None:
    """The atoms that contradict each other if the conjunction ``term`` can never hold, else None.

    Features are treated as independent (``tier`` and ``tier_rank`` are not known to be linked),
    so a conjunction reported as possible may still be impossible in real data, never the reverse.
    """
    by_feature: dict[str, list[Atom]] = {}
    for atom in term:
        by_feature.setdefault(atom.feature, []).append(atom)
    for feature, group in by_feature.items():
        definition = features.get(feature)
        if definition is not None and not _satisfiable(group, definition):
            return tuple(group)
    return None


def _satisfiable(group: list[Atom], definition: FeatureDef) -> bool:
    ops = {atom.op for atom in group}
    if "missing" in ops:
        # A missing value satisfies only `missing`; everything else needs a value.
        return ops == {"missing"} and definition.nullable
    if definition.kind == "list[str]":
        forbidden: set[object] = set()
        for atom in group:
            if atom.op == "contains_none":
                forbidden.update(atom.values)
        return all(set(atom.values) - forbidden for atom in group if atom.op == "contains_any")
    return any(all(_holds(atom, candidate) for atom in group if atom.op != "exists")
               for candidate in _candidates(group, definition))


def _candidates(group: list[Atom], definition: FeatureDef) -> list[object]:
    """Values that represent every region where the atoms' truth could differ (complete for these atoms)."""
    constants = sorted({v for atom in group for v in atom.values}, key=lambda v: (str(type(v)), v))
    if definition.kind == "bool":
        return [True, False]
    if definition.kind not in NUMERIC_KINDS:
        pool = list(definition.values) if definition.values else [*constants, "\x00other"]
        return pool
    numbers = sorted(float(v) for v in constants) or [0.0]
    if definition.kind == "int":
        found = {math.floor(numbers[0]) - 1, math.ceil(numbers[-1]) + 1}
        for c in numbers:
            found.update({math.floor(c), math.floor(c) + 1, math.ceil(c), math.ceil(c) - 1})
        return sorted(found)
    # Beyond the extremes by a margin that survives rounding (1e16 - 1 is 1e16 in floats).
    found = {numbers[0] - max(1.0, abs(numbers[0])), numbers[-1] + max(1.0, abs(numbers[-1])), *numbers}
    for low, high in zip(numbers, numbers[1:]):
        found.add((low + high) / 2)
    return sorted(found)


def _holds(atom: Atom, value: object) -> bool:
    op, values = atom.op, atom.values
    if op == "eq":
        return value == values[0]
    if op == "ne":
        return value != values[0]
    if op == "in":
        return value in values
    if op == "not_in":
        return value not in values
    if op == "lt":
        return value < values[0]
    if op == "le":
        return value <= values[0]
    if op == "gt":
        return value > values[0]
    if op == "ge":
        return value >= values[0]
    if op == "inside":
        return values[0] <= value <= values[1]
    if op == "outside":
        return value < values[0] or value > values[1]
    return True


def can_hold(node: Node, features: Mapping[str, FeatureDef], limit: int = 256) -> bool | None:
    """Whether some member could satisfy ``node`` (None: too many alternatives to tell)."""
    terms = dnf(node, limit)
    if terms is None:
        return None
    return any(conflict(term, features) is None for term in terms)


def why_impossible(node: Node, features: Mapping[str, FeatureDef], limit: int = 256) -> str | None:
    """A sentence saying why ``node`` can never hold, or None if it can (or is too big to tell)."""
    terms = dnf(node, limit)
    if terms is None:
        return None
    reasons = []
    for term in terms:
        clash = conflict(term, features)
        if clash is None:
            return None
        reasons.append(" and ".join(f"'{atom.text}'" for atom in clash))
    if len(reasons) == 1:
        return f"conditions can never hold together: {reasons[0]}"
    return "no alternative can ever hold: " + "; ".join(dict.fromkeys(reasons))


def complexity(node: Node) -> tuple[int, int, int]:
    """(paths, alpha tests, not-exists tests) a node costs in a durable_rules network.

    durable_rules 2.0.28 has fixed limits (measured): 64 nodes pending on its evaluation stack
    (one per matching path), 512 children under one node, 128 not-exists children; the compiler
    packs rules into rulesets that stay well inside them, with these counts.
    """
    leaves = 0
    missing = 0
    for atom in atoms(node):
        n = len(atom.values)
        leaves += {"in": n, "not_in": n, "inside": 2, "outside": 2, "contains_any": 1 + n,
                   "contains_none": 2 + n}.get(atom.op, 1)
        missing += atom.op == "missing"
    return paths(node), leaves, missing
