"""``nbo bench models``: both models vs their baselines on the full real logs, training times, latencies.

Nothing is logged to MLflow: the pipelines run exactly as ``nbo train`` runs them, minus the
registry step (whose cost, mostly MLflow's own, is reported by ``nbo train``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table


@dataclass(frozen=True)
class BenchmarkDataset:
    """A real log and the dates both pipelines are evaluated at."""

    file: str
    fmt: str
    churn_cutoff: date
    horizon_days: int
    test_from: date


DATASETS: tuple[BenchmarkDataset, ...] = (
    BenchmarkDataset("online_retail.parquet", "online-retail", date(2011, 9, 1), 90, date(2011, 9, 1)),
    # Groceries runs 2014-01-01 .. 2015-12-30: the last 90-day label window and the last 6 months as test.
    BenchmarkDataset("groceries.csv", "groceries", date(2015, 9, 1), 90, date(2015, 7, 1)),
)


@dataclass
class ModelBenchmarkResult:
    """Figures of one benchmark run (also printed as tables)."""

    churn: dict[str, dict[str, object]] = field(default_factory=dict)
    recommender: dict[str, dict[str, object]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    latency_us: dict[str, float] = field(default_factory=dict)


def run_model_benchmark(
    data_dir: Path, console: Console, als_members: int = 64_000, k: int = 10
) -> ModelBenchmarkResult:
    """Train and evaluate both models on each real log in ``data_dir``, time ALS at scale and one request."""
    from engine.programme import Programme
    from engine.settings import Settings
    from training.churn import train_churn
    from training.data import load_transactions
    from training.recommendation import train_recommender

    programme = Programme.from_settings(Settings(_env_file=None, redis_url=None, pii_key="benchmark"))
    result = ModelBenchmarkResult()
    timed = None  # latencies are measured on the first (largest) log's models
    for dataset in DATASETS:
        path = data_dir / dataset.file
        if not path.exists():
            console.print(f"[yellow]{path} is missing: skipped[/yellow]")
            continue
        start = time.perf_counter()
        data = load_transactions(path, dataset.fmt)
        loaded = time.perf_counter()
        churn = train_churn(data.frame, dataset.churn_cutoff, dataset.horizon_days, programme)
        churned = time.perf_counter()
        recommender = train_recommender(data.frame, dataset.test_from, k)
        done = time.perf_counter()
        name = dataset.file.split(".")[0]
        result.churn[name] = churn.metrics_json()
        result.recommender[name] = recommender.metrics_json()
        result.seconds[f"{name}: load"] = loaded - start
        result.seconds[f"{name}: train + evaluate churn"] = churned - loaded
        result.seconds[f"{name}: train + evaluate recommender"] = done - churned
        result.seconds[f"{name}: both, incl. load"] = done - start
        console.print(_churn_table(name, dataset, churn.metrics_json()))
        console.print(_recommender_table(name, dataset, recommender.metrics_json(), k))
        timed = timed or (churn, recommender)

    result.seconds.update(_als_at_scale(als_members, console))
    if timed is not None:
        result.latency_us.update(_latencies(*timed))
    console.print(_figures_table(result))
    return result


def _churn_table(name: str, dataset: BenchmarkDataset, metrics: dict) -> Table:
    table = Table(title=f"churn on {name}: cutoff {dataset.churn_cutoff}, {dataset.horizon_days}-day horizon, "
                        f"{metrics['n_test']:,} members, churn rate {metrics['positive_rate']:.1%}")
    columns = ("auc_roc", "pr_auc", "brier", "top_decile_lift")
    table.add_column("model")
    for column in columns:
        table.add_column(column, justify="right")
    rows = [("lightgbm", metrics), *metrics["baselines"].items()]
    for model, values in rows:
        table.add_row(model, *(f"{values[c]:.4f}" for c in columns))
    best = metrics["best_single_feature_baseline"]
    table.caption = (f"ROC-AUC over the best single feature ({best}): {metrics['auc_roc_over_best_single_feature']:+.4f}; "
                     f"trees: {metrics['best_iteration']} (validation: {metrics['validation']})")
    return table


def _recommender_table(name: str, dataset: BenchmarkDataset, metrics: dict, k: int) -> Table:
    table = Table(title=f"recommender on {name}: test from {dataset.test_from}, k={k}, {metrics['n_users']:,} members")
    columns = ("precision_at_k", "recall_at_k", "ndcg_at_k", "coverage")
    table.add_column("model")
    for column in columns:
        table.add_column(column.replace("_at_k", f"@{k}"), justify="right")
    rows = [("blend", metrics), *metrics["baselines"].items(), ("als alone", metrics["als"])]
    for model, values in rows:
        table.add_row(model, *(f"{values[c]:.4f}" for c in columns))
    diff = metrics["blend_minus_repeat"]
    chosen = metrics["chosen"]
    table.caption = (
        f"blend - repeat: NDCG {diff['ndcg_at_k']['mean']:+.4f} (95% CI {diff['ndcg_at_k']['ci95'][0]:+.4f}.."
        f"{diff['ndcg_at_k']['ci95'][1]:+.4f}), recall {diff['recall_at_k']['mean']:+.4f} "
        f"({diff['recall_at_k']['ci95'][0]:+.4f}..{diff['recall_at_k']['ci95'][1]:+.4f}); "
        f"basket completion hit@{k}: blend {metrics['basket_completion_hit_rate']['blend']:.3f}, popular "
        f"{metrics['basket_completion_hit_rate']['popular']:.3f}; ALS {chosen['factors']} factors, "
        f"regularisation {chosen['regularization']}"
    )
    return table


def _als_at_scale(members: int, console: Console) -> dict[str, float]:
    """Seconds to fit ALS (128 factors, 15 iterations) on a synthetic shop's purchase matrix."""
    from recommender import ALSParams, ALSRecommender, Interactions
    from tools.synthetic import generate

    data = generate(members=members, days=120, seed=1)
    interactions = Interactions.from_transactions(data.transactions)
    start = time.perf_counter()
    ALSRecommender(ALSParams(factors=128, regularization=10.0)).fit(interactions)
    seconds = time.perf_counter() - start
    label = (f"ALS fit, {interactions.counts.nnz:,} synthetic (member, item) interactions "
             f"({interactions.counts.shape[0]:,} x {interactions.counts.shape[1]:,}, 128 factors)")
    return {label: seconds}


