"""The response (uplift) pipeline: exposures -> point-in-time features -> two-model uplift -> Qini.

**Data** are the records the service keeps for every rule (``engine.measurement``): each
exposure is a member who met a rule on a day, in its treatment group (the offer was made) or its
holdout (nothing), and whether the coupon was redeemed. The **outcome** is the member's spend
from the exposure day through ``attribution_days`` (the window the lift report uses), from the
transactions; the **features** are the member's as of the exposure day (history strictly before
it, ``features_as_of_dates``), so nothing the offer caused can leak into them.

**Split**: exposures before ``test_from`` train the model (a quarter of their members stop
the boosting early); exposures from ``test_from`` on are the holdout for the metrics and promotion.

**Learner**: two models (T-learner) on LightGBM with a Tweedie objective: spend of the treated
and spend of the held-out members, uplift = the difference; plus a classifier of redemption
among the treated (the propensity arbitration uses).

**Metrics** on the holdout, members ranked by predicted uplift: the Qini curve
Q(k) = Y_t(k) - Y_c(k) N_t(k) / N_c(k) (incremental spend of the top k, the holdout scaled to the
treated count), ``auuc`` = the mean of Q(k) / N over k (yuan per exposed member) and ``qini`` =
``auuc`` minus the same area for random targeting (0: no better than chance). Baselines: random
scores (20 draws) and the hand-set propensity of ``engine.arbitration`` (base rate x (1 + uplift
per coupon redeemed before)), which ranks by past redemptions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from engine.point_in_time import features_as_of_dates
from engine.programme import Programme
from engine.settings import ArbitrationRules
from training.churn import ChurnParams, churn_metrics
from training.churn_model import MODEL_INPUTS, NUMERIC_FEATURES, ChurnModel, input_frame
from training.ltv import spend_between
from training.response_model import ResponseModel
from training.steps import StepTimes

EXPOSURE_COLUMNS: tuple[str, ...] = ("member_id", "rule_id", "day", "group", "redeemed")
RANDOM_DRAWS = 20
BOOTSTRAP_RESAMPLES = 300


@dataclass
class ResponseTraining:
    """Everything a response run produced."""

    model: ResponseModel
    test_from: date
    attribution_days: int
    train: pd.DataFrame  # exposures with features, treated, spend, redeemed
    holdout: pd.DataFrame
    scores: pd.DataFrame  # redeem, uplift per holdout exposure
    metrics: dict[str, float]
    baseline_metrics: dict[str, dict[str, float]]
    intervals: dict[str, object]
    times: StepTimes = field(default_factory=StepTimes)

    def metrics_json(self) -> dict[str, object]:
        """The ``--metrics-out`` document: ``qini``, ``auuc``, ``baselines`` (random, heuristic), ``n_train``, ``n_test``."""
        return {
            **self.metrics,
            "qini_vs_baselines": self.intervals,
            "baselines": self.baseline_metrics,
            "n_train": len(self.train),
            "n_test": len(self.holdout),
            "treated_share_test": round(float(self.holdout["treated"].mean()), 4),
            "test_from": self.test_from.isoformat(),
            "attribution_days": self.attribution_days,
            "learner": self.model.learner,
            "trees": self.model.rounds_params(),
        }


# --- data ------------------------------------------------------------------------------------------


def read_exposures(path) -> pd.DataFrame:
    """Exposures from CSV or Parquet (``EXPOSURE_COLUMNS``; ``redeemed`` optional, default false)."""
    from pathlib import Path

    path = Path(path)
    frame = pd.read_parquet(path) if path.suffix in (".parquet", ".pq") else pd.read_csv(path)
    return normalise_exposures(frame, str(path))


def normalise_exposures(frame: pd.DataFrame, source: str = "exposures") -> pd.DataFrame:
    """Check and type an exposure frame; a clear error names what is missing or wrong."""
    missing = [c for c in ("member_id", "rule_id", "day", "group") if c not in frame.columns]
    if missing:
        raise ValueError(f"{source}: missing column(s) {', '.join(missing)} (expected {', '.join(EXPOSURE_COLUMNS)})")
    out = frame.copy()
    out["member_id"] = out["member_id"].astype(str)
    out["rule_id"] = out["rule_id"].astype(str)
    out["day"] = pd.to_datetime(out["day"]).dt.date
    bad = ~out["group"].isin(["t", "h"])
    if bad.any():
        raise ValueError(f"{source}: group must be 't' (treatment) or 'h' (holdout); row {int(np.flatnonzero(bad)[0])} "
                         f"has {out['group'][bad].iloc[0]!r}")
    out["redeemed"] = out["redeemed"].fillna(False).astype(bool) if "redeemed" in out else False
    return out[list(EXPOSURE_COLUMNS)].drop_duplicates(["member_id", "rule_id", "day"]).reset_index(drop=True)


def exposure_frame(transactions: pd.DataFrame, exposures: pd.DataFrame, programme: Programme,
                   attribution_days: int, members: pd.DataFrame | None = None) -> pd.DataFrame:
    """Each exposure with the member's features as of its day, ``treated`` and ``spend`` in the window."""
    days = sorted(set(exposures["day"]))
    frames = features_as_of_dates(transactions, days, programme, members)
    parts = []
    for day, group in exposures.groupby("day", sort=True):
        features = frames[day].reindex(group["member_id"])[list(NUMERIC_FEATURES)]
        features.index = group.index
        spend = spend_between(transactions, pd.Index(group["member_id"]), day, attribution_days).to_numpy()
        parts.append(pd.concat([group, features], axis=1).assign(treated=(group["group"] == "t").to_numpy(), spend=spend))
    return pd.concat(parts).sort_index()


