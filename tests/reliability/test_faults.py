"""Faults injected into a real server process (short versions of `make chaos`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tools.benchmarks import BenchService, ServerProcess
from tools.chaos import FaultOutcome, broken_rule_file, hung_redis, model_artifact_faults, redis_restart_under_load


@pytest.fixture(scope="module")
def server(service: BenchService) -> Iterator[ServerProcess]:
    server = service.serve(1, NBO_MODEL_RELOAD_SECONDS="1")
    server.wait_ready()
    yield server
    server.stop()


def failed(outcome: FaultOutcome) -> dict[str, str]:
    return {name: detail for name, (ok, detail) in outcome.checks.items() if not ok}


def test_redis_stopped_under_load_degrades_answers_then_recovers_without_losing_events_or_doubling_coupons(
    service: BenchService, server: ServerProcess
) -> None:
    outcome = redis_restart_under_load(service, server, seconds=16, rate=40, outage=4, stream_events=1000,
                                       stream_wait=45)
    assert not failed(outcome), (failed(outcome), outcome.figures)
    assert outcome.figures["degraded answers"] > 0 and outcome.figures["stream events applied"] == 1000


def test_a_hung_redis_gives_degraded_answers_not_errors(service: BenchService, server: ServerProcess) -> None:
    figures = hung_redis(service, server, seconds=6, rate=20, pause=2)
    assert figures["statuses"].keys() == {200} and figures["dropped connections"] == 0, figures
    assert figures["degraded answers"] > 0, figures


def test_a_corrupt_or_deleted_model_artifact_leaves_the_previous_champion_serving(
    service: BenchService, server: ServerProcess
) -> None:
    outcome = model_artifact_faults(service, server)
    assert not failed(outcome), (failed(outcome), outcome.figures)


def test_a_broken_rule_file_keeps_the_last_good_rules_live_and_says_why(
    service: BenchService, server: ServerProcess
) -> None:
    outcome = broken_rule_file(service, server)
    assert not failed(outcome), (failed(outcome), outcome.figures)


def test_a_daily_run_killed_mid_run_completes_once_when_started_again(service: BenchService) -> None:
    from tools.chaos import daily_run_killed

    outcome = daily_run_killed(service, chunk_size=10)
    assert not failed(outcome), (failed(outcome), outcome.figures)
