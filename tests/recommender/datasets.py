"""Small real and synthetic datasets shared by the model tests (loaded once per test session)."""

from __future__ import annotations

from datetime import date
from functools import lru_cache

import numpy as np
import pandas as pd

from engine.transactions import read_transactions
from tests.helpers.paths import shared_data
from tools.synthetic import SyntheticData, generate

RETAIL_TEST_FROM = date(2011, 9, 1)


@lru_cache(maxsize=1)
def _online_retail() -> pd.DataFrame:
    return read_transactions(shared_data("online_retail.parquet"), fmt="online-retail").frame


def online_retail() -> pd.DataFrame:
    """All of Online Retail as canonical lines (skips the test when ../shared/data is missing)."""
    return _online_retail()


@lru_cache(maxsize=4)
def online_retail_sample(members: int = 600, seed: int = 0) -> pd.DataFrame:
    """The lines of ``members`` random Online Retail customers: real behaviour, small enough for unit tests."""
    frame = online_retail()
    ids = np.sort(frame["member_id"].unique())
    chosen = np.random.default_rng(seed).choice(ids, size=min(members, len(ids)), replace=False)
    return frame[frame["member_id"].isin(set(chosen))].reset_index(drop=True)


@lru_cache(maxsize=1)
def synthetic_shop() -> SyntheticData:
    """400 synthetic convenience-store members over 150 days (stores, complements, lapsing members)."""
    return generate(members=400, days=150, seed=3, start=date(2025, 10, 1))
