"""The rule runtime: owns the durable_rules rulesets, evaluates a trigger's rules, hot-reloads atomically.

Evaluation asserts one fact per shard of the trigger (a unique id each time), collects every rule
durable_rules fires, and retracts the fact: facts, not events, so every matching rule fires; one
session, so durable_rules' state stays flat over millions of evaluations; no ``delete_state``.

The runtime drives durable-rules' engine module (``durable_rules_engine``, the C core the
``durable`` package wraps) directly rather than through ``durable.engine.Host``. The engine decides
which rules fire either way; the Host adds a Python callback, a ``Closure`` and a JSON round trip
of the session state per fired rule (most of the ~220 us per 50 rules in DESIGN.md), and two
timer threads that call into the engine every 0.2 s, which would race our evaluations (measured:
it took fired actions away). Here each fired rule costs one C call and a string slice.

durable_rules is not thread safe: every call into it happens under one lock. A reload compiles
outside the lock, then under it creates the new rulesets (reusing unchanged shards), switches the
live ruleset in one assignment, and deletes rulesets no longer used. An evaluation reads the live
ruleset under the same lock, so it sees the old rules or the new ones, never a mix. A reload with
errors changes nothing: the last good rules stay live and the report says why.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import durable_rules_engine as engine

from engine.coupons import CouponTerms
from engine.rules.compiler import CompiledRules, Shard, compile_rules, durable_json
from engine.rules.context import FactBuilder, FestivalCalendar, RequestContext
from engine.rules.limits import BudgetUse, RuleLimits, in_holdout
from engine.rules.loader import LoadedRules, Problem, load_rules
from engine.rules.reference import Predicate, predicate
from engine.rules.schema import Rule, action_body, action_kind

log = logging.getLogger(__name__)
_quote = json.encoder.encode_basestring  # JSON text, non-ASCII kept (what durable_json does for text)

_NOT_HANDLED = 1


class RuleEngineError(RuntimeError):
    """durable_rules refused an evaluation (never expected: the compiler keeps rules inside its limits)."""


# --- results -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleInfo:
    """What a firing reports about its rule, built once per reload."""

    rule_id: str
    name: str
    trigger: str
    priority: int
    exclusive: bool
    actions: tuple[Any, ...]
    coupons: tuple[CouponTerms, ...]
    face_value: float
    rule: Rule = field(repr=False, compare=False)
    file: str = ""
    line: int = 0
    explain: tuple[tuple[str, Predicate | None], ...] = field(default=(), repr=False, compare=False)
    held: tuple[str, ...] = field(default=(), repr=False, compare=False)
    """For a rule whose written parts all must hold: every condition text (nothing to test when it fires)."""


@dataclass(slots=True)
class Firing:
    """One rule that fired for a member: its actions, why (the conditions that held), and the holdout flag."""

    info: RuleInfo
    holdout: bool
    """The member is in this rule's control group: nothing is offered for it (but it counts for lift)."""
    conditions: tuple[str, ...]
    """The conditions that held: the rule's own as written, then scope, window and consent."""

    @property
    def rule_id(self) -> str:
        """The rule that fired."""
        return self.info.rule_id

    @property
    def name(self) -> str:
        """The rule's name (what a person reads)."""
        return self.info.name

    @property
    def trigger(self) -> str:
        """The trigger it fired on."""
        return self.info.trigger

    @property
    def priority(self) -> int:
        """The rule's priority (higher first)."""
        return self.info.priority

    @property
    def exclusive(self) -> bool:
        """When its offer is made, no other offer is."""
        return self.info.exclusive

    @property
    def actions(self) -> tuple[Any, ...]:
        """The rule's actions (``engine.rules.schema`` models; ``action_kind`` names each)."""
        return self.info.actions

    @property
    def coupons(self) -> tuple[CouponTerms, ...]:
        """Coupon terms of each ``issue_coupon`` action, in order (validity overridden where the rule says)."""
        return self.info.coupons

    @property
    def face_value(self) -> float:
        """What one firing is worth at most (yuan): coupons' face values and points at their redemption value."""
        return self.info.face_value

    @property
    def rule(self) -> Rule:
        """The rule as written (its limits are what ``RuleLimits.reserve`` enforces)."""
        return self.info.rule


@dataclass(frozen=True)
class Evaluation:
    """Every rule of a trigger that fired for one fact, by priority (highest first) then id."""

    trigger: str
    version: str
    firings: tuple[Firing, ...]

    @property
    def offers(self) -> tuple[Firing, ...]:
        """Firings outside their holdout: what may be offered."""
        return tuple(f for f in self.firings if not f.holdout)

    @property
    def holdout(self) -> tuple[str, ...]:
        """Rules that fired but keep this member as control (nothing is offered for them)."""
        return tuple(f.rule_id for f in self.firings if f.holdout)


