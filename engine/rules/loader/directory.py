"""Loading a rules directory: coupon templates and the festival calendar first, then every rule file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from engine.rules.context import FestivalCalendar, internal_features, vocabulary
from engine.rules.loader.checker import RuleChecker
from engine.rules.loader.loaded import (
    COUPONS_FILE,
    FESTIVALS_FILE,
    RESERVED_FILES,
    CheckedRule,
    InvalidRule,
    LoadedRules,
    Problem,
)
from engine.rules.loader.overlap import exclusive_conflicts
from engine.rules.loader.yaml_lines import Path_, YamlProblem, describe_error, line_for, read_yaml
from engine.rules.schema import CouponsFile, CouponTemplate, FestivalsFile


def load_rules(directory: Path, points_per_yuan: int = 100) -> LoadedRules:
    """Read and validate every file of a rules directory; never raises for bad content."""
    directory = Path(directory)
    problems: list[Problem] = []
    files: dict[str, str] = {}
    templates = _load_templates(directory, problems, files)
    calendar = _load_calendar(directory, problems, files)
    words = vocabulary(calendar)
    analysis_features = {**words.features, **internal_features()}
    checker = RuleChecker(words, analysis_features, templates, points_per_yuan)

    rules: list[CheckedRule] = []
    invalid: list[InvalidRule] = []
    seen: dict[str, CheckedRule | InvalidRule] = {}
    paths = sorted(p for p in directory.glob("*.y*ml") if p.is_file() and p.name not in RESERVED_FILES) \
        if directory.is_dir() else []
    if not directory.is_dir():
        problems.append(Problem(str(directory), 1, "the rules directory does not exist"))
    for path in paths:
        shown = _shown(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem(shown, 1, f"cannot read the file: {exc}"))
            invalid.append(InvalidRule(None, shown, 1, None, (problems[-1],)))
            continue
        files[path.name] = text
        try:
            data, lines = read_yaml(text)
        except YamlProblem as exc:
            problems.append(Problem(shown, exc.line, str(exc)))
            invalid.append(InvalidRule(None, shown, exc.line, None, (problems[-1],)))
            continue
        if data is None:
            problems.append(Problem(shown, 1, "the file is empty", severity="warning"))
            continue
        entries = [(data, (), lines.get((), 1))] if isinstance(data, dict) else (
            [(item, (i,), lines.get((i,), 1)) for i, item in enumerate(data)] if isinstance(data, list) else None)
        if entries is None:
            problems.append(Problem(shown, 1, "a rule file holds a rule (a mapping) or a list of rules"))
            continue
        for raw, prefix, line in entries:
            rule_lines = {key[len(prefix):]: value for key, value in lines.items() if key[:len(prefix)] == prefix}
            found, result = checker.check(raw, shown, line, rule_lines)
            problems.extend(found)
            rule_id = raw.get("id") if isinstance(raw, dict) and isinstance(raw.get("id"), str) else None
            if rule_id is not None and rule_id in seen:
                first = seen[rule_id]
                dup = Problem(shown, line_for(rule_lines, ("id",), line),
                              f"duplicate rule id {rule_id!r} (first in {first.file}:{first.line})", rule_id=rule_id)
                problems.append(dup)
                found = [*found, dup]
                result = None
            if result is None:
                trigger = raw.get("trigger") if isinstance(raw, dict) else None
                invalid_rule = InvalidRule(rule_id, shown, line, trigger if isinstance(trigger, str) else None,
                                           tuple(p for p in found if p.severity == "error"))
                invalid.append(invalid_rule)
                if rule_id is not None:
                    seen.setdefault(rule_id, invalid_rule)
            else:
                rules.append(result)
                seen[rule_id] = result
    conflicts = exclusive_conflicts(rules, analysis_features)
    problems.extend(conflicts)
    if conflicts:
        bad = {p.rule_id for p in conflicts}
        for checked in [r for r in rules if r.id in bad]:
            rules.remove(checked)
            invalid.append(InvalidRule(checked.id, checked.file, checked.line, checked.rule.trigger,
                                       tuple(p for p in conflicts if p.rule_id == checked.id)))
    problems.sort(key=lambda p: (p.file, p.line, p.message))
    return LoadedRules(directory=directory, rules=rules, templates=templates, calendar=calendar,
                       problems=problems, invalid=invalid, files=files)


def _shown(path: Path) -> str:
    """The path as problems show it: relative to the working directory when it can be."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _load_templates(directory: Path, problems: list[Problem], files: dict[str, str]) -> dict[str, CouponTemplate]:
    model = _load_model(directory / COUPONS_FILE, CouponsFile, problems, files)
    return dict(model.templates) if model is not None else {}


def _load_calendar(directory: Path, problems: list[Problem], files: dict[str, str]) -> FestivalCalendar:
    model = _load_model(directory / FESTIVALS_FILE, FestivalsFile, problems, files)
    if model is None:
        return FestivalCalendar({})
    known = vocabulary(FestivalCalendar({})).features
    festivals = {}
    for festival_id, festival in model.festivals.items():
        if f"days_to_{festival_id}" in known:
            problems.append(Problem(_shown(directory / FESTIVALS_FILE), 1,
                                    f"festival id {festival_id!r} clashes with the feature days_to_{festival_id}"))
            continue
        festivals[festival_id] = festival.dates
    return FestivalCalendar(festivals, {k: v.name for k, v in model.festivals.items()})


def _load_model(path: Path, model: type[BaseModel], problems: list[Problem], files: dict[str, str]) -> Any:
    if not path.exists():
        return None
    shown = _shown(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem(shown, 1, f"cannot read the file: {exc}"))
        return None
    files[path.name] = text
    lines: dict[Path_, int] = {}
    try:
        data, lines = read_yaml(text)
        return model.model_validate(data)
    except YamlProblem as exc:
        problems.append(Problem(shown, exc.line, str(exc)))
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            problems.append(Problem(shown, line_for(lines, error["loc"], 1), describe_error(error, data)))
    return None
