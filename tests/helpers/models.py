"""Models for the registry specifications: a churn model that must lose to the champion."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from training.churn import ChurnTraining, churn_metrics
from training.churn_model import ChurnModel


def worse_churn(result: ChurnTraining) -> ChurnTraining:
    """The same run with a model fitted on shuffled labels: a candidate that must not replace the champion."""
    import lightgbm as lgb

    inputs = result.valid.inputs[list(result.model.inputs)]
    shuffled = np.random.default_rng(1).permutation(result.valid.label.to_numpy())
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_threads": 1, "min_data_in_leaf": 5},
                        lgb.Dataset(inputs, shuffled), num_boost_round=20)
    model = ChurnModel(booster=booster, horizon_days=result.model.horizon_days, inputs=result.model.inputs)
    scores = model.score_frame(result.test.inputs)
    return replace(result, model=model, test_scores=scores, metrics=churn_metrics(result.test.label, scores))
