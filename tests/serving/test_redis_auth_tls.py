"""Redis with a password and with TLS. The feature-store and next-best-offer specifications marked ``secure_redis``
run against both servers of ``tests/helpers/redis_tls.py`` too (their ``redis_client``); here: the servers refuse
clients without the password, and the stream consumer, the CLI and ``nbo serve`` work with ``rediss://``, an ACL user
and ``NBO_REDIS_CA_FILE`` as an operator configures them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import redis
from typer.testing import CliRunner

from engine.feature_store import FeatureStore
from engine.ingestion import EventStreamConsumer, publish_events
from engine.programme import Programme
from engine.redis_server import RedisServer, connect, free_port
from engine.settings import Settings, get_settings
from serving.auth import ApiKeys
from serving.cli import app as cli
from tests.helpers.paths import REPO
from tests.helpers.redis_tls import DEFAULT_PASSWORD, USER, USER_PASSWORD
from tools.chaos import wait_for


@pytest.fixture(params=["password", "tls"])
def secured(request: pytest.FixtureRequest) -> RedisServer:
    """The server with requirepass and an ACL user, and the TLS one."""
    return request.getfixturevalue(f"{request.param}_redis_server")


def test_the_servers_refuse_clients_without_the_password(secured: RedisServer) -> None:
    parts = secured.url.split("@", 1)
    anonymous = parts[0].split("://")[0] + "://" + parts[1]
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(anonymous, socket_timeout=2).set("x", "1")
    wrong = secured.url.replace(USER_PASSWORD, "wrong")
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(wrong, socket_timeout=2).ping()
    default = secured.url.replace(f"{USER}:{USER_PASSWORD}@", f":{DEFAULT_PASSWORD}@")
    assert redis.Redis.from_url(default).ping(), "requirepass: the default user's password alone works too"


def settings_for(redis_server: RedisServer, tmp_path: Path) -> Settings:
    """Settings as an operator writes them: the URL with the user and password, the CA file on its own."""
    url, _, query = redis_server.url.partition("?")
    ca = Path(query.removeprefix("ssl_ca_certs=")) if query else None
    return Settings(_env_file=None, redis_url=url, redis_ca_file=ca, var_dir=tmp_path / "var", pii_key="test-secret")


def test_the_stream_consumer_and_the_cli_work_with_the_password_and_tls(secured: RedisServer, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_for(secured, tmp_path)
    product = connect(settings)  # what the service, the CLI and the consumers call
    product.flushall()
    store = FeatureStore(product, Programme.from_settings(settings))
    publish_events(product, [{"event_id": "r1", "type": "register", "member_id": "T1", "ts": "2026-01-05T10:00:00"}])
    consumer = EventStreamConsumer(store, consumer="tls-test", block_ms=50)  # its blocking reads: a client_like copy
    assert consumer.run_once() == 1 and store.read_state("T1") is not None

    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    if settings.redis_ca_file:
        monkeypatch.setenv("NBO_REDIS_CA_FILE", str(settings.redis_ca_file))
    monkeypatch.setenv("NBO_VAR_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    try:
        made = CliRunner().invoke(cli, ["keys", "create", "--role", "pos", "--name", "over tls"])
        assert made.exit_code == 0, made.output
        listed = CliRunner().invoke(cli, ["keys", "list", "--json"])
        assert listed.exit_code == 0 and json.loads(listed.stdout)[0]["name"] == "over tls"
    finally:
        get_settings.cache_clear()
    assert ApiKeys(product).verify(made.stdout.strip().splitlines()[0]) is not None
    if settings.redis_ca_file:
        missing = settings.model_copy(update={"redis_ca_file": tmp_path / "no-such-ca.pem"})
        with pytest.raises(RuntimeError, match="is not a file"):
            connect(missing)


def test_nbo_serve_works_over_tls(tls_redis_server: RedisServer, tmp_path: Path) -> None:
    """The server process and its stream consumer, given rediss:// with the ACL user and NBO_REDIS_CA_FILE."""
    settings = settings_for(tls_redis_server, tmp_path)
    product = connect(settings)
    product.flushall()
    key = ApiKeys(product).create("pos")
    port = free_port()
    env = {**os.environ, "REDIS_URL": settings.redis_url, "NBO_REDIS_CA_FILE": str(settings.redis_ca_file),
           "NBO_VAR_DIR": str(tmp_path / "var"), "NBO_RULES_DIR": str(REPO / "rules"), "NBO_PII_KEY": "test-secret",
           "NBO_MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db",
           "NBO_MLFLOW_ARTIFACTS_DIR": str(tmp_path / "artifacts")}
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "serving.cli", "serve", "--port", str(port)], env=env,
                                   stdout=out, stderr=subprocess.STDOUT)
    try:
        def readiness() -> dict | None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
                    return json.loads(response.read())
            except urllib.error.HTTPError as exc:  # 503 without models: still says what Redis did
                return json.loads(exc.read())
            except OSError:
                return None

        ready = wait_for(readiness, 90, every=0.2)
        assert ready and ready["checks"]["redis"] == "ok", log.read_text()[-2000:]
        publish_events(product, [{"event_id": "r2", "type": "register", "member_id": "T2", "ts": "2026-01-05T10:00:00"}])
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/members/T2/features",
                                         headers={"Authorization": f"Bearer {key}"})

        def served() -> int:
            try:
                with urllib.request.urlopen(request, timeout=2) as response:
                    return response.status
            except urllib.error.HTTPError as exc:
                return exc.code if exc.code != 404 else 0  # the server's stream consumer has not applied it yet

        assert wait_for(served, 30, every=0.1) == 200, log.read_text()[-2000:]
    finally:
        process.terminate()
        process.wait(timeout=30)
