"""The churn model as serving uses it: a LightGBM booster over the member feature vector.

Inputs are the numeric features of ``engine.features`` (one definition, the same online and
offline) plus a few ratios of them (``DERIVED_INPUTS``), computed here by one function for a
single feature dict (online) and for a whole frame (training, batch), so they cannot drift.

``ChurnModel.score`` answers in ~15 us: it feeds one float64 row to LightGBM's single-row C entry
point (``LGBM_BoosterPredictForMatSingleRowFast``); ``Booster.predict`` on one row costs ~50 us
here and ``LGBMClassifier.predict_proba`` ~560 us. Both paths give the same numbers (tested).
"""

from __future__ import annotations

import ctypes
import json
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.features import FEATURES

EXCLUDED_FEATURES: frozenset[str] = frozenset({
    "churn_probability",  # the model's own output, written back by batch scoring
    "ltv",  # another model's output: missing in point-in-time history, so it would be skew
    "registered",  # true for every member with history
})
NUMERIC_FEATURES: tuple[str, ...] = tuple(
    f.name for f in FEATURES if f.kind in ("int", "float", "bool") and f.name not in EXCLUDED_FEATURES
)
"""Feature-store features the model reads (strings and lists are left out)."""

DERIVED_INPUTS: tuple[str, ...] = (
    "days_between_orders",  # tenure / orders: the member's usual rhythm
    "overdue_ratio",  # recency / usual gap: late compared with their own rhythm
    "active_span_days",  # tenure - recency: first to last purchase
    "frequency_trend_90d",  # share of the year's baskets in the last 90 days
    "monetary_trend_90d",  # share of the year's spend in the last 90 days
    "gap_overdue_ratio",  # recency / mean gap between purchase days
    "gap_zscore",  # (recency - mean gap) / spread of gaps: how unusual today's silence is
    "gap_max_overdue_ratio",  # recency / longest gap so far: silent longer than ever before
    "purchase_day_rate",  # purchase days per day since the first purchase (within the year)
)
"""Ratios of features: scale-free, so they carry over between snapshots of different history lengths."""

MODEL_INPUTS: tuple[str, ...] = (*NUMERIC_FEATURES, *DERIVED_INPUTS)
METADATA_FILE = "churn_model.json"
BOOSTER_FILE = "model.lgb"  # the name mlflow.lightgbm uses, so a logged model folder loads directly


def _derive(v: Mapping[str, Any], maximum: Callable[[Any, Any], Any]) -> dict[str, Any]:
    """DERIVED_INPUTS from feature values: scalars (``maximum=max``) or arrays (``np.maximum``).

    ``maximum(x, 1)`` keeps a missing (NaN) x missing with both, so NaN means "unknown" either way.
    """
    tenure = v["days_since_registration"] + 1.0
    gap = tenure / maximum(v["orders_total"], 1.0)
    recency = v["recency_days"]
    first = v["first_purchase_days"] + 1.0
    return {
        "days_between_orders": gap,
        "overdue_ratio": recency / gap,
        "active_span_days": tenure - recency,
        "frequency_trend_90d": v["frequency_90d"] / maximum(v["frequency_365d"], 1.0),
        "monetary_trend_90d": v["monetary_90d"] / maximum(v["monetary_365d"], 1.0),
        "gap_overdue_ratio": recency / v["purchase_gap_mean_365d"],
        "gap_zscore": (recency - v["purchase_gap_mean_365d"]) / v["purchase_gap_std_365d"],
        "gap_max_overdue_ratio": recency / v["purchase_gap_max_365d"],
        "purchase_day_rate": v["purchase_days_365d"] / (first - maximum(first - 365.0, 0.0)),
    }


def _as_float(value: object) -> float:
    if value is None:
        return math.nan
    return float(value)  # bools become 0.0 / 1.0


def input_row(features: Mapping[str, object], names: tuple[str, ...] = MODEL_INPUTS) -> np.ndarray:
    """One member's model inputs (float64, NaN for missing) from a feature dict."""
    # numpy scalars divide like the training frame's columns: x / 0 is inf (0 / 0 NaN), never an exception
    # (a member scored as of a day before it registered has a tenure of 0).
    values = {name: np.float64(_as_float(features.get(name))) for name in NUMERIC_FEATURES}
    with np.errstate(divide="ignore", invalid="ignore"):
        values.update(_derive(values, max))
    return np.array([values[name] for name in names], dtype=np.float64)


