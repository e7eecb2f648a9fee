"""Loading ``rules/``: YAML with a line number for every node, validation, every problem at once.

Problems read ``rules/lapsed.yaml:7: unknown feature 'recency_dayz' (did you mean 'recency_days'?)``.
Checks: YAML syntax and duplicate keys; the schema (unknown fields, types, ranges); conditions
(unknown features with a suggestion, type mismatches such as ``tier > 3``, values outside a
category such as ``tier in [platinum]``, conditions that can never hold such as
``x > 5 and x < 3``, conditions too complex for durable_rules); duplicate rule ids; unknown coupon
templates; amount budgets on coupons of unknown worth; overlapping exclusive rules of equal
priority; examples naming unknown fields. A rule with an error is left out; ``LoadedRules.ok``
says whether the whole directory is fit to go live.

In steps, a module each: ``yaml_lines`` (YAML with line numbers, pydantic errors as sentences),
``directory`` (``load_rules``), ``checker`` (one rule), ``overlap`` (across rules); ``loaded``
holds what they produce.
"""

from engine.rules.loader.directory import load_rules
from engine.rules.loader.loaded import RESERVED_FILES, CheckedRule, LoadedRules, Part, Problem

__all__ = ["RESERVED_FILES", "CheckedRule", "LoadedRules", "Part", "Problem", "load_rules"]
