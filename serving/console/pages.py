"""What each console page shows, built from the services the JSON API uses; no HTTP here.

Routes (``serving.console.routes``) call these and hand the result to a template.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

import redis
from markupsafe import Markup
from prometheus_client import REGISTRY

from engine.redis_circuit import REDIS_DOWN
from engine.rules import BudgetUse, RuleStatus
from engine.settings import TierThresholds
from serving.console.charts import burn_down, daily_bars

# --- rules ---------------------------------------------------------------------------------------


@dataclass
class RuleRow:
    """One rule of the rules page: its status and budget, and its measured figures when there are any."""

    status: RuleStatus
    file_name: str
    budget: BudgetUse | None
    burn: Markup | None = None
    fires: Markup | None = None
    fires_per_day: float | None = None
    redemption_rate: float | None = None
    lift: float | None = None
    lift_ci: Sequence[float] | None = None
    changed_at: str | None = None
    changed_by: str | None = None
    file_changed: str | None = None


def rule_rows(statuses: Sequence[RuleStatus], reports: Mapping[str, dict] | None, audit_entries: Sequence[dict],
              rules_dir: Path, tz: tzinfo, window: tuple[date, date] | None = None) -> list[RuleRow]:
    """The rules page's rows: ``GET /v1/rules`` figures, the measurement report's (over ``window``, first and
    last day), and the audit log's last change; times in the stores' zone ``tz``."""
    saved = {}
    for entry in audit_entries:  # newest first: keep the first seen per file
        if entry.get("action") == "rules.file_saved":
            saved.setdefault(entry.get("file"), entry)
    rows = []
    for status in statuses:
        name = Path(status.file).name
        budget = next((b for b in status.budget if b.amount_total or b.coupons_total), None)
        row = RuleRow(status=status, file_name=name, budget=budget)
        report = (reports or {}).get(status.id or "")
        if report and window:
            _measured(row, report, window)
        entry = saved.get(name)
        if entry:
            changed = datetime.fromisoformat(entry["ts"])
            changed = changed.astimezone(tz) if changed.tzinfo is not None else changed
            row.changed_at, row.changed_by = changed.strftime("%Y-%m-%d %H:%M"), entry["actor"]
        elif (rules_dir / name).exists():
            row.file_changed = datetime.fromtimestamp((rules_dir / name).stat().st_mtime, tz).strftime("%Y-%m-%d %H:%M")
        rows.append(row)
    return rows


def _measured(row: RuleRow, report: dict, window: tuple[date, date]) -> None:
    """Figures of the report; the daily series over every day of the window (a day without activity is 0)."""
    by_day = {d["day"]: d for d in report.get("daily") or []}
    first, last = window
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    daily = [by_day.get(day.isoformat(), {}) for day in days]
    row.redemption_rate = report.get("redemption_rate")
    row.lift = report.get("lift_per_member")
    row.lift_ci = report.get("lift_ci95")
    if by_day and days:
        fired = [float(d.get("fired") or 0) for d in daily]
        row.fires_per_day = sum(fired) / len(days)
        row.fires = daily_bars(days, fired, "fired")
        budget = row.budget
        if budget is not None:
            by_amount = bool(budget.amount_total)
            spent = [float(d.get("cost" if by_amount else "issued") or 0) for d in daily]
            total = float(budget.amount_total if by_amount else budget.coupons_total)
            used = float(budget.amount_used if by_amount else budget.coupons_used)
            row.burn = burn_down(days, spent, total, used, "yuan" if by_amount else "coupons")


# --- try it --------------------------------------------------------------------------------------


class BasketProblem(ValueError):
    def __init__(self, line: int, problem: str) -> None:
        super().__init__(f"line {line}: {problem}")
        self.line = line
        self.problem = problem


def parse_basket(text: str) -> list[dict[str, Any]]:
    """``SKU [quantity [unit price]]`` per line (blank lines skipped) -> basket lines of ``OfferRequest``."""
    lines = []
    for number, raw in enumerate(text.splitlines(), start=1):
        parts = raw.replace(",", " ").split()
        if not parts:
            continue
        if len(parts) > 3:
            raise BasketProblem(number, f"{raw.strip()!r}: expected SKU, quantity, price")
        line: dict[str, Any] = {"sku": parts[0]}
        for name, value in zip(("qty", "price"), parts[1:]):
            try:
                line[name] = float(value)
            except ValueError:
                raise BasketProblem(number, f"{name} {value!r} is not a number") from None
            if not math.isfinite(line[name]):
                raise BasketProblem(number, f"{name} {value!r} is not a number")
        lines.append(line)
    return lines


@dataclass(frozen=True)
class TierProgress:
    tier: str
    next_tier: str | None
    needs: tuple[tuple[str, dict], ...]
    """What is missing for the next tier: (message key, values)."""
    share: float
    """Growth value towards the next tier's threshold, 0..1."""


