"""``nbo triggers``: the daily run, its status, and delivering the outbox; ``nbo report rules``: measurement."""

from __future__ import annotations

import json
import threading
from datetime import date

import typer

from serving.cli.common import console, settings

app = typer.Typer(help="Automated triggers: the daily run and the coupon outbox.", no_args_is_help=True)
report_app = typer.Typer(help="Campaign measurement.", no_args_is_help=True)


def _services(with_models: bool):
    from serving.services import Services
    from training.champions import ChampionModels

    current = settings()
    return Services.build(current, models=None if with_models else ChampionModels.from_models())


@app.command("run-daily")
def run_daily(
    as_of: str = typer.Option(None, "--as-of", help="the day to run (YYYY-MM-DD; default today, local)"),
    worker: str = typer.Option(None, help="worker name; the same name resumes its unfinished chunk at once"),
    wait: bool = typer.Option(True, help="wait for other workers' last chunks so the run is reported done"),
) -> None:
    """Evaluate the daily rules over every member and emit to the outbox; resumable, shareable by workers."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    services = _services(with_models=True)
    try:
        day = date.fromisoformat(as_of) if as_of else services.today()
        run = services.daily_run(worker)
        with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=console) as progress:
            task = progress.add_task(f"daily rules {day}", total=None)
            report = run.run(day, on_progress=lambda done, total: progress.update(task, completed=done, total=total),
                             wait=wait)
        console.print(f"run {day}: {report.status}, chunks {report.chunks_done}/{report.chunks} "
                      f"({report.chunks_this_call} by this worker in {report.seconds:.1f} s)")
        console.print(report.stats)
        if report.refused:
            console.print({"refused": report.refused})
    finally:
        services.close()


@app.command("status")
def status(as_of: str = typer.Option(None, "--as-of", help="the run's day (default today)")) -> None:
    """Where the daily run of a day stands."""
    services = _services(with_models=False)
    try:
        day = date.fromisoformat(as_of) if as_of else services.today()
        report = services.daily_run().report(day)
        typer.echo(json.dumps({"as_of": day.isoformat(), "status": report.status, "chunks": report.chunks,
                               "chunks_done": report.chunks_done, **report.stats, "refused": report.refused}))
    finally:
        services.close()


@app.command("deliver")
def deliver(
    consumer: str = typer.Option(None, help="consumer name within the outbox group (default: host-pid)"),
    until_empty: bool = typer.Option(False, "--until-empty", help="stop when nothing is left to deliver now"),
) -> None:
    """Deliver the outbox through the configured adapter (more consumers share the load)."""
    import os
    import socket

    services = _services(with_models=False)
    name = consumer or f"{socket.gethostname()}-{os.getpid()}"
    worker = services.outbox_consumer(name)
    try:
        if until_empty:
            worker.drain()
        else:
            stop = threading.Event()
            console.print(f"delivering as {name}; Ctrl-C to stop")
            try:
                worker.run(stop)
            except KeyboardInterrupt:
                stop.set()
        console.print(worker.stats)
    finally:
        services.close()


@report_app.command("rules")
def report_rules(
    since: str = typer.Option(None, help="first exposure day (default: 30 days before --until)"),
    until: str = typer.Option(None, help="last exposure day (default: today)"),
    period: str = typer.Option("month", help="campaign periods: day, week or month"),
    as_json: bool = typer.Option(False, "--json", help="the API's JSON instead of a table"),
) -> None:
    """Per rule: targeted, holdout, coupons issued and redeemed, spend per member, lift with its 95% CI, ROI."""
    from rich.table import Table

    from serving.schemas import rule_measured

    if period not in ("day", "week", "month"):
        raise typer.BadParameter("period is day, week or month")
    from engine.measurement import report_window

    services = _services(with_models=False)
    try:
        try:
            first, last = report_window(date.fromisoformat(since) if since else None,
                                        date.fromisoformat(until) if until else None, services.today())
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        reports = services.rule_reports(first, last, period)
    finally:
        services.close()
    if as_json:
        typer.echo(json.dumps([rule_measured(r).model_dump(mode="json") for r in reports], ensure_ascii=False))
        return
    table = Table(title=f"rules {first} .. {last} (spend within {settings().triggers.attribution_days} days)")
    for column in ("rule", "period", "targeted", "holdout", "issued", "redeemed", "rate", "spend T", "spend H",
                   "lift/member (95% CI)", "incr. revenue", "cost", "ROI"):
        table.add_column(column, justify="left" if column in ("rule", "period") else "right")
    for report in reports:
        # The periods add nothing when there is one and it is the whole range's only data.
        rows = (report.total, *report.periods) if len(report.periods) > 1 else (report.total,)
        for row in rows:
            if not row.targeted and not row.issued and not row.fired:
                continue
            ci = f" ({row.lift_ci95[0]:+.2f}..{row.lift_ci95[1]:+.2f})" if row.lift_ci95 else ""
            table.add_row(report.rule_id if row is report.total else "", row.period, str(row.targeted),
                          str(row.holdout), str(row.issued), str(row.redeemed),
                          _fmt(row.redemption_rate, "{:.1%}"), _fmt(row.spend_per_member_treatment),
                          _fmt(row.spend_per_member_holdout),
                          _fmt(row.lift_per_member, "{:+.2f}") + ci, _fmt(row.incremental_revenue),
                          f"{row.coupon_cost:.2f}", _fmt(row.roi, "{:.2f}"))
    import sys

    from rich.console import Console

    # The report is the command's output (stdout); 13 columns are never squeezed into a pipe's 80.
    Console(width=None if sys.stdout.isatty() else 170).print(table)


def _fmt(value: float | None, pattern: str = "{:.2f}") -> str:
    return "-" if value is None else pattern.format(value)
