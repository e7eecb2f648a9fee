"""MLflow "model from code" for the response model (logged as a file; never imported by the product).

Input rows are member feature columns (``engine.features``); output columns ``redeem`` (the
chance of redeeming when treated) and ``uplift`` (incremental spend in yuan over the attribution
window). Serving loads the saved model directly (``training.champions``): pyfunc's per-call
overhead is far above the decision's budget.
"""

from __future__ import annotations

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel


class ResponsePyfunc(PythonModel):
    """The saved two-model uplift behind MLflow's pyfunc interface."""

    def load_context(self, context) -> None:
        from training.response_model import ResponseModel

        self.model = ResponseModel.load(context.artifacts["response"])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        return self.model.score_frame(model_input).reset_index(drop=True)


mlflow.models.set_model(ResponsePyfunc())
