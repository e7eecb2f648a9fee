"""Timing of named pipeline steps, so a run reports where its seconds went."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class StepTimes:
    """Seconds spent in each named step, in the order the steps ran."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    @property
    def total(self) -> float:
        return sum(self.seconds.values())

    def as_metrics(self, prefix: str = "seconds_") -> dict[str, float]:
        return {f"{prefix}{name}": round(value, 3) for name, value in self.seconds.items()}
