"""The audit log keeps every entry in a file and a stream, and refuses personal data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from engine.audit import AuditLog
from engine.redis_server import free_port


def test_entries_reach_the_stream_and_the_file(redis_client: redis.Redis, tmp_path: Path) -> None:
    audit = AuditLog(redis_client, tmp_path)
    audit.record("coupon.issued", actor="key:abc", subject="M1", rule_id="lapsed-30d", code_hash="x1")
    audit.record("rules.reloaded", actor="key:def", subject="rules/", loaded=9)
    assert [e["action"] for e in audit.recent()] == ["rules.reloaded", "coupon.issued"]
    assert audit.recent(action_prefix="coupon.")[0]["rule_id"] == "lapsed-30d"
    lines = [json.loads(line) for line in audit.path.read_text().splitlines()]
    assert [e["action"] for e in lines] == ["coupon.issued", "rules.reloaded"]


def test_personal_data_is_refused(redis_client: redis.Redis, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="phone"):
        AuditLog(redis_client, tmp_path).record("member.updated", actor="pos", subject="M1", phone="13800001111")


def test_redis_away_still_writes_the_file(tmp_path: Path) -> None:
    dead = redis.Redis(port=free_port(), socket_connect_timeout=0.2, socket_timeout=0.2)
    audit = AuditLog(dead, tmp_path)
    audit.record("model.promoted", actor="ds", subject="churn", version=3)
    assert json.loads(audit.path.read_text())["version"] == 3
