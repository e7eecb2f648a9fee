"""Frequency caps, budgets and holdouts of rules, enforced atomically in Redis.

* **Per member** (``1 per 60d``): a sorted set of the member's reservations for the rule, in the
  member's hash slot (``m:{<member_id>}:rl:<rule_id>``), trimmed to the rolling window and checked
  and added in one Lua script.
* **Budgets** (coupons and face value, over the rule's life or per day/week/month, overall and per
  store): counters in the rule's hash slot (``rl:{<rule_id>}:...``), checked and taken in one Lua
  script, so concurrent requests can never spend past a budget. Amounts are counted in fen.
* **Reserve, then commit or release.** A reservation holds its share of the budget for
  ``hold_seconds``; ``commit`` makes it final (do it before issuing the coupon), ``release`` gives
  it back (the offer was not made after all). A hold neither committed nor released (a crashed
  worker) is returned to the budget by the next reservation after it expires.
* **Holdout**: a sticky control group per rule, a pure function of (rule id, member id) hashed:
  no Redis, the same answer on every worker and in the backtest.

Member keys and rule keys live in different slots (Redis Cluster runs a script in one slot), so
a reservation takes the member cap first and gives it back if a budget refuses: a budget can be
under-used for a moment, never overspent. Every function takes the clock ("now") as an argument.

* **Idempotent tokens.** A caller that can retry after a crash (the automated triggers) passes a
  deterministic token (rule, member, period): reserving or committing the same token again is
  granted without taking anything a second time, so a re-run never spends a budget twice.
  ``reserve_many`` / ``commit_many`` do the same for many firings in a few round trips.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import redis

from engine.keys import rule_budget_keys, rule_cap_key
from engine.redis_server import queue_script
from engine.rules.schema import Budget, Rule

DAY_MS = 86_400_000
_EPOCH = datetime(1970, 1, 1, tzinfo=ZoneInfo("UTC"))
_MASK64 = (1 << 64) - 1

# KEYS[1] the member's reservations for one rule (sorted set, score = time in ms).
# ARGV: token, now (ms), window (ms, 0 = for ever), most reservations in the window.
_MEMBER_CAP_LUA = r"""
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 1 end
local now = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
if window > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - window)) end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 0 end
redis.call('ZADD', KEYS[1], now, ARGV[1])
if window > 0 then redis.call('PEXPIRE', KEYS[1], window + 86400000) end
return 1
"""

# Shared by the budget and settle scripts: undo a hold record ("coupons\namount\nfield\nfield...").
_GIVE_BACK_LUA = r"""
local function give_back(record)
  local fields = {}
  for part in string.gmatch(record, '[^\n]+') do fields[#fields + 1] = part end
  local coupons, amount = tonumber(fields[1]), tonumber(fields[2])
  for i = 3, #fields, 2 do
    redis.call('HINCRBY', KEYS[1], fields[i], 0 - coupons)  -- not -x: Lua's -0 reaches Redis as '-0', which HINCRBY refuses
    redis.call('HINCRBY', KEYS[1], fields[i + 1], 0 - amount)
  end
end
"""

# KEYS: used counters (hash), holds by deadline (sorted set), hold records (hash), committed
#       tokens (sorted set by time); one rule's slot.
# ARGV: token, now (ms), deadline (ms), coupons, amount (fen), n, then n times:
#       coupons field, amount field, coupon limit (-1: none), amount limit in fen (-1: none).
# Returns {1} taken (or already held or committed under this token), or {0, 'coupons'|'amount', i}
# for the first budget i that refuses.
_BUDGET_LUA = _GIVE_BACK_LUA + r"""
local now = tonumber(ARGV[2])
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 100)
for _, token in ipairs(expired) do
  local record = redis.call('HGET', KEYS[3], token)
  if record then give_back(record) end
  redis.call('ZREM', KEYS[2], token)
  redis.call('HDEL', KEYS[3], token)
