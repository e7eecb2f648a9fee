"""Model training, registry and loading: churn (LightGBM) and the recommender, versioned in MLflow.

Public surface (each name is imported lazily, so ``from training.champions import ChampionModels``
in serving pulls in neither mlflow nor the pipelines):

* ``ChampionModels`` - what serving holds: champion models, ``score_churn``, ``recommend``, ``reload_if_changed``
* ``train_churn``, ``train_recommender`` - the pipelines (steps in ``training.churn`` / ``training.recommendation``)
* ``ModelRegistry`` - logging runs, registering versions, ``promote`` and ``rollback`` of the champion alias
* ``score_members`` - batch scoring into the feature store
* ``train_churn_command``, ``train_recommender_command`` - the ``nbo train`` commands end to end
"""

from __future__ import annotations

from importlib import import_module

_PUBLIC = {
    "ChampionModels": "training.champions",
    "ModelUnavailable": "training.champions",
    "ChurnModel": "training.churn_model",
    "train_churn": "training.churn",
    "train_recommender": "training.recommendation",
    "ModelRegistry": "training.registry",
    "PromotionRefused": "training.registry",
    "score_members": "training.batch",
    "train_churn_command": "training.runs",
    "train_recommender_command": "training.runs",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> object:
    if name in _PUBLIC:
        return getattr(import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'training' has no attribute {name!r}")
