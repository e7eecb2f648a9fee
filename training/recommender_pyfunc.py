"""MLflow "model from code" for the recommender (logged as a file; never imported by the product).

It makes a registered recommender usable by MLflow's own tools (``mlflow.pyfunc.load_model``,
``mlflow models serve``): input rows ``member_id``, ``basket`` (SKUs joined by ``|``: item names
such as groceries' "whole milk" hold spaces), ``k``; output ``skus`` (``|``-joined, best first). Serving does not go through it: pyfunc's
per-call overhead is far above the 300 us budget, so ``training.champions`` loads the saved
blend directly.
"""

from __future__ import annotations

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

SEPARATOR = "|"


class RecommenderPyfunc(PythonModel):
    """The saved blend recommender behind MLflow's pyfunc interface."""

    def load_context(self, context) -> None:
        from recommender import load_recommender

        self.model = load_recommender(context.artifacts["recommender"])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        rows = []
        for row in model_input.itertuples(index=False):
            basket = [sku for sku in str(getattr(row, "basket", "") or "").split(SEPARATOR) if sku]
            k = int(getattr(row, "k", 10) or 10)
            recommended = self.model.recommend(str(row.member_id), basket, k)
            rows.append(SEPARATOR.join(r.sku for r in recommended))
        return pd.DataFrame({"skus": rows})


mlflow.models.set_model(RecommenderPyfunc())