def tier_progress(features: Mapping[str, Any], thresholds: TierThresholds) -> TierProgress:
    """How far the member is from the next tier, by the programme's thresholds (configuration, not code)."""
    tier = str(features.get("tier") or "regular")
    growth = float(features.get("growth_12m") or 0)
    steps = {
        "regular": ("silver", thresholds.silver_growth, ()),
        "silver": ("gold", thresholds.gold_growth,
                   (("need_spend", thresholds.gold_month_spend - float(features.get("month_spend") or 0)),)),
        "gold": ("diamond", thresholds.diamond_growth,
                 (("need_referrals", thresholds.diamond_referrals - int(features.get("referrals") or 0)),)),
    }
    if tier not in steps:
        return TierProgress(tier, None, (), 1.0)
    target, growth_needed, extra = steps[tier]
    needs = []
    if growth < growth_needed:
        needs.append(("try.need_growth", {"amount": f"{growth_needed - growth:,.0f}"}))
    for kind, missing in extra:
        if missing > 0:
            key = "amount" if kind == "need_spend" else "count"
            needs.append((f"try.{kind}", {key: f"{missing:,.0f}"}))
    return TierProgress(tier, target, tuple(needs), min(growth / growth_needed, 1.0) if growth_needed else 1.0)


# --- models --------------------------------------------------------------------------------------

PLOT_ORDER = ("roc.png", "gain.png", "qini.png", "calibration.png", "gain_lift.png", "feature_importance.png")
MODEL_METRICS = {"churn": ("auc_roc", "pr_auc", "brier"), "recommender": ("precision_at_k", "recall_at_k", "ndcg_at_k"),
                 "ltv": ("gini", "spearman", "top_decile_capture", "mae"), "response": ("qini", "auuc", "uplift_top_30pct")}


@dataclass
class VersionView:
    name: str
    version: str
    created: str
    champion: bool
    forced: bool
    kind: str
    metrics: list[tuple[str, float | None, dict[str, float]]] = field(default_factory=list)
    """(metric, the model's value, {baseline: value})."""
    baselines: list[str] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)


def model_versions(registry) -> dict[str, list[VersionView]]:
    """Every registered model's versions (newest first) with metrics against the baselines and plot names."""
    client = registry.client
    out: dict[str, list[VersionView]] = {}
    for name, versions in registry.list_models().items():
        views = []
        for info in versions:
            kind = info.tags.get("nbo.kind", name)
            view = VersionView(name=name, version=info.version, created=info.created.strftime("%Y-%m-%d %H:%M"),
                               champion=info.is_champion, forced=info.tags.get("nbo.promotion_forced") == "true",
                               kind=kind)
            if info.run_id:
                metrics = client.get_run(info.run_id).data.metrics
                view.baselines = sorted({key.split(".")[1] for key in metrics if key.startswith("baselines.")})
                for metric in MODEL_METRICS.get(kind, ()):
                    view.metrics.append((metric, metrics.get(metric),
                                         {b: metrics[f"baselines.{b}.{metric}"] for b in view.baselines
                                          if f"baselines.{b}.{metric}" in metrics}))
                names = [Path(a.path).name for a in client.list_artifacts(info.run_id, "plots") if a.path.endswith(".png")]
                view.plots = sorted(names, key=lambda n: (PLOT_ORDER.index(n) if n in PLOT_ORDER else len(PLOT_ORDER), n))
            views.append(view)
        out[name] = views
    return out


def plot_png(registry, name: str, version: str, plot: str) -> bytes | None:
    """The PNG a training run logged under ``plots/`` for a model version (None: no such version or plot)."""
    import tempfile

    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    try:
        run_id = registry.client.get_model_version(name, version).run_id
    except MlflowException:
        return None
    if not run_id or plot not in {Path(a.path).name for a in registry.client.list_artifacts(run_id, "plots")}:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=f"plots/{plot}", dst_path=tmp,
                                                   tracking_uri=registry.tracking_uri)
        return Path(path).read_bytes()


