"""`nbo serve --workers N`: several uvicorn worker processes share one Redis and each hot-reloads rules and models."""

from __future__ import annotations

import json
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
