"""Compiling checked rules to durable_rules rulesets, within the engine's measured limits.

Each rule becomes one durable_rules rule over one fact: ``{"all": [{"m": <condition>}]}`` where
the condition is the rule's negation normal form lowered to durable_rules' JSON (``$and``,
``$or``, ``$lt``..., ``$ex``/``$nex``, ``$iany``/``$iall``), always starting with ``_t == trigger``:
the anchor that keeps a rule from matching durable_rules' own session state (a rule that can
match the state, e.g. one made only of ``$nex`` tests, fires forever: measured).

durable_rules 2.0.28 evaluates a fact depth-first over its alpha network with a stack of 64
entries (one per path that matches: more raise error 303), links at most 512 children under a
node (more hang ``create_ruleset``), 128 not-exists children and 256 rules ending on one node, and
a fact has fewer than 255 properties. The compiler counts, for each rule, the paths that can match
at once (an ``in`` list lowers to branches that exclude each other: one path; ``any`` adds paths),
its alpha tests and not-exists tests, and packs the rules of each trigger into rulesets ("shards")
that stay well inside those limits. Evaluating a trigger asserts its fact into each shard.

The JSON of a condition is also what ``engine.rules.reference`` and ``engine.rules.vectorised``
evaluate: one compiled form, three evaluators, proven equal by property tests.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.rules.conditions import And, Atom, Node, Or, complexity
from engine.rules.context import LIST_LENGTH_SUFFIX, TRIGGER_FIELD
from engine.rules.loader import CheckedRule, LoadedRules, Part

SHARD_MAX_PATHS = 48
"""Paths that may match at once in one ruleset (durable_rules' stack holds 64: measured, 64 pass, 65 fail)."""
SHARD_MAX_LEAVES = 400
"""Alpha tests in one ruleset: bounds the children of any node (durable_rules hangs past 512)."""
SHARD_MAX_MISSING = 96
"""Not-exists tests in one ruleset (durable_rules allows 128 under a node)."""
SHARD_MAX_PROPERTIES = 200
"""Fact properties one ruleset reads (durable_rules refuses a fact of 255)."""

_quote = json.encoder.encode_basestring  # JSON string with non-ASCII kept as is (ensure_ascii=False)
_COMPARE = {"ne": "$neq", "lt": "$lt", "le": "$lte", "gt": "$gt", "ge": "$gte"}


# --- JSON that durable_rules parses --------------------------------------------------------------


def json_number(value: float | int) -> str:
    """A number as durable_rules reads it: its parser rejects ``1e-05`` but reads ``1.0e-05`` (measured)."""
    if isinstance(value, bool):
        raise TypeError("a bool is not a number")
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        raise ValueError(f"{value} can't be sent to durable_rules")
    text = repr(float(value))
    if "e" in text:
        mantissa, exponent = text.split("e")
        if "." not in mantissa:
            mantissa += ".0"
        text = f"{mantissa}e{exponent}"
    return text


def durable_json(value: Any) -> str:
    """JSON text of dicts, lists, text, numbers and booleans, with numbers durable_rules can parse."""
    kind = type(value)
    if kind is str:
        return _quote(value)
    if kind is bool:
        return "true" if value else "false"
    if kind is int or kind is float:
        return json_number(value)
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{_quote(str(k))}:{durable_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(durable_json(v) for v in value) + "]"
    if isinstance(value, (int, float)):  # numpy numbers and the like
        return json_number(float(value) if isinstance(value, float) else int(value))
    raise TypeError(f"can't encode {type(value).__name__} for durable_rules")


# --- lowering ------------------------------------------------------------------------------------


def lower(node: Node) -> dict[str, Any]:
    """A condition in negation normal form as durable_rules JSON (what all three evaluators run)."""
    if isinstance(node, And):
        return _and([lower(item) for item in node.items])
    if isinstance(node, Or):
        return {"$or": [lower(item) for item in node.items]}
    return _lower_atom(node)


def _and(items: list[dict[str, Any]]) -> dict[str, Any]:
    flat: list[dict[str, Any]] = []
    for item in items:
        flat.extend(item["$and"] if set(item) == {"$and"} else [item])
    return flat[0] if len(flat) == 1 else {"$and": flat}


def _lower_atom(atom: Atom) -> dict[str, Any]:
    name, op, values = atom.feature, atom.op, atom.values
    if op == "eq":
        return {name: values[0]}
    if op in _COMPARE:
        return {_COMPARE[op]: {name: values[0]}}
    if op == "in":
        # Equalities on one property: at most one branch matches, so one path and one firing.
        return {"$or": [{name: v} for v in values]} if len(values) > 1 else {name: values[0]}
    if op == "not_in":
        return _and([{"$neq": {name: v}} for v in values])
    if op == "inside":
        return {"$and": [{"$gte": {name: values[0]}}, {"$lte": {name: values[1]}}]}
    if op == "outside":
        return {"$or": [{"$lt": {name: values[0]}}, {"$gt": {name: values[1]}}]}
    if op == "exists":
        return {"$ex": {name: 1}}
    if op == "missing":
        return {"$nex": {name: 1}}
    if op == "contains_any":
        item = {"$or": [{"$i": v} for v in values]} if len(values) > 1 else {"$i": values[0]}
        return {"$iany": {name: item}}
    if op == "contains_none":
        # `$iall` is false on an empty list (measured), so "contains none" is "empty, or all items differ".
        item = _and([{"$neq": {"$i": v}} for v in values])
        return {"$or": [{name + LIST_LENGTH_SUFFIX: 0}, {"$iall": {name: item}}]}
    raise ValueError(f"unknown atom operator {op!r}")


def properties(condition: Mapping[str, Any]) -> set[str]:
    """The fact properties a lowered condition reads."""
    found: set[str] = set()
    for key, value in condition.items():
        if key in ("$and", "$or"):
            for item in value:
                found |= properties(item)
        elif key in ("$iany", "$iall", "$ex", "$nex", *_COMPARE.values()):
            found |= set(value)
        else:
            found.add(key)
    return found


# --- compiled rules and shards -------------------------------------------------------------------


@dataclass(frozen=True)
class CompiledRule:
    """A rule with its durable_rules condition, and each written part lowered for explanations."""

    checked: CheckedRule
    condition: dict[str, Any]
    """The full condition, anchored on the trigger: what durable_rules and the reference evaluators run."""
    parts: tuple[tuple[Part, dict[str, Any]], ...]
    paths: int
    leaves: int
    missing: int
    reads: frozenset[str]

    @property
    def id(self) -> str:
        """The rule id."""
        return self.checked.id

    @property
    def trigger(self) -> str:
        """The rule's trigger (checkout, schedule.daily, event.<type>)."""
        return self.checked.rule.trigger

    @property
    def priority(self) -> int:
        """The rule's priority (higher first)."""
        return self.checked.rule.priority


@dataclass(frozen=True)
class Shard:
    """One durable_rules ruleset: some rules of one trigger, and the fact properties they read."""

    trigger: str
    rules: tuple[CompiledRule, ...]
    reads: tuple[str, ...]
    definition: str
    key: str = field(default="")
    """A hash of the definition: an unchanged shard keeps its ruleset across reloads."""


@dataclass(frozen=True)
class CompiledRules:
    """Everything the runtime serves from: rules by id, shards by trigger, and the loaded sources."""

    version: str
    rules: tuple[CompiledRule, ...]
    shards: dict[str, tuple[Shard, ...]]
    loaded: LoadedRules

    def by_id(self, rule_id: str) -> CompiledRule:
        """The compiled rule with this id (KeyError if there is none)."""
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)

    def reads(self, trigger: str) -> frozenset[str]:
        """Every fact property the rules of ``trigger`` read."""
        return frozenset(name for shard in self.shards.get(trigger, ()) for name in shard.reads)


def compile_rule(checked: CheckedRule) -> CompiledRule:
    """Lower one checked rule, anchored on its trigger (the anchor also shields the session state)."""
    condition = _and([{TRIGGER_FIELD: checked.rule.trigger}, lower(checked.condition)])
    paths, leaves, missing = complexity(checked.condition)
    parts = tuple((part, lower(part.node)) for part in (*checked.parts, *checked.implicit))
    return CompiledRule(checked=checked, condition=condition, parts=parts, paths=paths, leaves=leaves + 1,
                        missing=missing, reads=frozenset(properties(condition)))


def compile_rules(loaded: LoadedRules) -> CompiledRules:
    """Compile every valid rule of a loaded directory and pack each trigger's rules into shards."""
    compiled = tuple(compile_rule(checked) for checked in sorted(loaded.rules, key=lambda r: r.id))
    by_trigger: dict[str, list[CompiledRule]] = {}
    for rule in compiled:
        by_trigger.setdefault(rule.trigger, []).append(rule)
    shards = {trigger: tuple(pack(rules)) for trigger, rules in sorted(by_trigger.items())}
    digest = hashlib.sha256()
    for name in sorted(loaded.files):
        digest.update(name.encode() + b"\0" + loaded.files[name].encode() + b"\0")
    return CompiledRules(version=digest.hexdigest()[:12], rules=compiled, shards=shards, loaded=loaded)


def pack(rules: Iterable[CompiledRule]) -> list[Shard]:
    """Greedy packing in rule id order into shards within the limits (stable: an edit moves few rules)."""
    shards: list[list[CompiledRule]] = [[]]
    totals = [0, 0, 0]
    reads: set[str] = set()
    for rule in rules:
        grown = reads | rule.reads
        over = (totals[0] + rule.paths > SHARD_MAX_PATHS or totals[1] + rule.leaves > SHARD_MAX_LEAVES
                or totals[2] + rule.missing > SHARD_MAX_MISSING or len(grown) > SHARD_MAX_PROPERTIES)
        if over and shards[-1]:
            shards.append([])
            totals = [0, 0, 0]
            grown = set(rule.reads)
        shards[-1].append(rule)
        totals = [totals[0] + rule.paths, totals[1] + rule.leaves, totals[2] + rule.missing]
        reads = grown
    return [make_shard(group) for group in shards if group]


def make_shard(rules: list[CompiledRule]) -> Shard:
    """A shard of rules of one trigger: the ruleset definition names each rule by its id."""
    definition = durable_json({rule.id: {"all": [{"m": rule.condition}]} for rule in rules})
    reads = tuple(sorted({name for rule in rules for name in rule.reads}))
    key = hashlib.sha256(definition.encode()).hexdigest()[:16]
    return Shard(trigger=rules[0].trigger, rules=tuple(rules), reads=reads, definition=definition, key=key)
