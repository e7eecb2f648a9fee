"""Scope on reads that have no single member: which audit entries a scoped key may see.

Members, reports and the rules list keep to a scope through ``engine.scope.Scope`` (members by their
profile's region and home store, rules by their ``scope:``). The audit log mixes kinds of entries;
for a scoped key (``region:R`` / ``store:S``):

* entries about a member (coupons issued or redeemed, deliveries suppressed, erasures, exports) are
  shown when the member is in scope (an erased member by their tombstone's region and store);
* a rule file's saves when the file's rule applies in scope; reloads and model changes (the whole
  programme's configuration, no store's data) always;
* key management, and any kind not listed here, never (unscoped keys see everything).
"""

from __future__ import annotations

import json
from pathlib import Path

from engine.keys import erased_marker_key, member_key
from engine.member_state import PROFILE
from engine.scope import Scope
from serving.routes.rules import visible_rules
from serving.services import Services

MEMBER_ACTIONS = ("coupon.", "outbox.", "member.")
"""Actions whose subject is a member id."""
PROGRAMME_ACTIONS = ("rules.reload", "model.")
"""Changes to the whole programme's configuration."""


def visible_audit_entries(services: Services, scope: Scope, action_prefix: str = "", limit: int = 100) -> list[dict]:
    """The newest audit entries (of ``action_prefix``) that ``scope`` may see, newest first."""
    if scope.everything:
        return services.audit.recent(limit, action_prefix)
    entries = services.audit.recent(limit * 10, action_prefix)
    members = {e["subject"] for e in entries if e["action"].startswith(MEMBER_ACTIONS)}
    inside = _members_in(services, scope, members)
    rule_files = {Path(s.file).name for s in visible_rules(services.rules.statuses(services.clock()), scope,
                                                           services.settings.store_regions)}
    visible = []
    for entry in entries:
        action = entry["action"]
        if action.startswith(MEMBER_ACTIONS):
            shown = entry["subject"] in inside
        elif action == "rules.file_saved":
            shown = entry.get("file") in rule_files
        else:
            shown = action.startswith(PROGRAMME_ACTIONS)
        if shown:
            visible.append(entry)
        if len(visible) >= limit:
            break
    return visible


def _members_in(services: Services, scope: Scope, member_ids: set[str]) -> set[str]:
    """Members in scope by their profile, or, once erased, by their tombstone (one round trip)."""
    ids = sorted(member_ids)
    pipe = services.redis.pipeline(transaction=False)
    for member_id in ids:
        pipe.hmget(member_key(member_id, PROFILE), ["region", "store"])
        pipe.get(erased_marker_key(member_id))
    replies = pipe.execute()
    inside = set()
    for i, member_id in enumerate(ids):
        (region, store), tombstone = replies[2 * i], replies[2 * i + 1]
        if tombstone:
            where = json.loads(tombstone)
            region, store = where.get("region"), where.get("store")
        if scope.covers(region, store):
            inside.add(member_id)
    return inside
