"""Rule files written from text, and a runtime over them, as the rules specifications use them."""

from __future__ import annotations

import shutil
import textwrap
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from engine.rules import RequestContext, Rule, RuleRuntime
from tests.helpers.paths import REPO

SHIPPED = REPO / "rules"
TZ = ZoneInfo("Asia/Shanghai")
AT = datetime(2026, 6, 1, 12, 0)
"""When a rules specification's checkout happens unless it says otherwise."""


def write_rules(directory: Path, files: dict[str, str], shipped_catalogues: bool = True) -> Path:
    """A rules directory with these files (dedented), plus the shipped coupons and festivals."""
    directory.mkdir(parents=True, exist_ok=True)
    if shipped_catalogues:
        for name in ("coupons.yaml", "festivals.yaml"):
            shutil.copy(SHIPPED / name, directory / name)
    for name, text in files.items():
        (directory / name).write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return directory


def context(**kw) -> RequestContext:
    """A checkout of member M1 at ``AT`` unless ``kw`` says otherwise."""
    kw.setdefault("at", AT)
    kw.setdefault("member_id", "M1")
    return RequestContext(**kw)


def runtime(directory: Path) -> RuleRuntime:
    """A runtime over a rules directory that must load without errors."""
    rt = RuleRuntime(directory, TZ)
    report = rt.reload()
    assert report.ok, [str(p) for p in report.errors]
    return rt


def rule(rule_id: str, when: str, trigger: str = "checkout", then: str = "[{tag: t}]", extra: str = "") -> str:
    """One rule's YAML text."""
    return f"id: {rule_id}\nname: {rule_id}\ntrigger: {trigger}\nwhen: {when}\nthen: {then}\n{extra}"


def coupon_rule(rule_id: str = "lapsed", when: str = "recency_days >= 30", trigger: str = "schedule.daily",
                limits: str = "{per_member: 1 per 60d}", holdout: float = 0.0, channel: str = "app") -> str:
    """The YAML text of a rule that issues the shipped M200_50 coupon (a daily rule for lapsed members by default)."""
    return f"""
        id: {rule_id}
        name: {rule_id}
        trigger: {trigger}
        when: {when}
        then:
          - issue_coupon: {{template: M200_50, channel: {channel}}}
        limits: {limits}
        priority: 40
        holdout: {holdout}
        """


def limited_rule(limits: dict, rule_id: str = "r") -> Rule:
    """A checkout rule for every registered member that issues a coupon, with these limits."""
    return Rule.model_validate({"id": rule_id, "name": rule_id, "trigger": "checkout", "when": "registered",
                                "then": [{"issue_coupon": {"template": "M200_50"}}], "limits": limits})
