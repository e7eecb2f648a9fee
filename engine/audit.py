"""The audit log: every change to rules or models, every coupon issued or redeemed.

Entries go to a Redis Stream (``nbo:audit``, for the console and other services) and to a
rotating JSON-lines file (``var/audit/audit.jsonl``, kept when Redis is away). Entries never
carry personal data: actors are API key ids or role names, members are programme ids, and any
field named like personal data is refused.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import redis

from engine.clock import utc_now
from engine.keys import AUDIT_STREAM, AUDIT_STREAM_MAXLEN
from engine.redis_circuit import REDIS_DOWN

PERSONAL_FIELDS = frozenset({"phone", "name", "email", "address", "birthday", "id_card"})


class AuditLog:
    """Appends audit entries to the stream and the file; a Redis outage never loses the file copy."""

    def __init__(
        self,
        client: redis.Redis | None,
        directory: Path,
        clock: Callable[[], datetime] = utc_now,
        max_bytes: int = 10_000_000,
        backups: int = 10,
        stream_maxlen: int = AUDIT_STREAM_MAXLEN,
    ) -> None:
        self.redis = client
        self.clock = clock
        self.stream_maxlen = stream_maxlen
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "audit.jsonl"
        self._file = logging.handlers.RotatingFileHandler(self.path, maxBytes=max_bytes, backupCount=backups,
                                                          encoding="utf-8")
        self._lock = threading.Lock()

    def record(self, action: str, actor: str, subject: str, **details: object) -> dict:
        """Append one entry: what was done (``coupon.issued``), by whom, to what, and details."""
        personal = PERSONAL_FIELDS & set(details)
        if personal:
            raise ValueError(f"audit entries must not carry personal data: {sorted(personal)}")
        entry = {"ts": self.clock().isoformat(), "action": action, "actor": actor, "subject": subject, **details}
        line = json.dumps(entry, ensure_ascii=False, default=str, sort_keys=True)
        with self._lock:
            self._file.emit(logging.makeLogRecord({"msg": line, "levelno": logging.INFO, "levelname": "INFO"}))
        if self.redis is not None:
            try:
                self.redis.xadd(AUDIT_STREAM, {"entry": line}, maxlen=self.stream_maxlen, approximate=True)
            except REDIS_DOWN:
                pass  # the file has it; the stream is a convenience for readers
        return entry

    def recent(self, count: int = 100, action_prefix: str = "") -> list[dict]:
        """The newest entries from the stream (newest first), optionally of one kind of action."""
        if self.redis is None:
            return []
        entries = []
        for _, fields in self.redis.xrevrange(AUDIT_STREAM, count=count * (5 if action_prefix else 1)):
            entry = json.loads(fields["entry"] if "entry" in fields else fields[b"entry"])
            if entry["action"].startswith(action_prefix):
                entries.append(entry)
            if len(entries) >= count:
                break
        return entries

    def close(self) -> None:
        self._file.close()
