"""``nbo models``: registered versions, promotion and rollback of the champion, batch scoring."""

from __future__ import annotations

import typer

from serving.cli.common import console, feature_store, settings

app = typer.Typer(help="Registered model versions: list, promote, roll back, batch-score.", no_args_is_help=True)


def _registry():
    from training.registry import ModelRegistry

    return ModelRegistry.from_settings(settings())


@app.command("list")
def models_list() -> None:
    """Every registered version with its holdout metric; * marks the champion."""
    from rich.table import Table

    models = _registry().list_models()
    if not models:
        console.print("no registered models yet (nbo train churn ... / nbo train recommender ...)")
        return
    table = Table()
    for column in ("model", "version", "champion", "metric", "created (UTC)", "forced", "run"):
        table.add_column(column)
    for name, versions in models.items():
        for v in versions:
            metric = next((f"{key.removeprefix('metric.')} {value}" for key, value in v.tags.items()
                           if key.startswith("metric.")), "")
            table.add_row(name, v.version, "*" if v.is_champion else "", metric, v.created.strftime("%Y-%m-%d %H:%M"),
                          "yes" if v.tags.get("nbo.promotion_forced") == "true" else "", v.run_id[:8])
    console.print(table)


@app.command("promote")
def models_promote(
    name: str = typer.Argument(..., help="registered model: churn | recommender | ltv | response"),
    version: str = typer.Option(..., "--version", help="the candidate version"),
    force: bool = typer.Option(False, "--force", help="promote even if it does not beat the champion (audited)"),
    reason: str = typer.Option("", help="why (kept in the audit log and on the version)"),
) -> None:
    """Make VERSION the champion if it beats the current one on its own holdout."""
    from training.registry import PromotionRefused

    try:
        result = _registry().promote(name, version, force=force, reason=reason)
    except PromotionRefused as exc:
        console.print(f"[yellow]{exc}[/yellow]")
        raise typer.Exit(1) from None
    console.print(f"{name}: {result.message}" + (f"; champion is now version {version}" if result.promoted else ""))


@app.command("rollback")
def models_rollback(
    name: str = typer.Argument(..., help="registered model: churn | recommender"),
    reason: str = typer.Option("", help="why (kept in the audit log)"),
) -> None:
    """Give the champion alias back to the previous champion."""
    try:
        result = _registry().rollback(name, reason=reason)
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    console.print(f"{name}: {result.message}")


@app.command("score-batch")
def models_score_batch(
    top_n: int = typer.Option(10, min=1, help="recommendations stored per member"),
) -> None:
    """Write every member's churn probability, lifetime value and top-N recommendations into the feature store."""
    from rich.progress import Progress

    from training.batch import score_members
    from training.champions import ChampionModels

    models = ChampionModels.from_settings(settings()).load()
    if not any(models.versions.values()):
        console.print("[red]no champion model to score with[/red] (nbo train churn ... / nbo train recommender ...)")
        raise typer.Exit(1)
    store = feature_store()
    with Progress(console=console) as progress:
        task = progress.add_task("scoring members", total=None)
        result = score_members(store, models, top_n=top_n, on_progress=lambda n: progress.advance(task, n))
    console.print(f"{result.members:,} members: {result.churn_scored:,} churn scores, {result.ltv_scored:,} lifetime "
                  f"values, {result.recommended:,} "
                  f"recommendation lists in {result.seconds:.1f}s (versions {result.versions})")