end
if redis.call('HEXISTS', KEYS[3], ARGV[1]) == 1 or redis.call('ZSCORE', KEYS[4], ARGV[1]) then return {1} end
local coupons, amount = tonumber(ARGV[4]), tonumber(ARGV[5])
local n = tonumber(ARGV[6])
for i = 0, n - 1 do
  local base = 7 + 4 * i
  local limit_c, limit_a = tonumber(ARGV[base + 2]), tonumber(ARGV[base + 3])
  if limit_c >= 0 and tonumber(redis.call('HGET', KEYS[1], ARGV[base]) or '0') + coupons > limit_c then
    return {0, 'coupons', i + 1}
  end
  if limit_a >= 0 and tonumber(redis.call('HGET', KEYS[1], ARGV[base + 1]) or '0') + amount > limit_a then
    return {0, 'amount', i + 1}
  end
end
local record = coupons .. '\n' .. amount
for i = 0, n - 1 do
  local base = 7 + 4 * i
  redis.call('HINCRBY', KEYS[1], ARGV[base], coupons)
  redis.call('HINCRBY', KEYS[1], ARGV[base + 1], amount)
  record = record .. '\n' .. ARGV[base] .. '\n' .. ARGV[base + 1]
end
redis.call('ZADD', KEYS[2], tonumber(ARGV[3]), ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], record)
return {1}
"""

# KEYS: used, holds, records, committed. ARGV: token, 'commit' | 'release', now (ms), keep ('1': remember
# the committed token for two days, so a retry with the same token is known).
# Returns 1 if the hold was still there (committed or given back) or was committed before under
# this token, 0 if it had expired or is unknown.
_SETTLE_LUA = _GIVE_BACK_LUA + r"""
if redis.call('ZREM', KEYS[2], ARGV[1]) == 0 then
  if ARGV[2] == 'commit' and redis.call('ZSCORE', KEYS[4], ARGV[1]) then return 1 end
  return 0
end
local record = redis.call('HGET', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
if ARGV[2] == 'release' and record then give_back(record) end
if ARGV[2] == 'commit' and ARGV[4] == '1' then
  local now = tonumber(ARGV[3])
  redis.call('ZADD', KEYS[4], now, ARGV[1])
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - 2 * 86400000)
end
return 1
"""


# --- holdout -------------------------------------------------------------------------------------


def _hash64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def _mix(x: int) -> int:
    """splitmix64's finaliser: spreads the bits of (member hash xor rule hash) evenly."""
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9 & _MASK64
    x = (x ^ (x >> 27)) * 0x94D049BB133111EB & _MASK64
    return x ^ (x >> 31)


def holdout_draw(rule_id: str, member_id: str) -> float:
    """A number in [0, 1) fixed for (rule, member): the member is in holdout when it is below the share."""
    return _mix(_hash64(member_id) ^ _hash64(rule_id)) / 2**64


def in_holdout(rule_id: str, member_id: str | None, share: float) -> bool:
    """Whether the member is in the rule's sticky control group (gets nothing, so lift is measurable)."""
    if not member_id or share <= 0:
        return False
    return holdout_draw(rule_id, member_id) < share


def member_hashes(member_ids: Iterable[str]) -> np.ndarray:
    """The 64-bit hash of each member id (computed once per member for a backtest)."""
    return np.fromiter((_hash64(m) for m in member_ids), dtype=np.uint64)


def holdout_mask(rule_id: str, hashes: np.ndarray, share: float) -> np.ndarray:
    """``in_holdout`` for many members at once (same arithmetic, in numpy)."""
    if share <= 0:
        return np.zeros(len(hashes), dtype=bool)
    x = hashes ^ np.uint64(_hash64(rule_id))
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    # Python's int / 2**64 rounds once to a float; so does uint64 -> float64 here, and dividing by a
    # power of two is exact: the same draws to the last bit.
    draws = x.astype(np.float64) / 2.0**64
    return draws < share


# --- reservations --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reservation:
    """The outcome of ``reserve``: granted (with a token to commit or release) or refused with the reason."""

    granted: bool
    rule_id: str
    member_id: str
    token: str = ""
    store_id: str | None = None
    coupons: int = 0
    amount: float = 0.0
    reason: str = ""
    has_budget: bool = False
    has_cap: bool = False
    idempotent: bool = False
    """The token was the caller's (deterministic): a retry with it is the same reservation."""
    at: datetime | None = None
    """When it was asked for (the caller's clock)."""