@dataclass(frozen=True)
class ReloadReport:
    """What a reload did: ``ok`` (the new rules are live) or the errors, with the last good version still live."""

    ok: bool
    version: str | None
    rules: tuple[str, ...]
    errors: tuple[Problem, ...] = ()
    warnings: tuple[Problem, ...] = ()
    changed: bool = False
    rulesets_created: int = 0


@dataclass(frozen=True)
class RuleStatus:
    """A rule as ``GET /v1/rules`` shows it: live, scheduled, expired, or invalid (with file:line errors)."""

    id: str | None
    name: str
    file: str
    line: int
    status: str
    trigger: str | None
    priority: int | None
    exclusive: bool = False
    holdout: float = 0.0
    active_from: date | None = None
    active_to: date | None = None
    serving: bool = False
    """Whether a version of this rule is in the ruleset serving now (an invalid edit keeps the last good one)."""
    errors: tuple[str, ...] = ()
    budget: tuple[BudgetUse, ...] = ()
    regions: tuple[str, ...] = ()
    """Where the rule applies (its ``scope:``; empty: everywhere), so a scoped reader sees only its own rules."""
    stores: tuple[str, ...] = ()


# --- the live ruleset ----------------------------------------------------------------------------


@dataclass
class _LiveRules:
    compiled: CompiledRules
    rules: dict[str, RuleInfo]
    handles: dict[str, tuple[DurableRuleset, ...]]  # trigger -> the ruleset of each shard
    shards: dict[str, tuple[Shard, ...]]
    reads: dict[str, frozenset[str]]
    builder: FactBuilder


class DurableRuleset:
    """One durable_rules ruleset and the assert-collect-retract cycle (not thread safe: callers hold a lock)."""

    def __init__(self, name: str, definition: str) -> None:
        self.name = name
        try:
            self.handle = engine.create_ruleset(name, definition)
        except engine.error as exc:
            raise RuleEngineError(f"durable_rules refused ruleset {name}: {exc}") from None

    def fire(self, fact_json: str) -> list[str]:
        """Assert the fact, collect every rule fired for it, retract it (the session stays empty)."""
        fired: list[str] = []
        handle = self.handle
        asserted = False
        try:
            result = engine.assert_fact(handle, fact_json)
            asserted = True
            if result[0] != _NOT_HANDLED:
                state = result[1]
                action = engine.start_action_for_state(handle, state)
                message = action[1] if action else None
                echo = fact_json + "}}"
                while message:
                    # '{"<rule>":{"m":<the fact as sent>}}': the fact is echoed, so the message proves it is ours.
                    cut = message.find('":{"m":')
                    if cut > 2 and message.endswith(echo):
                        fired.append(message[2:cut])
                    else:  # pragma: no cover - would be an action left over from a failed evaluation
                        log.error("durable_rules returned an action for another fact; dropped")
                    message = engine.complete_and_start_action(handle, state)
        except engine.error as exc:
            raise RuleEngineError(f"durable_rules refused the fact: {exc}") from None
        finally:
            if asserted:
                engine.retract_fact(handle, fact_json)
        return fired

    def facts(self) -> list:
        """The facts durable_rules holds in the session (empty between evaluations)."""
        return json.loads(engine.get_facts(self.handle, "0"))

    def close(self) -> None:
        """Delete the ruleset (durable_rules frees part of its memory only)."""
        try:
            engine.delete_ruleset(self.handle)
        except engine.error:  # pragma: no cover - a ruleset we created is always there
            log.warning("could not delete durable_rules ruleset %s", self.name)


class _Rulesets:
    """The durable_rules rulesets this process created, by shard key (an unchanged shard is reused)."""

    def __init__(self) -> None:
        self.by_key: dict[str, DurableRuleset] = {}
        self.created = 0
        self.facts = itertools.count(1)

    def ensure(self, shard: Shard) -> tuple[DurableRuleset, bool]:
        """The ruleset of a shard, created if new; and whether it was."""
        ruleset = self.by_key.get(shard.key)
        if ruleset is not None:
            return ruleset, False
        self.created += 1
        # A new name each time: durable_rules keeps the names of rulesets it has seen.
        ruleset = DurableRuleset(f"nbo-{self.created}-{shard.key}", shard.definition)
        self.by_key[shard.key] = ruleset
        return ruleset, True

    def retire(self, keep: set[str]) -> None:
        """Delete the rulesets of shards no longer live."""
        for key in [k for k in self.by_key if k not in keep]:
            self.by_key.pop(key).close()


