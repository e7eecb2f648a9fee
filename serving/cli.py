"""The ``nbo`` command line: each command parses its arguments and makes one call into the core.

Heavy imports (pandas, mlflow, the engine) happen inside the commands, so ``nbo --help`` is quick.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

app = typer.Typer(help="Checkout next-best-offer service.", no_args_is_help=True, add_completion=False)
data_app = typer.Typer(help="Import and generate transaction data.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks that print figures and ratios.", no_args_is_help=True)
events_app = typer.Typer(help="The events Redis Stream.", no_args_is_help=True)
redis_app = typer.Typer(help="The embedded Redis (used when REDIS_URL is unset).", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(keys_app, name="keys")
app.add_typer(bench_app, name="bench")
app.add_typer(events_app, name="events")
app.add_typer(redis_app, name="redis")

console = Console(stderr=True)


def _settings():
    from engine.settings import get_settings

    return get_settings()


def _store():
    from engine.feature_store import FeatureStore
    from engine.member_state import Programme
    from engine.redis_server import connect

    settings = _settings()
    return FeatureStore(connect(settings), Programme.from_settings(settings))


def _parse_map(pairs: list[str]) -> dict[str, str]:
    mapping = {}
    for pair in pairs:
        src, sep, dst = pair.partition("=")
        if not sep or not src or not dst:
            raise typer.BadParameter(f"--map takes src=dst, got {pair!r}")
        mapping[src] = dst
    return mapping


@data_app.command("import")
def data_import(
    path: Path = typer.Argument(..., exists=True, dir_okay=False, help="CSV or Parquet file"),
    fmt: str = typer.Option("canonical", "--format", help="canonical | groceries | online-retail"),
    map_: list[str] = typer.Option([], "--map", help="rename a source column: src=dst (repeatable)"),
    out: Optional[Path] = typer.Option(None, help="where to write canonical Parquet (default var/data/<name>.parquet)"),
    backfill: bool = typer.Option(False, "--backfill", help="also load the history into the feature store"),
    max_bad_fraction: float = typer.Option(0.01, help="abort if more than this share of rows is bad"),
) -> None:
    """Turn a transaction log into canonical transactions (and optionally backfill the store)."""
    from engine.transactions import ImportAborted, read_transactions, write_transactions

    try:
        result = read_transactions(path, fmt=fmt, mapping=_parse_map(map_), max_bad_fraction=max_bad_fraction, progress=True)
    except ImportAborted as exc:
        console.print(f"[red]import aborted:[/red] {exc}")
        raise typer.Exit(1) from None
    for row in result.rejected[:20]:
        console.print(f"[yellow]{path}:{row.line}:[/yellow] {row.reason}")
    if len(result.rejected) > 20:
        console.print(f"... and {len(result.rejected) - 20} more rejected rows")
    for note in result.notes:
        console.print(note)
    out = out or _settings().var_dir / "data" / f"{path.stem}.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_transactions(result.frame, out)
    frame = result.frame
    console.print(f"{len(frame):,} rows, {frame['member_id'].nunique():,} members -> {out}")
    if backfill:
        _backfill(frame, None)


def _backfill(transactions, members) -> None:
    from rich.progress import Progress

    from engine.ingestion import backfill

    store = _store()
    with Progress(console=console, transient=False) as progress:
        task = progress.add_task("backfill (events)", total=None)
        result = backfill(store, transactions, members, on_progress=lambda n: progress.advance(task, n))
    console.print(f"backfill: {result.accepted:,} events applied, {result.duplicates:,} already there, "
                  f"{len(result.rejected):,} rejected")
    for rejection in result.rejected[:10]:
        console.print(f"  {rejection.event_id}: {rejection.reason}")


@data_app.command("generate")
def data_generate(
    members: int = typer.Option(..., min=1, help="how many members"),
    days: int = typer.Option(..., min=1, help="how many days of history"),
    seed: int = typer.Option(0, help="random seed (same seed, same data)"),
    out_dir: Optional[Path] = typer.Option(None, help="folder for transactions/members/catalogue Parquet (default var/data/synthetic)"),
    backfill: bool = typer.Option(False, "--backfill", help="also load members and history into the feature store"),
) -> None:
    """Generate synthetic convenience-store data (members, catalogue, transactions)."""
    import time

    from engine.synthetic import generate
    from engine.transactions import write_transactions

    start = time.perf_counter()
    data = generate(members=members, days=days, seed=seed)
    elapsed = time.perf_counter() - start
    out_dir = out_dir or _settings().var_dir / "data" / "synthetic"
    out_dir.mkdir(parents=True, exist_ok=True)
    write_transactions(data.transactions, out_dir / "transactions.parquet")
    data.members.to_parquet(out_dir / "members.parquet", index=False)
    data.catalogue.to_parquet(out_dir / "catalogue.parquet", index=False)
    console.print(f"{len(data.transactions):,} transaction lines for {members:,} members over {days} days "
                  f"in {elapsed:.1f} s -> {out_dir}")
    if backfill:
        _backfill(data.transactions, data.members)


@keys_app.command("create")
def keys_create(
    role: str = typer.Option(..., help="pos | app | marketer | data-scientist | admin"),
    scope: Optional[str] = typer.Option(None, help="region:NAME or store:ID (default: everything)"),
    name: str = typer.Option("", help="a label for the key"),
) -> None:
    """Create an API key and print it (it is shown only this once; Redis keeps its hash)."""
    from engine.redis_server import connect
    from serving.auth import ApiKeys

    try:
        key = ApiKeys(connect(_settings())).create(role, scope, name)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(key)


@events_app.command("consume")
def events_consume(
    consumer: str = typer.Option(f"cli-{os.getpid()}", help="consumer name within the group"),
) -> None:
    """Apply events from the Redis Stream until interrupted (more consumers share the load)."""
    import threading

    from engine.ingestion import EventStreamConsumer

    stop = threading.Event()
    worker = EventStreamConsumer(_store(), consumer=consumer)
    console.print(f"consuming as {consumer}; Ctrl-C to stop")
    try:
        worker.run(stop)
    except KeyboardInterrupt:
        stop.set()
    console.print(f"{worker.stats}")


@redis_app.command("stop")
def redis_stop() -> None:
    """Stop the embedded Redis (its data stays under var/redis)."""
    from engine.redis_server import stop_embedded_redis

    stopped = stop_embedded_redis(_settings().var_dir)
    console.print("stopped" if stopped else "no embedded Redis was running")


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(8000),
    workers: int = typer.Option(1, min=1),
    demo: bool = typer.Option(False, "--demo", help="load demo data if the store is empty and print a dev key"),
) -> None:
    """Run the HTTP API (uvicorn)."""
    import uvicorn

    from engine.redis_server import redis_url

    settings = _settings()
    # Workers are separate processes: hand them the one Redis (embedded or not) through the environment.
    os.environ["REDIS_URL"] = redis_url(settings)
    if demo:
        from serving.demo import prepare_demo

        info = prepare_demo(settings)
        console.print(f"\n[bold]Next-best-offer service[/bold] on http://{host}:{port}  (API docs: /docs)")
        console.print(f"dev key (admin): {info.key}")
        console.print(f"try:\n  curl -s -H 'Authorization: Bearer {info.key}' "
                      f"http://{host}:{port}/v1/members/{info.member_id}/features\n")
    uvicorn.run("serving.app:create_app", factory=True, host=host, port=port, workers=workers, log_level="warning")


@bench_app.command("ingest")
def bench_ingest(
    events: int = typer.Option(100_000, help="purchase events to ingest"),
    members: int = typer.Option(10_000, help="members they spread over"),
    batch: int = typer.Option(1000, help="events per batch"),
    reads: int = typer.Option(5000, help="feature-vector reads for the latency figures"),
) -> None:
    """Ingest throughput vs redis-benchmark's pipelined HSET, and feature-read latency, on a fresh Redis."""
    from serving.benchmarks import run_ingest_benchmark

    run_ingest_benchmark(events=events, members=members, batch=batch, reads=reads, console=Console())


def main() -> None:
    app()


if __name__ == "__main__":
    main()
