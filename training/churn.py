"""The churn pipeline: snapshots -> time split -> fit with early stopping -> evaluate against baselines.

**Label.** Among members with at least one purchase before a date D, churned = no purchase in the
``horizon`` days from D. **Features** are ``engine.point_in_time.features_as_of(D)``: the feature
store's own definitions, from history strictly before D, so nothing on or after D can leak.

**Time split** (cutoff C, horizon H): snapshots whose label windows never overlap:

==================  ==================  ==========================================
features as of      label window        used for
==================  ==================  ==========================================
C - kH (k >= 2)     [C - kH, C-(k-1)H)  fitting while choosing the number of trees
C - H               [C - H, C)          early stopping (the next, unseen period)
C                   [C, C + H)          the reported metrics and promotion holdout
==================  ==================  ==========================================

Training stacks every snapshot C - 2H, C - 3H, ... that has at least ``MIN_HISTORY_DAYS`` of
history before it (up to ``max_train_snapshots``). The number of trees is chosen by early
stopping on *valid* with a model fitted on the training snapshots; the model that is kept is
then refitted with that many trees on them and valid together: every label known before C, and
nothing after it. Validation windows that overlap the training label windows leak: stacking
weekly snapshots up to C - H and stopping on C - H chose 2,896 trees, reached validation AUC
0.79 and test AUC 0.72 on Online Retail. When the history before C - 2H is too thin to train on,
early stopping falls back to 25% of valid's members (recorded as ``validation = random-members``).
The history is folded once for all snapshots (``features_as_of_dates``).

**Intervals.** ROC-AUC differences are paired over the same test members: 1,000 bootstrap
resamples of the members give a 95% interval of the model's AUC and of its lead over each baseline.

**Baselines** are single-score models on the same snapshots: recency, frequency (365 days),
monetary (365 days) and an RFM score (sum of the three quintile ranks), each mapped to a
probability by a one-feature logistic regression fitted on train + valid, so their Brier score
and lift are as comparable as their ROC-AUC.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta

import numpy as np
import pandas as pd

from engine.point_in_time import features_as_of, features_as_of_dates
from engine.programme import Programme
from training.churn_model import MODEL_INPUTS, NUMERIC_FEATURES, ChurnModel, input_frame
from training.steps import StepTimes

BASELINES: tuple[str, ...] = ("recency", "frequency", "monetary", "rfm")
SINGLE_FEATURE_BASELINES: tuple[str, ...] = ("recency", "frequency", "monetary")
MIN_TRAIN_MEMBERS = 100
MIN_HISTORY_DAYS = 30
"""A training snapshot needs this much history before it (a week of data says nothing about rhythm)."""
BOOTSTRAP_RESAMPLES = 1000


@dataclass
class ChurnSnapshot:
    """Members' features as of a day and whether they churned in the horizon after it."""

    as_of: date
    horizon_days: int
    features: pd.DataFrame  # NUMERIC_FEATURES per member (index member_id), from features_as_of
    label: pd.Series  # 1: no purchase in [as_of, as_of + horizon)

    @property
    def inputs(self) -> pd.DataFrame:
        return input_frame(self.features)

    def __len__(self) -> int:
        return len(self.label)


@dataclass(frozen=True)
class ChurnSplit:
    """The as-of dates of the time split (see the module docstring): ``train`` is the latest
    training snapshot, ``earlier`` the older ones stacked with it (newest first)."""

    train: date
    valid: date
    test: date
    horizon_days: int
    earlier: tuple[date, ...] = ()

    @classmethod
    def before(cls, cutoff: date, horizon_days: int, first_day: date | None = None,
               max_train_snapshots: int = 6) -> ChurnSplit:
        """The split for ``cutoff``; with ``first_day`` (the data's first day), older non-overlapping
        training snapshots that have ``MIN_HISTORY_DAYS`` of history are stacked too."""
        h = timedelta(days=horizon_days)
        earlier: list[date] = []
        if first_day is not None:
            k = 3
            while len(earlier) + 1 < max_train_snapshots and cutoff - k * h >= first_day + timedelta(days=MIN_HISTORY_DAYS):
                earlier.append(cutoff - k * h)
                k += 1
        return cls(train=cutoff - 2 * h, valid=cutoff - h, test=cutoff, horizon_days=horizon_days, earlier=tuple(earlier))

    @property
    def train_dates(self) -> tuple[date, ...]:
        return (self.train, *self.earlier)


