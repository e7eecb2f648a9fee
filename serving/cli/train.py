"""``nbo train``: train the churn model or the recommender, log the run and register a version in MLflow."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import typer

from serving.cli.common import console, settings

app = typer.Typer(help="Train a model, compare it with its baselines, register it in MLflow.", no_args_is_help=True)

FORMAT_HELP = "canonical (CSV/Parquet) | groceries | online-retail (the raw files of ../shared/data)"


def _date(value: str, option: str) -> date:
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise typer.BadParameter(f"{option} takes a date as YYYY-MM-DD, got {value!r}") from None


@app.command("churn")
def train_churn(
    transactions: Path = typer.Option(..., exists=True, dir_okay=False, help="transaction file"),
    cutoff: str = typer.Option(..., help="YYYY-MM-DD: features from before it, labels from the horizon after it"),
    horizon_days: int = typer.Option(..., min=1, help="churned = no purchase in this many days after the cutoff"),
    fmt: str = typer.Option("canonical", "--format", help=FORMAT_HELP),
    metrics_out: Path | None = typer.Option(None, help="write the metrics JSON here"),
    register: bool = typer.Option(True, help="log the run and register a version in MLflow"),
) -> None:
    """LightGBM churn model vs recency / frequency / monetary / RFM baselines (time-split holdout)."""
    from training.runs import train_churn_command

    run = _run(lambda: train_churn_command(transactions, fmt, _date(cutoff, "--cutoff"), horizon_days, settings(),
                                           metrics_out, register))
    _report(run, ("auc_roc", "pr_auc", "brier", "top_decile_lift"))


@app.command("ltv")
def train_ltv(
    transactions: Path = typer.Option(..., exists=True, dir_okay=False, help="transaction file"),
    cutoff: str = typer.Option(..., help="YYYY-MM-DD: features from before it, spend over the horizon after it"),
    horizon_days: int = typer.Option(90, min=1, help="predicted spend over this many days (365: a year)"),
    fmt: str = typer.Option("canonical", "--format", help=FORMAT_HELP),
    metrics_out: Path | None = typer.Option(None, help="write the metrics JSON here"),
    register: bool = typer.Option(True, help="log the run and register a version in MLflow"),
) -> None:
    """Lifetime value (LightGBM, Tweedie) vs last-period spend and BG/NBD + Gamma-Gamma (time-split holdout)."""
    from training.runs import train_ltv_command

    run = _run(lambda: train_ltv_command(transactions, fmt, _date(cutoff, "--cutoff"), horizon_days, settings(),
                                         metrics_out, register))
    _report(run, ("spearman", "gini", "top_decile_capture", "mae"))


@app.command("response")
def train_response(
    transactions: Path = typer.Option(..., exists=True, dir_okay=False, help="transaction file"),
    exposures: Path = typer.Option(..., exists=True, dir_okay=False,
                                   help="exposures (member_id, rule_id, day, group t|h, redeemed), CSV or "
                                        "Parquet, e.g. from nbo data generate --campaigns"),
    test_from: str = typer.Option(..., help="YYYY-MM-DD: exposures from this day on are the holdout"),
    attribution_days: int = typer.Option(14, min=1, help="spend counted from the exposure day for this many days"),
    members: Path | None = typer.Option(None, exists=True, dir_okay=False, help="member profiles (registration days)"),
    fmt: str = typer.Option("canonical", "--format", help=FORMAT_HELP),
    metrics_out: Path | None = typer.Option(None, help="write the metrics JSON here"),
    register: bool = typer.Option(True, help="log the run and register a version in MLflow"),
) -> None:
    """Two-model uplift on LightGBM (redemption and incremental spend) vs random and the hand-set propensity."""
    from training.runs import train_response_command

    run = _run(lambda: train_response_command(transactions, fmt, exposures, _date(test_from, "--test-from"),
                                              attribution_days, settings(), members, metrics_out, register))
    _report(run, ("qini", "auuc", "uplift_top_30pct"))


@app.command("recommender")
def train_recommender(
    transactions: Path = typer.Option(..., exists=True, dir_okay=False, help="transaction file (with a sku column)"),
    test_from: str = typer.Option(..., help="YYYY-MM-DD: train before it, evaluate on purchases from it on"),
    k: int = typer.Option(10, min=1, help="list length for precision/recall/NDCG@k"),
    fmt: str = typer.Option("canonical", "--format", help=FORMAT_HELP),
    metrics_out: Path | None = typer.Option(None, help="write the metrics JSON here"),
    register: bool = typer.Option(True, help="log the run and register a version in MLflow"),
) -> None:
    """Repeat-purchase + ALS blend vs most-popular and repeat-purchase baselines (time split)."""
    from training.runs import train_recommender_command

    run = _run(lambda: train_recommender_command(transactions, fmt, _date(test_from, "--test-from"), k, settings(),
                                                 metrics_out, register))
    _report(run, ("precision_at_k", "recall_at_k", "ndcg_at_k", "coverage"))


def _run(command):
    from engine.transactions import ImportAborted

    try:
        return command()
    except (ValueError, ImportAborted) as exc:
        console.print(f"[red]training failed:[/red] {exc}")
        raise typer.Exit(1) from None


def _report(run, columns: tuple[str, ...]) -> None:
    from rich.table import Table

    for note in run.notes:
        console.print(f"[dim]{note}[/dim]")
    table = Table(title=f"{run.kind}: model vs baselines on the holdout")
    table.add_column("model")
    for column in columns:
        table.add_column(column, justify="right")
    for name, values in run.summary_rows():
        table.add_row(name, *(f"{values[c]:.4f}" for c in columns))
    console.print(table)
    seconds = ", ".join(f"{step} {value:.1f}s" for step, value in run.times.seconds.items())
    console.print(f"time: {run.times.total:.1f}s ({seconds})")
    if run.registered is not None:
        champion = " (champion)" if run.registered.is_champion else "; promote with nbo models promote"
        console.print(f"registered {run.registered.name} version {run.registered.version}{champion}")
