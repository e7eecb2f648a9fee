"""``nbo bench models``: every model vs its baselines on the real logs and synthetic data, times, latencies.

One table per model and dataset: the model, every baseline, the paired bootstrap interval of its
lead over the strongest baseline, and the training time; then the cost of scoring one member
online with churn, lifetime value and the response model together (one input row, ``score_member``)
against churn alone.

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
    ltv: dict[str, dict[str, object]] = field(default_factory=dict)
    response: dict[str, dict[str, object]] = field(default_factory=dict)
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

    ltv_model = None
    retail = data_dir / DATASETS[0].file
    if retail.exists():
        from training.ltv import train_ltv

        data = load_transactions(retail, DATASETS[0].fmt)
        start = time.perf_counter()
        ltv = train_ltv(data.frame, DATASETS[0].churn_cutoff, DATASETS[0].horizon_days, programme)
        result.seconds["online_retail: train + evaluate ltv"] = time.perf_counter() - start
        result.ltv["online_retail"] = ltv.metrics_json()
        console.print(_ltv_table("online_retail", ltv.metrics_json(), result.seconds["online_retail: train + evaluate ltv"]))
        ltv_model = ltv.model
    response_model = _synthetic(result, console, programme, k)
    result.seconds.update(_als_at_scale(als_members, console))
    if timed is not None:
        result.latency_us.update(_latencies(*timed))
        if ltv_model is not None and response_model is not None:
            result.latency_us.update(_decision_latency(timed[0], ltv_model, response_model))
    console.print(_figures_table(result))
    return result


def _synthetic(result: ModelBenchmarkResult, console: Console, programme, k: int):
    """Churn, LTV, recommender and response on synthetic members with coupon campaigns of known effect."""
    from tools.synthetic import generate, with_coupon_responses
    from training.churn import train_churn
    from training.ltv import train_ltv
    from training.recommendation import train_recommender
    from training.response import train_response

    shop = with_coupon_responses(generate(members=6000, days=240, seed=1, start=date(2025, 6, 1)), seed=1)
    cutoff = date(2025, 12, 15)
    timings = {}
    start = time.perf_counter()
    churn = train_churn(shop.transactions, cutoff, 30, programme, members=shop.members)
    timings["churn"] = time.perf_counter() - start
    start = time.perf_counter()
    ltv = train_ltv(shop.transactions, cutoff, 30, programme, members=shop.members)
    timings["ltv"] = time.perf_counter() - start
    start = time.perf_counter()
    recommender = train_recommender(shop.transactions, date(2026, 1, 1), k)
    timings["recommender"] = time.perf_counter() - start
    start = time.perf_counter()
    response = train_response(shop.transactions, shop.exposures, max(shop.exposures["day"]), programme,
                              members=shop.members)
    timings["response"] = time.perf_counter() - start
    for kind, seconds in timings.items():
        result.seconds[f"synthetic: train + evaluate {kind}"] = seconds
    result.churn["synthetic"] = churn.metrics_json()
    result.ltv["synthetic"] = ltv.metrics_json()
    result.recommender["synthetic"] = recommender.metrics_json()
    document = response.metrics_json()
    document["true_uplift"] = _true_uplift_check(response, shop)
    result.response["synthetic"] = document
    console.print(_churn_table("synthetic", BenchmarkDataset("synthetic", "canonical", cutoff, 30, date(2026, 1, 1)),
                               churn.metrics_json()))
    console.print(_ltv_table("synthetic", ltv.metrics_json(), timings["ltv"]))
    console.print(_recommender_table("synthetic", BenchmarkDataset("synthetic", "canonical", cutoff, 30, date(2026, 1, 1)),
                                     recommender.metrics_json(), k))
    console.print(_response_table("synthetic", document, timings["response"]))
    return response.model


def _true_uplift_check(response, shop) -> dict[str, float]:
    """How well the model ranks the holdout by the generator's true uplift: Spearman and the oracle Qini."""
    from scipy.stats import spearmanr

    truth = shop.truth.responses.set_index("member_id")["true_uplift"].loc[response.holdout["member_id"]].to_numpy()
    predicted = response.scores["uplift"].to_numpy()

    def oracle(score: np.ndarray) -> float:
        q = np.cumsum(truth[np.argsort(-score, kind="stable")])
        n = len(q)
        return float(q.mean() / n - q[-1] / n * (n + 1) / (2 * n))

    return {"spearman": round(float(spearmanr(predicted, truth).statistic), 4),
            "oracle_qini_model": round(oracle(predicted), 4), "oracle_qini_perfect": round(oracle(truth), 4),
            "oracle_qini_redeem_only": round(oracle(response.scores["redeem"].to_numpy()), 4)}


