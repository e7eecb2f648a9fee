"""A short soak (the long one is `make soak`): mixed traffic against a real server process."""

from __future__ import annotations

from tools.benchmarks import BenchService
from tools.soak import run_soak


def test_a_short_soak_has_no_server_errors_and_every_key_it_adds_is_explained(service: BenchService) -> None:
    report = run_soak(service, seconds=20, rate=60, p99_budget_ms=None, max_rss_growth=None)
    failed = {name: detail for name, (ok, detail) in report.checks.items() if not ok}
    assert not failed, failed
    kinds = report.load.kinds
    assert kinds["next-best-offer"].statuses.get(200, 0) > 0.9 * kinds["next-best-offer"].sent
    assert kinds["events"].statuses == {200: kinds["events"].sent}
    assert report.traffic["events accepted"] > 0 and report.traffic["full answers"] > 0
