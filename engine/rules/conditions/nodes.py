"""Checked conditions in negation normal form: atoms, ``And``, ``Or`` and the operations on them.

The one form the compiler lowers and the analysis reasons on: ``Not`` is pushed down to the atoms
by De Morgan and by flipping each atom (``NEGATED``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

# Atom operators after checking. Each has a negation (``NEGATED``); `in`/`not_in`, `inside`/`outside`
# and `contains_any`/`contains_none` keep their list form because they lower to durable_rules
# disjunctions whose branches exclude each other (one alpha path at most), see the compiler.
ATOM_OPS = ("eq", "ne", "lt", "le", "gt", "ge", "in", "not_in", "inside", "outside",
            "exists", "missing", "contains_any", "contains_none")
NEGATED = {
    "eq": "ne", "ne": "eq", "lt": "ge", "ge": "lt", "le": "gt", "gt": "le", "in": "not_in", "not_in": "in",
    "inside": "outside", "outside": "inside", "exists": "missing", "missing": "exists",
    "contains_any": "contains_none", "contains_none": "contains_any",
}


@dataclass(frozen=True)
class Atom:
    """One test on one feature: ``op`` from ``ATOM_OPS``; ``values`` typed; ``text`` for people."""

    feature: str
    op: str
    values: tuple[object, ...]
    text: str

    def negated(self) -> Atom:
        """The atom that holds exactly when this one is false on a present value."""
        return Atom(self.feature, NEGATED[self.op], self.values, f"not ({self.text})")


@dataclass(frozen=True)
class And:
    """A conjunction in negation normal form."""

    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    """A disjunction in negation normal form."""

    items: tuple[Node, ...]


Node = Atom | And | Or


def conjoin(items: Sequence[Node]) -> Node:
    """``And`` of the items, flattened (a single item is itself)."""
    flat: list[Node] = []
    for item in items:
        flat.extend(item.items if isinstance(item, And) else (item,))
    return flat[0] if len(flat) == 1 else And(tuple(flat))


def disjoin(items: Sequence[Node]) -> Node:
    """``Or`` of the items, flattened (a single item is itself)."""
    flat: list[Node] = []
    for item in items:
        flat.extend(item.items if isinstance(item, Or) else (item,))
    return flat[0] if len(flat) == 1 else Or(tuple(flat))


def negate(node: Node) -> Node:
    """The negation of a node in negation normal form (De Morgan; atoms flip)."""
    if isinstance(node, Atom):
        return node.negated()
    if isinstance(node, And):
        return disjoin([negate(item) for item in node.items])
    return conjoin([negate(item) for item in node.items])


def atoms(node: Node) -> Iterator[Atom]:
    """Every atom of a node, in order."""
    if isinstance(node, Atom):
        yield node
    else:
        for item in node.items:
            yield from atoms(item)


def render(node: Node) -> str:
    """A readable text of a checked node (atoms keep their source text)."""
    if isinstance(node, Atom):
        return node.text
    joiner = " and " if isinstance(node, And) else " or "
    return "(" + joiner.join(render(item) for item in node.items) + ")"
