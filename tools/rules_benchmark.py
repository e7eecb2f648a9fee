"""``nbo bench rules``: rule evaluation cost (10 / 100 / 1,000 rules), durable_rules' memory, backtest scale.

Figures printed side by side, measured in one run on this machine:

* evaluation latency (p50 / p99) of N generated checkout rules for one member, through the
  runtime (durable_rules decides), next to the reference evaluator on the same compiled
  conditions and, for 10 and 100 rules, next to durable_rules' own ``Host`` API with callbacks;
* RSS growth over many evaluations (durable_rules' state must stay flat);
* the backtest: the point-in-time fold of a generated history (per member, extrapolated to the
  target), and the vectorised evaluation of the shipped rules over the target number of members
  (the folded members' features repeated under new ids).
"""

from __future__ import annotations

import random
import resource
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from engine.programme import Programme
from engine.rules import (
    RequestContext,
    RuleRuntime,
    backtest,
    baseline_features,
    compile_rules,
    load_rules,
)
from engine.rules import reference_predicate as predicate

SHIPPED_FILES = ("coupons.yaml", "festivals.yaml")
_ATOMS = (
    "recency_days >= {recency}", "tier in [{tiers}]", "monetary_90d > {money}", "basket_total >= {basket}",
    "basket_categories contains {category}", "frequency_30d >= {visits}", "days_to_birthday between 0 and {days}",
    "segment == {segment}", "points_balance > {points}", "not basket_categories contains {category}",
    "hour between {hour} and {hour_to}", "favourite_categories contains any [{category}, {category2}]",
)
_CATEGORIES = ("dairy", "bakery", "beverages", "snacks", "fresh_fruit", "frozen", "instant_food")


@dataclass(frozen=True)
class LatencyRow:
    """Evaluation latency of N rules for one member (microseconds), next to the reference and the Host API."""

    rules: int
    fired: float
    p50_us: float
    p99_us: float
    reference_p50_us: float
    host_p50_us: float | None
    rulesets: int


def generated_rules(n: int, seed: int = 7) -> str:
    """``n`` checkout rules of 2-3 random conditions each (about one in ten holds for the benchmark's member)."""
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        atoms = rng.sample(_ATOMS, rng.choice((2, 3)))
        categories = rng.sample(_CATEGORIES, 3)  # distinct within a rule: no 'contains x and not contains x'
        hour = rng.randint(0, 21)
        values = dict(recency=rng.randint(0, 60), tiers=rng.choice(["regular", "silver", "gold", "diamond"]),
                      money=rng.randint(0, 2000), basket=rng.randint(0, 150), visits=rng.randint(0, 15),
                      days=rng.randint(3, 30), segment=rng.choice(["new", "loyal", "champion", "occasional"]),
                      points=rng.randint(0, 5000), hour=hour, hour_to=hour + 2)
        texts = [a.format(**values, category=categories[k], category2=categories[2]) for k, a in enumerate(atoms)]
        joiner = " or " if rng.random() < 0.2 else " and "
        lines.append(f"- id: gen-{i:04d}\n  name: generated {i}\n  trigger: checkout\n"
                     f"  when: {joiner.join(texts)!r}\n  then: [{{tag: t{i % 10}}}]\n  priority: {rng.randint(0, 100)}\n")
    return "".join(lines)


def _member(at: datetime, programme: Programme) -> tuple[dict, RequestContext]:
    features = baseline_features(at, programme)
    features.update(recency_days=12, tier="gold", tier_rank=2, monetary_90d=310.5, frequency_30d=3, segment="loyal",
                    days_to_birthday=40, points_balance=1200, favourite_categories=["bakery", "dairy", "snacks"],
                    orders_total=25)
    basket = [{"sku": "SKU00012", "qty": 2, "price": 6.5, "category": "dairy"},
              {"sku": "SKU00340", "qty": 1, "price": 12.0, "category": "snacks"}]
    return features, RequestContext(at=at, member_id="M0000001", store_id="S001", channel="pos", basket=basket)


