"""API keys have a lifecycle: listed without their secret, revoked, expiring, rotated with a grace period, over the
CLI and the admin API, audited; a change reaches another process's verification cache within a second."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from engine.audit import AuditLog
from engine.keys import API_KEYS
from engine.settings import Settings, get_settings
from serving.auth import ApiKeys, parse_duration
from serving.cli import app as cli
from tests.helpers.clock import NOW
from tests.helpers.http import bearer, serve
from tests.helpers.redis_dump import dump_redis
from tools.chaos import wait_for


class MovableClock:
    """The service clock a test moves (key expiry and rotation grace are by the product's clock)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock(NOW)


@pytest.fixture
def api(settings: Settings, redis_client: redis.Redis, clock: MovableClock) -> TestClient:
    with serve(settings, redis_client, clock=clock) as client:
        yield client


def audit_actions(settings: Settings) -> list[dict]:
    path = settings.var_dir / "audit" / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_the_admin_api_lists_keys_without_secrets_and_a_revoked_key_stops_at_once(
        api: TestClient, settings: Settings, redis_client: redis.Redis) -> None:
    services = api.app.state.services
    admin = bearer(services.keys.create("admin", name="ops"))
    made = api.post("/v1/admin/keys", headers=admin, json={"role": "pos", "scope": "store:S001", "name": "till 3",
                                                            "expires_in_days": 90})
    assert made.status_code == 201, made.text
    till = made.json()
    assert till["key"].startswith("nbo_") and till["expires"].startswith("2026-05-30")
    assert api.get("/v1/rules", headers=bearer(till["key"])).status_code == 200

    listed = api.get("/v1/admin/keys", headers=admin)
    assert listed.status_code == 200
    row = next(k for k in listed.json()["keys"] if k["id"] == till["id"])
    assert (row["role"], row["scope"], row["name"], row["status"]) == ("pos", "store:S001", "till 3", "active")
    assert row["last_used"] is not None
    assert till["key"] not in listed.text and till["key"] not in json.dumps(dump_redis(redis_client))

    revoked = api.post(f"/v1/admin/keys/{till['id']}/revoke", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    refused = api.get("/v1/rules", headers=bearer(till["key"]))
    assert refused.status_code == 401, "this worker dropped its cache with the change"
    assert api.post("/v1/admin/keys/000000000000/revoke", headers=admin).status_code == 404
    actions = [(e["action"], e["subject"]) for e in audit_actions(settings) if e["action"].startswith("keys.")]
    assert ("keys.created", f"key:{till['id']}") in actions and ("keys.revoked", f"key:{till['id']}") in actions
    assert all(till["key"] not in json.dumps(e) for e in audit_actions(settings))


def test_managing_keys_needs_an_unscoped_admin_key(api: TestClient) -> None:
    keys = api.app.state.services.keys
    for key, status in ((keys.create("admin", scope="region:north"), 403), (keys.create("marketer"), 403)):
        refused = api.get("/v1/admin/keys", headers=bearer(key))
        assert refused.status_code == status, refused.text
    assert "unscoped" in api.get("/v1/admin/keys", headers=bearer(keys.create("admin", scope="store:S1"))).text


def test_a_key_stops_working_when_it_expires(api: TestClient, clock: MovableClock) -> None:
    keys = api.app.state.services.keys
    short = keys.issue("pos", expires_in=parse_duration("12h"))
    assert api.get("/v1/rules", headers=bearer(short.secret)).status_code == 200  # now cached
    clock.now = NOW + timedelta(hours=12)
    assert api.get("/v1/rules", headers=bearer(short.secret)).status_code == 401, "expiry is checked on a cache hit"
    assert next(k for k in keys.list() if k.key_id == short.key_id).status == "expired"


def test_rotation_gives_a_new_secret_and_keeps_the_old_one_for_its_grace(api: TestClient, clock: MovableClock,
                                                                         settings: Settings) -> None:
    services = api.app.state.services
    admin = bearer(services.keys.create("admin"))
    old = services.keys.issue("app", name="member app")
    rotated = api.post(f"/v1/admin/keys/{old.key_id}/rotate", headers=admin, json={"grace_seconds": 3600})
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()
    assert new["id"] == old.key_id and new["key"] != old.secret
    for secret in (old.secret, new["key"]):
        assert api.get("/v1/rules", headers=bearer(secret)).status_code == 200
    info = next(k for k in services.keys.list() if k.key_id == old.key_id)
    assert info.status == "rotating" and info.previous_secret_until == NOW + timedelta(hours=1)

    clock.now = NOW + timedelta(hours=1)
    assert api.get("/v1/rules", headers=bearer(old.secret)).status_code == 401
    assert api.get("/v1/rules", headers=bearer(new["key"])).status_code == 200
    assert next(k for k in services.keys.list() if k.key_id == old.key_id).status == "active"
    assert [e["action"] for e in audit_actions(settings) if e["subject"] == f"key:{old.key_id}"] == [
        "keys.created", "keys.rotated"]
    services.keys.revoke(old.key_id)
    refused = api.post(f"/v1/admin/keys/{old.key_id}/rotate", headers=admin)
    assert refused.status_code == 409 and "revoked" in refused.json()["detail"]


def test_a_change_in_one_process_reaches_another_within_a_second(redis_client: redis.Redis) -> None:
    """Two workers: each caches verified keys for 30 s; a revocation by one (or by the CLI) bumps the version the
    other watches, so it refuses the key within a second instead of after its cache's 30 s."""
    worker, admin = ApiKeys(redis_client), ApiKeys(redis_client)
    key = admin.issue("pos")
    stop = threading.Event()
    watcher = threading.Thread(target=worker.watch, args=(stop,), daemon=True)
    watcher.start()
    try:
        assert worker.verify(key.secret) is not None
        admin.revoke(key.key_id)
        refused = wait_for(lambda: worker.verify(key.secret) is None, 1.0, every=0.02)
        assert refused, "still accepted a second after the revocation"
    finally:
        stop.set()
        watcher.join(timeout=2)
    # A key created after an unknown one was tried (and cached as unknown) works at once, too.
    unknown = "nbo_" + "x" * 43
    assert worker.verify(unknown) is None
    assert worker.verify(admin.create("pos")) is not None


@pytest.fixture
def cli_env(tmp_path: Path, redis_server, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.setenv("NBO_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("NBO_PII_KEY", "test-secret")
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_the_cli_creates_lists_rotates_and_revokes_keys(cli_env: Path, redis_client: redis.Redis) -> None:
    runner = CliRunner()
    made = runner.invoke(cli, ["keys", "create", "--role", "pos", "--scope", "store:S001", "--name", "till 1",
                               "--expires", "90d"])
    assert made.exit_code == 0, made.output
    secret = made.stdout.strip().splitlines()[0]
    key_id = ApiKeys(redis_client).verify(secret).key_id
    listed = runner.invoke(cli, ["keys", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    assert [(r["id"], r["role"], r["scope"], r["name"], r["status"]) for r in rows] == [
        (key_id, "pos", "store:S001", "till 1", "active")]
    assert rows[0]["expires"] is not None and secret not in listed.output

    rotated = runner.invoke(cli, ["keys", "rotate", key_id, "--grace", "30m"])
    assert rotated.exit_code == 0, rotated.output
    new_secret = rotated.stdout.strip().splitlines()[0]
    assert new_secret != secret and ApiKeys(redis_client).verify(new_secret).key_id == key_id
    table = runner.invoke(cli, ["keys", "list"])
    assert "rotating" in table.output and secret not in table.output

    assert runner.invoke(cli, ["keys", "revoke", key_id]).exit_code == 0
    keys = ApiKeys(redis_client)
    assert keys.verify(secret) is None and keys.verify(new_secret) is None
    unknown = runner.invoke(cli, ["keys", "revoke", "ffffffffffff"])
    assert unknown.exit_code == 1 and "no API key with id" in unknown.output
    bad = runner.invoke(cli, ["keys", "create", "--role", "pos", "--expires", "soon"])
    assert bad.exit_code == 2 and "90d" in bad.output
    audit = AuditLog(None, cli_env / "var" / "audit")
    lines = [json.loads(line)["action"] for line in audit.path.read_text().splitlines()]
    audit.close()
    assert lines == ["keys.created", "keys.rotated", "keys.revoked"]
    assert len(redis_client.hkeys(API_KEYS)) == 2  # two secrets of one key, both kept as digests
