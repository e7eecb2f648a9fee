"""Fuzzing the rule-file parser: random text, mutated shipped rules and well-shaped rules with wrong values.

Whatever a marketer saves, ``load_rules`` answers with ``file:line: problem`` and never raises, and a
runtime that reloads a broken directory keeps answering with the last good rules.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from engine.rules import load_rules
from engine.rules.context import FestivalCalendar, vocabulary
from tests.helpers.fuzz import fuzz_settings
from tests.helpers.rules import SHIPPED, context, runtime, write_rules

pytestmark = pytest.mark.fuzz

FILE = "fuzzed.yaml"
PROBLEM = re.compile(r"^(?P<file>[^\n]+?):(?P<line>\d+): (?:warning: )?\S")
SHIPPED_RULES = sorted(p.read_text(encoding="utf-8") for p in SHIPPED.glob("*.yaml")
                       if p.name not in ("coupons.yaml", "festivals.yaml"))
FEATURES = sorted(vocabulary(FestivalCalendar({"mid_autumn": []})).features)

# Scalars of every YAML kind, the awkward ones included.
junk = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**30), 10**30), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40), st.dates(min_value=date(1, 1, 1)), st.just("1 per 0d"), st.just("-3 per 7d"),
    st.just("∞"), st.just("\u202e\u0000"), st.just("x" * 5000),
)
anything = st.recursive(junk, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.text(max_size=12), inner, max_size=4), max_leaves=20)


@st.composite
def condition_text(draw: st.DrawFn) -> str:
    """A condition that looks like one: feature, operator, value; sometimes joined, negated or mistyped."""
    atoms = []
    for _ in range(draw(st.integers(1, 3))):
        feature = draw(st.sampled_from(FEATURES) | st.text(min_size=1, max_size=15))
        operator = draw(st.sampled_from([">=", ">", "<", "<=", "==", "!=", "in", "not in", "contains", "between",
                                         "is", "=", "=>", ""]))
        value = draw(st.one_of(st.integers(-(10**20), 10**20).map(str), st.floats().map(str),
                               st.sampled_from(["[silver, gold]", "[]", "[platinum]", "10 and 5", "5 and 10",
                                                "true", "null", "'x'", "(", "]", "dairy"]),
                               st.text(max_size=15)))
        atom = f"{feature} {operator} {value}".strip()
        atoms.append(f"not {atom}" if draw(st.booleans()) else atom)
    return draw(st.sampled_from([" and ", " or ", " AND "])).join(atoms)


@st.composite
def rule_with_wrong_values(draw: st.DrawFn) -> str:
    """The YAML of a rule with every key in place, some of them holding values of the wrong kind or range."""
    def field(good):
        return draw(st.one_of(good, anything) if draw(st.booleans()) else good)

    rule = {
        "id": field(st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True)),
        "name": field(st.text(min_size=1, max_size=30)),
        "trigger": field(st.sampled_from(["checkout", "schedule.daily", "event.purchase", "event.register",
                                          "event.teleport", "checkout "])),
        "when": field(st.one_of(condition_text(), st.lists(condition_text(), max_size=3).map(lambda c: {"all": c}),
                                st.lists(condition_text(), max_size=3).map(lambda c: {"any": c}))),
        "then": field(st.lists(st.one_of(
            st.fixed_dictionaries({"issue_coupon": st.fixed_dictionaries(
                {"template": st.sampled_from(["PCT20", "M200_50", "NOPE", ""]),
                 "percent_off": st.one_of(st.integers(-50, 150), st.floats(allow_nan=True))})}),
            st.fixed_dictionaries({"recommend": st.fixed_dictionaries(
                {"categories": st.lists(st.text(max_size=8), max_size=2), "k": st.integers(-3, 10**6)})}),
            st.fixed_dictionaries({"tag": st.text(max_size=10)}),
            anything), max_size=3)),
        "limits": field(st.fixed_dictionaries({
            "per_member": st.sampled_from(["1 per 60d", "0 per 1d", "1 ever", "per 7d", "2 per -1d", "1 per 10y"]),
            "budget": st.fixed_dictionaries({"coupons": st.integers(-5, 10**12),
                                             "amount": st.floats(allow_nan=True, allow_infinity=True)}),
        })),
        "priority": field(st.integers(-(10**6), 10**6)),
        "holdout": field(st.floats(-1, 2)),
        "active": field(st.fixed_dictionaries({"from": st.dates(), "to": st.dates()})),
        "examples": field(st.lists(st.fixed_dictionaries({"given": st.dictionaries(
            st.sampled_from(FEATURES), junk, max_size=3), "fires": st.booleans()}), max_size=2)),
    }
    return yaml.safe_dump(rule, allow_unicode=True, sort_keys=False)


@st.composite
def mutated_shipped_rule(draw: st.DrawFn) -> str:
    """A shipped rule file with a few lines deleted, duplicated, re-indented, cut or overwritten."""
    lines = draw(st.sampled_from(SHIPPED_RULES)).splitlines()
    for _ in range(draw(st.integers(1, 4))):
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        kind = draw(st.sampled_from(["delete", "duplicate", "indent", "cut", "value", "insert"]))
        if kind == "delete":
            del lines[i]
        elif kind == "duplicate":
            lines.insert(i, lines[i])
        elif kind == "indent":
            lines[i] = " " * draw(st.integers(0, 6)) + lines[i].lstrip()
        elif kind == "cut":
            lines[i] = lines[i][:draw(st.integers(0, len(lines[i])))]
        elif kind == "value" and ":" in lines[i]:
            key = lines[i].split(":", 1)[0]
            lines[i] = f"{key}: {yaml.safe_dump(draw(junk), allow_unicode=True).splitlines()[0]}"
        else:
            lines.insert(i, draw(st.text(max_size=30).filter(lambda t: "\n" not in t and "\r" not in t)))
    return "\n".join(lines) + "\n"


def yamlish_text() -> st.SearchStrategy[str]:
    """Random text, half of it from YAML's punctuation so the parser gets past the first character."""
    return st.text(max_size=400) | st.text(alphabet=list(":-[]{}#&*!|>%@,'\"? \n\t\\abc019.~"), max_size=400)


