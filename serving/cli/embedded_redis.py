"""``nbo redis``: the embedded Redis used when REDIS_URL is unset."""

from __future__ import annotations

import typer

from serving.cli.common import console, settings

app = typer.Typer(help="The embedded Redis (used when REDIS_URL is unset).", no_args_is_help=True)


@app.command("stop")
def redis_stop() -> None:
    """Stop the embedded Redis (its data stays under var/redis)."""
    from engine.redis_server import stop_embedded_redis

    stopped = stop_embedded_redis(settings().var_dir)
    console.print("stopped" if stopped else "no embedded Redis was running")
