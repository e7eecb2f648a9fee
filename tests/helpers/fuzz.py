"""How much the fuzz tests try: ``make test`` gives each its examples, ``make fuzz`` a multiple."""

from __future__ import annotations

import os

import hypothesis

FUZZ_SCALE = int(os.environ.get("NBO_FUZZ_SCALE", "1"))
"""``make fuzz`` runs every fuzz test with this many times its examples (``make test``: 1)."""


def fuzz_settings(examples: int) -> hypothesis.settings:
    """Hypothesis settings of a fuzz test: ``examples`` cases in ``make test``, ``NBO_FUZZ_SCALE`` times that in
    ``make fuzz``; no deadline (a shared 2-core machine), no example database (runs do not depend on each other)."""
    return hypothesis.settings(max_examples=examples * FUZZ_SCALE, deadline=None, database=None,
                               suppress_health_check=list(hypothesis.HealthCheck))
