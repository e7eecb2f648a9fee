"""What loading a rules directory gives: the reserved files, valid rules, invalid ones, every problem."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.rules.conditions import Node
from engine.rules.context import FestivalCalendar
from engine.rules.loader.yaml_lines import Path_, line_for
from engine.rules.schema import CouponTemplate, Rule

COUPONS_FILE = "coupons.yaml"
FESTIVALS_FILE = "festivals.yaml"
RESERVED_FILES = frozenset({COUPONS_FILE, FESTIVALS_FILE})


@dataclass(frozen=True, order=True)
class Problem:
    """One finding: ``file:line: message``; an error keeps the directory from going live, a warning doesn't."""

    file: str
    line: int
    message: str
    severity: str = "error"
    rule_id: str | None = None

    def __str__(self) -> str:
        prefix = "" if self.severity == "error" else f"{self.severity}: "
        return f"{self.file}:{self.line}: {prefix}{self.message}"


@dataclass(frozen=True)
class Part:
    """One condition of a rule as written (or implicit, e.g. consent), checked and in negation normal form."""

    text: str
    node: Node
    line: int
    implicit: bool = False


@dataclass(frozen=True)
class CheckedRule:
    """A valid rule with its source location, its checked conditions and what one firing costs."""

    rule: Rule
    file: str
    line: int
    parts: tuple[Part, ...]
    combine: str  # "all" or "any": how the written parts combine
    implicit: tuple[Part, ...]
    condition: Node
    """The whole condition (written parts, then scope, active window and consent), without the trigger."""
    coupons: int
    face_value: float
    lines: Mapping[Path_, int] = field(repr=False, default_factory=dict)

    @property
    def id(self) -> str:
        """The rule id."""
        return self.rule.id

    def line_of(self, *path: Any) -> int:
        """The line of a node of this rule's YAML (the closest known ancestor)."""
        return line_for(self.lines, path, self.line)


@dataclass(frozen=True)
class InvalidRule:
    """A rule that did not pass validation (its id, if it could be read, and its problems)."""

    id: str | None
    file: str
    line: int
    trigger: str | None
    problems: tuple[Problem, ...]


@dataclass
class LoadedRules:
    """What a rules directory holds: valid rules, coupon templates, calendar, and every problem found."""

    directory: Path
    rules: list[CheckedRule]
    templates: dict[str, CouponTemplate]
    calendar: FestivalCalendar
    problems: list[Problem]
    invalid: list[InvalidRule]
    files: dict[str, str] = field(default_factory=dict)
    """file name -> its text, as loaded (the compiled version hashes it)."""

    @property
    def errors(self) -> list[Problem]:
        """Problems that keep the directory from going live."""
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        """Problems worth fixing that don't block a reload."""
        return [p for p in self.problems if p.severity != "error"]

    @property
    def ok(self) -> bool:
        """No errors: every rule file is valid and may go live."""
        return not self.errors

    def rule(self, rule_id: str) -> CheckedRule:
        """The valid rule with this id (KeyError if there is none)."""
        for checked in self.rules:
            if checked.id == rule_id:
                return checked
        raise KeyError(rule_id)
