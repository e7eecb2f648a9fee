"""The data scientist's commands, end to end: load -> train -> evaluate -> log and register -> report.

Each ``nbo train ...`` / ``nbo models ...`` command is one call to a function here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from training.steps import StepTimes

if TYPE_CHECKING:
    from engine.settings import Settings
    from training.registry import ModelVersionInfo


@dataclass
class TrainingRun:
    """What a training command reports: the metrics document, the registered version, the timings."""

    kind: str
    metrics: dict[str, object]
    registered: ModelVersionInfo | None
    times: StepTimes
    notes: list[str]

    def summary_rows(self) -> list[tuple[str, dict[str, object]]]:
        """(model name, its metrics) rows: the model first, then its baselines."""
        if self.kind in ("churn", "ltv", "response"):
            rows = [("lightgbm" if self.kind != "response" else "two-model uplift", self.metrics)]
            rows += [(name, values) for name, values in self.metrics["baselines"].items()]  # type: ignore[union-attr]
            return rows
        rows = [("blend", self.metrics)]
        rows += [(name, values) for name, values in self.metrics["baselines"].items()]  # type: ignore[union-attr]
        rows.append(("als", self.metrics["als"]))  # type: ignore[arg-type]
        return rows


def train_churn_command(
    transactions: Path,
    fmt: str,
    cutoff: date,
    horizon_days: int,
    settings: Settings,
    metrics_out: Path | None = None,
    register: bool = True,
) -> TrainingRun:
    """``nbo train churn``: train, evaluate against baselines, log and register, write the metrics JSON."""
    from engine.programme import Programme
    from training.churn import train_churn

    programme = Programme.from_settings(settings)
    return _training_run("churn", transactions, fmt, settings, metrics_out, register,
                         lambda frame: train_churn(frame, cutoff, horizon_days, programme),
                         lambda registry, result, data: registry.log_churn(result, data))


def train_ltv_command(
    transactions: Path,
    fmt: str,
    cutoff: date,
    horizon_days: int,
    settings: Settings,
    metrics_out: Path | None = None,
    register: bool = True,
) -> TrainingRun:
    """``nbo train ltv``: train, evaluate against last-period spend and BG/NBD + Gamma-Gamma, log and register."""
    from engine.programme import Programme
    from training.ltv import train_ltv

    programme = Programme.from_settings(settings)
    return _training_run("ltv", transactions, fmt, settings, metrics_out, register,
                         lambda frame: train_ltv(frame, cutoff, horizon_days, programme),
                         lambda registry, result, data: registry.log_ltv(result, data))


def train_response_command(
    transactions: Path,
    fmt: str,
    exposures: Path,
    test_from: date,
    attribution_days: int,
    settings: Settings,
    members: Path | None = None,
    metrics_out: Path | None = None,
    register: bool = True,
) -> TrainingRun:
    """``nbo train response``: the uplift model on recorded exposures vs random and the hand-set propensity."""
    import pandas as pd

    from engine.programme import Programme
    from training.response import read_exposures, train_response

    programme = Programme.from_settings(settings)
    exposure_frame = read_exposures(exposures)
    member_frame = pd.read_parquet(members) if members is not None and str(members).endswith(".parquet") else (
        pd.read_csv(members, parse_dates=["registered"]) if members is not None else None)
    return _training_run("response", transactions, fmt, settings, metrics_out, register,
                         lambda frame: train_response(frame, exposure_frame, test_from, programme, attribution_days,
                                                      member_frame),
                         lambda registry, result, data: registry.log_response(result, data))


def train_recommender_command(
    transactions: Path,
    fmt: str,
    test_from: date,
    k: int,
    settings: Settings,
    metrics_out: Path | None = None,
    register: bool = True,
) -> TrainingRun:
    """``nbo train recommender``: train, evaluate against baselines, log and register, write the metrics JSON."""
    from training.recommendation import train_recommender

    return _training_run("recommender", transactions, fmt, settings, metrics_out, register,
                         lambda frame: train_recommender(frame, test_from, k),
                         lambda registry, result, data: registry.log_recommender(result, data))


def _training_run(kind: str, transactions: Path, fmt: str, settings: Settings, metrics_out: Path | None,
                  register: bool, train, log) -> TrainingRun:
    """The steps every training command shares: load, train, log and register, write the metrics."""
    from training.data import load_transactions

    times = StepTimes()
    with times.step("load"):
        data = load_transactions(transactions, fmt)
    result = train(data.frame)
    times.seconds.update(result.times.seconds)
    registered = None
    if register:
        from training.registry import ModelRegistry

        with times.step("log_and_register"):
            registered = log(ModelRegistry.from_settings(settings), result, data)
    metrics = result.metrics_json()
    _attach_run(metrics, registered, times)
    _write(metrics_out, metrics)
    return TrainingRun(kind, metrics, registered, times, data.notes)


def _attach_run(metrics: dict[str, object], registered: ModelVersionInfo | None, times: StepTimes) -> None:
    metrics["seconds"] = {name: round(value, 3) for name, value in times.seconds.items()}
    if registered is not None:
        metrics["model"] = {"name": registered.name, "version": registered.version, "run_id": registered.run_id,
                            "champion": registered.is_champion}


def _write(path: Path | None, metrics: dict[str, object]) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics, indent=2, sort_keys=False, default=str) + "\n")
