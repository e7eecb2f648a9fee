"""The condition language of rule files: parsing, type checking, negation normal form, satisfiability.

A condition is written as text (``recency_days >= 30``, ``tier in [silver, gold]``,
``basket_categories contains dairy``, ``days_to_birthday between 0 and 7``, ``not opted_out``,
``churn_probability is null``, combined with ``and``, ``or``, ``not`` and parentheses) or as the
YAML structures ``all: [...]``, ``any: [...]``, ``not: ...`` around such texts.

Semantics (the same in durable_rules, the reference evaluator and the vectorised evaluator):
a comparison on a missing value (a member who never bought has no ``recency_days``) is false,
and so is its negation: ``not recency_days < 30`` does not hold for such a member either. Only
``is null`` / ``is not null`` test for a missing value. This is Kleene's three-valued logic with
"unknown" counted as "does not fire", which is what a marketer expects of "30 days without a visit".

Checked conditions are brought to negation normal form (``Not`` pushed down to the atoms by De
Morgan and by flipping each atom), the one form the compiler lowers and the analysis reasons on.

In four steps, a module each: ``syntax`` (texts parsed), ``checking`` (against the features, into
negation normal form), ``nodes`` (that form) and ``analysis`` (paths, cost, satisfiability, overlap).
"""

from engine.rules.conditions.analysis import can_hold, complexity, conflict, dnf, paths, why_impossible
from engine.rules.conditions.checking import (
    MAX_ABS_NUMBER,
    MAX_LIST_VALUES,
    MAX_TEXT_LENGTH,
    NUMERIC_KINDS,
    Vocabulary,
    check,
)
from engine.rules.conditions.nodes import (
    ATOM_OPS,
    NEGATED,
    And,
    Atom,
    Node,
    Or,
    atoms,
    conjoin,
    disjoin,
    negate,
    render,
)
from engine.rules.conditions.syntax import (
    AllOf,
    AnyOf,
    Comparison,
    ConditionError,
    NotOf,
    Syntax,
    Value,
    parse_condition,
    suggest,
)

__all__ = [
    "ATOM_OPS", "MAX_ABS_NUMBER", "MAX_LIST_VALUES", "MAX_TEXT_LENGTH", "NEGATED", "NUMERIC_KINDS", "AllOf", "And",
    "AnyOf", "Atom", "Comparison", "ConditionError", "Node", "NotOf", "Or", "Syntax", "Value", "Vocabulary", "atoms",
    "can_hold", "check", "complexity", "conflict", "conjoin", "disjoin", "dnf", "negate", "paths", "parse_condition",
    "render", "suggest", "why_impossible",
]
