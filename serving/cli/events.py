"""``nbo events``: the events Redis Stream."""

from __future__ import annotations

import os

import typer

from serving.cli.common import console, feature_store

app = typer.Typer(help="The events Redis Stream.", no_args_is_help=True)


@app.command("consume")
def events_consume(
    consumer: str = typer.Option(f"cli-{os.getpid()}", help="consumer name within the group"),
) -> None:
    """Apply events from the Redis Stream until interrupted (more consumers share the load)."""
    import threading

    from engine.ingestion import EventStreamConsumer

    stop = threading.Event()
    worker = EventStreamConsumer(feature_store(), consumer=consumer)
    console.print(f"consuming as {consumer}; Ctrl-C to stop")
    try:
        worker.run(stop)
    except KeyboardInterrupt:
        stop.set()
    console.print(f"{worker.stats}")