# --- metrics -----------------------------------------------------------------------------------------


def qini_curve(score: np.ndarray, treated: np.ndarray, outcome: np.ndarray, seed: int = 0) -> np.ndarray:
    """Q(k) for k = 1..N, members by descending score (ties in a random order)."""
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(len(score)), -np.asarray(score, dtype=float)))
    t = np.asarray(treated, dtype=bool)[order]
    y = np.asarray(outcome, dtype=float)[order]
    n_t, n_c = np.cumsum(t), np.cumsum(~t)
    y_t, y_c = np.cumsum(np.where(t, y, 0.0)), np.cumsum(np.where(t, 0.0, y))
    with np.errstate(divide="ignore", invalid="ignore"):
        return y_t - np.where(n_c > 0, y_c * n_t / n_c, 0.0)


def uplift_metrics(score: np.ndarray, treated: np.ndarray, outcome: np.ndarray, seed: int = 0) -> dict[str, float]:
    """``auuc`` (mean Q(k) / N) and ``qini`` (auuc minus random targeting's), yuan per exposed member."""
    q = qini_curve(score, treated, outcome, seed)
    n = len(q)
    if n == 0:
        return {"qini": float("nan"), "auuc": float("nan")}
    auuc = float(q.mean() / n)
    random_line = float(q[-1] / n * (n + 1) / (2 * n))
    return {"qini": round(auuc - random_line, 6), "auuc": round(auuc, 6),
            "incremental_per_member": round(float(q[-1] / n), 6),
            "uplift_top_30pct": round(float(q[max(0, int(np.ceil(0.3 * n)) - 1)] / n), 6)}


def heuristic_propensity(features: pd.DataFrame, rules: ArbitrationRules | None = None) -> np.ndarray:
    """Today's hand-set coupon propensity (``engine.arbitration.expected_value``) for each row."""
    rules = rules or ArbitrationRules()
    redeemed = np.minimum(pd.to_numeric(features["coupons_redeemed"], errors="coerce").fillna(0).to_numpy(), 5)
    return np.minimum(rules.base_propensity.get("coupon", 0.0) * (1 + rules.redeemer_uplift * redeemed), 1.0)