@dataclass(frozen=True)
class ChurnParams:
    """LightGBM settings; small, regularised trees suit a few thousand members per snapshot."""

    learning_rate: float = 0.03
    num_leaves: int = 7
    min_data_in_leaf: int = 100
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8
    lambda_l2: float = 5.0
    max_rounds: int = 2000
    early_stopping_rounds: int = 100
    seed: int = 0
    max_train_snapshots: int = 6

    def lightgbm(self, n_rows: int) -> dict[str, object]:
        """LightGBM parameters; leaves need fewer members on small data (tests, small shops)."""
        return {
            "objective": "binary",
            "metric": ["binary_logloss", "auc"],
            "first_metric_only": True,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": max(5, min(self.min_data_in_leaf, n_rows // 30)),
            "feature_fraction": self.feature_fraction,
            "bagging_fraction": self.bagging_fraction,
            "bagging_freq": 1,
            "lambda_l2": self.lambda_l2,
            "seed": self.seed,
            "deterministic": True,
            "num_threads": 1,  # OpenMP threads made a 3,000-member fit 40x slower on 2 shared cores
            "verbose": -1,
        }


@dataclass
class ChurnTraining:
    """Everything a churn run produced: the model, its split, scores and metrics."""

    model: ChurnModel
    split: ChurnSplit
    train: ChurnSnapshot
    valid: ChurnSnapshot
    test: ChurnSnapshot
    params: ChurnParams
    best_iteration: int
    validation: str  # "time" or "random-members"
    test_scores: np.ndarray
    baseline_scores: dict[str, np.ndarray]
    metrics: dict[str, float]
    baseline_metrics: dict[str, dict[str, float]]
    times: StepTimes = field(default_factory=StepTimes)
    intervals: dict[str, object] = field(default_factory=dict)
    """"auc_roc": [lo, hi] of the model; "vs_<baseline>": {"mean", "ci95"} of the model's AUC minus the baseline's."""

    @property
    def best_single_feature_baseline(self) -> str:
        return max(SINGLE_FEATURE_BASELINES, key=lambda name: self.baseline_metrics[name]["auc_roc"])

    @property
    def strongest_baseline(self) -> str:
        return max(BASELINES, key=lambda name: self.baseline_metrics[name]["auc_roc"])

    def metrics_json(self) -> dict[str, object]:
        """The ``--metrics-out`` document of DESIGN.md (plus every baseline, the intervals and the split)."""
        strongest = self.strongest_baseline
        single = self.best_single_feature_baseline
        lead = self.intervals.get(f"vs_{strongest}", {})
        return {
            **self.metrics,
            "auc_roc_ci": self.intervals.get("auc_roc", [float("nan"), float("nan")]),
            "auc_roc_over_best_baseline": {"baseline": strongest, "difference": lead.get("mean"),
                                           "ci95": lead.get("ci95")},
            "auc_roc_vs_baselines": {name.removeprefix("vs_"): value for name, value in self.intervals.items()
                                     if name.startswith("vs_")},
            "baseline": {"name": strongest, **self.baseline_metrics[strongest]},
            "baselines": self.baseline_metrics,
            "best_single_feature_baseline": single,
            "auc_roc_over_best_single_feature": round(self.metrics["auc_roc"] - self.baseline_metrics[single]["auc_roc"], 6),
            "n_train": len(self.train) + len(self.valid),
            "n_test": len(self.test),
            "positive_rate": round(float(self.test.label.mean()), 6),
            "cutoff": self.split.test.isoformat(),
            "horizon_days": self.split.horizon_days,
            "split": {k: _iso(v) for k, v in asdict(self.split).items()},
            "train_snapshots": [d.isoformat() for d in self.split.train_dates],
            "validation": self.validation,
            "best_iteration": self.best_iteration,
        }


