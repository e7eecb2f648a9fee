"""``nbo keys``: API keys: create, list, revoke, rotate (every change audited)."""

from __future__ import annotations

import json
from contextlib import contextmanager

import typer

from serving.cli.common import console, settings

app = typer.Typer(help="API keys: create, list, revoke, rotate.", no_args_is_help=True)


@contextmanager
def _keys():
    """The product's keys on the configured Redis, audited to var/audit like the server's changes."""
    from engine.audit import AuditLog
    from engine.clock import clock_from_settings
    from engine.redis_server import connect
    from serving.auth import ApiKeys, UnknownKey

    current = settings()
    clock = clock_from_settings(current)
    audit = AuditLog(connect(current), current.var_dir / "audit", clock=clock)
    try:
        yield ApiKeys(audit.redis, clock=clock, audit=audit)
    except UnknownKey as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    finally:
        audit.close()


def _duration(text: str | None, option: str):
    from serving.auth import parse_duration

    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None


@app.command("create")
def keys_create(
    role: str = typer.Option(..., help="pos | app | privacy | marketer | data-scientist | admin"),
    scope: str | None = typer.Option(None, help="region:NAME or store:ID (default: everything)"),
    name: str = typer.Option("", help="a label for the key"),
    expires: str | None = typer.Option(None, help="the key stops working after this: 90d, 12h, 30m (default: never)"),
) -> None:
    """Create an API key and print it (it is shown only this once; Redis keeps its hash)."""
    lifetime = _duration(expires, "--expires")
    with _keys() as keys:
        new = keys.issue(role, scope, name, lifetime)
    typer.echo(new.secret)
    console.print(f"id {new.key_id}" + (f", expires {new.expires.isoformat()}" if new.expires else ""))


@app.command("list")
def keys_list(as_json: bool = typer.Option(False, "--json", help="one JSON object per key, for scripts")) -> None:
    """Every key: id, name, role, scope, created, expires, last used, status (never the secret)."""
    with _keys() as keys:
        infos = keys.list()
    rows = [{"id": i.key_id, "name": i.name, "role": i.role, "scope": i.scope, "created": i.created.isoformat(),
             "expires": i.expires.isoformat() if i.expires else None,
             "last_used": i.last_used.isoformat() if i.last_used else None, "status": i.status,
             "previous_secret_until": i.previous_secret_until.isoformat() if i.previous_secret_until else None}
            for i in infos]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(rows)} API keys")
    for column in ("id", "name", "role", "scope", "created", "expires", "last used", "status"):
        table.add_column(column)
    for row in rows:
        status = row["status"] + (f" (old secret until {row['previous_secret_until'][:16]})"
                                  if row["previous_secret_until"] else "")
        table.add_row(row["id"], row["name"], row["role"], row["scope"] or "everything", row["created"][:16],
                      (row["expires"] or "never")[:16], (row["last_used"] or "-")[:16], status)
    Console(width=200).print(table)


@app.command("revoke")
def keys_revoke(key_id: str = typer.Argument(..., help="the key's id (nbo keys list)")) -> None:
    """Revoke a key: every worker refuses it within a second, and its console sessions end."""
    with _keys() as keys:
        info = keys.revoke(key_id)
    console.print(f"key {info.key_id} ({info.role}{', ' + info.name if info.name else ''}) is {info.status}")


@app.command("rotate")
def keys_rotate(
    key_id: str = typer.Argument(..., help="the key's id (nbo keys list)"),
    grace: str = typer.Option("24h", help="how long the current secret keeps working: 24h, 7d, 30m"),
) -> None:
    """A new secret for a key (printed once); the current one keeps working for the grace period."""
    period = _duration(grace, "--grace")
    with _keys() as keys:
        new = keys.rotate(key_id, period)
    typer.echo(new.secret)
    console.print(f"id {new.key_id}: the previous secret works until {new.previous_secret_until.isoformat()}")