def holdout_qini(model: ResponseModel, holdout: pd.DataFrame) -> float:
    """``model``'s Qini on a logged holdout (what promotion compares)."""
    scores = model.score_frame(holdout[list(NUMERIC_FEATURES)])
    return uplift_metrics(scores["uplift"].to_numpy(), holdout["treated"].to_numpy(), holdout["spend"].to_numpy())["qini"]


def qini_intervals(score: np.ndarray, baselines: dict[str, np.ndarray], treated: np.ndarray, outcome: np.ndarray,
                   resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> dict[str, object]:
    """95% bootstrap intervals over exposures of the model's Qini lead over each baseline (paired)."""
    rng = np.random.default_rng(seed)
    n = len(score)
    leads: dict[str, list[float]] = {name: [] for name in baselines}
    for _ in range(resamples):
        idx = rng.integers(0, n, n)
        model = uplift_metrics(score[idx], treated[idx], outcome[idx])["qini"]
        for name, baseline in baselines.items():
            leads[name].append(model - uplift_metrics(baseline[idx], treated[idx], outcome[idx])["qini"])
    full = uplift_metrics(score, treated, outcome)["qini"]
    return {name: {"difference": round(full - uplift_metrics(b, treated, outcome)["qini"], 6),
                   "ci95": [round(float(v), 6) for v in np.nanpercentile(leads[name], [2.5, 97.5])]}
            for name, b in baselines.items()}


# --- fitting -----------------------------------------------------------------------------------------


def _booster(x: pd.DataFrame, y: pd.Series, params: dict, stop: np.ndarray, trees: ChurnParams) -> ChurnModel:
    import lightgbm as lgb

    names = list(MODEL_INPUTS)
    probe = lgb.train(params, lgb.Dataset(x.loc[~stop, names], y[~stop]), num_boost_round=trees.max_rounds,
                      valid_sets=[lgb.Dataset(x.loc[stop, names], y[stop])],
                      callbacks=[lgb.early_stopping(trees.early_stopping_rounds, verbose=False)])
    rounds = max(1, int(probe.best_iteration or trees.max_rounds))
    booster = lgb.train(params, lgb.Dataset(x[names], y), num_boost_round=rounds)
    return ChurnModel(booster=booster, horizon_days=0, inputs=tuple(names))


def fit_response(train: pd.DataFrame, attribution_days: int, trees: ChurnParams | None = None) -> ResponseModel:
    """The two spend models and the redemption classifier; a quarter of the members stop each early."""
    trees = trees or ChurnParams()
    x = input_frame(train[list(NUMERIC_FEATURES)]).reset_index(drop=True)
    treated = train["treated"].to_numpy()
    spend = pd.Series(train["spend"].to_numpy(dtype=float))
    redeemed = pd.Series(train["redeemed"].to_numpy(dtype=float))
    members = pd.Series(train["member_id"].to_numpy())
    held = _stop_members(members)
    if treated.sum() < 50 or (~treated).sum() < 50:
        raise ValueError(f"too few exposures to learn an uplift: {int(treated.sum())} treated, "
                         f"{int((~treated).sum())} held out (at least 50 of each)")
    spend_params = trees.lightgbm(int(min(treated.sum(), (~treated).sum())))
    spend_params.update({"objective": "tweedie", "tweedie_variance_power": 1.5, "metric": ["tweedie"]})
    redeem_params = trees.lightgbm(int(treated.sum()))
    t, c = np.flatnonzero(treated), np.flatnonzero(~treated)
    if redeemed.iloc[t].nunique() < 2:
        raise ValueError("every treated exposure has the same redemption outcome: cannot learn who redeems")
    model = ResponseModel(
        redeem=_booster(x.iloc[t].reset_index(drop=True), redeemed.iloc[t].reset_index(drop=True), redeem_params,
                        held.iloc[t].to_numpy(), trees),
        treated=_booster(x.iloc[t].reset_index(drop=True), spend.iloc[t].reset_index(drop=True), spend_params,
                         held.iloc[t].to_numpy(), trees),
        control=_booster(x.iloc[c].reset_index(drop=True), spend.iloc[c].reset_index(drop=True), spend_params,
                         held.iloc[c].to_numpy(), trees),
        attribution_days=attribution_days,
    )
    return model


def _stop_members(members: pd.Series, share: float = 0.25, seed: int = 0) -> pd.Series:
    """A fixed ``share`` of the members (all their exposures) for early stopping."""
    unique = np.sort(members.unique())
    chosen = set(unique[np.random.default_rng(seed).random(len(unique)) < share])
    return members.isin(chosen)


def train_response(
    transactions: pd.DataFrame,
    exposures: pd.DataFrame,
    test_from: date,
    programme: Programme,
    attribution_days: int = 14,
    members: pd.DataFrame | None = None,
    trees: ChurnParams | None = None,
) -> ResponseTraining:
    """Run the response pipeline: fit on exposures before ``test_from``, evaluate on the rest."""
    times = StepTimes()
    exposures = normalise_exposures(exposures)
    last_day = pd.Timestamp(transactions["ts"].max()).date()
    with times.step("features"):
        frame = exposure_frame(transactions, exposures, programme, attribution_days, members)
    frame = frame[pd.to_numeric(frame["orders_total"], errors="coerce").notna()]  # members registered by then
    train = frame[frame["day"] < test_from].reset_index(drop=True)
    holdout = frame[frame["day"] >= test_from].reset_index(drop=True)
    if holdout.empty or train.empty:
        raise ValueError(f"--test-from {test_from} must leave exposures on both sides "
                         f"(exposures run {exposures['day'].min()} .. {exposures['day'].max()})")
    if max(holdout["day"]) > last_day:
        raise ValueError(f"exposures after the transactions end ({last_day}): their outcome is unknown")
    with times.step("fit"):
        model = fit_response(train, attribution_days, trees)
    with times.step("evaluate"):
        scores = model.score_frame(holdout[list(NUMERIC_FEATURES)])
        treated, spend = holdout["treated"].to_numpy(), holdout["spend"].to_numpy(dtype=float)
        metrics = uplift_metrics(scores["uplift"].to_numpy(), treated, spend)
        redeem = holdout.loc[treated, "redeemed"].to_numpy(dtype=int)
        if len(np.unique(redeem)) == 2:
            metrics["redeem_auc_roc"] = churn_metrics(redeem, scores.loc[treated, "redeem"].to_numpy())["auc_roc"]
        rng = np.random.default_rng(1)
        random_draws = [uplift_metrics(rng.random(len(holdout)), treated, spend, seed=s) for s in range(RANDOM_DRAWS)]
        heuristic = heuristic_propensity(holdout)
        baseline_metrics = {
            "random": {key: round(float(np.mean([d[key] for d in random_draws])), 6) for key in random_draws[0]},
            "heuristic": uplift_metrics(heuristic, treated, spend),
        }
        intervals = qini_intervals(scores["uplift"].to_numpy(), {"random": rng.random(len(holdout)),
                                                                   "heuristic": heuristic}, treated, spend)
    model.info.update({"test_from": test_from.isoformat(), "attribution_days": attribution_days,
                       "trained_on": [str(min(train["day"])), str(max(train["day"]))]})
    keep = ["member_id", "rule_id", "day", "treated", "redeemed", "spend", *NUMERIC_FEATURES]
    return ResponseTraining(
        model=model, test_from=test_from, attribution_days=attribution_days, train=train[keep],
        holdout=holdout[keep].assign(day=lambda f: f["day"].astype(str)), scores=scores, metrics=metrics,
        baseline_metrics=baseline_metrics, intervals=intervals, times=times,
    )