def fact_json(fact: Mapping[str, object], names: Iterable[str], fact_id: int) -> str:
    """The JSON text of a fact for durable_rules: a unique ``id`` and the named properties that have a value."""
    parts = [f'"id":{fact_id}']
    for name in names:
        value = fact.get(name)
        if value is not None:
            # Property names are plain identifiers (features, `_t`, `_day`, `<list>__n`): no escaping needed.
            parts.append(f'"{name}":{durable_json(value)}')
    return "{" + ",".join(parts) + "}"


class RuleRuntime:
    """Loads ``rules/``, keeps the last good ruleset live, evaluates the rules of a trigger for a fact."""

    def __init__(self, rules_dir: Path, timezone: ZoneInfo, points_per_yuan: int = 100,
                 catalogue: Mapping[str, str] | None = None, audit: Any = None) -> None:
        self.rules_dir = Path(rules_dir)
        self.timezone = timezone
        self.points_per_yuan = points_per_yuan
        self.catalogue = dict(catalogue or {})
        self.audit = audit
        self._lock = threading.Lock()
        self._rulesets = _Rulesets()
        self._live: _LiveRules | None = None
        self._last: LoadedRules | None = None
        self._reload_lock = threading.Lock()
        self.files_seen: tuple = ()

    # --- loading -------------------------------------------------------------------------------

    def reload(self, actor: str = "system") -> ReloadReport:
        """Load, validate and compile ``rules_dir``; switch to it atomically if it is valid, else keep the last good."""
        with self._reload_lock:
            self.files_seen = _fingerprint(self.rules_dir)  # before reading: a later edit triggers another reload
            loaded = load_rules(self.rules_dir, self.points_per_yuan)
            self._last = loaded
            live = self._live
            if not loaded.ok:
                report = ReloadReport(ok=False, version=live.compiled.version if live else None,
                                      rules=tuple(r.id for r in live.compiled.rules) if live else (),
                                      errors=tuple(loaded.errors), warnings=tuple(loaded.warnings))
                self._record("rules.reload_failed", actor, report)
                return report
            compiled = compile_rules(loaded)
            if live is not None and live.compiled.version == compiled.version:
                return ReloadReport(ok=True, version=compiled.version, rules=tuple(r.id for r in compiled.rules),
                                    warnings=tuple(loaded.warnings))
            infos = _rule_infos(compiled)
            created = 0
            with self._lock:
                try:
                    handles = {}
                    for trigger, shards in compiled.shards.items():
                        made = [self._rulesets.ensure(shard) for shard in shards]
                        created += sum(new for _, new in made)
                        handles[trigger] = tuple(handle for handle, _ in made)
                except RuleEngineError as exc:
                    self._rulesets.retire(self._keys(self._live))
                    problem = Problem(str(self.rules_dir), 1, f"durable_rules refused the rules: {exc}")
                    report = ReloadReport(ok=False, version=live.compiled.version if live else None,
                                          rules=tuple(r.id for r in live.compiled.rules) if live else (),
                                          errors=(problem,))
                    self._record("rules.reload_failed", actor, report)
                    return report
                self._live = _LiveRules(compiled=compiled, rules=infos, handles=handles, shards=dict(compiled.shards),
                                        reads={t: compiled.reads(t) for t in compiled.shards},
                                        builder=FactBuilder(loaded.calendar, self.timezone, self.catalogue))
                self._rulesets.retire(self._keys(self._live))
            report = ReloadReport(ok=True, version=compiled.version, rules=tuple(r.id for r in compiled.rules),
                                  warnings=tuple(loaded.warnings), changed=True, rulesets_created=created)
            self._record("rules.reloaded", actor, report)
            return report

    @staticmethod
    def _keys(live: _LiveRules | None) -> set[str]:
        if live is None:
            return set()
        return {shard.key for shards in live.shards.values() for shard in shards}

    def _record(self, action: str, actor: str, report: ReloadReport) -> None:
        if report.ok:
            log.info("rules %s live (%d rules)", report.version, len(report.rules))
        else:
            log.warning("rules reload refused (%d errors); %s stays live: %s", len(report.errors), report.version,
                        "; ".join(str(p) for p in report.errors[:5]))
        if self.audit is not None:
            self.audit.record(action, actor, str(self.rules_dir), version=report.version, rules=len(report.rules),
                              errors=[str(p) for p in report.errors][:20])

    @property
    def version(self) -> str | None:
        """The version (hash of the files) of the rules live now."""
        live = self._live
        return live.compiled.version if live else None

    @property
    def compiled(self) -> CompiledRules | None:
        """The rules live now (``None`` before the first good load)."""
        live = self._live
        return live.compiled if live else None

    @property
    def last_load(self) -> LoadedRules | None:
        """What the last reload found (its problems, even if it was refused)."""
        return self._last

    @property
    def rulesets_created(self) -> int:
        """durable_rules rulesets created since start (each keeps ~0.1-1 MB after use: durable_rules frees little)."""
        return self._rulesets.created

    @property
    def triggers(self) -> frozenset[str]:
        """The triggers that have live rules (``checkout``, ``schedule.daily``, ``event.<type>``)."""
        live = self._live
        return frozenset(live.handles) if live else frozenset()

    def reads(self, trigger: str) -> frozenset[str]:
        """The fact fields the live rules of ``trigger`` read (e.g. to skip scoring churn when none does)."""
        live = self._live
        return live.reads.get(trigger, frozenset()) if live else frozenset()

    # --- evaluating ----------------------------------------------------------------------------

    def fact(self, trigger: str, features: Mapping[str, object], context: RequestContext) -> dict[str, object]:
        """The fact the rules of ``trigger`` see for these features and context (all fields)."""
        live = self._live
        builder = live.builder if live else FactBuilder(FestivalCalendar({}), self.timezone, self.catalogue)
        return builder.build(trigger, features, context)

    def evaluate(self, trigger: str, features: Mapping[str, object], context: RequestContext) -> Evaluation:
        """Every rule of ``trigger`` whose conditions hold for the member's features in this context."""
        live = self._live
        if live is None or trigger not in live.handles:
            return Evaluation(trigger, live.compiled.version if live else "", ())
        fact = live.builder.build(trigger, features, context, live.reads[trigger])
        return self._evaluate(live, trigger, fact, context.member_id,
                              rebuild=lambda builder, names: builder.build(trigger, features, context, names))

    def evaluate_fact(self, trigger: str, fact: Mapping[str, object], member_id: str | None = None) -> Evaluation:
        """Evaluate the rules of ``trigger`` for a fact made by ``fact()`` (and perhaps edited: examples, tests)."""
        live = self._live
        if live is None or trigger not in live.handles:
            return Evaluation(trigger, live.compiled.version if live else "", ())
        return self._evaluate(live, trigger, dict(fact), member_id, rebuild=None)

    def _evaluate(self, live: _LiveRules, trigger: str, fact: dict[str, object], member_id: str | None,
                  rebuild: Callable[[FactBuilder, frozenset[str]], dict[str, object]] | None) -> Evaluation:
        with self._lock:
            if self._live is not live:  # a reload switched rules since: answer from the new ones
                live = self._live
                if live is None or trigger not in live.handles:
                    return Evaluation(trigger, live.compiled.version if live else "", ())
                if rebuild is not None:
                    fact = rebuild(live.builder, live.reads[trigger])
            fired: set[str] = set()
            encoded = _encode(fact, live.reads[trigger])
            for shard, ruleset in zip(live.shards[trigger], live.handles[trigger]):
                body = ",".join([encoded[name] for name in shard.reads if name in encoded])
                fired.update(ruleset.fire(f'{{"id":{next(self._rulesets.facts)},{body}}}'))
        return self._evaluation(live, trigger, fired, fact, member_id)

    def evaluate_many(self, trigger: str, cases: Iterable[tuple[Mapping[str, object], RequestContext]]) -> list[Evaluation]:
        """``evaluate`` for many members (e.g. the daily schedule)."""
        return [self.evaluate(trigger, features, context) for features, context in cases]

    def _evaluation(self, live: _LiveRules, trigger: str, fired: set[str], fact: Mapping[str, object],
                    member_id: str | None) -> Evaluation:
        firings = []
        for rule_id in fired:
            info = live.rules[rule_id]
            held = info.held or tuple(text for text, test in info.explain if test is None or test(fact))
            holdout = info.rule.holdout > 0 and in_holdout(rule_id, member_id, info.rule.holdout)
            firings.append(Firing(info, holdout, held))
        firings.sort(key=lambda f: (-f.info.priority, f.info.rule_id))
        return Evaluation(trigger, live.compiled.version, tuple(firings))

    # --- status --------------------------------------------------------------------------------

    def statuses(self, now: datetime, limits: RuleLimits | None = None) -> list[RuleStatus]:
        """Every rule of the last load: live / scheduled / expired (on ``now``'s local day), or invalid with its
        errors; with ``limits``, each budget's use in its current period."""
        today = (now.astimezone(self.timezone) if now.tzinfo is not None else now).date()
        live = self._live
        serving = {r.id for r in live.compiled.rules} if live else set()
        loaded = self._last or (live.compiled.loaded if live else None)
        if loaded is None:
            return []
        result = []
        for checked in loaded.rules:
            rule = checked.rule
            window = rule.active
            status = "live"
            if window is not None and window.from_ is not None and today < window.from_:
                status = "scheduled"
            elif window is not None and window.to is not None and today > window.to:
                status = "expired"
            budget = tuple(limits.usage(rule, now)) if limits is not None else ()
            result.append(RuleStatus(
                id=rule.id, name=rule.name, file=checked.file, line=checked.line, status=status,
                trigger=rule.trigger, priority=rule.priority, exclusive=rule.exclusive, holdout=rule.holdout,
                active_from=window.from_ if window else None, active_to=window.to if window else None,
                serving=rule.id in serving, budget=budget,
                regions=tuple(rule.scope.regions) if rule.scope else (), stores=tuple(rule.scope.stores) if rule.scope else ()))
        for bad in loaded.invalid:
            result.append(RuleStatus(
                id=bad.id, name=bad.id or "(unreadable)", file=bad.file, line=bad.line, status="invalid",
                trigger=bad.trigger, priority=None, serving=bad.id in serving,
                errors=tuple(str(p) for p in bad.problems)))
        result.sort(key=lambda s: (s.file, s.line))
        return result