def _ltv_table(name: str, metrics: dict, seconds: float) -> Table:
    table = Table(title=f"ltv on {name}: spend in {metrics['horizon_days']} days after {metrics['cutoff']}, "
                        f"{metrics['n_test']:,} members, mean {metrics['mean_spend']:.1f} yuan")
    columns = ("spearman", "gini", "top_decile_capture", "mae")
    table.add_column("model")
    for column in columns:
        table.add_column(column, justify="right")
    table.add_column("Gini lead, 95% CI", justify="right")
    table.add_row("lightgbm (tweedie)", *(f"{metrics[c]:.4f}" for c in columns), "")
    for baseline, values in metrics["baselines"].items():
        lead = metrics["vs_baselines"][baseline]["gini"]
        table.add_row(baseline, *(f"{values[c]:.4f}" for c in columns),
                      f"{lead['difference']:+.4f} ({lead['ci95'][0]:+.4f}..{lead['ci95'][1]:+.4f})")
    table.caption = f"Gini 95% CI {metrics['gini_ci'][0]:.4f}..{metrics['gini_ci'][1]:.4f}; trained in {seconds:.1f} s"
    return table


def _response_table(name: str, metrics: dict, seconds: float) -> Table:
    table = Table(title=f"response on {name}: exposures from {metrics['test_from']}, {metrics['n_test']:,} held out, "
                        f"{metrics['attribution_days']}-day spend")
    columns = ("qini", "auuc", "uplift_top_30pct")
    table.add_column("model")
    for column in columns:
        table.add_column(column, justify="right")
    table.add_column("Qini lead, 95% CI", justify="right")
    table.add_row("two-model uplift", *(f"{metrics[c]:.4f}" for c in columns), "")
    for baseline, values in metrics["baselines"].items():
        lead = metrics["qini_vs_baselines"][baseline]
        table.add_row(baseline, *(f"{values[c]:.4f}" for c in columns),
                      f"{lead['difference']:+.4f} ({lead['ci95'][0]:+.4f}..{lead['ci95'][1]:+.4f})")
    truth = metrics.get("true_uplift", {})
    table.caption = (f"against the generator's true uplift: Spearman {truth.get('spearman', float('nan')):.3f}, "
                     f"oracle Qini {truth.get('oracle_qini_model', float('nan')):.2f} of a perfect "
                     f"{truth.get('oracle_qini_perfect', float('nan')):.2f} (ranking by p(redeem): "
                     f"{truth.get('oracle_qini_redeem_only', float('nan')):.2f}); redeem AUC "
                     f"{metrics.get('redeem_auc_roc', float('nan')):.3f}; trained in {seconds:.1f} s")
    return table


def _decision_latency(churn, ltv_model, response_model, repeats: int = 20_000) -> dict[str, float]:
    """Median cost of churn alone vs churn + LTV + response from one input row, per member."""
    from training.champions import ChampionModels

    rows = churn.test.features.head(200)
    features = [{name: (None if value != value else value) for name, value in row.items()} for _, row in rows.iterrows()]
    alone = ChampionModels.from_models(churn=churn.model)
    together = ChampionModels.from_models(churn=churn.model, ltv=ltv_model, response=response_model)

    def median_us(models) -> float:
        for f in features:
            models.score_member(f)
        samples = []
        for i in range(repeats):
            f = features[i % len(features)]
            start = time.perf_counter()
            models.score_member(f)
            samples.append(time.perf_counter() - start)
        return float(np.median(samples) * 1e6)

    churn_only, everything = median_us(alone), median_us(together)
    return {"churn alone (score_member), median": churn_only,
            "churn + ltv + response (one row), median": everything,
            "what ltv + response add to a decision": everything - churn_only}


def _churn_table(name: str, dataset: BenchmarkDataset, metrics: dict) -> Table:
    table = Table(title=f"churn on {name}: cutoff {dataset.churn_cutoff}, {dataset.horizon_days}-day horizon, "
                        f"{metrics['n_test']:,} members, churn rate {metrics['positive_rate']:.1%}")
    columns = ("auc_roc", "pr_auc", "brier", "top_decile_lift")
    table.add_column("model")
    for column in columns:
        table.add_column(column, justify="right")
    table.add_column("AUC lead, 95% CI", justify="right")
    table.add_row("lightgbm", *(f"{metrics[c]:.4f}" for c in columns), "")
    for model, values in metrics["baselines"].items():
        lead = metrics["auc_roc_vs_baselines"][model]
        table.add_row(model, *(f"{values[c]:.4f}" for c in columns),
                      f"{lead['mean']:+.4f} ({lead['ci95'][0]:+.4f}..{lead['ci95'][1]:+.4f})")
    best = metrics["best_single_feature_baseline"]
    lead = metrics["auc_roc_over_best_baseline"]
    table.caption = (f"ROC-AUC 95% CI {metrics['auc_roc_ci'][0]:.4f}..{metrics['auc_roc_ci'][1]:.4f}; over the best "
                     f"baseline ({lead['baseline']}): {lead['difference']:+.4f} (95% CI {lead['ci95'][0]:+.4f}.."
                     f"{lead['ci95'][1]:+.4f}); over the best single feature ({best}): "
                     f"{metrics['auc_roc_over_best_single_feature']:+.4f}; trees: {metrics['best_iteration']} "
                     f"(validation: {metrics['validation']}, {len(metrics['train_snapshots'])} training snapshot(s))")
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
