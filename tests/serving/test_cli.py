"""The nbo command line: every command answers --help; data commands do what they say."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from serving.cli import app


def all_commands(group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for name, command in group.commands.items():
        if hasattr(command, "commands"):  # a group (typer bundles its own click)
            found += all_commands(command, prefix + (name,))
        else:
            found.append(prefix + (name,))
    return found


COMMANDS = all_commands(typer.main.get_command(app))


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "nbo")
def test_every_command_has_help(command: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_the_contracts_commands_exist() -> None:
    names = {" ".join(c) for c in COMMANDS}
    assert {"data import", "data generate", "keys create", "serve", "bench ingest"} <= names


def test_import_reports_bad_lines_and_writes_canonical_parquet(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("NBO_VAR_DIR", str(tmp_path / "var"))
    source = tmp_path / "pos.csv"
    lines = ["Customer,When,Item,Total"] + [f"C{i},2026-01-0{1 + i % 9},milk,{i}.5" for i in range(200)]
    lines[5] = "C4,yesterday,milk,3.0"
    source.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.parquet"
    result = CliRunner().invoke(app, ["data", "import", str(source), "--map", "Customer=member_id", "--map", "When=ts",
                                      "--map", "Item=sku", "--map", "Total=amount", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"{source}:6:" in result.output and "ts" in result.output
    frame = pd.read_parquet(out)
    assert len(frame) == 199 and set(frame.columns) >= {"member_id", "ts", "sku", "qty", "amount"}


def test_import_aborts_when_too_many_lines_are_bad(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("NBO_VAR_DIR", str(tmp_path / "var"))
    source = tmp_path / "bad.csv"
    source.write_text("member_id,ts,amount\n" + "".join(f"A,never,{i}\n" for i in range(10)))
    result = CliRunner().invoke(app, ["data", "import", str(source), "--out", str(tmp_path / "o.parquet")])
    assert result.exit_code == 1
    assert "aborted" in result.output and "bad.csv" in result.output
