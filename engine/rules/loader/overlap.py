"""Checks across rules: exclusive rules of one trigger and equal priority that can fire together."""

from __future__ import annotations

from collections.abc import Mapping

from engine.features import FeatureDef
from engine.rules.conditions import Node, dnf
from engine.rules.conditions import conflict as term_conflict
from engine.rules.loader.loaded import CheckedRule, Problem


def exclusive_conflicts(rules: list[CheckedRule], features: Mapping[str, FeatureDef]) -> list[Problem]:
    """Two exclusive rules of one trigger and equal priority that can fire together: which applies is undefined."""
    found = []
    exclusive = [r for r in rules if r.rule.exclusive]
    for i, first in enumerate(exclusive):
        for second in exclusive[i + 1:]:
            if first.rule.trigger != second.rule.trigger or first.rule.priority != second.rule.priority:
                continue
            if _may_overlap(first.condition, second.condition, features):
                found.append(Problem(
                    second.file, second.line_of("exclusive"),
                    f"rule {second.id!r} overlaps rule {first.id!r} ({first.file}:{first.line}): both are exclusive "
                    f"with priority {second.rule.priority}, so which one applies is undefined; "
                    "give one a higher priority or make their conditions exclusive",
                    rule_id=second.id))
    return found


def _may_overlap(a: Node, b: Node, features: Mapping[str, FeatureDef]) -> bool:
    terms_a, terms_b = dnf(a), dnf(b)
    if terms_a is None or terms_b is None:
        return True  # too many alternatives to tell: assume they can
    return any(term_conflict(x + y, features) is None for x in terms_a for y in terms_b)