# --- health --------------------------------------------------------------------------------------

REQUEST_METRIC = "nbo_request_seconds"
QUANTILES = (0.5, 0.95, 0.99)


@dataclass
class RequestFigures:
    total: int
    errors: int
    rate: float | None
    window_seconds: float
    quantiles_ms: dict[float, float | None]
    by_route: list[tuple[str, int]]


class RequestRate:
    """Requests a second between the health page's views (kept per process, like the metrics it reads)."""

    def __init__(self, window_seconds: float = 60.0) -> None:
        self.window_seconds = window_seconds
        self.samples: deque[tuple[float, int]] = deque()

    def observe(self, total: int, now: float | None = None) -> tuple[float | None, float]:
        now = time.monotonic() if now is None else now
        self.samples.append((now, total))
        while len(self.samples) > 2 and now - self.samples[1][0] >= self.window_seconds:
            self.samples.popleft()
        first_at, first_total = self.samples[0]
        if now - first_at <= 0:
            return None, 0.0
        return (total - first_total) / (now - first_at), now - first_at


def request_figures(rate: RequestRate, skip_prefix: str = "/console") -> RequestFigures:
    """Totals, rate and latency percentiles of the API's requests from the Prometheus histogram of this process."""
    buckets: dict[float, float] = {}
    by_route: dict[str, int] = {}
    total = errors = 0
    for family in REGISTRY.collect():
        if family.name != REQUEST_METRIC:
            continue
        for sample in family.samples:
            route = sample.labels.get("route", "")
            if route.startswith(skip_prefix):
                continue
            if sample.name.endswith("_bucket"):
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
            elif sample.name.endswith("_count"):
                count = int(sample.value)
                total += count
                by_route[route] = by_route.get(route, 0) + count
                if sample.labels.get("status", "").startswith("5"):
                    errors += count
    per_second, window = rate.observe(total)
    quantiles = {q: histogram_quantile(q, buckets) for q in QUANTILES}
    return RequestFigures(total=total, errors=errors, rate=per_second, window_seconds=window,
                          quantiles_ms={q: None if v is None else v * 1000 for q, v in quantiles.items()},
                          by_route=sorted(by_route.items(), key=lambda kv: -kv[1]))


def histogram_quantile(q: float, cumulative: Mapping[float, float]) -> float | None:
    """The ``q`` quantile from cumulative bucket counts, interpolated within a bucket as Prometheus does."""
    bounds = sorted(cumulative)
    if not bounds or cumulative[bounds[-1]] <= 0:
        return None
    rank = q * cumulative[bounds[-1]]
    lower_bound, lower_count = 0.0, 0.0
    for bound in bounds:
        count = cumulative[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower_bound  # beyond the last finite bucket: its bound is what is known
            width = count - lower_count
            return lower_bound + (bound - lower_bound) * ((rank - lower_count) / width if width else 1.0)
        lower_bound, lower_count = bound, count
    return bounds[-1]


def counter_values(metric: str, label: str) -> dict[str, float]:
    """A labelled counter of this process, by one label (e.g. degraded answers by why)."""
    out: dict[str, float] = {}
    for family in REGISTRY.collect():
        if family.name != metric:
            continue
        for sample in family.samples:
            if sample.name.endswith("_total"):
                key = sample.labels.get(label, "")
                out[key] = out.get(key, 0.0) + sample.value
    return out


@dataclass
class StoreFigures:
    up: bool
    round_trip_ms: float | None = None
    version: str | None = None
    keys: int | None = None
    memory: str | None = None
    error: str | None = None


def store_figures(client: redis.Redis) -> StoreFigures:
    """Redis: up or not, a round trip, its version, keys and memory (the feature store's size)."""
    try:
        start = time.perf_counter()
        client.ping()
        round_trip = (time.perf_counter() - start) * 1000
        info = client.info()
        return StoreFigures(up=True, round_trip_ms=round_trip, version=str(info.get("redis_version")),
                            keys=int(client.dbsize()), memory=str(info.get("used_memory_human")))
    except REDIS_DOWN as exc:
        return StoreFigures(up=False, error=type(exc).__name__)
