"""Backtests: the vectorised evaluation over all members agrees with the runtime (durable_rules)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pandas as pd
import pytest

from engine.point_in_time import features_as_of
from engine.programme import Programme
from engine.rules import backtest, backtest_history, load_rules
from engine.rules.compiler import compile_rules
from tests.helpers.rules import SHIPPED, context, rule, runtime
from tools.synthetic import generate

AS_OF = date(2026, 5, 1)


@pytest.fixture(scope="module")
def history() -> tuple[pd.DataFrame, pd.DataFrame]:
    data = generate(members=400, days=120, seed=3)
    return data.transactions, data.members


@pytest.fixture(scope="module")
def member_features(history, tmp_path_factory) -> pd.DataFrame:
    from engine.settings import Settings

    programme = Programme.from_settings(Settings(_env_file=None, pii_key="t", var_dir=tmp_path_factory.mktemp("v")))
    features = features_as_of(history[0], AS_OF, programme, history[1])
    # Half the members get a churn score so the churn rule has someone to fire for.
    features["churn_probability"] = [0.9 if i % 2 else None for i in range(len(features))]
    return features


def test_backtest_agrees_with_the_runtime_on_every_shipped_rule(member_features, programme) -> None:
    compiled = compile_rules(load_rules(SHIPPED))
    report = backtest(compiled, member_features, AS_OF, programme)
    rt = runtime(SHIPPED)
    fired: dict[str, set[str]] = {r.id: set() for r in compiled.rules}
    held: dict[str, int] = {r.id: 0 for r in compiled.rules}
    at = datetime.combine(AS_OF, datetime.min.time()) + timedelta(hours=12)
    for member_id, row in member_features.iterrows():
        features = {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
        for trigger in compiled.shards:
            for firing in rt.evaluate(trigger, features, context(at=at, member_id=member_id)).firings:
                fired[firing.rule_id].add(member_id)
                held[firing.rule_id] += firing.holdout
    assert sum(len(m) for m in fired.values()) > 100  # the comparison means something
    for result in report.rules:
        assert result.members == len(fired[result.rule_id]), result.rule_id
        assert result.holdout == held[result.rule_id], result.rule_id
        for other, both in result.overlaps.items():
            assert both == len(fired[result.rule_id] & fired[other])


def test_backtest_reports_coupons_face_value_and_budget_exhaustion(rules_dir, member_features, programme) -> None:
    directory = rules_dir({"a.yaml": rule(
        "tight", "registered", trigger="schedule.daily", then="[{issue_coupon: {template: M200_50}}]",
        extra="limits: {per_member: 1 per 7d, budget: {coupons: 100}}\n")})
    report = backtest(compile_rules(load_rules(directory)), member_features, AS_OF, programme)
    (result,) = report.rules
    assert result.members == (member_features["opted_out"] == False).sum()  # noqa: E712 - consent is implicit
    assert result.coupons == result.offers and result.face_value == 50 * result.offers
    assert result.exhausted_on == AS_OF and "runs out 2026-05-01" in result.budget
    assert result.daily_offers == pytest.approx(result.offers / 7, abs=0.1)


def test_backtest_history_folds_features_as_of_the_date(history, programme) -> None:
    steps = []
    report = backtest_history(SHIPPED, history[0], AS_OF, programme, history[1],
                              on_progress=lambda step, done, total: steps.append(step))
    assert report.members == len(history[1][pd.to_datetime(history[1]["registered"]) < pd.Timestamp(AS_OF)])
    assert {"features", "evaluate"} <= set(steps)
    assert report.feature_seconds > 0 and report.evaluation_seconds > 0
    assert {r.rule_id for r in report.rules} == {r.id for r in load_rules(SHIPPED).rules}
