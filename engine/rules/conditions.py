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
"""

from __future__ import annotations

import difflib
import itertools
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from engine.features import FeatureDef

MAX_LIST_VALUES = 256
"""Values in one ``in`` / ``contains any`` list; durable_rules hangs past 512 branches under one node."""
MAX_ABS_NUMBER = 1e15
MAX_TEXT_LENGTH = 128
NUMERIC_KINDS = frozenset({"int", "float"})

# --- errors -----------------------------------------------------------------------------------


class ConditionError(ValueError):
    """A condition that cannot be used; the message says what is wrong and how to fix it."""


def suggest(name: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest known name, or nothing."""
    known = list(known)
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if not close:  # 'saturday' for 'sat': an abbreviation is a prefix
        close = sorted((k for k in known if len(k) >= 3 and name.lower().startswith(k.lower())), key=len)[-1:]
    return f" (did you mean {close[0]!r}?)" if close else ""


# --- parsed (unchecked) syntax ----------------------------------------------------------------


@dataclass(frozen=True)
class Value:
    """A literal as written: ``raw`` is its text, ``kind`` number | text | word | bool."""

    raw: str
    kind: str
    value: object


@dataclass(frozen=True)
class Comparison:
    """``feature op operand`` as parsed; ``op`` is one of the keywords below, ``text`` its source."""

    feature: str
    op: str  # == != < <= > >= in between contains_any contains_all is_null not_null truth
    operands: tuple[Value, ...]
    text: str


@dataclass(frozen=True)
class AllOf:
    """Every item holds (``and``, ``all:``)."""

    items: tuple[Syntax, ...]
    text: str = ""


@dataclass(frozen=True)
class AnyOf:
    """Some item holds (``or``, ``any:``)."""

    items: tuple[Syntax, ...]
    text: str = ""


@dataclass(frozen=True)
class NotOf:
    """The item does not hold (``not``)."""

    item: Syntax
    text: str = ""


