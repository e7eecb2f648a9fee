"""The response model as serving uses it: the chance a member redeems an offer and the spend it adds.

A two-model (T-learner) uplift on LightGBM: one booster predicts spend in the attribution window
of members who got the offer, one of members held out, both from the same member inputs
(``training.churn_model.input_row``: the one feature definition); their difference is the
incremental spend of making the offer. A third booster predicts redemption among the treated.
Arbitration reads both (``engine.arbitration``): expected value = p(redeem) x (margin x incremental
spend per redemption - coupon cost) = margin x uplift - p(redeem) x cost.

One member's scores cost three single-row predictions on a row computed once (``score_row``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from training.churn_model import MODEL_INPUTS, ChurnModel, input_frame, input_row

META_FILE = "response_model.json"
PARTS: tuple[str, ...] = ("redeem", "treated", "control")


@dataclass(frozen=True)
class ResponseScore:
    """One member's predicted response to an offer."""

    redeem: float  # probability of redeeming when treated
    uplift: float  # incremental spend (yuan) in the attribution window: treated - control
    version: str | None = None


@dataclass
class ResponseModel:
    """Redemption probability and incremental spend of making an offer to a member."""

    redeem: ChurnModel
    treated: ChurnModel
    control: ChurnModel
    attribution_days: int
    learner: str = "two-model"
    inputs: tuple[str, ...] = MODEL_INPUTS
    info: dict[str, Any] = field(default_factory=dict)

    def score(self, features: Mapping[str, object], version: str | None = None) -> ResponseScore:
        """The response of one member (a feature dict)."""
        return self.score_row(input_row(features, self.inputs), version)

    def score_row(self, row: np.ndarray, version: str | None = None) -> ResponseScore:
        """The response from a row of ``input_row`` (shared with the other models of a request)."""
        redeem = min(max(self.redeem.score_row(row), 0.0), 1.0)
        uplift = self.treated.score_row(row) - self.control.score_row(row)
        return ResponseScore(redeem=redeem, uplift=uplift, version=version)

    def score_frame(self, features: pd.DataFrame) -> pd.DataFrame:
        """``redeem`` and ``uplift`` columns for many members (rows of ``features_as_of``)."""
        x = input_frame(features, self.inputs)
        return pd.DataFrame({
            "redeem": np.clip(self.redeem.score_frame(x), 0.0, 1.0),
            "uplift": self.treated.score_frame(x) - self.control.score_frame(x),
        }, index=features.index)

    def rounds_params(self) -> dict[str, int]:
        return {f"trees.{name}": int(getattr(self, name).booster.num_trees()) for name in PARTS}

    def save(self, folder: str | Path) -> Path:
        """One sub-folder per booster and ``response_model.json``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name in PARTS:
            getattr(self, name).save(folder / name)
        meta = {"attribution_days": self.attribution_days, "learner": self.learner, "inputs": list(self.inputs),
                "info": self.info}
        (folder / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> ResponseModel:
        folder = Path(folder)
        meta = json.loads((folder / META_FILE).read_text())
        parts = {name: ChurnModel.load(folder / name) for name in PARTS}
        inputs = tuple(meta["inputs"])
        for name, part in parts.items():
            if part.inputs != inputs:
                raise ValueError(f"{folder}: the {name} booster reads {part.inputs}, the model {inputs}")
        return cls(**parts, attribution_days=int(meta["attribution_days"]), learner=meta.get("learner", "two-model"),
                   inputs=inputs, info=meta.get("info", {}))
