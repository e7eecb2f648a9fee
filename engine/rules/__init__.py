"""Marketer-written rules: validated, compiled to durable_rules, evaluated, limited, backtested.

The small public surface:

* ``load_rules(dir)`` -> ``LoadedRules`` (valid rules, coupon templates, calendar, ``problems``
  as ``file:line: message``); ``run_examples(dir)`` runs every rule's examples.
* ``RuleRuntime(dir, timezone)``: ``reload()`` (atomic; keeps the last good rules on errors),
  ``evaluate(trigger, features, RequestContext)`` -> ``Evaluation`` of ``Firing``s,
  ``statuses(today, limits, now)`` for ``GET /v1/rules``; ``start_watching`` hot-reloads on change.
* ``RuleLimits(redis, timezone)``: ``reserve`` / ``commit`` / ``release`` of per-member caps and
  budgets (atomic in Redis), ``usage``; ``in_holdout`` the sticky control group of a rule.
* ``backtest(...)`` / ``backtest_history(...)``: what rules would do over all members on a date.
* ``json_schema()`` / ``write_schema(path)``: the JSON Schema of the rule files.
* For benchmarks and equivalence checks: ``compile_rules(loaded)`` (durable_rules rulesets),
  ``reference_predicate(condition)`` (a plain-Python evaluator of a condition), ``baseline_features``.
"""

from engine.rules.backtest import BacktestReport, RuleBacktest, backtest, backtest_history
from engine.rules.compiler import compile_rules
from engine.rules.context import TRIGGERS, BasketLine, RequestContext
from engine.rules.examples import ExampleReport, ExampleResult, baseline_features, run_examples
from engine.rules.limits import Ask, BudgetUse, Reservation, RuleLimits, in_holdout
from engine.rules.loader import RESERVED_FILES, CheckedRule, LoadedRules, Problem, load_rules
from engine.rules.reference import predicate as reference_predicate
from engine.rules.runtime import (
    Evaluation,
    Firing,
    ReloadReport,
    RuleEngineError,
    RuleRuntime,
    RuleStatus,
    start_watching,
)
from engine.rules.schema import CouponTemplate, Rule, action_body, action_kind, json_schema, schema_text, write_schema

__all__ = [
    "TRIGGERS", "BacktestReport", "BasketLine", "BudgetUse", "CheckedRule", "CouponTemplate", "Evaluation",
    "ExampleReport", "ExampleResult", "Firing", "LoadedRules", "Problem", "ReloadReport", "RequestContext",
    "Ask", "Reservation", "Rule", "RuleBacktest", "RuleEngineError", "RuleLimits", "RuleRuntime", "RuleStatus",
    "action_body", "action_kind", "backtest", "backtest_history", "in_holdout", "json_schema", "load_rules",
    "run_examples", "schema_text", "start_watching", "write_schema", "compile_rules", "reference_predicate",
    "baseline_features", "RESERVED_FILES",
]
