"""``nbo rules``: check marketers' rule files, run their examples, backtest them, export their schema.

Each command makes one call into ``engine.rules`` and prints what it returns; problems read
``file:line: message``. ``nbo bench rules`` (in ``serving.cli.bench``) prints ``print_benchmark``.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from serving.cli.common import console, settings

app = typer.Typer(help="Marketers' rule files: lint, test, backtest, schema.", no_args_is_help=True)

DIRECTORY = typer.Argument(None, help="rules directory (default: NBO_RULES_DIR, i.e. rules/)")


def _directory(directory: Path | None) -> Path:
    return directory or settings().rules_dir


def _print_problems(problems) -> None:
    for problem in problems:
        colour = "red" if problem.severity == "error" else "yellow"
        console.print(f"[{colour}]{escape(str(problem))}[/{colour}]", highlight=False, soft_wrap=True)


@app.command("lint")
def lint(directory: Path | None = DIRECTORY) -> None:
    """Validate every rule file; exits 1 if there is an error (warnings don't fail)."""
    from engine.rules import load_rules

    loaded = load_rules(_directory(directory), settings().points.points_per_yuan_redeemed)
    _print_problems(loaded.problems)
    summary = (f"{len(loaded.rules)} rules valid, {len(loaded.invalid)} invalid; "
               f"{len(loaded.errors)} errors, {len(loaded.warnings)} warnings")
    console.print(("[green]ok[/green]: " if loaded.ok else "[red]failed[/red]: ") + summary)
    if not loaded.ok:
        raise typer.Exit(1)


@app.command("test")
def test(directory: Path | None = DIRECTORY) -> None:
    """Run every rule's examples through the engine; exits 1 if one fails (or the files have errors)."""
    from engine.rules import run_examples

    report = run_examples(_directory(directory))
    _print_problems([p for p in report.problems if p.severity == "error"])
    for failure in report.failures:
        console.print(f"[red]{escape(str(failure))}[/red]", highlight=False, soft_wrap=True)
    passed = sum(r.passed for r in report.results)
    console.print(("[green]ok[/green]: " if report.ok else "[red]failed[/red]: ")
                  + f"{passed} of {len(report.results)} examples pass")
    if not report.ok:
        raise typer.Exit(1)


@app.command("backtest")
def backtest(
    directory: Path | None = DIRECTORY,
    as_of: str = typer.Option(..., "--as-of", help="the date (YYYY-MM-DD): features from history before it"),
    transactions: Path | None = typer.Option(None, exists=True, dir_okay=False,
                                             help="canonical transactions (default: var/data/synthetic/)"),
    members: Path | None = typer.Option(None, exists=True, dir_okay=False,
                                        help="member profiles (Parquet/CSV: registered, birthday, region, ...)"),
    json_out: Path | None = typer.Option(None, help="also write the report as JSON"),
) -> None:
    """What the rules would do over every member's point-in-time features on a date."""
    import pandas as pd
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from engine.programme import Programme
    from engine.rules import backtest_history
    from engine.transactions import read_transactions

    try:
        day = date.fromisoformat(as_of)
    except ValueError:
        raise typer.BadParameter(f"--as-of takes YYYY-MM-DD, got {as_of!r}") from None
    current = settings()
    default_dir = current.var_dir / "data" / "synthetic"
    transactions = transactions or default_dir / "transactions.parquet"
    if not transactions.exists():
        raise typer.BadParameter(f"{transactions} does not exist: pass --transactions or run `nbo data generate`")
    if members is None and (default_dir / "members.parquet").exists() and transactions.parent == default_dir:
        members = default_dir / "members.parquet"
    frame = read_transactions(transactions).frame
    profiles = None
    if members is not None:
        profiles = pd.read_parquet(members) if members.suffix == ".parquet" else pd.read_csv(members)

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console) as progress:
        tasks: dict[str, int] = {}

        def on_progress(step: str, done: int, total: int) -> None:
            label = {"features": "point-in-time features", "evaluate": "evaluating rules"}.get(step, step)
            if step not in tasks:
                tasks[step] = progress.add_task(label, total=total)
            progress.update(tasks[step], completed=done, total=total)

        try:
            report = backtest_history(_directory(directory), frame, day, Programme.from_settings(current), profiles,
                                      on_progress=on_progress)
        except ValueError as exc:
            console.print(f"[red]{escape(str(exc))}[/red]", highlight=False)
            raise typer.Exit(1) from None

    table = Table(title=f"Backtest as of {report.as_of}: {report.members:,} members, rules {report.version}")
    for column in ("rule", "status", "fire", "holdout", "coupons", "face value", "budget out"):
        table.add_column(column, justify="left" if column in ("rule", "status") else "right")
    for rule in report.rules:
        out = rule.exhausted_on.isoformat() if rule.exhausted_on else ("lasts" if "lasts" in rule.budget else "-")
        table.add_row(rule.rule_id, rule.status, f"{rule.members:,}", f"{rule.holdout:,}", f"{rule.coupons:,}",
                      f"{rule.face_value:,.0f}", out)
    console.print(table)
    for rule in report.rules:
        overlaps = ", ".join(f"{k} ({v:,})" for k, v in sorted(rule.overlaps.items(), key=lambda kv: -kv[1]))
        console.print(f"{rule.rule_id}: {rule.budget}" + (f"; also fire: {overlaps}" if overlaps else ""),
                      highlight=False, soft_wrap=True)
    console.print(f"features {report.feature_seconds:.1f} s, rule evaluation {report.evaluation_seconds:.2f} s; "
                  + "; ".join(report.notes), highlight=False)
    if json_out is not None:
        json_out.write_text(json.dumps(_report_json(report), indent=2, ensure_ascii=False, default=str), encoding="utf-8")


