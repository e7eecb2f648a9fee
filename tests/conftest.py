"""Shared fixtures: a real Redis the suite starts itself, settings, a programme and a fixed clock
(``tests/helpers/`` holds the builders and constants the tests import).

``pytest --redis-cluster`` (``make cluster-test``) runs the tests marked ``cluster`` against a
3-master Redis Cluster of real redis-server processes instead, and deselects the others. Tests marked
``secure_redis`` run three times: on the suite's server, on one with ``requirepass`` and an ACL user,
and on one serving TLS only (``tests/helpers/redis_tls.py``).

``NBO_TEST_CLOCK`` (``make test-clock``) moves the wall clock of the whole run to that moment, in
process with time-machine (libfaketime hangs ``time.sleep`` and spins redis-server on these
machines); the monotonic clock is left alone, so timeouts and waits work. The servers and commands
a test starts get the same moment through the product's own clock setting (``NBO_NOW``), unless
the test pins its own. A test that passes only at some hours, dates or host zones fails there.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import redis

from engine.feature_store import FeatureStore
from engine.programme import Programme
from engine.redis_server import (
    RedisClusterServers,
    RedisServer,
    client_from_url,
    start_redis_cluster,
    start_redis_server,
)
from engine.settings import Settings
from recommender import ALSParams
from tests.helpers.clock import NOW
from tests.helpers.redis_tls import start_password_server, start_tls_server
from tests.helpers.shop import SHOP_CUTOFF, SHOP_HORIZON, SHOP_TEST_FROM
from tests.recommender.datasets import synthetic_shop
from tools.synthetic import SyntheticData
from training.churn import ChurnTraining, train_churn
from training.recommendation import RecommenderTraining, train_recommender

TEST_CLOCK = os.environ.get("NBO_TEST_CLOCK")
"""The moment ``make test-clock`` runs the suite at (ISO 8601 with an offset), or None: the real clock."""


def pytest_configure(config: pytest.Config) -> None:
    if TEST_CLOCK:
        import time_machine

        traveller = time_machine.travel(datetime.fromisoformat(TEST_CLOCK), tick=True)
        traveller.start()
        config.add_cleanup(traveller.stop)
        os.environ["NBO_NOW"] = datetime.now(UTC).isoformat()  # for processes the session's fixtures start
    config.addinivalue_line("markers", "cluster: also runs against a local 3-master Redis Cluster "
                            "(pytest --redis-cluster, make cluster-test)")
    config.addinivalue_line("markers", "fuzz: hypothesis fuzzing; make fuzz runs these with NBO_FUZZ_SCALE times "
                            "the examples")
    config.addinivalue_line("markers", "secure_redis: also runs against a Redis with requirepass and an ACL user, "
                            "and one serving TLS only (their redis_client)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if (metafunc.definition.get_closest_marker("secure_redis") and "redis_client" in metafunc.fixturenames
            and not metafunc.config.getoption("--redis-cluster")):
        metafunc.parametrize("redis_client", ["plain", "password", "tls"], indirect=True)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """Say how to repeat this run (``-q`` hides the header where pytest-randomly prints its seed)."""
    seed = getattr(config.option, "randomly_seed", None)
    if isinstance(seed, int):
        terminalreporter.write_line(f"tests in random order: repeat this order with --randomly-seed={seed}")
    if TEST_CLOCK:
        terminalreporter.write_line(f"clock moved to {TEST_CLOCK}, TZ={os.environ.get('TZ', 'unset')}")


@pytest.fixture(autouse=True)
def _processes_share_the_moved_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the clock moved, a server or command a test starts begins at the suite's "now" (``NBO_NOW``)."""
    if TEST_CLOCK:
        monkeypatch.setenv("NBO_NOW", datetime.now(UTC).isoformat())


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--redis-cluster", action="store_true",
                     help="run the tests marked 'cluster' against a local 3-master Redis Cluster (and only those)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--redis-cluster"):
        return
    other = [item for item in items if item.get_closest_marker("cluster") is None]
    if other:
        config.hook.pytest_deselected(items=other)
        items[:] = [item for item in items if item.get_closest_marker("cluster") is not None]


