"""One feature definition: online features equal point-in-time features equal a plain recomputation."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import numpy as np
import pandas as pd
import pytest

from engine.feature_store import FeatureStore
from engine.ingestion import backfill
from engine.keys import MEMBER_PROFILES
from engine.point_in_time import features_as_of, features_as_of_dates
from engine.programme import Programme
from engine.transactions import read_transactions
from tests.helpers.paths import shared_data
from tools.synthetic import generate


@pytest.fixture(scope="module")
def synthetic():
    return generate(members=300, days=120, seed=11, start=date(2025, 11, 1))


def pandas_features(transactions: pd.DataFrame, as_of: date) -> pd.DataFrame:
    """Recency, frequency and monetary value recomputed from raw lines with plain pandas (the oracle)."""
    cutoff = pd.Timestamp(datetime.combine(as_of, time.min))
    lines = transactions[transactions["ts"] < cutoff]
    key = lines["basket_id"] if "basket_id" in lines else lines["ts"].dt.strftime("%Y%m%d")
    per_basket = lines.assign(_key=key).groupby(["member_id", "_key"]).agg(ts=("ts", "min"), amount=("amount", "sum"))
    per_basket = per_basket.reset_index()
    per_basket["age"] = (cutoff.normalize() - per_basket["ts"].dt.normalize()).dt.days
    out = pd.DataFrame(index=pd.Index(sorted(per_basket["member_id"].unique()), name="member_id"))
    out["recency_days"] = per_basket.groupby("member_id")["age"].min()
    for w in (30, 90, 365):
        recent = per_basket[per_basket["age"] < w]
        out[f"frequency_{w}d"] = recent.groupby("member_id").size().reindex(out.index, fill_value=0)
        out[f"monetary_{w}d"] = recent.groupby("member_id")["amount"].sum().reindex(out.index, fill_value=0.0)
    out["orders_total"] = per_basket.groupby("member_id").size()
    out["spend_total"] = per_basket.groupby("member_id")["amount"].sum()
    out["first_purchase_days"] = per_basket.groupby("member_id")["age"].max()
    year = per_basket[per_basket["age"] < 365]
    days = year.groupby("member_id")["age"].apply(lambda ages: np.sort(ages.unique()))
    out["purchase_days_365d"] = days.map(len).reindex(out.index, fill_value=0)
    gaps = days.map(np.diff)
    out["purchase_gap_mean_365d"] = gaps.map(lambda g: g.mean() if len(g) else np.nan).reindex(out.index)
    out["purchase_gap_std_365d"] = gaps.map(lambda g: g.std() if len(g) > 1 else np.nan).reindex(out.index)
    out["purchase_gap_max_365d"] = gaps.map(lambda g: g.max() if len(g) else np.nan).reindex(out.index)
    return out


def as_values(row: pd.Series) -> dict:
    """A frame row as plain values (a frame stores a missing value as NaN; the API says None)."""
    values = {}
    for name, value in row.items():
        if isinstance(value, float) and np.isnan(value):
            value = None
        elif isinstance(value, np.ndarray):
            value = list(value)
        values[name] = value
    return values


def assert_rfm_equal(ours: pd.DataFrame, oracle: pd.DataFrame) -> None:
    members = oracle.index
    assert set(members) <= set(ours.index)
    mine = ours.loc[members]
    for column in oracle.columns:
        expected = oracle[column].to_numpy(dtype=float)
        got = mine[column].to_numpy(dtype=float)
        np.testing.assert_allclose(got, expected, rtol=0, atol=0.011, err_msg=column, equal_nan=True)


def test_point_in_time_features_match_a_pandas_recomputation(synthetic, programme: Programme) -> None:
    as_of = date(2026, 2, 10)
    ours = features_as_of(synthetic.transactions, as_of, programme, synthetic.members)
    assert_rfm_equal(ours, pandas_features(synthetic.transactions, as_of))


@pytest.mark.slow
def test_groceries_features_match_a_pandas_recomputation(programme: Programme) -> None:
    transactions = read_transactions(shared_data("groceries.csv"), fmt="groceries").frame
    as_of = date(2015, 7, 1)  # mid-history: a window crosses a year and some members lapse
    ours = features_as_of(transactions, as_of, programme)
    oracle = pandas_features(transactions, as_of)
    assert len(oracle) > 3000
    assert_rfm_equal(ours, oracle)


def test_snapshots_folded_once_equal_each_date_folded_alone(synthetic, programme: Programme) -> None:
    dates = [date(2026, 2, 10), date(2025, 12, 1), date(2026, 1, 15)]
    together = features_as_of_dates(synthetic.transactions, dates, programme, synthetic.members)
    assert list(together) == sorted(dates)
    for as_of in dates:
        pd.testing.assert_frame_equal(together[as_of], features_as_of(synthetic.transactions, as_of, programme,
                                                                      synthetic.members))


def test_data_after_the_cutoff_does_not_change_features(synthetic, programme: Programme) -> None:
    as_of = date(2026, 1, 20)
    cutoff = pd.Timestamp(as_of)
    tx = synthetic.transactions
    changed = tx.copy()
    after = changed["ts"] >= cutoff
    changed.loc[after, "amount"] *= 7
    changed = pd.concat([changed, tx[after].assign(basket_id=lambda f: f["basket_id"] + "-dup")])
    before = features_as_of(tx, as_of, programme, synthetic.members)
    again = features_as_of(changed, as_of, programme, synthetic.members)
    pd.testing.assert_frame_equal(before, again)


def test_online_features_equal_point_in_time_features(synthetic, store: FeatureStore, programme: Programme) -> None:
    """Backfilling history into Redis and reading it gives exactly the offline features."""
    as_of = date(2026, 2, 1)
    history = synthetic.transactions[synthetic.transactions["ts"] < pd.Timestamp(as_of)]
    result = backfill(store, history, synthetic.members)
    assert not result.rejected
    offline = features_as_of(synthetic.transactions, as_of, programme, synthetic.members)
    registered = synthetic.members[synthetic.members["registered"] < pd.Timestamp(as_of)]["member_id"]
    assert set(offline.index) == set(registered)
    for member_id in offline.index:
        online = store.member_features(member_id, as_of=datetime.combine(as_of, time(0, 0)))
        assert online == as_values(offline.loc[member_id])


def test_online_windows_keep_moving_after_the_last_event(synthetic, store: FeatureStore, programme: Programme) -> None:
    """Read weeks later without new events: the same as the offline features at that later date."""
    history = synthetic.transactions
    backfill(store, history, synthetic.members)
    later = date(2026, 3, 31)  # the generated history ends on 28 Feb
    offline = features_as_of(history, later, programme, synthetic.members)
    assert offline["recency_days"].min() >= 31
    for member_id in offline.index:
        online = store.member_features(member_id, as_of=datetime.combine(later, time(0, 0)))
        assert online == as_values(offline.loc[member_id])


def test_replaying_a_backfill_changes_nothing(synthetic, store: FeatureStore, redis_client) -> None:
    history = synthetic.transactions.head(3000)
    first = backfill(store, history, synthetic.members)
    snapshot = {k: redis_client.hgetall(k) for k in redis_client.keys(MEMBER_PROFILES)}
    second = backfill(store, history, synthetic.members)
    assert first.accepted > 0 and second.accepted == 0
    assert second.duplicates == first.accepted
    assert {k: redis_client.hgetall(k) for k in redis_client.keys(MEMBER_PROFILES)} == snapshot


def test_history_features_do_not_depend_on_when_they_are_computed(synthetic, programme: Programme) -> None:
    as_of = date(2026, 1, 15)
    a = features_as_of(synthetic.transactions, as_of, programme, synthetic.members)
    b = features_as_of(synthetic.transactions.sample(frac=1.0, random_state=3), as_of, programme, synthetic.members)
    pd.testing.assert_frame_equal(a.sort_index(), b.sort_index())


def test_as_of_excludes_the_as_of_day_itself(programme: Programme) -> None:
    tx = pd.DataFrame({
        "member_id": ["A", "A"], "ts": pd.to_datetime(["2026-01-09 10:00", "2026-01-10 08:00"]),
        "sku": ["x", "y"], "qty": [1.0, 1.0], "amount": [5.0, 7.0],
    })
    features = features_as_of(tx, date(2026, 1, 10), programme).loc["A"]
    assert features["spend_total"] == 5.0 and features["recency_days"] == 1
    assert features_as_of(tx, date(2026, 1, 10) + timedelta(days=1), programme).loc["A"]["spend_total"] == 12.0
