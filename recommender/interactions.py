"""Purchase history as the sparse matrices the models learn from.

A member "bought" an item once per basket that holds it: quantities and repeated lines within a
basket do not count. That choice makes the matrices immune to Online Retail's exact duplicate
lines and to the two cancelled 74,215 / 80,995-unit orders whose originals stay in the log (each
is one basket with one item, a count of 1, like any other purchase).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recommender.catalogue import Catalogue

RECENT_DAYS = 30
"""Window of the "recent popularity" signal (distinct buyers in the last 30 days before as_of)."""


def day_numbers(ts: pd.Series) -> np.ndarray:
    """Days since 1970-01-01 of naive local timestamps (the stores' calendar days)."""
    return ts.to_numpy().astype("datetime64[D]").astype(np.int64)


def to_day_number(value: date | datetime | str) -> int:
    """Days since 1970-01-01 of a date (a datetime counts as its calendar day)."""
    return int(np.datetime64(pd.Timestamp(value).date(), "D").astype(np.int64))


@dataclass
class Interactions:
    """Who bought what, in how many baskets and when last, as of a day (nothing on or after it)."""

    catalogue: Catalogue
    members: np.ndarray  # object array of member ids; row i of every member matrix
    counts: sp.csr_matrix  # members x items: baskets holding the item (float32)
    last_day: sp.csr_matrix  # members x items: day number of the last such basket (same pattern as counts)
    baskets: sp.csr_matrix  # baskets x items, 1.0 where the basket holds the item
    basket_member: np.ndarray  # member row of each basket
    basket_day: np.ndarray  # day number of each basket
    member_baskets: np.ndarray  # baskets per member (float32)
    member_store: np.ndarray  # object array: each member's most frequent store ("" when unknown)
    as_of_day: int  # the day the history stops before (day number)

    @classmethod
    def from_transactions(
        cls,
        transactions: pd.DataFrame,
        as_of: date | datetime | str | None = None,
        catalogue: Catalogue | None = None,
    ) -> Interactions:
        """Interactions of canonical lines before ``as_of`` (default: the day after the last line).

        Lines of non-products, and of items outside ``catalogue`` when one is given, are dropped.
        """
        if "sku" not in transactions.columns:
            raise ValueError("recommenders need a 'sku' column; these transactions have none")
        lines = transactions
        if as_of is not None:
            lines = lines[lines["ts"] < pd.Timestamp(as_of)]
        sku = lines["sku"].astype(str)
        if catalogue is None:
            catalogue = Catalogue.from_skus(sku.unique())
        # A catalogue holds products only, so this also drops non-product lines.
        item = pd.Index(catalogue.skus).get_indexer(sku)
        keep = item >= 0
        lines, item = lines[keep], item[keep]
        days = day_numbers(lines["ts"])
        as_of_day = to_day_number(as_of) if as_of is not None else (int(days.max()) + 1 if len(days) else 0)

        member_codes, members = pd.factorize(lines["member_id"].astype(str), sort=True)
        if "basket_id" in lines.columns and lines["basket_id"].notna().all():
            basket_key = lines["basket_id"].astype(str).to_numpy()
        else:  # no receipt numbers: one member's lines on one day are one basket
            basket_key = days
        key_codes, key_values = pd.factorize(basket_key)
        # Keyed on the member too, so two members never share a basket even if receipt ids repeat.
        basket_codes, _ = pd.factorize(member_codes.astype(np.int64) * max(len(key_values), 1) + key_codes)
        n_members, n_items, n_baskets = len(members), len(catalogue), int(basket_codes.max(initial=-1)) + 1

        # One row per (basket, item): repeated lines of an item in a basket count once.
        pair = np.unique(basket_codes.astype(np.int64) * n_items + item)
        pair_basket, pair_item = pair // n_items, pair % n_items
        basket_member = np.zeros(n_baskets, dtype=np.int64)
        basket_member[basket_codes] = member_codes
        basket_day = np.zeros(n_baskets, dtype=np.int64)
        np.maximum.at(basket_day, basket_codes, days)

        baskets = sp.csr_matrix(
            (np.ones(len(pair), dtype=np.float32), (pair_basket, pair_item)), shape=(n_baskets, n_items)
        )
        member_of_pair = basket_member[pair_basket]
        counts = sp.csr_matrix(
            (np.ones(len(pair), dtype=np.float32), (member_of_pair, pair_item)), shape=(n_members, n_items)
        )
        counts.sum_duplicates()
        frame = pd.DataFrame({"key": member_of_pair * n_items + pair_item, "day": basket_day[pair_basket]})
        last = frame.groupby("key", sort=True)["day"].max()
        key = last.index.to_numpy()
        last_day = sp.csr_matrix(
            (last.to_numpy().astype(np.float64), (key // n_items, key % n_items)), shape=(n_members, n_items)
        )
        member_baskets = np.bincount(basket_member, minlength=n_members).astype(np.float32)
        return cls(
            catalogue=catalogue,
            members=np.asarray(members, dtype=object),
            counts=counts,
            last_day=last_day,
            baskets=baskets,
            basket_member=basket_member,
            basket_day=basket_day,
            member_baskets=member_baskets,
            member_store=_member_store(lines, member_codes, n_members),
            as_of_day=as_of_day,
        )

    @property
    def member_index(self) -> dict[str, int]:
        return {m: i for i, m in enumerate(self.members)}

    def buyers(self) -> np.ndarray:
        """Distinct buyers of each item."""
        return np.diff(self.counts.tocsc().indptr).astype(np.float32)

    def recent_buyers(self, days: int = RECENT_DAYS) -> np.ndarray:
        """Distinct buyers of each item in the ``days`` before ``as_of``."""
        recent = self.last_day.copy()
        recent.data = (recent.data >= self.as_of_day - days).astype(np.float32)
        return np.asarray(recent.sum(axis=0)).ravel().astype(np.float32)

    def decayed_counts(self, half_life_days: float) -> sp.csr_matrix:
        """Like ``counts``, but a basket ``half_life_days`` before as_of counts half (same sparsity)."""
        baskets = self.baskets.tocoo()
        age = self.as_of_day - self.basket_day[baskets.row]
        weight = np.exp(-np.log(2.0) * age / half_life_days).astype(np.float32)
        decayed = sp.csr_matrix((weight, (self.basket_member[baskets.row], baskets.col)), shape=self.counts.shape)
        decayed.sum_duplicates()
        return decayed

    def repeat_buyers(self) -> np.ndarray:
        """Buyers of each item who bought it in at least two baskets."""
        again = self.counts.copy()
        again.data = (again.data >= 2).astype(np.float32)
        return np.asarray(again.sum(axis=0)).ravel().astype(np.float32)


def _member_store(lines: pd.DataFrame, member_codes: np.ndarray, n_members: int) -> np.ndarray:
    """Each member's most frequent store ("" when the data has no stores)."""
    stores = np.full(n_members, "", dtype=object)
    if "store_id" not in lines.columns or not len(lines):
        return stores
    frame = pd.DataFrame({"m": member_codes, "s": lines["store_id"].to_numpy(dtype=object)}).dropna()
    if frame.empty:
        return stores
    top = frame.groupby(["m", "s"], sort=False).size().reset_index(name="n")
    top = top.sort_values(["m", "n"], ascending=[True, False], kind="stable").drop_duplicates("m")
    stores[top["m"].to_numpy()] = top["s"].astype(str).to_numpy()
    return stores
