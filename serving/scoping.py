"""Scope on reads: what a scoped key (``region:R`` / ``store:S``) sees of the rules, their reports and the audit log.

Members keep to a scope through ``engine.scope.Scope`` (by their profile's region and home store), rules by
their ``scope:`` and the stores' regions (``Settings.store_regions``); reports count the scope's members only.
The routes and the console's pages call these, so both show the same. The audit log mixes kinds of entries:

* entries about a member (coupons issued or redeemed, deliveries suppressed, erasures, exports) are
  shown when the member is in scope (an erased member by their tombstone's region and store);
* a rule file's saves when the file's rule applies in scope; reloads and model changes (the whole
  programme's configuration, no store's data) always;
* key management, and any kind not listed here, never (unscoped keys see everything).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import date
from pathlib import Path

from engine.keys import erased_marker_key, member_key
from engine.measurement import report_window
from engine.member_state import PROFILE
from engine.rules import RuleStatus
from engine.scope import Scope
from serving.auth import ApiKey
from serving.schemas import RulesReport, rule_measured
from serving.services import Services

MEMBER_ACTIONS = ("coupon.", "outbox.", "member.")
"""Actions whose subject is a member id."""
PROGRAMME_ACTIONS = ("rules.reload", "model.")
"""Changes to the whole programme's configuration."""


def visible_rules(statuses: list[RuleStatus], scope: Scope, store_regions: Mapping[str, str]) -> list[RuleStatus]:
    """The rules a reader of ``scope`` sees: those that apply there (an invalid one's reach is unknown: unscoped
    readers only); a rule's budget is the whole programme's figure, so it is shown only where the rule is confined."""
    if scope.everything:
        return statuses
    return [s if scope.confines_rule(s.regions, s.stores, store_regions) else replace(s, budget=())
            for s in statuses if s.status != "invalid" and scope.applies_to_rule(s.regions, s.stores, store_regions)]


def rules_report(services: Services, key: ApiKey, since: date | None = None, until: date | None = None,
                 period: str = "month") -> RulesReport:
    """The report for ``key``: the rules that apply in its scope, counting its scope's members only (the route and
    the console's rules page); ``ValueError`` for a bad range."""
    since, until = report_window(since, until, services.today())
    reports = services.rule_reports(since, until, period, key.reach)
    return RulesReport(since=since, until=until, attribution_days=services.settings.triggers.attribution_days,
                       rules=[rule_measured(r) for r in reports])


def visible_audit_entries(services: Services, scope: Scope, action_prefix: str = "", limit: int = 100) -> list[dict]:
    """The newest audit entries (of ``action_prefix``) that ``scope`` may see, newest first (a scoped reader's are
    looked for among the newest ``limit`` x 10)."""
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