Syntax = Comparison | AllOf | AnyOf | NotOf

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<num>-?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)(?![\w.])
    | (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
    | (?P<op>==|!=|<=|>=|<|>|=)
    | (?P<punct>[\[\](),])
    | (?P<word>[^\s\[\](),'"=!<>]+)
    )""",
    re.VERBOSE,
)
_KEYWORDS = frozenset({"and", "or", "not", "in", "between", "contains", "any", "all", "is", "null", "true", "false"})


@dataclass
class _Token:
    kind: str
    text: str
    start: int


def _tokenize(text: str) -> list[_Token]:
    tokens = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise ConditionError(f"cannot read {text[pos:].strip()[:20]!r} in {text!r}")
        kind = match.lastgroup or ""
        token_text = match.group(kind)
        tokens.append(_Token(kind, token_text, match.start(kind)))
        pos = match.end()
    return tokens


class _Parser:
    """Recursive descent: or > and > not > comparison; ``between a and b`` binds tighter than ``and``."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0

    def parse(self) -> Syntax:
        """The whole text as one condition (an error if anything is left over)."""
        if not self.tokens:
            raise ConditionError("empty condition")
        node = self._or()
        if self.pos < len(self.tokens):
            token = self.tokens[self.pos]
            raise ConditionError(f"unexpected {token.text!r} in {self.text!r}")
        return node

    def _peek(self, offset: int = 0) -> _Token | None:
        index = self.pos + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def _is_word(self, word: str, offset: int = 0) -> bool:
        token = self._peek(offset)
        return token is not None and token.kind == "word" and token.text.lower() == word

    def _take(self) -> _Token:
        token = self._peek()
        if token is None:
            raise ConditionError(f"{self.text!r} ends too early")
        self.pos += 1
        return token

    def _expect(self, text: str) -> None:
        if self._peek() is None:
            raise ConditionError(f"{self.text!r} ends too early: expected {text!r}")
        token = self._take()
        if token.text.lower() != text:
            raise ConditionError(f"expected {text!r} but found {token.text!r} in {self.text!r}")

    def _span(self, start_index: int) -> str:
        first = self.tokens[start_index]
        last = self.tokens[self.pos - 1]
        return self.text[first.start:last.start + len(last.text)].strip()

    def _or(self) -> Syntax:
        start = self.pos
        items = [self._and()]
        while self._is_word("or"):
            self.pos += 1
            items.append(self._and())
        return items[0] if len(items) == 1 else AnyOf(tuple(items), self._span(start))

    def _and(self) -> Syntax:
        start = self.pos
        items = [self._not()]
        while self._is_word("and"):
            self.pos += 1
            items.append(self._not())
        return items[0] if len(items) == 1 else AllOf(tuple(items), self._span(start))

    def _not(self) -> Syntax:
        if self._is_word("not"):
            start = self.pos
            self.pos += 1
            item = self._not()
            return NotOf(item, self._span(start))
        return self._primary()

    def _primary(self) -> Syntax:
        token = self._peek()
        if token is not None and token.text == "(":
            self.pos += 1
            node = self._or()
            self._expect(")")
            return node
        return self._comparison()

    def _comparison(self) -> Syntax:
        start = self.pos
        name = self._take()
        if name.kind != "word" or name.text.lower() in _KEYWORDS:
            raise ConditionError(f"expected a feature name but found {name.text!r} in {self.text!r}")
        feature = name.text
        token = self._peek()
        if token is None or (token.kind == "word" and token.text.lower() in ("and", "or")) or token.text == ")":
            return Comparison(feature, "truth", (), self._span(start))
        if token.kind == "op":
            self.pos += 1
            op = "==" if token.text == "=" else token.text
            return Comparison(feature, op, (self._value(),), self._span(start))
        word = token.text.lower()
        negated = False
        if word == "not" and self._peek(1) is not None and self._peek(1).text.lower() in ("in", "between", "contains"):
            negated = True
            self.pos += 1
            word = self._peek().text.lower()
        if word == "in":
            self.pos += 1
            node: Syntax = Comparison(feature, "in", self._list(), "")
        elif word == "between":
            self.pos += 1
            low = self._value()
            if self._peek() is not None and self._peek().text == ",":
                self.pos += 1
            else:
                self._expect("and")
            node = Comparison(feature, "between", (low, self._value()), "")
        elif word == "contains":
            self.pos += 1
            if self._is_word("any") or self._is_word("all"):
                mode = self._take().text.lower()
                self._optional_of()
                node = Comparison(feature, f"contains_{mode}", self._list(), "")
            else:
                node = Comparison(feature, "contains_any", (self._value(),), "")
        elif word == "is":
            self.pos += 1
            if self._is_word("not"):
                self.pos += 1
                self._expect("null")
                node = Comparison(feature, "not_null", (), "")
            else:
                self._expect("null")
                node = Comparison(feature, "is_null", (), "")
        else:
            raise ConditionError(
                f"after {feature!r} expected an operator (== != < <= > >= in between contains is) "
                f"but found {token.text!r} in {self.text!r}"
            )
        text = self._span(start)
        node = Comparison(node.feature, node.op, node.operands, text)
        return NotOf(node, text) if negated else node

    def _optional_of(self) -> None:
        if self._is_word("of"):
            self.pos += 1

    def _list(self) -> tuple[Value, ...]:
        token = self._peek()
        if token is None or token.text != "[":
            # A single value is accepted where a list is expected: `tier in gold`.
            return (self._value(),)
        self.pos += 1
        values = []
        while True:
            values.append(self._value())
            token = self._take()
            if token.text == "]":
                return tuple(values)
            if token.text != ",":
                raise ConditionError(f"expected ',' or ']' but found {token.text!r} in {self.text!r}")

    def _value(self) -> Value:
        token = self._take()
        if token.kind == "num":
            number = float(token.text)
            if re.fullmatch(r"-?\d+", token.text):
                return Value(token.text, "number", int(token.text))
            return Value(token.text, "number", number)
        if token.kind == "str":
            inner = token.text[1:-1]
            return Value(token.text, "text", re.sub(r"\\(.)", r"\1", inner))
        if token.kind == "word":
            lowered = token.text.lower()
            if lowered in ("true", "false"):
                return Value(token.text, "bool", lowered == "true")
            if lowered in _KEYWORDS:
                raise ConditionError(f"{token.text!r} is a keyword; quote it to use it as a value in {self.text!r}")
            return Value(token.text, "word", token.text)
        raise ConditionError(f"expected a value but found {token.text!r} in {self.text!r}")


def parse_condition(text: str) -> Syntax:
    """Parse one condition text; raises ``ConditionError`` with what could not be read."""
    return _Parser(text).parse()


# --- checked conditions in negation normal form ------------------------------------------------

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
_OP_NAMES = {"==": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}


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


# --- type checking -----------------------------------------------------------------------------


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


# --- analysis: paths, satisfiability, overlap -------------------------------------------------


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
