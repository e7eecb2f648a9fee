"""Reading the audit file back."""

from __future__ import annotations

import json
from pathlib import Path

from engine.settings import Settings


def audit_entries(source: Path | Settings) -> list[dict]:
    """The entries of an audit file (``AuditLog.path``), or of the one a service with these settings writes,
    oldest first."""
    path = source.var_dir / "audit" / "audit.jsonl" if isinstance(source, Settings) else source
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