def _report_json(report) -> dict:
    from dataclasses import asdict

    return asdict(report)


@app.command("schema")
def schema(out: Path | None = typer.Option(None, help="where to write (default: <rules dir>/schema.json)")) -> None:
    """Write the JSON Schema of the rule files (editors use it to complete and check YAML)."""
    from engine.rules import write_schema

    path = write_schema(out or _directory(None) / "schema.json")
    console.print(f"wrote {path}")


def print_benchmark(**options) -> None:
    """Run ``tools.rules_benchmark`` and print its figures (``nbo bench rules``)."""
    from tools.rules_benchmark import run_rules_benchmark

    with console.status("benchmarking rules") as status:
        result = run_rules_benchmark(_directory(None), on_step=lambda s: status.update(s), **options)
    table = Table(title="Rule evaluation for one member (checkout, in process)")
    for column in ("rules", "fired", "p50 us", "p99 us", "rulesets", "reference p50 us", "durable Host p50 us",
                   "Host / runtime"):
        table.add_column(column, justify="right")
    for row in result.latency:
        ratio = f"{row.host_p50_us / row.p50_us:.1f}x" if row.host_p50_us else "-"
        table.add_row(f"{row.rules:,}", f"{row.fired:.0f}", f"{row.p50_us:.0f}", f"{row.p99_us:.0f}", str(row.rulesets),
                      f"{row.reference_p50_us:.0f}", f"{row.host_p50_us:.0f}" if row.host_p50_us else "-", ratio)
    console.print(table)
    if result.memory_evaluations:
        console.print(f"durable_rules memory: RSS grew {result.memory_growth_mb:.1f} MB over "
                      f"{result.memory_evaluations:,} evaluations of 100 rules ({result.memory_seconds:.1f} s)")
    figures = result.backtest
    if figures is not None:
        console.print(
            f"backtest: point-in-time fold of {figures.folded_members:,} members' history {figures.fold_seconds:.1f} s "
            f"({figures.fold_seconds / figures.folded_members * 1e3:.2f} ms a member, "
            f"~{figures.fold_extrapolated_seconds / 60:.0f} min for {figures.members:,}); "
            f"evaluating the {figures.rules} shipped rules over {figures.members:,} members "
            f"{figures.evaluation_seconds:.1f} s")
