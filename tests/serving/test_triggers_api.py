"""Triggers through the service: events over HTTP fire event rules, the daily run and the report from the CLI,
the measurement over HTTP, and the scheduler."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import redis
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from engine.keys import OUTBOX_STREAM
from engine.settings import Settings, get_settings
from engine.triggers import DailyScheduler
from serving.auth import ApiKeys
from serving.cli import app as cli
from tests.helpers.events import purchase, register
from tests.helpers.http import bearer, serve
from tests.helpers.rules import coupon_rule, write_rules
from training.champions import ChampionModels

WELCOME = coupon_rule("first-purchase", when="orders_total == 1", trigger="event.purchase",
                      limits="{per_member: 1 per year}")
LAPSED = coupon_rule("lapsed", when="recency_days >= 30")


@pytest.fixture
def trigger_settings(settings: Settings, tmp_path: Path) -> Settings:
    rules = write_rules(tmp_path / "rules", {"welcome.yaml": WELCOME, "lapsed.yaml": LAPSED})
    return settings.model_copy(update={"rules_dir": rules})


@pytest.fixture
def client(trigger_settings: Settings, redis_client: redis.Redis) -> Iterator[TestClient]:
    with serve(trigger_settings, redis_client) as test_client:
        yield test_client


def outbox(redis_client: redis.Redis) -> list[dict]:
    return [json.loads(fields["e"]) for _, fields in redis_client.xrange(OUTBOX_STREAM)]


def test_a_first_purchase_posted_over_http_emits_its_coupon_once(client: TestClient, keys: ApiKeys,
                                                                 redis_client: redis.Redis) -> None:
    pos = bearer(keys.create("pos"))
    batch = [register("A", datetime(2026, 2, 1, 9, 0)), purchase("A", datetime(2026, 2, 27, 18, 0))]
    assert client.post("/v1/events", json=batch, headers=pos).json()["accepted"] == 2
    assert client.post("/v1/events", json=batch, headers=pos).json()["duplicates"] == 2
    assert [(e["rule"], e["member"], e["kind"]) for e in outbox(redis_client)] == [("first-purchase", "A", "coupon")]


def test_the_rules_report_is_for_marketers_and_checks_its_range(client: TestClient, keys: ApiKeys) -> None:
    client.post("/v1/events", json=[register("A", datetime(2026, 2, 1, 9, 0)),
                                    purchase("A", datetime(2026, 2, 27, 18, 0))], headers=bearer(keys.create("pos")))
    marketer = bearer(keys.create("marketer"))
    response = client.get("/v1/reports/rules", params={"since": "2026-02-01", "until": "2026-03-01"}, headers=marketer)
    assert response.status_code == 200
    rules = {r["rule_id"]: r for r in response.json()["rules"]}
    assert rules["first-purchase"]["treatment"] == 1 and rules["first-purchase"]["holdout"] == 0
    assert rules["first-purchase"]["daily"][0]["fired"] == 1 and rules["lapsed"]["targeted"] == 0
    assert client.get("/v1/reports/rules", headers=bearer(keys.create("pos"))).status_code == 403
    backwards = client.get("/v1/reports/rules", params={"since": "2026-03-01", "until": "2026-02-01"}, headers=marketer)
    assert backwards.status_code == 422 and "after" in backwards.json()["detail"]


CLI_NOW = datetime(2026, 3, 1, 12, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


@pytest.fixture
def cli_env(trigger_settings: Settings, redis_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.setenv("NBO_RULES_DIR", str(trigger_settings.rules_dir))
    monkeypatch.setenv("NBO_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("NBO_PII_KEY", "test-secret")
    # The commands act at noon on the run's day, the stores' time: outside every channel's quiet hours.
    monkeypatch.setenv("NBO_NOW", CLI_NOW.isoformat())
    monkeypatch.setenv("NBO_MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    monkeypatch.setenv("NBO_MLFLOW_ARTIFACTS_DIR", str(tmp_path / "mlruns" / "artifacts"))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_run_daily_then_report_from_the_command_line(cli_env: Path, store, redis_client: redis.Redis) -> None:
    store.ingest([register("OLD", datetime(2026, 1, 1, 9, 0)), purchase("OLD", datetime(2026, 1, 10, 9, 0)),
                  register("NEW", datetime(2026, 1, 1, 9, 0)), purchase("NEW", datetime(2026, 2, 25, 9, 0))])
    runner = CliRunner()
    first = runner.invoke(cli, ["triggers", "run-daily", "--as-of", "2026-03-01"])
    assert first.exit_code == 0, first.output
    assert "done" in first.output and [e["member"] for e in outbox(redis_client)] == ["OLD"]
    again = runner.invoke(cli, ["triggers", "run-daily", "--as-of", "2026-03-01"])
    assert again.exit_code == 0 and len(outbox(redis_client)) == 1
    status = json.loads(runner.invoke(cli, ["triggers", "status", "--as-of", "2026-03-01"]).output)
    assert (status["status"], status["emitted"], status["members"]) == ("done", 1, 2)
    delivered = runner.invoke(cli, ["triggers", "deliver", "--until-empty"])
    assert delivered.exit_code == 0 and "delivered=1" in delivered.output
    # Delivery issues the coupon at the commands' moment (CLI_NOW): the report's default range ends that day.
    report = runner.invoke(cli, ["report", "rules", "--since", "2026-02-01", "--json"])
    assert report.exit_code == 0, report.output
    lapsed = {r["rule_id"]: r for r in json.loads(report.output)}["lapsed"]
    assert (lapsed["treatment"], lapsed["issued"]) == (1, 1)


def test_the_scheduler_runs_the_day_once_after_daily_at(trigger_settings: Settings, redis_client, store) -> None:
    from serving.services import Services

    store.ingest([register("OLD", datetime(2026, 1, 1, 9, 0)), purchase("OLD", datetime(2026, 1, 10, 9, 0))])
    clock = {"now": datetime(2026, 3, 1, 8, 0, tzinfo=store.programme.tz)}
    services = Services.build(trigger_settings, redis_client, clock=lambda: clock["now"],
                              models=ChampionModels.from_models())
    scheduler = DailyScheduler(services.daily_run("sched"), lambda: clock["now"])
    assert scheduler.due() is None  # before 09:00
    clock["now"] = clock["now"].replace(hour=9, minute=5)
    assert scheduler.due() is not None
    import threading

    stop = threading.Event()
    runner = threading.Thread(target=scheduler.run, args=(stop,))
    runner.start()
    while scheduler.finished is None:
        stop.wait(0.01)
    stop.set()
    runner.join()
    assert scheduler.due() is None and [e["member"] for e in outbox(redis_client)] == ["OLD"]