def _latencies(churn, recommender, repeats: int = 20_000) -> dict[str, float]:
    """Median in-process latency of one churn score and of one member's top-10 (plus its 99th percentile)."""
    model = churn.model
    rows = churn.test.features.head(200)
    features = [{name: (None if value != value else value) for name, value in row.items()} for _, row in rows.iterrows()]
    for f in features:
        model.score(f)
    samples = []
    for i in range(repeats):
        f = features[i % len(features)]
        start = time.perf_counter()
        model.score(f)
        samples.append(time.perf_counter() - start)
    blend = recommender.model
    members = list(recommender.truth)[:2000]
    for member in members[:200]:
        blend.recommend(member, (), 10)
    top10 = []
    for member in members:
        start = time.perf_counter()
        blend.recommend(member, (), 10)
        top10.append(time.perf_counter() - start)
    churn_us, top10_us = np.array(samples) * 1e6, np.array(top10) * 1e6
    return {
        "one churn score, median": float(np.median(churn_us)),
        "one churn score, p99": float(np.percentile(churn_us, 99)),
        "one member's top-10, median": float(np.median(top10_us)),
        "one member's top-10, p99": float(np.percentile(top10_us, 99)),
    }


def _figures_table(result: ModelBenchmarkResult) -> Table:
    table = Table(title="times (this machine)")
    table.add_column("measure")
    table.add_column("figure", justify="right")
    for label, seconds in result.seconds.items():
        table.add_row(label, f"{seconds:.1f} s")
    for label, micros in result.latency_us.items():
        table.add_row(label, f"{micros:.0f} us")
    return table
