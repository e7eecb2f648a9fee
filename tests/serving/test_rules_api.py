"""``GET /v1/rules`` and ``POST /v1/admin/rules/reload`` over a real Redis and a rules directory of the test's own."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from engine.settings import Settings
from serving.auth import ApiKeys
from tests.helpers.http import serve
from tests.helpers.paths import REPO


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "rules"
    shutil.copytree(REPO / "rules", directory)
    return directory


@pytest.fixture
def client(settings: Settings, redis_client: redis.Redis, rules_dir: Path) -> Iterator[TestClient]:
    settings = settings.model_copy(update={"rules_dir": rules_dir})
    with serve(settings, redis_client) as test_client:
        yield test_client


def key(redis_client: redis.Redis, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {ApiKeys(redis_client).create(role)}"}


def test_every_rule_is_listed_with_status_trigger_priority_and_budget(client: TestClient, redis_client) -> None:
    response = client.get("/v1/rules", headers=key(redis_client, "marketer"))
    assert response.status_code == 200
    body = response.json()
    rules = {r["id"]: r for r in body["rules"]}
    assert len(rules) == 10 and body["version"]
    lapsed = rules["lapsed-30d"]
    assert (lapsed["status"], lapsed["trigger"], lapsed["priority"], lapsed["serving"]) == (
        "live", "schedule.daily", 40, True)
    assert lapsed["budget"] == [{"period": "overall total", "coupons_used": 0, "coupons_total": 5000,
                                 "amount_used": 0.0, "amount_total": 150000.0}]


def test_a_broken_reload_is_refused_with_file_line_errors_and_the_last_good_rules_stay(
        client: TestClient, redis_client, rules_dir: Path) -> None:
    writer = key(redis_client, "marketer")
    version = client.get("/v1/rules", headers=writer).json()["version"]
    lapsed = rules_dir / "lapsed.yaml"
    lapsed.write_text(lapsed.read_text().replace("recency_days between", "recency_dayz between"))

    response = client.post("/v1/admin/rules/reload", headers=writer)

    assert response.status_code == 422
    body = response.json()
    assert not body["ok"] and body["version"] == version and "lapsed-30d" in body["rules"]
    assert any("lapsed.yaml:8: unknown feature 'recency_dayz' (did you mean 'recency_days'?)" in e
               for e in body["errors"])
    listed = {r["id"]: r for r in client.get("/v1/rules", headers=writer).json()["rules"]}
    assert listed["lapsed-30d"]["status"] == "invalid" and listed["lapsed-30d"]["serving"]
    assert "recency_dayz" in listed["lapsed-30d"]["errors"][0]


def test_a_good_reload_goes_live(client: TestClient, redis_client, rules_dir: Path) -> None:
    (rules_dir / "birthday.yaml").unlink()
    response = client.post("/v1/admin/rules/reload", headers=key(redis_client, "admin"))
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] and body["changed"] and "birthday-week" not in body["rules"]


def test_reloading_needs_rules_write(client: TestClient, redis_client) -> None:
    assert client.post("/v1/admin/rules/reload", headers=key(redis_client, "pos")).status_code == 403
    assert client.post("/v1/admin/rules/reload").status_code == 401
    assert client.get("/v1/rules", headers=key(redis_client, "pos")).status_code == 200


# --- the same checks from the command line -------------------------------------------------------


def test_nbo_rules_lint_and_test_exit_non_zero_on_errors(rules_dir: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from serving.cli import app

    runner = CliRunner()
    assert runner.invoke(app, ["rules", "lint", str(rules_dir)]).exit_code == 0
    assert runner.invoke(app, ["rules", "test", str(rules_dir)]).exit_code == 0
    lapsed = rules_dir / "lapsed.yaml"
    lapsed.write_text(lapsed.read_text().replace("tier in [silver, gold, diamond]", "tier > 3"))
    result = runner.invoke(app, ["rules", "lint", str(rules_dir)])
    assert result.exit_code == 1
    assert "lapsed.yaml:9: in 'tier > 3': 'tier' is a category" in result.output.replace("\n", "")
    assert runner.invoke(app, ["rules", "test", str(rules_dir)]).exit_code == 1


def test_nbo_rules_schema_writes_the_committed_schema(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from serving.cli import app

    out = tmp_path / "schema.json"
    assert CliRunner().invoke(app, ["rules", "schema", "--out", str(out)]).exit_code == 0
    assert out.read_text(encoding="utf-8") == (REPO / "rules" / "schema.json").read_text(encoding="utf-8")