@dataclass(frozen=True)
class Ask:
    """One firing's share of a rule's limits, for ``reserve_many``; ``token`` makes it idempotent."""

    rule: Rule
    member_id: str
    now: datetime
    store_id: str | None = None
    coupons: int = 1
    amount: float = 0.0
    token: str | None = None


@dataclass(frozen=True)
class BudgetUse:
    """Used and total of one budget in the current period (``total`` None: no limit of that kind)."""

    period: str
    coupons_used: int
    coupons_total: int | None
    amount_used: float
    amount_total: float | None


def period_key(period: str, local_day: date) -> str:
    """The calendar period a budget counts in (local dates): ``total``, ``d2026-03-01``, ``w2026-09``, ``m2026-03``."""
    if period == "total":
        return "total"
    if period == "day":
        return f"d{local_day.isoformat()}"
    if period == "week":
        year, week, _ = local_day.isocalendar()
        return f"w{year}-{week:02d}"
    return f"m{local_day.year}-{local_day.month:02d}"


class RuleLimits:
    """Reserves, commits and releases a rule's per-member cap and budgets in Redis; reports budget use."""

    def __init__(self, client: redis.Redis, timezone: ZoneInfo, hold_seconds: float = 300.0) -> None:
        self.redis = client
        self.timezone = timezone
        self.hold_ms = int(hold_seconds * 1000)
        self._member_cap = client.register_script(_MEMBER_CAP_LUA)
        self._budget = client.register_script(_BUDGET_LUA)
        self._settle = client.register_script(_SETTLE_LUA)

    def _ms(self, now: datetime) -> int:
        # A naive time is the stores' local time, like everywhere else in the engine.
        aware = now if now.tzinfo is not None else now.replace(tzinfo=self.timezone)
        return int((aware - _EPOCH) / timedelta(milliseconds=1))

    def _local_day(self, now: datetime) -> date:
        return (now.astimezone(self.timezone) if now.tzinfo is not None else now).date()

    def reserve(self, rule: Rule, member_id: str, now: datetime, store_id: str | None = None,
                coupons: int = 1, amount: float = 0.0, token: str | None = None) -> Reservation:
        """Take one firing's share of the rule's cap and budgets, atomically; refused with the reason if any is spent.

        ``coupons`` and ``amount`` (yuan) are what this firing costs (see ``CheckedRule.coupons`` and
        ``face_value``). Nothing is taken when refused. A caller's ``token`` makes it idempotent.
        """
        return self.reserve_many([Ask(rule, member_id, now, store_id, coupons, amount, token)])[0]

    def reserve_many(self, asks: Sequence[Ask]) -> list[Reservation]:
        """``reserve`` for many firings in at most three round trips, in order (earlier asks are served first)."""
        plans = []
        for ask in asks:
            limits = ask.rule.limits
            cap = limits.member_cap if limits is not None else None
            budgets = self._budgets(ask.rule, ask.store_id, ask.now)
            token = ask.token or secrets.token_hex(8)
            base = dict(rule_id=ask.rule.id, member_id=ask.member_id, token=token, store_id=ask.store_id,
                        coupons=ask.coupons, amount=ask.amount, has_budget=bool(budgets), has_cap=cap is not None,
                        idempotent=ask.token is not None, at=ask.now)
            plans.append((ask, cap, budgets, base))
        refused: dict[int, str] = {}
        capped = [i for i, (_, cap, _, _) in enumerate(plans) if cap is not None]
        if capped:
            pipe = self.redis.pipeline(transaction=False)
            for i in capped:
                ask, (count, days), _, base = plans[i]
                queue_script(pipe, self._member_cap, [rule_cap_key(ask.member_id, ask.rule.id)],
                             [base["token"], self._ms(ask.now), (days or 0) * DAY_MS, count])
            for i, granted in zip(capped, pipe.execute()):
                if not granted:
                    ask, (count, days), _, _ = plans[i]
                    window = f"{days} days" if days else "ever"
                    refused[i] = f"member cap reached: {ask.rule.limits.per_member} ({count} in {window})"
        budgeted = [i for i, plan in enumerate(plans) if plan[2] and i not in refused]
        if budgeted:
            pipe = self.redis.pipeline(transaction=False)
            for i in budgeted:
                ask, _, budgets, base = plans[i]
                now_ms = self._ms(ask.now)
                fen = round(ask.amount * 100) if math.isfinite(ask.amount) else 0
                args: list[object] = [base["token"], now_ms, now_ms + self.hold_ms, ask.coupons, fen, len(budgets)]
                for _, budget, field_prefix in budgets:
                    args += [f"c|{field_prefix}", f"a|{field_prefix}",
                             budget.coupons if budget.coupons is not None else -1,
                             round(budget.amount * 100) if budget.amount is not None else -1]
                queue_script(pipe, self._budget, rule_budget_keys(ask.rule.id), args)
            give_back = self.redis.pipeline(transaction=False)
            for i, result in zip(budgeted, pipe.execute()):
                if int(result[0]) != 1:
                    ask, cap, budgets, base = plans[i]
                    if cap is not None:
                        give_back.zrem(rule_cap_key(ask.member_id, ask.rule.id), base["token"])
                    refused[i] = f"{budgets[int(result[2]) - 1][0]} budget of {_text(result[1])} spent"
            if len(give_back):
                give_back.execute()
        return [Reservation(granted=i not in refused, reason=refused.get(i, ""), **base)
                for i, (_, _, _, base) in enumerate(plans)]

    def commit(self, reservation: Reservation) -> bool:
        """Make a granted reservation final; False if its hold had expired (then make no offer)."""
        return self.commit_many([reservation])[0]

    def commit_many(self, reservations: Sequence[Reservation]) -> list[bool]:
        """``commit`` for many reservations in one or two round trips."""
        results = [r.granted and not r.has_budget for r in reservations]
        settling = [i for i, r in enumerate(reservations) if r.granted and r.has_budget]
        if not settling:
            return results
        pipe = self.redis.pipeline(transaction=False)
        for i in settling:
            r = reservations[i]
            at_ms = self._ms(r.at) if r.at is not None else 0
            queue_script(pipe, self._settle, rule_budget_keys(r.rule_id), [r.token, "commit", at_ms, "1" if r.idempotent else "0"])
        lost = self.redis.pipeline(transaction=False)
        for i, settled in zip(settling, pipe.execute()):
            results[i] = bool(settled)
            r = reservations[i]
            if not settled and r.has_cap:
                lost.zrem(rule_cap_key(r.member_id, r.rule_id), r.token)
        if len(lost):
            lost.execute()
        return results

    def release(self, reservation: Reservation) -> None:
        """Give a granted reservation back (the offer was not made): the cap and the budgets are free again."""
        if not reservation.granted:
            return
        if reservation.has_budget:
            self._settle(keys=rule_budget_keys(reservation.rule_id), args=[reservation.token, "release", 0, "0"])
        if reservation.has_cap:
            self.redis.zrem(rule_cap_key(reservation.member_id, reservation.rule_id), reservation.token)

    def usage(self, rule: Rule, now: datetime, store_id: str | None = None) -> list[BudgetUse]:
        """What each budget of the rule has used in the current period (holds included)."""
        budgets = self._budgets(rule, store_id, now)
        if not budgets:
            return []
        fields = [f for _, _, prefix in budgets for f in (f"c|{prefix}", f"a|{prefix}")]
        values = self.redis.hmget(rule_budget_keys(rule.id)[0], fields)
        uses = []
        for i, (label, budget, prefix) in enumerate(budgets):
            coupons, fen = values[2 * i], values[2 * i + 1]
            uses.append(BudgetUse(period=f"{label} {prefix.split('|')[0]}", coupons_used=int(coupons or 0),
                                  coupons_total=budget.coupons, amount_used=int(fen or 0) / 100,
                                  amount_total=budget.amount))
        return uses

    def _budgets(self, rule: Rule, store_id: str | None, now: datetime) -> list[tuple[str, Budget, str]]:
        limits = rule.limits
        if limits is None:
            return []
        day = self._local_day(now)
        found = []
        if limits.budget is not None:
            found.append(("overall", limits.budget, period_key(limits.budget.period, day)))
        if limits.per_store is not None and store_id:
            found.append((f"store {store_id}", limits.per_store,
                          f"{period_key(limits.per_store.period, day)}|s:{store_id}"))
        return found


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
