"""The dates of the small synthetic shop the training and serving tests train their models on."""

from __future__ import annotations

from datetime import date

SHOP_CUTOFF = date(2026, 1, 20)  # the synthetic shop runs 2025-10-01 .. 2026-02-27
SHOP_HORIZON = 30
SHOP_TEST_FROM = date(2026, 2, 1)