def _iso(value: object) -> object:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [_iso(v) for v in value]
    return value


# --- steps ---------------------------------------------------------------------------------------


def churn_snapshot(
    transactions: pd.DataFrame,
    as_of: date,
    horizon_days: int,
    programme: Programme,
    members: pd.DataFrame | None = None,
) -> ChurnSnapshot:
    """Features as of ``as_of`` of members who bought before it, and their churn label."""
    return snapshot_from_features(transactions, features_as_of(transactions, as_of, programme, members), as_of,
                                  horizon_days)


def snapshot_from_features(transactions: pd.DataFrame, features: pd.DataFrame, as_of: date,
                           horizon_days: int) -> ChurnSnapshot:
    """The snapshot of members with a purchase before ``as_of``, from their features as of it."""
    features = features[pd.to_numeric(features["orders_total"], errors="coerce").fillna(0) > 0]
    return ChurnSnapshot(
        as_of=as_of,
        horizon_days=horizon_days,
        features=features[list(NUMERIC_FEATURES)],
        label=churn_labels(transactions, features.index, as_of, horizon_days),
    )


def churn_labels(transactions: pd.DataFrame, members: pd.Index, as_of: date, horizon_days: int) -> pd.Series:
    """1 for each member in ``members`` with no purchase in [as_of, as_of + horizon_days), else 0."""
    start = pd.Timestamp(datetime.combine(as_of, time.min))
    end = start + pd.Timedelta(days=horizon_days)
    ts = transactions["ts"]
    active = set(transactions.loc[(ts >= start) & (ts < end), "member_id"].astype(str))
    return pd.Series([0 if str(m) in active else 1 for m in members], index=members, name="churned", dtype=np.int8)


def stack_snapshots(snapshots: list[ChurnSnapshot]) -> ChurnSnapshot:
    """Several snapshots as one training set (a member appears once per snapshot)."""
    snapshots = [s for s in snapshots if len(s)] or snapshots[:1]
    features = pd.concat([s.features for s in snapshots])
    label = pd.concat([s.label for s in snapshots])
    return ChurnSnapshot(as_of=snapshots[0].as_of, horizon_days=snapshots[0].horizon_days, features=features,
                         label=label)


