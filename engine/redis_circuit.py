"""A circuit breaker in front of Redis, so a hung server costs one socket timeout, not one per call.

A stopped Redis refuses connections at once, but a hung one (paused, swapping, a dropped network
path) accepts them and never answers: each call waits the full socket timeout (0.5 s). After
``failures`` consecutive connection errors or timeouts the circuit opens and every call fails at
once with ``RedisCircuitOpen`` (a ``redis.ConnectionError``, so callers degrade exactly as for a
stopped server). After ``cooldown`` seconds one call is let through as a probe while the others
keep failing fast for another cool-down; any reply from the server closes the circuit.

It sits in the connection class, so every command, pipeline, Lua script and health check of a
client made by ``engine.redis_server.connect`` goes through it, and connection pools copied from
that client (the stream consumer's blocking pool) share the same circuit.

Hand-written rather than taken from pybreaker or circuitbreaker: pybreaker holds its lock for the
whole guarded call (every Redis call of the process, the stream consumer's 1 s blocking reads
included, would queue behind one another), and both count any call that returns as a success,
while here only a reply read from the server proves it is alive (a send into the socket buffer
of a hung server succeeds).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import redis

log = logging.getLogger(__name__)

REDIS_DOWN: tuple[type[Exception], ...] = (redis.ConnectionError, redis.TimeoutError)
"""What a call raises when Redis is away: stopped (refused), hung (timed out) or behind an open circuit
(``RedisCircuitOpen`` is a ``ConnectionError``). Callers that degrade catch exactly this; it is the only spelling."""


class RedisCircuitOpen(redis.ConnectionError):
    """Redis failed repeatedly just now; the call was not attempted."""


class RedisCircuit:
    """Closed (calls go through), open (calls fail at once) or probing (one call per cool-down)."""

    def __init__(self, failures: int = 3, cooldown: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        if failures < 1 or cooldown <= 0:
            raise ValueError("a circuit needs failures >= 1 and cooldown > 0")
        self.failures = failures
        self.cooldown = cooldown
        self.clock = clock
        self.opened = 0
        """How many times the circuit has opened (for reports)."""
        self._consecutive = 0
        self._open_since: float | None = None
        self._lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        return self._open_since is not None

    def check(self) -> None:
        """Raise ``RedisCircuitOpen`` unless a call may go to Redis now (closed, or this call is the probe)."""
        if self._open_since is None:
            return
        with self._lock:
            if self._open_since is None:
                return
            now = self.clock()
            waited = now - self._open_since
            if waited < self.cooldown:
                raise RedisCircuitOpen(f"Redis circuit open after {self._consecutive} failed calls; "
                                       f"next try in {self.cooldown - waited:.1f} s")
            self._open_since = now  # this call probes; the others fail fast for another cool-down

    def failed(self) -> None:
        with self._lock:
            self._consecutive += 1
            if self._consecutive < self.failures:
                return
            if self._open_since is None:
                self.opened += 1
                log.warning("redis circuit opened after %d consecutive failures; calls fail fast for %.1f s",
                            self._consecutive, self.cooldown)
            self._open_since = self.clock()

    def succeeded(self) -> None:
        if self._consecutive == 0 and self._open_since is None:
            return
        with self._lock:
            if self._open_since is not None:
                log.warning("redis circuit closed: Redis answers again")
            self._consecutive = 0
            self._open_since = None


class CircuitConnection(redis.Connection):
    """A ``redis.Connection`` whose connects, sends and reads go through a shared ``RedisCircuit``."""

    def __init__(self, *args, circuit: RedisCircuit, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.circuit = circuit
        self._in_call = False  # a connect sends HELLO and reads its reply: count the outer call once

    def _guarded(self, method: Callable, *args, **kwargs):
        if self._in_call:
            return method(*args, **kwargs)
        self.circuit.check()
        self._in_call = True
        try:
            return method(*args, **kwargs)
        except REDIS_DOWN as exc:
            if not isinstance(exc, RedisCircuitOpen):
                self.circuit.failed()
            raise
        finally:
            self._in_call = False

    def connect(self) -> None:
        self._guarded(super().connect)

    def send_packed_command(self, command, check_health: bool = True) -> None:
        self._guarded(super().send_packed_command, command, check_health)

    def read_response(self, *args, **kwargs):
        try:
            response = self._guarded(super().read_response, *args, **kwargs)
        except redis.ResponseError:
            self.circuit.succeeded()  # an error reply is still a reply
            raise
        self.circuit.succeeded()
        return response


def circuit_options(url: str, failures: int, cooldown: float) -> dict[str, object]:
    """Client options that put a new circuit in front of a plain ``redis://`` URL (others: none)."""
    if failures < 1 or not url.startswith("redis://"):
        return {}
    return {"connection_class": CircuitConnection, "circuit": RedisCircuit(failures, cooldown)}
