"""Specification of the synthetic convenience-store data: schema, determinism and learnable behaviour."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from engine.transactions import CANONICAL_COLUMNS, read_transactions, write_transactions
from tools.synthetic import DEFAULT_START, SyntheticData, generate

MEMBERS, DAYS = 1500, 120


@pytest.fixture(scope="module")
def data() -> SyntheticData:
    return generate(MEMBERS, DAYS, seed=7)


@pytest.fixture(scope="module")
def visits(data: SyntheticData) -> pd.DataFrame:
    """One row per basket."""
    return data.transactions.drop_duplicates("basket_id")


def _assert_same(a: SyntheticData, b: SyntheticData) -> None:
    for name in ("members", "transactions", "catalogue", "stores"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))
    pd.testing.assert_frame_equal(a.truth.members, b.truth.members)


def test_same_seed_gives_identical_output_and_another_seed_does_not():
    first, again = generate(300, 60, seed=3), generate(300, 60, seed=3)
    _assert_same(first, again)
    other = generate(300, 60, seed=4)
    assert not first.transactions["sku"].equals(other.transactions["sku"])


def test_transactions_are_canonical_lines_over_the_period(data):
    tx = data.transactions
    assert list(tx.columns) == list(CANONICAL_COLUMNS)
    assert tx["ts"].dtype.kind == "M"
    for column in ("member_id", "sku", "store_id", "basket_id", "category"):
        assert pd.api.types.is_string_dtype(tx[column].dtype), column
        assert tx[column].notna().all(), column
    assert tx["ts"].min() >= pd.Timestamp(DEFAULT_START)
    assert tx["ts"].max() < pd.Timestamp(DEFAULT_START) + pd.Timedelta(days=DAYS)
    assert (tx["qty"] >= 1).all() and (tx["amount"] > 0).all()
    ordered = tx.sort_values(["ts", "member_id"], kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(tx, ordered)
    assert set(tx["sku"]) <= set(data.catalogue["sku"])
    assert set(tx["member_id"]) <= set(data.members["member_id"])


def test_a_basket_is_one_member_store_and_time_with_one_to_ten_distinct_skus(data):
    per_basket = data.transactions.groupby("basket_id").agg(
        members=("member_id", "nunique"),
        stores=("store_id", "nunique"),
        times=("ts", "nunique"),
        lines=("sku", "size"),
        skus=("sku", "nunique"),
    )
    assert (per_basket[["members", "stores", "times"]] == 1).all().all()
    assert per_basket["lines"].between(1, 10).all()
    assert (per_basket["lines"] == per_basket["skus"]).all()
    assert per_basket["lines"].nunique() >= 6


def test_output_round_trips_through_the_canonical_importer(data, tmp_path):
    path = tmp_path / "synthetic.parquet"
    write_transactions(data.transactions, path)
    pd.testing.assert_frame_equal(read_transactions(path).frame, data.transactions)


def test_members_have_profiles_for_rules_and_privacy(data):
    members = data.members
    assert len(members) == MEMBERS and members["member_id"].is_unique
    assert members["member_id"].str.fullmatch(r"M\d{7}").all()
    assert members["phone"].str.fullmatch(r"1[358]\d{9}").all() and members["phone"].is_unique
    assert 0.02 < members["opted_out"].mean() < 0.09
    for channel in ("channel_sms", "channel_app", "channel_email"):
        assert members[channel].dtype == bool
    start = pd.Timestamp(DEFAULT_START)
    assert (members["registered"] < start).any() and (members["registered"] >= start).any()
    age_years = (start - members["birthday"]).dt.days / 365.25
    assert age_years.between(15, 81).all()
    stores = data.stores
    assert stores["store_id"].tolist() == [f"S{i:03d}" for i in range(1, 41)]
    assert set(stores["region"]) == {"north", "south", "east", "west"}
    home = members.merge(stores, left_on="home_store_id", right_on="store_id", suffixes=("", "_of_store"))
    assert len(home) == MEMBERS and (home["region"] == home["region_of_store"]).all()


def test_most_baskets_are_in_the_home_store(data, visits):
    home = visits["member_id"].map(data.members.set_index("member_id")["home_store_id"])
    assert 0.75 < (visits["store_id"] == home).mean() < 0.95


def test_catalogue_is_a_convenience_store_range(data):
    catalogue = data.catalogue
    assert 300 <= len(catalogue) <= 2000
    assert catalogue["sku"].str.fullmatch(r"SKU\d{5}").all() and catalogue["sku"].is_unique
    assert catalogue["name"].is_unique
    assert catalogue["category"].nunique() >= 10
    assert {"dairy", "bakery", "beverages", "snacks", "instant_food"} <= set(catalogue["category"])
    assert (catalogue["price"] > 0).all()
    assert catalogue["margin"].between(0, 1, inclusive="neither").all()
    median_price = catalogue.groupby("category")["price"].median()
    assert median_price["personal_care"] > median_price["beverages"]


def test_visit_counts_vary_widely_between_members(visits):
    per_member = visits.groupby("member_id").size()
    assert per_member.quantile(0.9) >= 5 * per_member.quantile(0.25)
    assert per_member.max() >= 0.6 * DAYS  # a few near-daily shoppers
    assert (per_member <= 2).mean() > 0.05  # and some rare ones


def test_some_members_lapse_after_buying_earlier(visits):
    end = pd.Timestamp(DEFAULT_START) + pd.Timedelta(days=DAYS)
    by_member = visits.groupby("member_id")["ts"]
    first, last = by_member.min(), by_member.max()
    lapsed = (first < end - pd.Timedelta(days=60)) & (last < end - pd.Timedelta(days=30))
    assert lapsed.mean() > 0.10


def test_lapsing_members_slow_down_before_they_stop(data, visits):
    truth = data.truth.members
    start = pd.Timestamp(DEFAULT_START)
    lapsing = truth[truth["lapse_date"].between(start + pd.Timedelta(days=90), start + pd.Timedelta(days=DAYS))]
    lapsing = lapsing[lapsing["active_from"] == start]
    joined = visits.merge(lapsing[["member_id", "lapse_date"]], on="member_id")
    days_before = (joined["lapse_date"] - joined["ts"]).dt.days
    early = days_before.between(60, 89).sum()
    late = days_before.between(0, 29).sum()
    assert len(lapsing) > 20
    assert late < 0.7 * early
    assert (joined["ts"] < joined["lapse_date"] + pd.Timedelta(days=1)).all()


def test_new_members_buy_only_after_registering_and_some_never_buy(data, visits):
    registered = visits["member_id"].map(data.members.set_index("member_id")["registered"])
    assert (visits["ts"] >= registered).all()
    buyers = set(visits["member_id"])
    new = data.members[data.members["registered"] >= pd.Timestamp(DEFAULT_START)]
    assert (~new["member_id"].isin(buyers)).sum() > 0


def test_weekends_are_busier_than_weekdays(visits):
    per_day = visits.groupby(visits["ts"].dt.normalize()).size()
    weekend = per_day.index.day_of_week >= 5
    assert per_day[weekend].mean() > 1.1 * per_day[~weekend].mean()


def test_spring_festival_brings_stocking_up_then_a_quiet_holiday_week(visits):
    per_day = visits.groupby(visits["ts"].dt.normalize()).size()
    ordinary = per_day["2026-01-05":"2026-02-01"].mean()
    stocking_up = per_day["2026-02-03":"2026-02-16"].mean()  # Spring Festival 2026 is 17 February
    holiday = per_day["2026-02-17":"2026-02-23"].mean()
    assert stocking_up > 1.15 * ordinary
    assert holiday < 0.85 * ordinary


def test_members_mostly_buy_again_what_they_bought_before(data):
    lines = data.transactions.sort_values(["member_id", "ts"], kind="stable")
    seen_before = lines.duplicated(["member_id", "sku"])
    first_basket = lines["basket_id"] == lines.groupby("member_id")["basket_id"].transform("first")
    repeat_share = seen_before[~first_basket].mean()
    assert repeat_share > 0.45


def test_complements_are_bought_together(data):
    product = data.catalogue.set_index("sku")["product"]
    items = data.transactions[["basket_id"]].assign(product=data.transactions["sku"].map(product).to_numpy())
    in_basket = pd.crosstab(items["basket_id"], items["product"]).clip(upper=1).astype(bool)
    for a, b in (("pure milk", "sliced bread"), ("instant noodles", "ham sausage")):
        with_a = in_basket[a]
        lift = in_basket.loc[with_a, b].mean() / in_basket[b].mean()
        assert lift > 3, (a, b, lift)


def test_mooncakes_sell_around_mid_autumn_not_all_year():
    data = generate(800, 60, seed=1, start=dt.date(2026, 8, 20))  # Mid-Autumn 2026: 25 September
    tx = data.transactions
    mooncake = tx["sku"].isin(data.catalogue.loc[data.catalogue["product"] == "mooncake", "sku"])
    before = tx["ts"].between("2026-09-18", "2026-09-24 23:59:59")
    assert mooncake[before].mean() > 5 * mooncake[~before].mean()


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="members"):
        generate(0, 10)
