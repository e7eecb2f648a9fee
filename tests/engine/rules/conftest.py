"""Fixtures for the rules engine: rule directories written from text (builders: tests/helpers/rules.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from engine.rules.examples import baseline_features, example_programme
from tests.helpers.rules import AT, write_rules


@pytest.fixture
def rules_dir(tmp_path: Path) -> Callable[..., Path]:
    """Write a rules directory: ``rules_dir({"a.yaml": "..."})``."""
    return lambda files, **kw: write_rules(tmp_path / "rules", files, **kw)


@pytest.fixture
def member() -> dict[str, object]:
    """A registered member who accepts every channel (the examples' baseline)."""
    return baseline_features(AT, example_programme())
