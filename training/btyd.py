"""Buy-Till-You-Die baseline: BG/NBD purchases x Gamma-Gamma spend per purchase, fitted with ``lifetimes``.

Why ``lifetimes``: it is the reference maximum-likelihood implementation of Fader, Hardie and
Lee's BG/NBD and of the Gamma-Gamma spend model, pure Python over scipy (a fit on 3,000 members
takes ~0.1 s, the import ~1 s). ``pymc-marketing``'s CLV models, its maintained successor, were
measured here too: a 790 MB install (pymc, pytensor, arviz) and a 25 s first MAP fit while
pytensor compiles, too heavy for a test suite that trains every model. ``lifetimes`` is in
maintenance mode; its one incompatibility with pandas 3 (it sets a removed option on import) is
a warning, silenced where it is imported.

A member's summary comes from the feature store's own features (the one definition): repeat
purchases ``x = orders_total - 1``, ``t_x`` = days from the first to the last purchase, ``T`` =
days since the first purchase, and the mean basket ``avg_basket``; time is in weeks, where the
fit converges on Online Retail (in days it did not). Training code only: serving never imports it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

WEEK = 7.0
PENALIZERS: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0)
"""Tried in turn until the BG/NBD fit converges (a small L2 penalty keeps a, b finite on short histories)."""


def _lifetimes():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lifetimes sets pandas' removed chained_assignment option on import
        import lifetimes
    return lifetimes


def btyd_summary(features: pd.DataFrame) -> pd.DataFrame:
    """(x, t_x, T in weeks, monetary) per member with a purchase, from ``features_as_of`` rows."""
    orders = pd.to_numeric(features["orders_total"], errors="coerce").fillna(0).to_numpy(float)
    first = pd.to_numeric(features["first_purchase_days"], errors="coerce").to_numpy(float)
    recency = pd.to_numeric(features["recency_days"], errors="coerce").to_numpy(float)
    basket = pd.to_numeric(features["avg_basket"], errors="coerce").fillna(0).to_numpy(float)
    big_t = np.nan_to_num(first, nan=0.0) + 1.0  # the first purchase day counts: T > 0 for a member seen today
    t_x = np.clip(np.nan_to_num(first - recency, nan=0.0), 0.0, None)
    return pd.DataFrame({"x": np.maximum(orders - 1, 0), "t_x": t_x / WEEK, "T": big_t / WEEK,
                         "monetary": basket}, index=features.index)


@dataclass
class BTYDModel:
    """A fitted BG/NBD (purchases) and Gamma-Gamma (spend per purchase)."""

    purchases: object  # lifetimes.BetaGeoFitter
    spend: object | None  # lifetimes.GammaGammaFitter (None: too few repeat buyers)
    penalizer: float

    @classmethod
    def fit(cls, features: pd.DataFrame) -> BTYDModel:
        """Fit both models on one snapshot's members (``features_as_of`` rows)."""
        lifetimes = _lifetimes()
        summary = btyd_summary(features)
        last_error: Exception | None = None
        for penalizer in PENALIZERS:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    purchases = lifetimes.BetaGeoFitter(penalizer_coef=penalizer).fit(
                        summary["x"], summary["t_x"], summary["T"])
                break
            except lifetimes.utils.ConvergenceError as exc:
                last_error = exc
        else:
            raise ValueError(f"the BG/NBD fit did not converge with any penalizer {PENALIZERS}: {last_error}")
        repeat = summary[(summary["x"] > 0) & (summary["monetary"] > 0)]
        spend = None
        if len(repeat) >= 20:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    spend = lifetimes.GammaGammaFitter(penalizer_coef=penalizer).fit(repeat["x"], repeat["monetary"])
            except lifetimes.utils.ConvergenceError:
                spend = None
        return cls(purchases=purchases, spend=spend, penalizer=penalizer)

    def expected_purchases(self, features: pd.DataFrame, days: int) -> np.ndarray:
        s = btyd_summary(features)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = self.purchases.conditional_expected_number_of_purchases_up_to_time(
                days / WEEK, s["x"].to_numpy(), s["t_x"].to_numpy(), s["T"].to_numpy())
        return np.nan_to_num(np.asarray(out, dtype=float), nan=0.0, posinf=0.0)

    def probability_alive(self, features: pd.DataFrame) -> np.ndarray:
        s = btyd_summary(features)
        with np.errstate(all="ignore"):
            out = self.purchases.conditional_probability_alive(s["x"].to_numpy(), s["t_x"].to_numpy(), s["T"].to_numpy())
        return np.nan_to_num(np.asarray(out, dtype=float), nan=0.0)

    def expected_spend(self, features: pd.DataFrame, days: int) -> np.ndarray:
        """Expected purchases in ``days`` x expected spend per purchase (the member's mean basket without Gamma-Gamma)."""
        s = btyd_summary(features)
        value = s["monetary"].to_numpy()
        if self.spend is not None:
            with np.errstate(all="ignore"):
                value = np.asarray(self.spend.conditional_expected_average_profit(s["x"], s["monetary"]), dtype=float)
            value = np.where(np.isfinite(value), value, s["monetary"].to_numpy())
        return self.expected_purchases(features, days) * value

    @property
    def params(self) -> dict[str, float]:
        out = {f"bgnbd.{k}": float(v) for k, v in self.purchases.params_.items()}
        if self.spend is not None:
            out.update({f"gamma_gamma.{k}": float(v) for k, v in self.spend.params_.items()})
        out["penalizer"] = self.penalizer
        return out
