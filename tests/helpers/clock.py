"""The suite's "now": the product's clock is pinned here wherever a test does not choose its own moment."""

from __future__ import annotations

from datetime import datetime

NOW = datetime(2026, 3, 1, 12, 0, 0)