def input_frame(features: pd.DataFrame, names: tuple[str, ...] = MODEL_INPUTS) -> pd.DataFrame:
    """Model inputs of many members (rows of ``features_as_of`` or of feature dicts)."""
    values = {
        name: pd.to_numeric(features[name], errors="coerce").astype(np.float64).to_numpy()
        if name in features.columns else np.full(len(features), np.nan)
        for name in NUMERIC_FEATURES
    }
    with np.errstate(divide="ignore", invalid="ignore"):  # x / 0: inf, 0 / 0: NaN (what the model was trained on)
        values.update(_derive(values, np.maximum))
    return pd.DataFrame({name: values[name] for name in names}, index=features.index)


@dataclass
class ChurnModel:
    """A trained booster, the inputs it reads in order, and the horizon its label used."""

    booster: Any  # lightgbm.Booster
    horizon_days: int
    inputs: tuple[str, ...] = MODEL_INPUTS
    info: dict[str, Any] = field(default_factory=dict)
    _fast: Any = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def score(self, features: Mapping[str, object]) -> float:
        """Probability that the member makes no purchase within ``horizon_days`` (one feature dict)."""
        return self.score_row(input_row(features, self.inputs))

    def score_row(self, row: np.ndarray) -> float:
        """The booster's answer for one row of ``input_row(features, self.inputs)`` (rows can be shared
        by models that read the same inputs: one row per request)."""
        fast = self._fast or self._init_fast()
        if fast is None:
            return float(self.booster.predict(row.reshape(1, -1))[0])
        return fast(row)

    def score_frame(self, inputs: pd.DataFrame) -> np.ndarray:
        """Probabilities for many members at once (a frame of ``input_frame`` columns)."""
        return self.booster.predict(inputs[list(self.inputs)].to_numpy(dtype=np.float64))

    def _init_fast(self) -> Callable[[np.ndarray], float] | None:
        """Bind LightGBM's single-row fast predictor (None if this LightGBM lacks it)."""
        try:
            from lightgbm.basic import _LIB, _c_str, _safe_call
        except ImportError:  # pragma: no cover - private API moved: fall back to Booster.predict
            return None
        handle = ctypes.c_void_p()
        # predict_type 0 = probability; start_iteration 0, num_iteration -1 = all; data_type 1 = float64
        _safe_call(_LIB.LGBM_BoosterPredictForMatSingleRowFastInit(
            self.booster._handle, ctypes.c_int(0), ctypes.c_int(0), ctypes.c_int(-1), ctypes.c_int(1),
            ctypes.c_int32(len(self.inputs)), _c_str("num_threads=1"), ctypes.byref(handle),
        ))
        predict = _LIB.LGBM_BoosterPredictForMatSingleRowFast
        out_len = ctypes.c_int64()
        lock = self._lock

        def fast(row: np.ndarray) -> float:
            out = np.zeros(1, dtype=np.float64)
            # The fast config holds scratch buffers: one caller at a time.
            with lock:
                _safe_call(predict(handle, row.ctypes.data_as(ctypes.c_void_p), ctypes.byref(out_len),
                                   out.ctypes.data_as(ctypes.POINTER(ctypes.c_double))))
            return float(out[0])

        fast.handle = handle  # type: ignore[attr-defined]
        self._fast = fast
        return fast

    def __del__(self) -> None:
        fast = self._fast
        if fast is not None:
            try:
                from lightgbm.basic import _LIB

                _LIB.LGBM_FastConfigFree(fast.handle)
            except Exception:  # pragma: no cover - interpreter shutdown
                pass

    def save(self, folder: str | Path) -> Path:
        """Write ``model.lgb`` and ``churn_model.json`` into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(folder / BOOSTER_FILE))
        meta = {"horizon_days": self.horizon_days, "inputs": list(self.inputs), "info": self.info}
        (folder / METADATA_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> ChurnModel:
        """Load a model written by ``save``, or a logged MLflow model folder (metadata under ``extra_files/``)."""
        import lightgbm as lgb

        folder = Path(folder)
        meta_path = folder / METADATA_FILE
        if not meta_path.exists():
            meta_path = folder / "extra_files" / METADATA_FILE
        meta = json.loads(meta_path.read_text())
        booster = lgb.Booster(model_file=str(folder / BOOSTER_FILE))
        inputs = tuple(meta["inputs"])
        if tuple(booster.feature_name()) != inputs:
            raise ValueError(f"{folder}: booster inputs {booster.feature_name()} differ from {inputs}")
        return cls(booster=booster, horizon_days=int(meta["horizon_days"]), inputs=inputs, info=meta.get("info", {}))
