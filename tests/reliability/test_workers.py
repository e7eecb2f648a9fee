"""`nbo serve --workers N`: several uvicorn worker processes share one Redis and each hot-reloads rules and models."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import redis

from engine.redis_server import stop_embedded_redis
from serving.auth import ApiKeys
from tools.benchmarks import BenchService, ServerProcess, environment
from tools.chaos import post_json, wait_for
from training.data import from_frame
from training.registry import ModelRegistry


def readiness_by_worker(server: ServerProcess, pids: set[int], wanted, seconds: float = 60) -> dict[int, dict]:
    """Ask /readyz on new connections (the kernel spreads them over the workers) until every worker's
    latest answer satisfies ``wanted``; returns the latest answer per worker pid."""
    latest: dict[int, dict] = {}

    def every_worker_agrees() -> bool:
        for _ in range(10):
            _, ready = server.get_json("/readyz")
            latest[ready["pid"]] = ready
        return set(latest) >= pids and all(wanted(latest[pid]) for pid in pids)

    wait_for(every_worker_agrees, seconds, every=0.1)
    return latest


def test_two_workers_each_hot_reload_rules_and_a_promoted_model(service: BenchService, shop, churn_result) -> None:
    server = service.serve(2, NBO_MODEL_RELOAD_SECONDS="1")
    rule_file = service.rules_dir / "new_member.yaml"
    original = rule_file.read_text()
    try:
        server.wait_ready()
        pids = wait_for(lambda: len(server.worker_pids()) == 2 and server.worker_pids(), 30)
        assert pids and len(pids) == 2
        start = readiness_by_worker(server, pids, lambda ready: ready["ready"])
        assert set(start) == pids and len({r["rules_version"] for r in start.values()}) == 1

        rules_before = next(iter(start.values()))["rules_version"]
        rule_file.write_text(re.sub(r"^priority: (\d+)$", lambda m: f"priority: {int(m[1]) + 1}", original,
                                    flags=re.MULTILINE))
        reloaded = readiness_by_worker(server, pids, lambda ready: ready["rules_version"] != rules_before)
        assert {pid: r["rules_version"] != rules_before for pid, r in reloaded.items()} == dict.fromkeys(pids, True)
        assert len({r["rules_version"] for r in reloaded.values()}) == 1, "every worker serves the same new rules"

        with environment(service.env):
            registry = ModelRegistry.from_settings(service.settings())
            new = registry.log_churn(churn_result, from_frame(shop.transactions, source="synthetic shop"))
            registry.promote("churn", new.version, force=True, reason="workers test: every worker switches")
            registry.audit.close()
        switched = readiness_by_worker(server, pids, lambda ready: ready["models"]["churn"] == new.version)
        assert {pid: r["models"]["churn"] for pid, r in switched.items()} == dict.fromkeys(pids, new.version)
    finally:
        rule_file.write_text(original)
        server.stop()


def test_two_workers_share_the_embedded_redis_when_no_url_is_given(service: BenchService, tmp_path: Path) -> None:
    var = tmp_path / "var"
    server = service.serve(2, REDIS_URL="", NBO_VAR_DIR=str(var))
    try:
        server.wait_ready()
        embedded = json.loads((var / "redis" / "server.json").read_text())
        assert embedded["url"] != service.redis.url
        pids = wait_for(lambda: len(server.worker_pids()) == 2 and server.worker_pids(), 30)
        key = ApiKeys(redis.Redis.from_url(embedded["url"], decode_responses=True)).create("pos")
        status, answer = post_json(server, key, "/v1/events", [{
            "event_id": "w-reg", "type": "register", "member_id": "W1", "ts": "2026-01-05T10:00:00", "store_id": "S001"}])
        assert (status, answer["accepted"]) == (200, 1)
        ready = readiness_by_worker(server, pids, lambda ready: ready["checks"]["redis"] == "ok")
        assert {pid: r["checks"]["redis"] for pid, r in ready.items()} == dict.fromkeys(pids, "ok")
        # New connections land on either worker: the member registered through one is there for both.
        assert {server.get_json("/v1/members/W1/features", key)[0] for _ in range(20)} == {200}
    finally:
        server.stop()
        stop_embedded_redis(var)


def test_a_revoked_key_is_refused_by_both_workers_within_a_second(service: BenchService) -> None:
    """Each worker has verified the key (it sits in its 30 s cache); ``nbo keys revoke`` in another process makes
    both refuse it within a second. A kept-alive connection stays with one worker, whose pid /readyz tells."""
    import http.client
    import subprocess
    import sys
    import time

    server = service.serve(2, NBO_STREAM_CONSUMER="false")
    key = ApiKeys(service.client()).issue("pos", name="till to revoke")
    connections: dict[int, http.client.HTTPConnection] = {}
    try:
        server.wait_ready()
        pids = wait_for(lambda: len(server.worker_pids()) == 2 and server.worker_pids(), 30)
        assert pids and len(pids) == 2

        def status(connection: http.client.HTTPConnection, path: str, secret: str | None = None) -> tuple[int, bytes]:
            connection.request("GET", path, headers={"Authorization": f"Bearer {secret}"} if secret else {})
            response = connection.getresponse()
            return response.status, response.read()

        def one_per_worker() -> bool:
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
            pid = json.loads(status(connection, "/readyz")[1])["pid"]
            if pid in connections:
                connection.close()
            else:
                connections[pid] = connection
            return set(connections) == pids

        assert wait_for(one_per_worker, 30, every=0.01), "could not reach both workers"
        for connection in connections.values():
            assert status(connection, "/v1/rules", key.secret)[0] == 200  # verified: now in that worker's cache

        revoke = subprocess.run([sys.executable, "-m", "serving.cli", "keys", "revoke", key.key_id],
                                env={**os.environ, **service.env}, capture_output=True, text=True, timeout=60)
        revoked_at = time.monotonic()
        assert revoke.returncode == 0, revoke.stderr
        refused_after: dict[int, float] = {}
        while len(refused_after) < len(connections) and time.monotonic() - revoked_at < 5:
            for pid, connection in connections.items():
                if pid not in refused_after and status(connection, "/v1/rules", key.secret)[0] == 401:
                    refused_after[pid] = time.monotonic() - revoked_at
        assert set(refused_after) == pids, f"still accepted 5 s after the revocation by {pids - set(refused_after)}"
        assert max(refused_after.values()) < 1.0, refused_after
    finally:
        for connection in connections.values():
            connection.close()
        server.stop()
