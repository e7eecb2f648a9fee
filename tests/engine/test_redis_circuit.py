"""The Redis circuit breaker against a real redis-server that is paused (SIGSTOP: it accepts, never answers)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from engine.redis_circuit import CircuitConnection, RedisCircuit, RedisCircuitOpen
from engine.redis_server import RedisServer, connect, start_redis_server
from engine.settings import Settings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, so pausing it disturbs no other test."""
    server = start_redis_server(tmp_path / "redis")
    yield server
    os.kill(server.pid, signal.SIGCONT)
    server.stop()


def guarded_client(server: RedisServer, circuit: RedisCircuit) -> redis.Redis:
    return redis.Redis.from_url(server.url, socket_timeout=0.2, socket_connect_timeout=0.2, decode_responses=True,
                                connection_class=CircuitConnection, circuit=circuit)


def test_a_hung_redis_opens_the_circuit_then_calls_fail_without_touching_it(own_server: RedisServer) -> None:
    clock = Clock()
    circuit = RedisCircuit(failures=2, cooldown=5, clock=clock)
    client = guarded_client(own_server, circuit)
    client.set("k", "v")
    os.kill(own_server.pid, signal.SIGSTOP)
    for _ in range(2):
        with pytest.raises(redis.TimeoutError):
            client.get("k")
    assert circuit.is_open and circuit.opened == 1
    with pytest.raises(RedisCircuitOpen):  # not attempted: no socket timeout paid
        client.get("k")
    with pytest.raises(RedisCircuitOpen):
        client.pipeline(transaction=False).get("k").get("k").execute()


def test_after_the_cooldown_one_probe_goes_through_and_a_reply_closes_the_circuit(own_server: RedisServer) -> None:
    clock = Clock()
    circuit = RedisCircuit(failures=1, cooldown=5, clock=clock)
    client = guarded_client(own_server, circuit)
    os.kill(own_server.pid, signal.SIGSTOP)
    with pytest.raises(redis.TimeoutError):
        client.get("k")
    clock.now += 5
    with pytest.raises(redis.TimeoutError):  # the probe: Redis is still paused
        client.get("k")
    with pytest.raises(RedisCircuitOpen):  # the failed probe re-opened it for another cool-down
        client.get("k")
    os.kill(own_server.pid, signal.SIGCONT)
    clock.now += 5
    assert client.set("k", "back") and client.get("k") == "back"
    assert not circuit.is_open and circuit.opened == 1


def test_an_error_reply_is_a_sign_of_life(own_server: RedisServer) -> None:
    circuit = RedisCircuit(failures=2, cooldown=5, clock=Clock())
    client = guarded_client(own_server, circuit)
    circuit.failed()
    with pytest.raises(redis.ResponseError):
        client.execute_command("NO-SUCH-COMMAND")
    circuit.failed()
    assert not circuit.is_open


def test_the_service_client_has_a_circuit_shared_by_its_pools(own_server: RedisServer) -> None:
    settings = Settings(_env_file=None, redis_circuit_failures=2)
    client = connect(settings, own_server.url)
    pool = client.connection_pool
    assert pool.connection_class is CircuitConnection
    assert pool.connection_kwargs["circuit"].failures == 2
    unguarded = connect(settings.model_copy(update={"redis_circuit_failures": 0}), own_server.url)
    assert unguarded.connection_pool.connection_class is redis.Connection
