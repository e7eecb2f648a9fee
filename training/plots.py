"""Churn evaluation plots, written as PNG files and logged as run artifacts.

ROC (model and baselines), calibration (reliability), cumulative gain with lift, feature importance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from training.churn import ChurnTraining


def churn_plots(result: ChurnTraining, folder: str | Path) -> list[Path]:
    """Write the four churn plots into ``folder``; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")  # files only: never open a window, works without a display
    import matplotlib.pyplot as plt
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import roc_curve

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    y = result.test.label.to_numpy()
    curves = {"model": result.test_scores, **result.baseline_scores}
    paths = []

    fig, ax = plt.subplots(figsize=(5.5, 5))
    for name, scores in curves.items():
        fpr, tpr, _ = roc_curve(y, scores)
        auc = result.metrics["auc_roc"] if name == "model" else result.baseline_metrics[name]["auc_roc"]
        ax.plot(fpr, tpr, lw=2 if name == "model" else 1, label=f"{name} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=_title("ROC", result))
    ax.legend(loc="lower right", fontsize=8)
    paths.append(_save(fig, folder / "roc.png"))

    fig, ax = plt.subplots(figsize=(5.5, 5))
    for name, scores in curves.items():
        observed, predicted = calibration_curve(y, scores, n_bins=10, strategy="quantile")
        brier = result.metrics["brier"] if name == "model" else result.baseline_metrics[name]["brier"]
        ax.plot(predicted, observed, "o-", lw=2 if name == "model" else 1, ms=4, label=f"{name} (Brier {brier:.3f})")
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set(xlabel="predicted churn probability", ylabel="observed churn rate", title=_title("Calibration", result))
    ax.legend(loc="upper left", fontsize=8)
    paths.append(_save(fig, folder / "calibration.png"))

    fig, (gain_ax, lift_ax) = plt.subplots(1, 2, figsize=(10, 4.5))
    share = np.arange(1, len(y) + 1) / max(len(y), 1)
    for name, scores in curves.items():
        order = np.argsort(-scores, kind="stable")
        captured = np.cumsum(y[order]) / max(y.sum(), 1)
        gain_ax.plot(share, captured, lw=2 if name == "model" else 1, label=name)
        lift_ax.plot(share, captured / share, lw=2 if name == "model" else 1, label=name)
    gain_ax.plot([0, 1], [0, 1], "k:", lw=1)
    gain_ax.set(xlabel="share of members contacted (highest scores first)", ylabel="share of churners reached",
                title="Cumulative gain")
    lift_ax.axhline(1.0, color="k", ls=":", lw=1)
    lift_ax.set(xlabel="share of members contacted", ylabel="lift", title="Lift", xlim=(0.02, 1))
    gain_ax.legend(loc="lower right", fontsize=8)
    paths.append(_save(fig, folder / "gain_lift.png"))

    booster = result.model.booster
    importance = booster.feature_importance(importance_type="gain")
    names = np.array(booster.feature_name())
    order = np.argsort(importance)[-20:]
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.barh(names[order], importance[order])
    ax.set(xlabel="total gain", title="Feature importance (gain)")
    paths.append(_save(fig, folder / "feature_importance.png"))
    return paths


def _title(kind: str, result: ChurnTraining) -> str:
    return f"{kind}: churn in {result.split.horizon_days} days after {result.split.test}"


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def ltv_plots(result, folder: str | Path) -> list[Path]:
    """Spend captured by rank (model and baselines) and mean predicted vs actual spend by decile."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    y = result.test.label.to_numpy(dtype=float)
    curves = {"model": result.test_scores, **result.baseline_scores}
    share = np.arange(1, len(y) + 1) / max(len(y), 1)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for name, scores in curves.items():
        order = np.argsort(-np.asarray(scores), kind="stable")
        gini = result.metrics["gini"] if name == "model" else result.baseline_metrics[name]["gini"]
        ax.plot(share, np.cumsum(y[order]) / max(y.sum(), 1e-9), lw=2 if name == "model" else 1,
                label=f"{name} (Gini {gini:.3f})")
    ax.plot(share, np.cumsum(np.sort(y)[::-1]) / max(y.sum(), 1e-9), "k--", lw=1, label="hindsight")
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set(xlabel="share of members (highest predicted first)", ylabel="share of holdout spend",
           title=f"LTV gain: spend in {result.split.horizon_days} days after {result.split.test}")
    ax.legend(loc="lower right", fontsize=8)
    paths = [_save(fig, folder / "gain.png")]

    fig, ax = plt.subplots(figsize=(5.5, 5))
    deciles = np.array_split(np.argsort(result.test_scores, kind="stable"), 10)
    ax.plot([result.test_scores[d].mean() for d in deciles], [y[d].mean() for d in deciles], "o-", label="model")
    top = max(float(y.mean()) * 4, 1.0)
    ax.plot([0, top], [0, top], "k:", lw=1)
    ax.set(xlabel="mean predicted spend (decile)", ylabel="mean actual spend", title="LTV calibration by decile")
    paths.append(_save(fig, folder / "calibration.png"))
    return paths


def response_plots(result, folder: str | Path) -> list[Path]:
    """Qini curves on the held-out exposures: the model, random targeting and the hand-set propensity."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from training.response import heuristic_propensity, qini_curve

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    holdout = result.holdout
    treated, spend = holdout["treated"].to_numpy(), holdout["spend"].to_numpy(dtype=float)
    n = len(holdout)
    share = np.arange(1, n + 1) / max(n, 1)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for name, score in (("model", result.scores["uplift"].to_numpy()), ("hand-set propensity", heuristic_propensity(holdout))):
        ax.plot(share, qini_curve(score, treated, spend) / max(n, 1), lw=2 if name == "model" else 1, label=name)
    total = qini_curve(np.zeros(n), treated, spend)[-1] / max(n, 1) if n else 0.0
    ax.plot([0, 1], [0, total], "k:", lw=1, label="random")
    ax.set(xlabel="share of exposed members targeted (highest score first)",
           ylabel="incremental spend per exposed member (yuan)", title=f"Qini: exposures from {result.test_from}")
    ax.legend(loc="lower right", fontsize=8)
    return [_save(fig, folder / "qini.png")]
