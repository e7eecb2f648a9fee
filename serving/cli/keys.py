"""``nbo keys``: API keys."""

from __future__ import annotations

import typer

from serving.cli.common import settings

app = typer.Typer(help="API keys.", no_args_is_help=True)


@app.command("create")
def keys_create(
    role: str = typer.Option(..., help="pos | app | marketer | data-scientist | admin"),
    scope: str | None = typer.Option(None, help="region:NAME or store:ID (default: everything)"),
    name: str = typer.Option("", help="a label for the key"),
) -> None:
    """Create an API key and print it (it is shown only this once; Redis keeps its hash)."""
    from engine.clock import clock_from_settings
    from engine.redis_server import connect
    from serving.auth import ApiKeys

    current = settings()
    try:
        key = ApiKeys(connect(current), clock=clock_from_settings(current)).create(role, scope, name)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(key)