def check_problems(directory: Path, text: str) -> list[str]:
    """Load the directory; every problem must be ``file:line: message`` about the fuzzed file, within it."""
    loaded = load_rules(directory)
    lines = max(1, text.count("\n") + 1)
    for problem in loaded.problems:
        shown = str(problem)
        match = PROBLEM.match(shown)
        assert match, shown
        assert match["file"].endswith(FILE), shown
        assert 1 <= int(match["line"]) <= lines + 1, (shown, text)
    return [str(p) for p in loaded.errors]


@pytest.fixture
def fuzz_dir(tmp_path: Path) -> Path:
    return write_rules(tmp_path / "rules", {})


@pytest.mark.parametrize("texts", [yamlish_text(), mutated_shipped_rule(), rule_with_wrong_values()],
                         ids=["random-text", "mutated-shipped", "wrong-values"])
def test_any_rule_file_gets_file_line_problems_and_never_an_exception(fuzz_dir: Path, texts) -> None:
    @given(text=texts)
    @fuzz_settings(100)
    def check(text: str) -> None:
        (fuzz_dir / FILE).write_text(text, encoding="utf-8")
        check_problems(fuzz_dir, text)

    check()


def test_wrong_values_are_caught(fuzz_dir: Path) -> None:
    """The wrong-values strategy is not vacuous: a plain wrong value gives an error on its own line."""
    text = yaml.safe_dump({"id": "x", "name": "x", "trigger": "checkout", "when": "basket_total > 1",
                           "then": [{"tag": "t"}], "holdout": 1.5}, sort_keys=False)
    (fuzz_dir / FILE).write_text(text, encoding="utf-8")
    errors = check_problems(fuzz_dir, text)
    assert len(errors) == 1 and f"{FILE}:7: " in errors[0] and "holdout" in errors[0]


def test_a_runtime_keeps_its_last_good_rules_whatever_is_saved(fuzz_dir: Path, member) -> None:
    (fuzz_dir / FILE).write_text(SHIPPED.joinpath("basket_completion.yaml").read_text(encoding="utf-8"),
                                 encoding="utf-8")
    rt = runtime(fuzz_dir)
    good = rt.version
    basket = context(basket=[{"sku": "m", "price": 5.0, "category": "dairy"}])
    features = {**member, "favourite_categories": ["bakery"]}
    assert [f.rule_id for f in rt.evaluate("checkout", features, basket).firings] == ["milk-needs-bread"]
    broken = 0

    @given(text=yamlish_text() | mutated_shipped_rule() | rule_with_wrong_values())
    @fuzz_settings(50)
    def check(text: str) -> None:
        nonlocal broken
        (fuzz_dir / FILE).write_text(text, encoding="utf-8")
        if not check_problems(fuzz_dir, text):
            return  # a valid file would go live: that is reload's own specification
        broken += 1
        report = rt.reload()
        assert not report.ok and report.version == good and report.errors
        assert [f.rule_id for f in rt.evaluate("checkout", features, basket).firings] == ["milk-needs-bread"]

    check()
    assert broken > 0


def test_a_control_character_is_a_problem_at_its_line(fuzz_dir: Path) -> None:
    """Found by the fuzzing above: PyYAML refused the text before parsing and load_rules raised."""
    text = "id: x\nname: x\x08\ntrigger: checkout\n"
    (fuzz_dir / FILE).write_text(text, encoding="utf-8")
    errors = check_problems(fuzz_dir, text)
    assert len(errors) == 1
    assert errors[0].endswith(f"{FILE}:2: YAML: the character U+0008 is not allowed (a control character?)")
