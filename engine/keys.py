"""The Redis key schema: every key, stream, consumer group, hash tag and TTL the product writes.

(Redis keys; API keys are ``serving.auth``.) No other module formats a key: they call these
builders, so the hash tags agree on a Redis Cluster, where a Lua script or a MULTI may only touch
keys of one slot. The tags are ``{<member_id>}`` for everything of a member (the atomic commit,
caps, markers, answers), ``{<code>}`` for a coupon, ``{<rule_id>}`` for a rule's budgets and
measurement, ``{daily:<date>}`` for one daily run and ``{outbox}`` for the outbox and its queues.
``KINDS`` names what each key is (the soak's census and the key-schema test read it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from engine.member_state import PARTS, PROFILE

# --- a member: every key in the member's slot ----------------------------------------------------


def member_tag(member_id: str) -> str:
    """The hash tag of every key of one member."""
    return f"{{{member_id}}}"


def member_key(member_id: str, part: str) -> str:
    """One part of a member's state (``engine.member_state.PARTS``: profile, months, days, categories, items)."""
    return f"m:{member_tag(member_id)}:{part}"


def event_key(member_id: str, event_id: str) -> str:
    """The exactly-once record of an applied event (TTL: the setting ``event_dedup_days``)."""
    return member_key(member_id, f"e:{event_id}")


def recommendations_key(member_id: str) -> str:
    """Batch-scored recommendations (TTL: the batch scorer's choice, so stale lists go if scoring stops)."""
    return member_key(member_id, "r")


def issuance_key(member_id: str, issuance: str) -> str:
    """Which coupon code an issuance (request and rule, or outbox entry) produced; as long-lived as the coupon."""
    return member_key(member_id, f"cpi:{issuance}")


def rule_cap_key(member_id: str, rule_id: str) -> str:
    """The member's reservations of a rule's per-member cap (expires a day after its window; 'ever' caps never)."""
    return member_key(member_id, f"rl:{rule_id}")


def emission_marker_key(member_id: str, rule_id: str, period: str) -> str:
    """Set once a rule's actions for the member and period are in the outbox."""
    return member_key(member_id, f"ob:{rule_id}|{period}")


def delivery_marker_key(member_id: str, entry_key: str, action: int) -> str:
    """Set once an outbox entry's action was delivered or suppressed."""
    return member_key(member_id, f"dl:{entry_key}#{action}")


def answer_key(member_id: str, request_id: str) -> str:
    """The answer given to a checkout request, so a retry gets the same one."""
    return member_key(member_id, f"nbo:{request_id}")


MEMBER_PROFILES = member_key("*", PROFILE)
"""SCAN pattern of one key per stored member."""


def member_of(key: str) -> str:
    """The member id of one of a member's keys."""
    return key[key.index("{") + 1:key.index("}")]


# --- coupons, rules, the daily run: each in a slot of its own ------------------------------------


def coupon_key(code: str) -> str:
    """A coupon (found from the code alone, so in the code's slot)."""
    return f"cp:{{{code}}}"


def rule_budget_keys(rule_id: str) -> list[str]:
    """A rule's budgets, one Lua script's keys: used counters, holds by deadline, hold records, committed tokens."""
    rule = f"rl:{{{rule_id}}}"
    return [f"{rule}:used", f"{rule}:holds", f"{rule}:records", f"{rule}:committed"]


def exposures_key(rule_id: str, day: int) -> str:
    """Members a rule reached (or held out) on a local day."""
    return f"mx:{{{rule_id}}}:{day}"


def rule_counters_key(rule_id: str) -> str:
    """A rule's daily counters (``<counter>|<day>``: fired, held, issued, redeemed, cost)."""
    return f"ms:{{{rule_id}}}"


def daily_run_key(as_of: date) -> str:
    """The record of the daily run for a date (status, counts)."""
    return f"run:{{daily:{as_of.isoformat()}}}"


def daily_run_chunks_key(as_of: date) -> str:
    """The member ids of each chunk of a daily run."""
    return f"{daily_run_key(as_of)}:chunks"


def daily_run_work_key(as_of: date) -> str:
    """The stream of a daily run's chunks, read by its workers' group."""
    return f"{daily_run_key(as_of)}:work"


def daily_run_planning_key(as_of: date) -> str:
    """Held by the one worker planning a daily run."""
    return f"{daily_run_key(as_of)}:planning"


# --- streams, their groups, and the service's own keys -------------------------------------------

EVENTS_STREAM = "nbo:events"  # events from gateways and other services; entries deleted once applied
REJECTED_EVENTS_STREAM = "nbo:events:rejected"  # why a streamed event was refused (its id, never its body)
INGEST_GROUP = "ingest"  # the events stream's consumers
AUDIT_STREAM = "nbo:audit"  # the audit log's copy for readers (the file is the record)
API_KEYS = "nbo:keys"  # API key digest -> role and scope (never the key itself)
OUTBOX_STREAM = "nbo:{outbox}"  # the triggers' actions to deliver
OUTBOX_DEFERRED = "nbo:{outbox}:deferred"  # entries waiting out quiet hours; one script moves them back: same slot
OUTBOX_DEAD_LETTERS = "nbo:{outbox}:dead"  # entries that failed max_delivery_attempts times
DELIVERY_GROUP = "deliver"  # the outbox's consumers
DAILY_WORKERS_GROUP = "workers"  # a daily run's workers