def auc_intervals(label: np.ndarray | pd.Series, scores: np.ndarray, baselines: dict[str, np.ndarray],
                  resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> dict[str, object]:
    """95% bootstrap intervals over members: the model's ROC-AUC and its lead over each baseline (paired:
    every score is evaluated on the same resamples)."""
    y = np.asarray(label, dtype=int)
    if len(np.unique(y)) < 2:
        return {}
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(len(y), np.full(len(y), 1 / len(y)), size=resamples).astype(np.float64)
    full = np.ones((1, len(y)))
    model = weighted_auc(y, np.asarray(scores, dtype=float), weights)
    out: dict[str, object] = {"auc_roc": [round(float(v), 6) for v in np.nanpercentile(model, [2.5, 97.5])]}
    model_full = weighted_auc(y, np.asarray(scores, dtype=float), full)[0]
    for name, baseline in baselines.items():
        baseline = np.asarray(baseline, dtype=float)
        lead = model - weighted_auc(y, baseline, weights)
        lo, hi = np.nanpercentile(lead, [2.5, 97.5])
        out[f"vs_{name}"] = {"mean": round(float(model_full - weighted_auc(y, baseline, full)[0]), 6),
                             "ci95": [round(float(lo), 6), round(float(hi), 6)]}
    return out


def weighted_auc(label: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC-AUC of ``scores`` under each row of member ``weights`` (bootstrap counts), ties counting half.

    One sort for all rows: the positives' weight times the negatives' weight below them, per tie group.
    """
    order = np.argsort(scores, kind="stable")
    ordered = scores[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    w = weights[:, order]
    positive = label[order] == 1
    pos = np.add.reduceat(w * positive, starts, axis=1)
    neg = np.add.reduceat(w * ~positive, starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    with np.errstate(invalid="ignore", divide="ignore"):
        return (pos * (below + 0.5 * neg)).sum(axis=1) / (pos.sum(axis=1) * neg.sum(axis=1))


def check_history_covers(transactions: pd.DataFrame, split: ChurnSplit) -> None:
    """Refuse a cutoff whose label window runs past the data (every member would look churned)."""
    first, last = pd.Timestamp(transactions["ts"].min()), pd.Timestamp(transactions["ts"].max())
    needed = pd.Timestamp(split.test) + pd.Timedelta(days=split.horizon_days - 1)
    if last.normalize() < needed:
        raise ValueError(
            f"the labels of cutoff {split.test} with a {split.horizon_days}-day horizon need data until "
            f"{needed.date()}, but the transactions end on {last.date()}: choose an earlier --cutoff"
        )
    if first >= pd.Timestamp(split.valid):
        raise ValueError(
            f"no history before {split.valid} (cutoff - horizon) to train on: the transactions start on "
            f"{first.date()}; choose a later --cutoff or a shorter --horizon-days"
        )


def fit_churn(
    train: ChurnSnapshot, valid: ChurnSnapshot, params: ChurnParams
) -> tuple[ChurnModel, int, str]:
    """Choose the number of trees by early stopping, then refit on every label known before the cutoff.

    Returns the model, the number of trees and how it was validated ("time" or "random-members").
    """
    import lightgbm as lgb

    names = list(MODEL_INPUTS)
    usable = len(train) >= MIN_TRAIN_MEMBERS and train.label.nunique() == 2
    if usable:
        fit_x, fit_y = train.inputs, train.label
        stop_x, stop_y = valid.inputs, valid.label
        refit_x = pd.concat([train.inputs, valid.inputs])
        refit_y = pd.concat([train.label, valid.label])
        validation = "time"
    else:
        rng = np.random.default_rng(params.seed)
        held = rng.random(len(valid)) < 0.25
        x, y = valid.inputs, valid.label
        fit_x, fit_y, stop_x, stop_y = x[~held], y[~held], x[held], y[held]
        refit_x, refit_y = x, y
        validation = "random-members"
    if refit_y.nunique() < 2:
        raise ValueError("every member has the same churn label before the cutoff: nothing to learn")
    lgb_params = params.lightgbm(len(fit_x))
    probe = lgb.train(
        lgb_params,
        lgb.Dataset(fit_x[names], fit_y, free_raw_data=False),
        num_boost_round=params.max_rounds,
        valid_sets=[lgb.Dataset(stop_x[names], stop_y)],
        callbacks=[lgb.early_stopping(params.early_stopping_rounds, first_metric_only=True, verbose=False)],
    )
    rounds = max(1, int(probe.best_iteration or params.max_rounds))
    booster = lgb.train(params.lightgbm(len(refit_x)), lgb.Dataset(refit_x[names], refit_y), num_boost_round=rounds)
    return ChurnModel(booster=booster, horizon_days=train.horizon_days, inputs=tuple(names)), rounds, validation


def churn_metrics(label: np.ndarray | pd.Series, probability: np.ndarray) -> dict[str, float]:
    """ROC-AUC, PR-AUC (average precision), Brier score and top-decile lift."""
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    y = np.asarray(label, dtype=int)
    p = np.asarray(probability, dtype=float)
    two_classes = len(np.unique(y)) == 2
    return {
        "auc_roc": round(float(roc_auc_score(y, p)), 6) if two_classes else float("nan"),
        "pr_auc": round(float(average_precision_score(y, p)), 6) if two_classes else float("nan"),
        "brier": round(float(brier_score_loss(y, p)), 6),
        "top_decile_lift": round(top_decile_lift(y, p), 6),
    }


def top_decile_lift(label: np.ndarray, probability: np.ndarray) -> float:
    """Churn rate among the 10% highest scores divided by the overall churn rate."""
    n = len(label)
    if n == 0 or label.mean() == 0:
        return float("nan")
    top = np.argsort(-probability, kind="stable")[: max(1, int(np.ceil(n * 0.1)))]
    return float(label[top].mean() / label.mean())


def baseline_score(name: str, features: pd.DataFrame) -> np.ndarray:
    """A baseline's raw score (higher: more likely to churn), computed within one snapshot."""
    recency = pd.to_numeric(features["recency_days"], errors="coerce").fillna(10_000).to_numpy(dtype=float)
    frequency = pd.to_numeric(features["frequency_365d"], errors="coerce").fillna(0).to_numpy(dtype=float)
    monetary = pd.to_numeric(features["monetary_365d"], errors="coerce").fillna(0).to_numpy(dtype=float)
    if name == "recency":
        return recency
    if name == "frequency":
        return -frequency
    if name == "monetary":
        return -monetary
    if name == "rfm":
        # Quintile ranks 1..5, higher = better customer; a low total means likely to churn.
        def quintile(values: np.ndarray) -> np.ndarray:
            return np.ceil(pd.Series(values).rank(method="average", pct=True).to_numpy() * 5)

        return -(quintile(-recency) + quintile(frequency) + quintile(monetary))
    raise ValueError(f"unknown baseline {name!r}; expected one of {', '.join(BASELINES)}")


def fit_baselines(fit: list[ChurnSnapshot], test: ChurnSnapshot) -> dict[str, np.ndarray]:
    """Each baseline's test probabilities from a one-feature logistic regression on the ``fit`` snapshots."""
    from sklearn.linear_model import LogisticRegression

    label = pd.concat([s.label for s in fit]).to_numpy()
    out = {}
    for name in BASELINES:
        score = np.concatenate([baseline_score(name, s.features) for s in fit])
        centre, scale = score.mean(), score.std() or 1.0
        regression = LogisticRegression().fit(((score - centre) / scale).reshape(-1, 1), label)
        test_score = (baseline_score(name, test.features) - centre) / scale
        out[name] = regression.predict_proba(test_score.reshape(-1, 1))[:, 1]
    return out


def train_churn(
    transactions: pd.DataFrame,
    cutoff: date,
    horizon_days: int,
    programme: Programme,
    params: ChurnParams | None = None,
    members: pd.DataFrame | None = None,
) -> ChurnTraining:
    """Run the churn pipeline on canonical transactions (a ``sku`` column is not needed)."""
    params = params or ChurnParams()
    times = StepTimes()
    split = ChurnSplit.before(cutoff, horizon_days, pd.Timestamp(transactions["ts"].min()).date(),
                              params.max_train_snapshots)
    check_history_covers(transactions, split)
    with times.step("features"):
        frames = features_as_of_dates(transactions, [*split.train_dates, split.valid, split.test], programme, members)
        snapshots = {d: snapshot_from_features(transactions, frame, d, horizon_days) for d, frame in frames.items()}
        train = stack_snapshots([snapshots[d] for d in split.train_dates])
        valid, test = snapshots[split.valid], snapshots[split.test]
    with times.step("fit"):
        model, rounds, validation = fit_churn(train, valid, params)
    with times.step("evaluate"):
        scores = model.score_frame(test.inputs)
        metrics = churn_metrics(test.label, scores)
        fit_snapshots = [s for s in (train, valid) if len(s)] if validation == "time" else [valid]
        baselines = fit_baselines(fit_snapshots, test)
        baseline_metrics = {name: churn_metrics(test.label, p) for name, p in baselines.items()}
        intervals = auc_intervals(test.label.to_numpy(), scores, baselines)
    model.info.update({
        "cutoff": cutoff.isoformat(), "horizon_days": horizon_days, "best_iteration": rounds,
        "validation": validation, "trained_on": [d.isoformat() for d in (*split.train_dates, split.valid)],
    })
    return ChurnTraining(
        model=model, split=split, train=train, valid=valid, test=test, params=params,
        best_iteration=rounds, validation=validation, test_scores=scores, baseline_scores=baselines,
        metrics=metrics, baseline_metrics=baseline_metrics, times=times, intervals=intervals,
    )