@pytest.fixture(scope="session")
def redis_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RedisServer | RedisClusterServers]:
    """A throw-away redis-server on a free loopback port (a local cluster with ``--redis-cluster``);
    a user's Redis is never touched. Connect with ``client_from_url(redis_server.url)``."""
    if request.config.getoption("--redis-cluster"):
        server = start_redis_cluster(tmp_path_factory.mktemp("redis-cluster"))
    else:
        server = start_redis_server(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def password_redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A throw-away redis-server with ``requirepass`` and an ACL user (the URL has the user and password)."""
    server = start_password_server(tmp_path_factory.mktemp("redis-password"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tls_redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A throw-away redis-server serving TLS only, with a password and an ACL user (the URL has them and the CA
    file); the tests that need it skip, saying why, where no redis-server has TLS."""
    server = start_tls_server(tmp_path_factory.mktemp("redis-tls"))
    yield server
    server.stop()


@pytest.fixture
def redis_client(request: pytest.FixtureRequest, redis_server: RedisServer | RedisClusterServers) -> Iterator[redis.Redis]:
    """A client on the suite's own server (or cluster), emptied before each test; for a ``secure_redis`` test also on
    the password and the TLS servers."""
    variant = getattr(request, "param", "plain")
    server = redis_server if variant == "plain" else request.getfixturevalue(f"{variant}_redis_server")
    client = client_from_url(server.url, decode_responses=True)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(_env_file=None, redis_url=None, var_dir=tmp_path / "var", pii_key="test-secret")


@pytest.fixture
def programme(settings: Settings) -> Programme:
    return Programme.from_settings(settings)


@pytest.fixture
def store(redis_client: redis.Redis, programme: Programme) -> FeatureStore:
    return FeatureStore(redis_client, programme, clock=lambda: NOW)


# --- a small synthetic shop and models trained on it, shared by training and serving tests ---


@pytest.fixture(scope="session")
def shop() -> SyntheticData:
    return synthetic_shop()


@pytest.fixture(scope="session")
def shop_programme() -> Programme:
    return Programme.from_settings(Settings(_env_file=None, redis_url=None, pii_key="test-secret"))


@pytest.fixture(scope="session")
def churn_result(shop: SyntheticData, shop_programme: Programme) -> ChurnTraining:
    return train_churn(shop.transactions, SHOP_CUTOFF, SHOP_HORIZON, shop_programme, members=shop.members)


@pytest.fixture(scope="session")
def ltv_result(shop: SyntheticData, shop_programme: Programme):
    from training.ltv import train_ltv

    return train_ltv(shop.transactions, SHOP_CUTOFF, SHOP_HORIZON, shop_programme, members=shop.members)


@pytest.fixture(scope="session")
def campaign_shop() -> SyntheticData:
    """1,500 synthetic members over 150 days with six coupon campaigns of known heterogeneous effect."""
    from tools.synthetic import generate, with_coupon_responses

    return with_coupon_responses(generate(members=1500, days=150, seed=5, start=date(2025, 10, 1)), seed=2,
                                 campaign_days=6, every_days=14, reach=0.9)


@pytest.fixture(scope="session")
def response_result(campaign_shop: SyntheticData, shop_programme: Programme):
    from training.response import train_response

    test_from = max(campaign_shop.exposures["day"])
    return train_response(campaign_shop.transactions, campaign_shop.exposures, test_from, shop_programme,
                          members=campaign_shop.members)


@pytest.fixture(scope="session")
def recommender_result(shop: SyntheticData) -> RecommenderTraining:
    return train_recommender(shop.transactions, SHOP_TEST_FROM, k=10, grid=((16, 1.0),),
                             base_params=ALSParams(iterations=8))