# --- how long Redis keeps things ----------------------------------------------------------------

DAY_SECONDS = 86_400
ANSWER_TTL_SECONDS = DAY_SECONDS  # tills retry within minutes; a day covers a queue replayed next morning
MARKER_TTL_SECONDS = 400 * DAY_SECONDS  # emission and delivery markers outlive the longest rule period (a year)
EXPOSURE_TTL_SECONDS = 400 * DAY_SECONDS  # reports reach back up to 400 days (engine.measurement)
DAILY_RUN_TTL_SECONDS = 14 * DAY_SECONDS  # two weeks of runs for `nbo triggers status`; the outbox holds the rest
PLANNING_SECONDS = 600  # planning a run (a SCAN of every member) takes seconds; a dead planner's hold goes after this
COUPON_KEEP_DAYS = 90  # a coupon and its issuance marker outlive its expiry: late redemptions are told 'expired'
EVENTS_STREAM_MAXLEN = 1_000_000  # events waiting for a consumer (approximate trim)
AUDIT_STREAM_MAXLEN = 1_000_000
REJECTED_MAXLEN = 100_000  # rejected streamed events and dead letters: recent ones are what an operator reads
DEAD_LETTERS_MAXLEN = 100_000

# --- what each key is ----------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyKind:
    """What a key is: the pattern of its keys, whether they must expire, and whose hash slot they are in."""

    name: str
    pattern: re.Pattern[str]
    expires: bool
    slot: str
    """``member``, ``coupon``, ``rule``, ``daily run``, ``outbox`` or ``own`` (an untagged single key)."""


def _kind(name: str, pattern: str, expires: bool, slot: str) -> KeyKind:
    return KeyKind(name, re.compile(pattern), expires, slot)


def _exactly(*keys: str) -> str:
    return "^(?:" + "|".join(re.escape(key) for key in keys) + ")$"


_MEMBER = r"^m:\{[^}]+\}:"
_STATE_PARTS = "(?:" + "|".join(re.escape(part) for part in PARTS if part != PROFILE) + ")"

KINDS: tuple[KeyKind, ...] = (
    _kind("answer", _MEMBER + r"nbo:.+$", True, "member"),
    _kind("event dedup", _MEMBER + r"e:.+$", True, "member"),
    _kind("coupon issuance", _MEMBER + r"cpi:.+$", True, "member"),
    _kind("member rule cap", _MEMBER + r"rl:.+$", False, "member"),
    _kind("trigger emission marker", _MEMBER + r"ob:[^|]+\|.+$", True, "member"),
    _kind("trigger delivery marker", _MEMBER + r"dl:.+#\d+$", True, "member"),
    _kind("member recommendations", _MEMBER + r"r$", False, "member"),
    _kind("member profile", _MEMBER + re.escape(PROFILE) + "$", False, "member"),
    _kind("member state", _MEMBER + _STATE_PARTS + "$", False, "member"),
    _kind("coupon", r"^cp:\{[^}]+\}$", True, "coupon"),
    _kind("rule budget", r"^rl:\{[^}]+\}:(?:used|holds|records|committed)$", False, "rule"),
    _kind("rule exposures", r"^mx:\{[^}]+\}:-?\d+$", True, "rule"),
    _kind("rule counters", r"^ms:\{[^}]+\}$", False, "rule"),
    _kind("daily run", r"^run:\{daily:\d{4}-\d{2}-\d{2}\}(?::chunks|:work|:planning)?$", True, "daily run"),
    _kind("outbox", _exactly(OUTBOX_STREAM, OUTBOX_DEFERRED, OUTBOX_DEAD_LETTERS), False, "outbox"),
    _kind("events stream", _exactly(EVENTS_STREAM), False, "own"),
    _kind("rejected events", _exactly(REJECTED_EVENTS_STREAM), False, "own"),
    _kind("audit stream", _exactly(AUDIT_STREAM), False, "own"),
    _kind("api keys", _exactly(API_KEYS), False, "own"),
)
"""Every kind of key, most specific first: the first whose pattern matches a key names it."""


def kind_of(key: str) -> KeyKind | None:
    """The kind of a key, or None for a key the product does not write."""
    return next((kind for kind in KINDS if kind.pattern.match(key)), None)


def hash_tag(key: str) -> str | None:
    """The part of a key Redis Cluster hashes (between the first ``{`` and the next ``}``), or None."""
    start = key.find("{")
    end = key.find("}", start + 1)
    return key[start + 1:end] if start >= 0 and end > start + 1 else None
