"""A small HTTP load generator for benchmarks: keep-alive connections on loopback, asyncio.

Open loop (``fixed_rate``): requests are sent on a schedule whatever the server does, and
latency is measured from the scheduled time, so a slow server cannot hide queueing (no
coordinated omission). Closed loop (``saturate``): N connections send back to back, for
throughput. Run it in its own process so it does not share the server's interpreter.

A request factory may name each request's kind (``(method, path, body, kind)``): the result then
also has statuses and latencies per kind (``LoadResult.kinds``), and ``on_response`` sees every
answer's body (a soak redeems the coupons its offers were given).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass
class LoadResult:
    sent: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    errors: int = 0

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile(np.array(self.latencies) * 1000, q)) if self.latencies else float("nan")

    kinds: dict[str, LoadResult] = field(default_factory=dict)
    """The same figures per kind of request (when the factory names kinds)."""

    def record(self, kind: str | None, status: int | None, latency: float) -> None:
        """One answer (``status`` None: the connection failed) of ``kind``."""
        targets = (self, self.kinds.setdefault(kind, LoadResult())) if kind else (self,)
        for target in targets:
            if target is not self:  # the caller counts what it sent; a kind's count is kept here
                target.sent += 1
            if status is None:
                target.errors += 1
            else:
                target.statuses[status] = target.statuses.get(status, 0) + 1
                target.latencies.append(latency)

    @property
    def server_errors(self) -> int:
        """Answers with a 5xx status."""
        return sum(count for status, count in self.statuses.items() if status >= 500)

    def summary(self) -> dict:
        summary = {
            "sent": self.sent, "ok": self.statuses.get(200, 0), "statuses": self.statuses, "errors": self.errors,
            "seconds": round(self.seconds, 3), "throughput": round(self.throughput, 1),
            "p50_ms": round(self.percentile_ms(50), 3), "p99_ms": round(self.percentile_ms(99), 3),
        }
        if self.kinds:
            summary["kinds"] = {kind: {k: v for k, v in result.summary().items() if k not in ("seconds", "throughput")}
                                for kind, result in self.kinds.items()}
        return summary


RequestFactory = Callable[[int], tuple]
"""i -> (method, path, JSON body or None[, kind])."""

ResponseHook = Callable[[int, str | None, int, bytes], None]
"""Called with (i, kind, status, body) for every answer."""


def _parts(request: tuple) -> tuple[str, str, bytes | None, str | None]:
    method, path, body, *kind = request
    return method, path, body, kind[0] if kind else None


class _Connection:
    def __init__(self, host: str, port: int, headers: dict[str, str]) -> None:
        self.host, self.port = host, port
        self.headers = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        payload = body or b""
        head = (f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n{self.headers}"
                f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n")
        self.writer.write(head.encode() + payload)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("server closed the connection")
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value.strip())
        content = await self.reader.readexactly(length) if length else b""
        return status, content

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def _fixed_rate(host, port, headers, factory: RequestFactory, rate: float, seconds: float, connections: int,
                      on_response: ResponseHook | None = None) -> LoadResult:
    result = LoadResult()
    pool: asyncio.Queue[_Connection] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(_Connection(host, port, headers))
    total = int(rate * seconds)
    start = time.perf_counter()

    async def one(i: int, scheduled: float) -> None:
        connection = await pool.get()
        method, path, body, kind = _parts(factory(i))
        try:
            status, content = await connection.request(method, path, body)
            result.record(kind, status, time.perf_counter() - scheduled)
            if on_response is not None:
                on_response(i, kind, status, content)
        except (OSError, ConnectionError, ValueError, IndexError, asyncio.IncompleteReadError):
            result.record(kind, None, 0.0)
            connection.close()
            connection = _Connection(host, port, headers)
        finally:
            pool.put_nowait(connection)

    tasks = []
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, scheduled)))
        result.sent += 1
    await asyncio.gather(*tasks)
    result.seconds = time.perf_counter() - start
    while not pool.empty():
        pool.get_nowait().close()
    return result


async def _saturate(host, port, headers, factory: RequestFactory, seconds: float, connections: int,
                    on_response: ResponseHook | None = None) -> LoadResult:
    result = LoadResult()
    deadline = time.perf_counter() + seconds
    counter = iter(range(10**12))

    async def worker() -> None:
        connection = _Connection(host, port, headers)
        while time.perf_counter() < deadline:
            i = next(counter)
            method, path, body, kind = _parts(factory(i))
            sent = time.perf_counter()
            result.sent += 1
            try:
                status, content = await connection.request(method, path, body)
            except (OSError, ConnectionError, ValueError, IndexError, asyncio.IncompleteReadError):
                result.record(kind, None, 0.0)
                connection.close()
                connection = _Connection(host, port, headers)
                continue
            result.record(kind, status, time.perf_counter() - sent)
            if on_response is not None:
                on_response(i, kind, status, content)
        connection.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    result.seconds = time.perf_counter() - start
    return result


def fixed_rate(host: str, port: int, headers: dict[str, str], factory: RequestFactory, rate: float,
               seconds: float, connections: int = 32, on_response: ResponseHook | None = None) -> LoadResult:
    """Send ``rate`` requests per second for ``seconds`` on a schedule; latency from the schedule."""
    return asyncio.run(_fixed_rate(host, port, headers, factory, rate, seconds, connections, on_response))


def saturate(host: str, port: int, headers: dict[str, str], factory: RequestFactory, seconds: float,
             connections: int = 16, on_response: ResponseHook | None = None) -> LoadResult:
    """Send back to back on ``connections`` connections for ``seconds``; throughput and latency."""
    return asyncio.run(_saturate(host, port, headers, factory, seconds, connections, on_response))


def json_body(document: object) -> bytes:
    return json.dumps(document).encode()