def latency_percentiles_us(samples: list[float]) -> tuple[float, float]:
    """p50 and p99 in microseconds of durations in seconds."""
    values = np.array(samples) * 1e6
    return float(np.percentile(values, 50)), float(np.percentile(values, 99))


def measure_latency(n_rules: int, programme: Programme, shipped: Path, evaluations: int = 5000,
                    with_host: bool = False) -> LatencyRow:
    """p50/p99 of evaluating ``n_rules`` generated checkout rules for one member (runtime, reference, Host)."""
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        for name in SHIPPED_FILES:
            (directory / name).write_text((shipped / name).read_text(encoding="utf-8"), encoding="utf-8")
        (directory / "generated.yaml").write_text(generated_rules(n_rules), encoding="utf-8")
        runtime = RuleRuntime(directory, programme.tz)
        report = runtime.reload(actor="bench")
        if not report.ok:
            raise RuntimeError("generated rules are invalid: " + "; ".join(str(p) for p in report.errors[:3]))
        at = datetime(2026, 6, 1, 18, 30)
        features, context = _member(at, programme)
        for _ in range(300):
            runtime.evaluate("checkout", features, context)
        samples, fired = [], 0
        for _ in range(evaluations):
            started = time.perf_counter()
            evaluation = runtime.evaluate("checkout", features, context)
            samples.append(time.perf_counter() - started)
            fired += len(evaluation.firings)
        p50, p99 = latency_percentiles_us(samples)
        fact = runtime.fact("checkout", features, context)
        tests = [predicate(rule.condition) for rule in runtime.compiled.rules]
        reference = []
        for _ in range(min(evaluations, 2000)):
            started = time.perf_counter()
            [test(fact) for test in tests]
            reference.append(time.perf_counter() - started)
        host = _host_latency(runtime, fact) if with_host else None
        return LatencyRow(n_rules, fired / evaluations, p50, p99, latency_percentiles_us(reference)[0], host,
                          len(runtime.compiled.shards["checkout"]))


def _host_latency(runtime: RuleRuntime, fact: dict, evaluations: int = 1000) -> float:
    """durable_rules' own Host API (a Python callback per fired rule) on the same rules and fact."""
    import copy
    import itertools

    from durable.engine import Host, MessageNotHandledException

    fired: list[str] = []

    def collect(rule_id: str) -> Callable:
        """The Host action of one rule: record that it fired."""
        return lambda c: fired.append(rule_id)

    definitions = {rule.id: {"all": [{"m": copy.deepcopy(rule.condition)}], "run": collect(rule.id)}
                   for rule in runtime.compiled.rules}
    host = Host()
    name = f"bench-host-{time.monotonic_ns()}"
    host.register_rulesets({name: definitions})
    ids = itertools.count(1)
    samples = []
    for _ in range(evaluations):
        message = {**{k: v for k, v in fact.items() if v is not None}, "id": next(ids)}
        started = time.perf_counter()
        try:
            host.assert_fact(name, message)
        except MessageNotHandledException:
            pass
        host.retract_fact(name, message)
        samples.append(time.perf_counter() - started)
    return latency_percentiles_us(samples)[0]


def measure_memory(programme: Programme, shipped: Path, evaluations: int = 200_000) -> tuple[float, float]:
    """(RSS growth in MB, seconds) over ``evaluations`` of 100 generated rules."""
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        for name in SHIPPED_FILES:
            (directory / name).write_text((shipped / name).read_text(encoding="utf-8"), encoding="utf-8")
        (directory / "generated.yaml").write_text(generated_rules(100), encoding="utf-8")
        runtime = RuleRuntime(directory, programme.tz)
        runtime.reload(actor="bench")
        features, context = _member(datetime(2026, 6, 1, 18, 30), programme)
        for _ in range(5000):
            runtime.evaluate("checkout", features, context)
        before = _rss_mb()
        started = time.perf_counter()
        for _ in range(evaluations):
            runtime.evaluate("checkout", features, context)
        return _rss_mb() - before, time.perf_counter() - started


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 1e6


