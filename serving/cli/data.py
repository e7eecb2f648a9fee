"""``nbo data``: import and generate transaction data."""

from __future__ import annotations

from pathlib import Path

import typer

from serving.cli.common import console, feature_store, settings

app = typer.Typer(help="Import and generate transaction data.", no_args_is_help=True)


def _parse_map(pairs: list[str]) -> dict[str, str]:
    mapping = {}
    for pair in pairs:
        src, sep, dst = pair.partition("=")
        if not sep or not src or not dst:
            raise typer.BadParameter(f"--map takes src=dst, got {pair!r}")
        mapping[src] = dst
    return mapping


@app.command("import")
def data_import(
    path: Path = typer.Argument(..., exists=True, dir_okay=False, help="CSV or Parquet file"),
    fmt: str = typer.Option("canonical", "--format", help="canonical | groceries | online-retail"),
    map_: list[str] = typer.Option([], "--map", help="rename a source column: src=dst (repeatable)"),
    out: Path | None = typer.Option(None, help="where to write canonical Parquet (default var/data/<name>.parquet)"),
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
    out = out or settings().var_dir / "data" / f"{path.stem}.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_transactions(result.frame, out)
    frame = result.frame
    console.print(f"{len(frame):,} rows, {frame['member_id'].nunique():,} members -> {out}")
    if backfill:
        _backfill(frame, None)


def _backfill(transactions, members) -> None:
    from rich.progress import Progress

    from engine.ingestion import backfill

    store = feature_store()
    with Progress(console=console, transient=False) as progress:
        task = progress.add_task("backfill (events)", total=None)
        result = backfill(store, transactions, members, on_progress=lambda n: progress.advance(task, n))
    console.print(f"backfill: {result.accepted:,} events applied, {result.duplicates:,} already there, "
                  f"{len(result.rejected):,} rejected")
    for rejection in result.rejected[:10]:
        console.print(f"  {rejection.event_id}: {rejection.reason}")


@app.command("generate")
def data_generate(
    members: int = typer.Option(..., min=1, help="how many members"),
    days: int = typer.Option(..., min=1, help="how many days of history"),
    seed: int = typer.Option(0, help="random seed (same seed, same data)"),
    out_dir: Path | None = typer.Option(None, help="folder for transactions/members/catalogue Parquet (default var/data/synthetic)"),
    backfill: bool = typer.Option(False, "--backfill", help="also load members and history into the feature store"),
    campaigns: bool = typer.Option(False, "--campaigns", help="also coupon campaigns with known heterogeneous "
                                   "responses: exposures.parquet and responses.parquet (for nbo train response)"),
) -> None:
    """Generate synthetic convenience-store data (members, catalogue, transactions)."""
    import time

    from engine.transactions import write_transactions
    from tools.synthetic import generate, with_coupon_responses

    start = time.perf_counter()
    data = generate(members=members, days=days, seed=seed)
    if campaigns:
        data = with_coupon_responses(data, seed=seed)
    elapsed = time.perf_counter() - start
    out_dir = out_dir or settings().var_dir / "data" / "synthetic"
    out_dir.mkdir(parents=True, exist_ok=True)
    write_transactions(data.transactions, out_dir / "transactions.parquet")
    data.members.to_parquet(out_dir / "members.parquet", index=False)
    data.catalogue.to_parquet(out_dir / "catalogue.parquet", index=False)
    if data.exposures is not None:
        data.exposures.to_parquet(out_dir / "exposures.parquet", index=False)
        data.truth.responses.to_parquet(out_dir / "responses.parquet", index=False)
    console.print(f"{len(data.transactions):,} transaction lines for {members:,} members over {days} days "
                  f"in {elapsed:.1f} s -> {out_dir}")
    if backfill:
        _backfill(data.transactions, data.members)
