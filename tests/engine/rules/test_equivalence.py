"""durable_rules, the reference evaluator and the vectorised evaluator agree on every compiled condition.

Random conditions over every kind of feature (whole numbers, numbers, text, categories, true/false,
lists; values missing or present; numbers that need an exponent; text with quotes, backslashes and
Chinese), random members: the three evaluators must give identical answers. The full pipeline
(rule text -> loader -> compiler -> shards -> runtime) is checked against the reference too.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from engine.features import FeatureDef
from engine.rules.compiler import durable_json, lower
from engine.rules.conditions import And, Atom, Node, Or, can_hold, negate, paths
from engine.rules.context import LIST_LENGTH_SUFFIX
from engine.rules.reference import evaluate, predicate
from engine.rules.runtime import DurableRuleset, fact_json
from engine.rules.vectorised import FactColumns
from tests.helpers.rules import context, runtime, write_rules

FEATURES = {
    "n": FeatureDef("n", "int", "", nullable=True),
    "x": FeatureDef("x", "float", "", nullable=True),
    "s": FeatureDef("s", "str", "", nullable=True),
    "c": FeatureDef("c", "str", "", values=("gold", "silver", "中")),
    "b": FeatureDef("b", "bool", "", nullable=True),
    "l": FeatureDef("l", "list[str]", "", nullable=True),
}
NUMBERS = [-2, 0, 1, 2, 3, 2.5, 0.1, 1e-05, -3.5e-07, 1e16, 123456.789]
TEXTS = ["a", "b", "中秋", 'q"x', "back\\slash", "", "a b"]
ANCHOR = {"_t": "t"}

_counter = itertools.count()
# NBO_PROPERTY_EXAMPLES=5000 for a long hunt; the default keeps the suite quick.
EXAMPLES = int(os.environ.get("NBO_PROPERTY_EXAMPLES", "120"))


def _distinct(values: list) -> list:
    out: list = []
    for v in values:
        if all(v != o for o in out):
            out.append(v)
    return out


@st.composite
def atoms(draw) -> Atom:
    name = draw(st.sampled_from(sorted(FEATURES)))
    kind = FEATURES[name].kind
    if kind in ("int", "float"):
        op = draw(st.sampled_from(["eq", "ne", "lt", "le", "gt", "ge", "in", "not_in", "inside", "outside",
                                   "exists", "missing"]))
        pool = NUMBERS
    elif kind == "bool":
        op = draw(st.sampled_from(["eq", "ne", "exists", "missing"]))
        pool = [True, False]
    elif kind == "list[str]":
        op = draw(st.sampled_from(["contains_any", "contains_none", "exists", "missing"]))
        pool = TEXTS
    else:
        op = draw(st.sampled_from(["eq", "ne", "in", "not_in", "exists", "missing"]))
        pool = list(FEATURES[name].values) or TEXTS
    if op in ("exists", "missing"):
        values: tuple = ()
    elif op in ("in", "not_in", "contains_any", "contains_none"):
        values = tuple(_distinct(draw(st.lists(st.sampled_from(pool), min_size=1, max_size=4))))
    elif op in ("inside", "outside"):
        values = tuple(sorted(draw(st.lists(st.sampled_from(pool), min_size=2, max_size=2))))
    else:
        values = (draw(st.sampled_from(pool)),)
    return Atom(name, op, values, f"{name} {op} {values}")


def nodes() -> st.SearchStrategy[Node]:
    return st.recursive(
        atoms(),
        lambda inner: st.one_of(
            st.lists(inner, min_size=2, max_size=3).map(lambda items: And(tuple(items))),
            st.lists(inner, min_size=2, max_size=3).map(lambda items: Or(tuple(items))),
            inner.map(negate),
        ),
        max_leaves=6,
    )


@st.composite
def facts(draw) -> dict[str, object]:
    fact: dict[str, object] = dict(ANCHOR)
    for name, definition in FEATURES.items():
        if definition.nullable and draw(st.booleans()) and draw(st.booleans()):
            continue  # missing (a quarter of the time)
        kind = definition.kind
        if kind == "int":
            value: object = draw(st.integers(-3, 4))
        elif kind == "float":
            value = draw(st.sampled_from([*map(float, NUMBERS), 2.0, 2.4999999999999996]))
        elif kind == "bool":
            value = draw(st.booleans())
        elif kind == "list[str]":
            value = draw(st.lists(st.sampled_from(TEXTS), max_size=3))
            fact[name + LIST_LENGTH_SUFFIX] = len(value)
        else:
            value = draw(st.sampled_from(list(definition.values) or TEXTS))
        fact[name] = value
    return fact


def _columns(rows: list[dict[str, object]]) -> FactColumns:
    columns = FactColumns(len(rows))
    columns.add_constant("_t", "t")
    for name, definition in FEATURES.items():
        values = [row.get(name) for row in rows]
        if definition.kind == "list[str]":
            columns.add_lists(name, values, name + LIST_LENGTH_SUFFIX)
        else:
            columns.add(name, values)
    return columns


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conditions=st.lists(nodes(), min_size=1, max_size=4), members=st.lists(facts(), min_size=1, max_size=8))
def test_durable_rules_reference_and_vectorised_agree_on_random_rules_and_members(conditions, members) -> None:
    assume(all(paths(c) <= 16 for c in conditions) and sum(paths(c) for c in conditions) <= 40)
    compiled = {f"c{i}": {"$and": [ANCHOR, lower(node)]} for i, node in enumerate(conditions)}
    ruleset = DurableRuleset(f"eq-{next(_counter)}", durable_json({k: {"all": [{"m": v}]} for k, v in compiled.items()}))
    try:
        columns = _columns(members)
        masks = {name: columns.mask(condition) for name, condition in compiled.items()}
        names = sorted({key for member in members for key in member})
        for row, member in enumerate(members):
            fired = set(ruleset.fire(fact_json(member, names, next(_counter))))
            reference = {name for name, condition in compiled.items() if evaluate(condition, member)}
            vectorised = {name for name, mask in masks.items() if mask[row]}
            assert fired == reference == vectorised, (member, compiled)
        assert ruleset.facts() == []
    finally:
        ruleset.close()
    # The analysis is sound: a condition it calls impossible holds for no member.
    for node, condition in zip(conditions, compiled.values()):
        if can_hold(node, FEATURES) is False:
            assert not any(predicate(condition)(member) for member in members)


# --- the full pipeline ------------------------------------------------------------------------------

TEXT_ATOMS = [
    "recency_days >= 30", "recency_days < 10", "recency_days is null", "tier in [gold, diamond]", "tier == silver",
    "tier != regular", "month_spend between 100 and 300", "churn_probability >= 0.8", "not opted_out",
    "channel_sms", "basket_categories contains dairy", "basket_categories contains any [bakery, snacks]",
    "favourite_categories contains bakery", "basket_total > 50", "segment in [lapsed, at_risk]",
    "days_to_birthday between 0 and 7", "day_of_week in [sat, sun]", "hour < 12", "store == S001",
    "basket_skus contains SKU00001", "points_expiring_30d >= 100", "frequency_90d > 2",
]


@st.composite
def condition_texts(draw) -> str:
    parts = draw(st.lists(st.sampled_from(TEXT_ATOMS), min_size=1, max_size=3, unique=True))
    joiner = draw(st.sampled_from([" and ", " or "]))
    text = joiner.join(f"({p})" for p in parts)
    return f"not ({text})" if draw(st.booleans()) and len(parts) == 1 else text


@st.composite
def members_for_pipeline(draw) -> tuple[dict[str, object], dict]:
    features = {
        "registered": True, "recency_days": draw(st.one_of(st.none(), st.integers(0, 120))),
        "tier": draw(st.sampled_from(["regular", "silver", "gold", "diamond"])),
        "month_spend": draw(st.sampled_from([0.0, 99.99, 100.0, 250.5, 300.0, 1e-05])),
        "churn_probability": draw(st.one_of(st.none(), st.sampled_from([0.1, 0.8, 0.79999, 0.95]))),
        "opted_out": draw(st.booleans()), "channel_sms": draw(st.booleans()),
        "favourite_categories": draw(st.lists(st.sampled_from(["bakery", "dairy", "snacks"]), max_size=3, unique=True)),
        "segment": draw(st.sampled_from(["new", "lapsed", "at_risk", "loyal"])),
        "days_to_birthday": draw(st.one_of(st.none(), st.integers(0, 365))),
        "points_expiring_30d": draw(st.integers(0, 300)), "frequency_90d": draw(st.integers(0, 5)),
        "home_store": draw(st.sampled_from(["S001", "S002"])),
    }
    basket = draw(st.lists(st.tuples(st.sampled_from(["SKU00001", "SKU00002"]),
                                     st.sampled_from(["dairy", "bakery", "snacks"]),
                                     st.sampled_from([1.0, 9.9, 30.0])), max_size=4))
    return features, {"basket": [{"sku": s, "category": c, "price": p} for s, c, p in basket],
                      "hour": draw(st.integers(0, 23)), "day": draw(st.integers(1, 7))}


@settings(max_examples=max(EXAMPLES // 5, 25), deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(texts=st.lists(condition_texts(), min_size=1, max_size=12), members=st.lists(members_for_pipeline(), max_size=6))
def test_full_pipeline_agrees_with_the_reference_evaluator(tmp_path_factory, texts, members) -> None:
    directory = tmp_path_factory.mktemp("rules")
    rules = [f"- id: r{i}\n  name: r{i}\n  trigger: checkout\n  when: {text!r}\n  then: [{{tag: t}}]\n"
             for i, text in enumerate(texts)]
    write_rules(directory, {"random.yaml": "".join(rules)})
    from engine.rules import load_rules

    loaded = load_rules(directory)
    assume(loaded.ok)  # some random combinations can never hold: the loader rightly refuses them
    rt = runtime(directory)
    compiled = rt.compiled
    for features, moment in members:
        from datetime import datetime

        at = datetime(2026, 6, moment["day"], moment["hour"], 30)
        fact = rt.fact("checkout", features, context(at=at, basket=moment["basket"], store_id=None, channel="pos"))
        fired = {f.rule_id for f in rt.evaluate_fact("checkout", fact, "M1").firings}
        expected = {rule.id for rule in compiled.rules if evaluate(rule.condition, fact)}
        assert fired == expected, (fact, texts)


def test_more_rules_matching_at_once_than_durable_rules_stack_holds_all_fire(rules_dir) -> None:
    # durable_rules' evaluation stack holds 64 matching paths: 300 matching rules need several shards.
    texts = [f"- id: r{i:03d}\n  name: r{i}\n  trigger: checkout\n  when: basket_total >= {i % 7}\n  then: [{{tag: t}}]\n"
             for i in range(300)]
    rt = runtime(rules_dir({"many.yaml": "".join(texts)}))
    evaluation = rt.evaluate("checkout", {"registered": True}, context(basket=[{"sku": "A", "price": 10.0}]))
    assert len(evaluation.firings) == 300
    assert len(rt.compiled.shards["checkout"]) >= 300 // 40


def test_long_in_lists_stay_inside_durable_rules_limits(rules_dir) -> None:
    # More than 512 children under one node hang durable_rules: lists are capped and shards bounded.
    skus = ", ".join(f"S{i:04d}" for i in range(140))
    texts = [f"- id: r{i}\n  name: r{i}\n  trigger: checkout\n  when: 'basket_skus contains any [{skus}] and store in [{skus}]'\n"
             f"  then: [{{tag: t}}]\n" for i in range(4)]
    rt = runtime(rules_dir({"lists.yaml": "".join(texts)}))
    evaluation = rt.evaluate("checkout", {}, context(store_id="S0139", basket=[{"sku": "S0007", "price": 1.0}]))
    assert len(rt.compiled.shards["checkout"]) == 4  # 283 tests a rule, at most 400 a shard
    assert [f.rule_id for f in evaluation.firings] == ["r0", "r1", "r2", "r3"]


def test_paths_are_counted_for_exclusive_branches_once() -> None:
    eq = Atom("n", "in", (1, 2, 3), "n in [1, 2, 3]")
    gt = Atom("n", "gt", (0,), "n > 0")
    assert paths(eq) == 1
    assert paths(Or((eq, gt))) == 2
    assert paths(And((Or((eq, gt)), Or((gt, gt))))) == 4


def test_the_reference_evaluator_reads_what_durable_rules_reads(tmp_path: Path) -> None:
    # A hand-checked case of each measured durable_rules behaviour.
    fact = {"_t": "t", "n": 3, "l": [], "l__n": 0, "s": "a"}
    assert evaluate({"$neq": {"missing": 1}}, fact) is False  # a test on a missing property is false
    assert evaluate({"$nex": {"missing": 1}}, fact) is True
    assert evaluate({"$iall": {"l": {"$neq": {"$i": "x"}}}}, fact) is False  # $iall is false on []
    assert evaluate({"$or": [{"l__n": 0}, {"$iall": {"l": {"$neq": {"$i": "x"}}}}]}, fact) is True