def _rule_infos(compiled: CompiledRules) -> dict[str, RuleInfo]:
    infos = {}
    templates = compiled.loaded.templates
    for rule in compiled.rules:
        checked = rule.checked
        # In an `all` rule every written part held when the rule fired; only `any` parts need a test.
        explain = tuple((part.text, predicate(condition) if checked.combine == "any" and not part.implicit else None)
                        for part, condition in rule.parts)
        coupons = tuple(templates[action_body(a).template].terms(action_body(a).template, action_body(a).valid_days)
                        for a in checked.rule.then if action_kind(a) == "issue_coupon")
        infos[rule.id] = RuleInfo(
            rule_id=rule.id, name=checked.rule.name, trigger=rule.trigger, priority=checked.rule.priority,
            exclusive=checked.rule.exclusive, actions=tuple(checked.rule.then), coupons=coupons,
            # An uncapped percent-off coupon has no known worth (NaN in the loader): it counts 0 here, and
            # the loader refuses such a rule if it has an amount budget.
            face_value=checked.face_value if math.isfinite(checked.face_value) else 0.0,
            rule=checked.rule, file=checked.file, line=checked.line, explain=explain,
            held=tuple(text for text, _ in explain) if all(test is None for _, test in explain) else ())
    return infos


def _encode(fact: Mapping[str, object], names: frozenset[str]) -> dict[str, str]:
    # Encoded once per evaluation, then joined per shard (each shard reads a subset). The common
    # types are inlined: this runs for every property of every evaluation.
    encoded = {}
    for name in names:
        value = fact.get(name)
        if value is None:
            continue
        kind = type(value)
        if kind is str:
            text = _quote(value)
        elif kind is bool:
            text = "true" if value else "false"
        elif kind is int:
            text = str(value)
        else:
            text = durable_json(value)
        encoded[name] = _PREFIX.get(name) or _prefix(name)
        encoded[name] += text
    return encoded


