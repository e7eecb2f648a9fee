"""``nbo bench``: benchmarks that print figures and ratios."""

from __future__ import annotations

import typer
from rich.console import Console

app = typer.Typer(help="Benchmarks that print figures and ratios.", no_args_is_help=True)


@app.command("ingest")
def bench_ingest(
    events: int = typer.Option(100_000, help="purchase events to ingest"),
    members: int = typer.Option(10_000, help="members they spread over"),
    batch: int = typer.Option(1000, help="events per batch"),
    reads: int = typer.Option(5000, help="feature-vector reads for the latency figures"),
    processes: int = typer.Option(2, min=1, help="ingest processes for the parallel figure"),
) -> None:
    """Ingest throughput vs redis-benchmark's pipelined HSET, and feature-read latency, on a fresh Redis."""
    from tools.benchmarks import run_ingest_benchmark

    run_ingest_benchmark(events=events, members=members, batch=batch, reads=reads, console=Console(),
                         processes=processes)


@app.command("cluster")
def bench_cluster(
    events: int = typer.Option(50_000, help="purchase events to ingest"),
    members: int = typer.Option(10_000, help="members they spread over"),
    batch: int = typer.Option(1000, help="events per batch"),
    reads: int = typer.Option(5000, help="one-member reads for the latency figures"),
    processes: int = typer.Option(2, min=1, help="ingest processes for the parallel figure"),
) -> None:
    """Ingest rate and one-member read p50/p99 on a single Redis and a local 3-master Redis Cluster, side by side."""
    from tools.benchmarks import run_cluster_benchmark

    run_cluster_benchmark(events=events, members=members, batch=batch, reads=reads, processes=processes,
                          console=Console())


@app.command("models")
def bench_models(
    als_members: int = typer.Option(64_000, help="synthetic members for the ALS-at-scale fit (~1M interactions)"),
) -> None:
    """Churn and recommender vs their baselines on the full real logs, training times, one-request latencies."""
    from pathlib import Path

    from engine.settings import get_settings
    from tools.models_benchmark import run_model_benchmark

    run_model_benchmark(Path(get_settings().data_dir), console=Console(), als_members=als_members)


@app.command("rules")
def bench_rules(
    evaluations: int = typer.Option(5000, help="evaluations per rule count for the latency figures"),
    memory_evaluations: int = typer.Option(200_000, help="evaluations for the memory figure (0: skip)"),
    backtest_members: int = typer.Option(1_000_000, help="members for the backtest figure (0: skip)"),
    fold_members: int = typer.Option(10_000, help="members whose generated history is folded to features"),
) -> None:
    """Rule evaluation p50/p99 for 10, 100, 1,000 rules (vs durable_rules' Host), memory, backtest at 1M members."""
    from serving.cli.rules import print_benchmark

    print_benchmark(evaluations=evaluations, memory_evaluations=memory_evaluations,
                    backtest_members=backtest_members, fold_members=fold_members)


@app.command("api")
def bench_api(
    members: int = typer.Option(0, help="synthetic members added to the demo's 2,000"),
    days: int = typer.Option(7, help="days of history for them"),
    rules: int = typer.Option(100, help="rules in all (the shipped ones plus generated checkout rules)"),
    rate: float = typer.Option(500, help="requests per second offered for the paced run"),
    seconds: float = typer.Option(15, help="length of each measurement"),
    connections: int = typer.Option(32, help="wrk connections"),
    compare: str = typer.Option(None, help="'feast': Feast's feature server over the same vectors, in the same run"),
) -> None:
    """One worker on one core, wrk on the other: empty endpoint, features read and next-best-offer saturated,
    next-best-offer paced; ratios from one run (and Feast's feature server with --compare feast)."""
    from rich.console import Console

    from tools.benchmarks import run_api_benchmark

    if compare not in (None, "feast"):
        raise typer.BadParameter("--compare takes 'feast'")
    run_api_benchmark(members, days, rules, rate, seconds, Console(), compare=compare, connections=connections)


@app.command("profile")
def bench_profile(
    kind: str = typer.Option("next-best-offer", help="next-best-offer, features or empty"),
    seconds: float = typer.Option(15, help="how long py-spy samples"),
    raw: str = typer.Option(None, help="also keep py-spy's raw stacks here (for a flame graph)"),
    top: int = typer.Option(25, help="rows per table"),
) -> None:
    """py-spy on a server worker under wrk load: where one kind of request spends its time."""
    from pathlib import Path

    from rich.console import Console

    from tools.profile import profile_server

    if kind not in ("next-best-offer", "features", "empty"):
        raise typer.BadParameter("--kind is next-best-offer, features or empty")
    profile_server(kind, seconds, Console(width=160), Path(raw) if raw else None, top)


@app.command("soak")
def bench_soak(
    minutes: float = typer.Option(10, help="how long the mixed traffic runs"),
    rate: float = typer.Option(200, help="requests per second (one worker holds ~400/s on 2 cores)"),
    workers: int = typer.Option(1, min=1, help="uvicorn workers of the server"),
    p99_budget_ms: float = typer.Option(10, help="next-best-offer p99 budget"),
    max_rss_growth: float = typer.Option(0.05, help="largest growth of the server's memory after warm-up"),
    out: str = typer.Option(None, help="also write the report as JSON here"),
) -> None:
    """Mixed traffic (80% next-best-offer, 15% events, 5% redemptions) at a fixed rate against the demo in a
    server process: 5xx, p50/p99 per kind, server memory, Redis keys and TTLs; exit 1 if a check fails."""
    from tools.soak import soak_demo

    if not soak_demo(minutes, rate, workers, p99_budget_ms, max_rss_growth, Console(), out):
        raise typer.Exit(1)


@app.command("chaos")
def bench_chaos(
    seconds: float = typer.Option(60, help="length of the mixed traffic Redis is stopped and started in"),
    rate: float = typer.Option(100, help="requests per second of that traffic"),
    out: str = typer.Option(None, help="also write the outcomes as JSON here"),
) -> None:
    """Faults against the demo in a server process: Redis stopped and restarted under load, Redis hung (with and
    without the circuit breaker), a corrupt and a deleted model artifact, a broken rule file; exit 1 if one did harm."""
    from tools.chaos import chaos_demo

    if not chaos_demo(seconds, rate, Console(), out):
        raise typer.Exit(1)


@app.command("triggers")
def bench_triggers(
    members: int = typer.Option(1_000_000, help="members in the store for the daily run"),
    base: int = typer.Option(50_000, help="synthetic members folded from history (each written members/base times)"),
    days: int = typer.Option(120, help="days of synthetic history"),
    workers: int = typer.Option(2, min=1, help="daily-run worker processes"),
    events: int = typer.Option(20_000, help="purchase events for the event-trigger cost"),
) -> None:
    """The daily run over many members with the shipped rules, and what event triggers add per event."""
    from pathlib import Path

    from tools.triggers_benchmark import run_triggers_benchmark

    console = Console()
    run_triggers_benchmark(members, base, days, workers, events, Path("rules"), say=console.print)


@app.command("limits")
def bench_limits(
    calls: int = typer.Option(200_000, help="RateLimits.take calls for its cost"),
    requests: int = typer.Option(300, help="next-best-offer requests per arm and round"),
    rounds: int = typer.Option(10, help="rounds alternating the limiter on and off"),
) -> None:
    """What the per-key rate limiter adds to next-best-offer (budget: under 50 us), against a PING round trip."""
    from tools.benchmarks import run_limits_benchmark

    run_limits_benchmark(calls, requests, rounds, Console())
