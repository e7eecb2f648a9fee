"""The ``nbo`` command line: each command parses its arguments and makes one call into the core.

One module per command group; heavy imports (pandas, mlflow, the engine) happen inside the
commands, so ``nbo --help`` is quick.
"""

from __future__ import annotations

import os

import typer

from serving.cli import bench, data, embedded_redis, events, keys
from serving.cli import models as models_cli
from serving.cli import rules as rules_cli
from serving.cli import train as train_cli
from serving.cli import triggers as triggers_cli
from serving.cli.common import console, settings

app = typer.Typer(help="Checkout next-best-offer service.", no_args_is_help=True, add_completion=False)
app.add_typer(data.app, name="data")
app.add_typer(keys.app, name="keys")
app.add_typer(events.app, name="events")
app.add_typer(embedded_redis.app, name="redis")
app.add_typer(bench.app, name="bench")
app.add_typer(train_cli.app, name="train")
app.add_typer(models_cli.app, name="models")
app.add_typer(rules_cli.app, name="rules")
app.add_typer(triggers_cli.app, name="triggers")
app.add_typer(triggers_cli.report_app, name="report")


@app.callback()
def _moment(
    now: str = typer.Option(None, "--now", hidden=True, envvar="NBO_NOW",
                            help="act as if it were this moment (ISO 8601; no offset: the stores' time); tests"),
) -> None:
    """Checkout next-best-offer service."""
    # One clock for every command: the settings' (engine.clock), started at --now when it is given.
    if now:
        from datetime import datetime

        from engine.settings import get_settings

        try:
            datetime.fromisoformat(now)
        except ValueError:
            raise typer.BadParameter(f"--now {now!r} is not an ISO 8601 moment (e.g. 2026-03-01T12:00+08:00)") from None
        os.environ["NBO_NOW"] = now
        get_settings.cache_clear()


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

    current = settings()
    # Workers are separate processes: hand them the one Redis (embedded or not) through the environment.
    os.environ["REDIS_URL"] = redis_url(current)
    if demo:
        from tools.demo import prepare_demo

        info = prepare_demo(current, say=lambda text: typer.echo(text, err=True))
        console.print(f"\n[bold]Next-best-offer service[/bold] on http://{host}:{port}  (API docs: /docs)")
        console.print(f"dev key (admin): {info.key}")
        console.print(f"console: http://{host}:{port}/console  (sign in with the dev key)", highlight=False)
        # Plain output (not rich, which wraps lines) so the command can be copied as it is.
        typer.echo("try:", err=True)
        typer.echo(f"  curl -s -H 'Authorization: Bearer {info.key}' "
                   f"http://{host}:{port}/v1/members/{info.member_id}/features\n", err=True)
    from serving.json_logs import configure_logging

    configure_logging()
    uvicorn.run("serving.app:create_app", factory=True, host=host, port=port, workers=workers,
                log_level="warning", access_log=False, log_config=None)


def main() -> None:
    app()