_PREFIX: dict[str, str] = {}


def _prefix(name: str) -> str:
    # Property names are plain identifiers (features, `_t`, `_day`, `<list>__n`): no escaping needed.
    _PREFIX[name] = f'"{name}":'
    return _PREFIX[name]


def watch_rules(runtime: RuleRuntime, stop: threading.Event, interval: float = 1.0,
                on_reload: Callable[[ReloadReport], None] | None = None) -> None:
    """Poll the rules directory's files every ``interval`` seconds; reload when they differ from the last load."""
    while not stop.wait(interval):
        if _fingerprint(runtime.rules_dir) == runtime.files_seen:
            continue
        try:
            report = runtime.reload(actor="file-watcher")
        except Exception:  # pragma: no cover - a reload never raises for bad files; keep watching anyway
            log.exception("rules reload failed")
            continue
        if on_reload is not None:
            on_reload(report)


def _fingerprint(directory: Path) -> tuple:
    try:
        return tuple(sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in directory.glob("*.y*ml")))
    except OSError:
        return ()


def start_watching(runtime: RuleRuntime, stop: threading.Event, interval: float = 1.0) -> threading.Thread:
    """Run ``watch_rules`` on a daemon thread (hot reload on file change)."""
    thread = threading.Thread(target=watch_rules, args=(runtime, stop, interval), name="rules-watcher", daemon=True)
    thread.start()
    return thread

