"""Condition texts as written: the tokenizer, the recursive-descent parser and its unchecked syntax.

``parse_condition("recency_days >= 30 and tier in [silver, gold]")`` gives ``AllOf`` of two
``Comparison``s; nothing is known yet about the features named (``checking`` does that).
``ConditionError`` and ``suggest`` are the package's one way to say what is wrong.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass


class ConditionError(ValueError):
    """A condition that cannot be used; the message says what is wrong and how to fix it."""


def suggest(name: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest known name, or nothing."""
    known = list(known)
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if not close:  # 'saturday' for 'sat': an abbreviation is a prefix
        close = sorted((k for k in known if len(k) >= 3 and name.lower().startswith(k.lower())), key=len)[-1:]
    return f" (did you mean {close[0]!r}?)" if close else ""


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