@dataclass(frozen=True)
class BacktestFigures:
    """The backtest at scale: the point-in-time fold (measured, extrapolated) and the vectorised evaluation."""

    folded_members: int
    fold_seconds: float
    fold_extrapolated_seconds: float
    members: int
    evaluation_seconds: float
    rules: int


def measure_backtest(programme: Programme, shipped: Path, target_members: int = 1_000_000,
                     fold_members: int = 10_000, days: int = 180,
                     on_step: Callable[[str], None] | None = None) -> BacktestFigures:
    """Fold a generated history for ``fold_members`` members, then backtest the shipped rules over ``target_members``."""
    from engine.point_in_time import features_as_of
    from tools.synthetic import generate

    if on_step:
        on_step(f"generating {fold_members:,} members x {days} days")
    data = generate(members=fold_members, days=days, seed=11)
    as_of = date(2026, 1, 1) + pd.Timedelta(days=days).to_pytimedelta()
    if on_step:
        on_step("folding their history to features (point in time)")
    started = time.perf_counter()
    features = features_as_of(data.transactions, as_of, programme, data.members)
    fold_seconds = time.perf_counter() - started
    repeats = -(-target_members // len(features))
    tiled = pd.concat([features] * repeats, ignore_index=True).iloc[:target_members]
    tiled.index = pd.Index([f"B{i:08d}" for i in range(len(tiled))], name="member_id")
    compiled = compile_rules(load_rules(shipped, programme.settings.points.points_per_yuan_redeemed))
    if on_step:
        on_step(f"backtesting {len(compiled.rules)} rules over {len(tiled):,} members")
    started = time.perf_counter()
    backtest(compiled, tiled, as_of, programme)
    evaluation_seconds = time.perf_counter() - started
    return BacktestFigures(len(features), fold_seconds, fold_seconds / len(features) * target_members,
                           len(tiled), evaluation_seconds, len(compiled.rules))


def benchmark_programme(timezone: str = "Asia/Shanghai") -> Programme:
    """The programme the benchmark uses (domain defaults, no secrets)."""
    from engine.settings import Settings

    return Programme(settings=Settings(_env_file=None, pii_key="bench"), tz=ZoneInfo(timezone), _pii_secret=b"bench")


@dataclass(frozen=True)
class RulesBenchmark:
    """Everything ``nbo bench rules`` measured."""

    latency: tuple[LatencyRow, ...]
    memory_growth_mb: float
    memory_evaluations: int
    memory_seconds: float
    backtest: BacktestFigures | None


def run_rules_benchmark(shipped: Path, rule_counts: tuple[int, ...] = (10, 100, 1000), evaluations: int = 5000,
                        memory_evaluations: int = 200_000, backtest_members: int = 1_000_000,
                        fold_members: int = 10_000, on_step: Callable[[str], None] | None = None) -> RulesBenchmark:
    """Measure rule evaluation for each rule count, memory over many evaluations, and the backtest at scale."""
    programme = benchmark_programme()
    rows = []
    for n in rule_counts:
        if on_step:
            on_step(f"evaluating {n:,} rules")
        rows.append(measure_latency(n, programme, shipped, evaluations, with_host=n <= 100))
    if on_step:
        on_step(f"{memory_evaluations:,} evaluations for the memory figure")
    growth, seconds = measure_memory(programme, shipped, memory_evaluations) if memory_evaluations else (0.0, 0.0)
    figures = None
    if backtest_members:
        figures = measure_backtest(programme, shipped, backtest_members, fold_members, on_step=on_step)
    return RulesBenchmark(tuple(rows), growth, memory_evaluations, seconds, figures)
