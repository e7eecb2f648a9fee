"""Fixtures for the rules engine: rule directories written from text, a runtime over them."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from engine.rules import RequestContext, RuleRuntime
from engine.rules.examples import baseline_features, example_programme
from tests.conftest import REPO

SHIPPED = REPO / "rules"
TZ = ZoneInfo("Asia/Shanghai")
AT = datetime(2026, 6, 1, 12, 0)


def write_rules(directory: Path, files: dict[str, str], shipped_catalogues: bool = True) -> Path:
    """A rules directory with these files (dedented), plus the shipped coupons and festivals."""
    directory.mkdir(parents=True, exist_ok=True)
    if shipped_catalogues:
        for name in ("coupons.yaml", "festivals.yaml"):
            shutil.copy(SHIPPED / name, directory / name)
    for name, text in files.items():
        (directory / name).write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return directory


@pytest.fixture
def rules_dir(tmp_path: Path) -> Callable[..., Path]:
    """Write a rules directory: ``rules_dir({"a.yaml": "..."})``."""
    return lambda files, **kw: write_rules(tmp_path / "rules", files, **kw)


@pytest.fixture
def member() -> dict[str, object]:
    """A registered member who accepts every channel (the examples' baseline)."""
    return baseline_features(AT, example_programme())


def context(**kw) -> RequestContext:
    kw.setdefault("at", AT)
    kw.setdefault("member_id", "M1")
    return RequestContext(**kw)


def runtime(directory: Path) -> RuleRuntime:
    rt = RuleRuntime(directory, TZ)
    report = rt.reload()
    assert report.ok, [str(p) for p in report.errors]
    return rt


def rule(rule_id: str, when: str, trigger: str = "checkout", then: str = "[{tag: t}]", extra: str = "") -> str:
    """One rule's YAML text."""
    return f"id: {rule_id}\nname: {rule_id}\ntrigger: {trigger}\nwhen: {when}\nthen: {then}\n{extra}"
