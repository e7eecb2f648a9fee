"""Runs, versions and the ``champion`` alias in MLflow (SQLite backend, artifacts under ``mlruns/``).

Every training run logs its parameters, metrics (model and baselines), the data fingerprint, the
code version (git sha), plots, its holdout, and the model with its signature, and registers a new
version. The first version of a model becomes champion; after that only ``promote`` moves the
alias, and only when the candidate beats the champion **on the candidate's holdout**, both scored
now by the same code (or with ``force``, which is recorded on the version, on its run and in the
audit log). ``rollback`` gives the alias back to the previous champion.

Every change is an entry of the project's audit log (``engine.audit``: ``<var_dir>/audit/audit.jsonl``,
and the ``nbo:audit`` stream when ``REDIS_URL`` is set): ``model.registered``, ``model.promoted``,
``model.promotion_refused``, ``model.rolled_back``, with who, which versions, forced or not, and
the numbers compared.
"""

from __future__ import annotations

import getpass
import json
import re
import subprocess
import tempfile
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from engine.audit import AuditLog
from engine.clock import clock_from_settings
from recommender import evaluate_ranking, save_recommender
from training.champions import (
    CHAMPION,
    CHURN_MODEL,
    LTV_MODEL,
    RECOMMENDER_ARTIFACT,
    RECOMMENDER_MODEL,
    RESPONSE_ARTIFACT,
    RESPONSE_MODEL,
    alias_version,
    load_version,
    mlflow_client,
)
from training.churn import ChurnTraining, churn_metrics
from training.churn_model import METADATA_FILE, NUMERIC_FEATURES, input_frame
from training.data import LoadedTransactions
from training.recommendation import RecommenderTraining

if TYPE_CHECKING:
    from training.ltv import LtvTraining
    from training.response import ResponseTraining

if TYPE_CHECKING:
    from engine.settings import Settings

PRIMARY_METRIC = {CHURN_MODEL: "auc_roc", RECOMMENDER_MODEL: "ndcg_at_k", LTV_MODEL: "gini", RESPONSE_MODEL: "qini"}
"""The number promotion compares (higher is better)."""
HISTORY_TAG = "nbo.champion_history"  # registered-model tag: JSON list of champion versions, oldest first
REPO = Path(__file__).resolve().parents[1]


class PromotionRefused(Exception):
    """The candidate does not beat the champion on the candidate's holdout (the message has the numbers)."""


@dataclass
class ModelVersionInfo:
    """One registered version as ``nbo models list`` shows it."""

    name: str
    version: str
    run_id: str
    created: datetime
    metric: float | None
    is_champion: bool
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class PromotionResult:
    """What ``promote`` did and the numbers it compared."""

    name: str
    version: str
    previous: str | None
    promoted: bool
    forced: bool
    metric: str
    candidate_score: float | None = None
    champion_score: float | None = None
    message: str = ""


class ModelRegistry:
    """The MLflow tracking store and model registry of this project."""

    def __init__(self, tracking_uri: str, artifacts_dir: str | Path, audit: AuditLog, actor: str | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.artifacts_dir = Path(artifacts_dir).resolve()
        self.audit = audit
        self.actor = actor or f"cli:{_user()}"

    @classmethod
    def from_settings(cls, settings: Settings) -> ModelRegistry:
        """The configured store; audit entries go to the file, and to the stream when REDIS_URL is set."""
        client = None
        if settings.redis_url:  # never start an embedded Redis just to audit a training run
            import redis

            client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
        return cls(settings.mlflow_tracking_uri, settings.mlflow_artifacts_dir, AuditLog(client, settings.var_dir / "audit",
                                                                                clock=clock_from_settings(settings)))

    def _audit(self, action: str, name: str, version: str | None, **details: object) -> None:
        self.audit.record(action, actor=self.actor, subject=f"model:{name}/{version}", model=name, version=version,
                          **details)

    @property
    def client(self) -> Any:
        return mlflow_client(self.tracking_uri)

    # --- logging runs ---------------------------------------------------------------------------

    def log_churn(self, result: ChurnTraining, data: LoadedTransactions, name: str = CHURN_MODEL) -> ModelVersionInfo:
        """Log a churn run (params, metrics, plots, holdout, model) and register a new version."""
        import mlflow
        from mlflow.models import infer_signature

        from training.plots import churn_plots

        metrics = result.metrics_json()
        inputs = result.test.inputs[list(result.model.inputs)]
        with tempfile.TemporaryDirectory() as tmp_dir:
            tmp = Path(tmp_dir)
            with self._run(name, f"churn cutoff={result.split.test} horizon={result.split.horizon_days}d") as run:
                self._log_common(mlflow, data, CHURN_MODEL)
                mlflow.log_params({
                    "cutoff": result.split.test.isoformat(), "horizon_days": result.split.horizon_days,
                    "train_as_of": result.split.train.isoformat(), "valid_as_of": result.split.valid.isoformat(),
                    "validation": result.validation, "best_iteration": result.best_iteration,
                    **{f"lgb.{k}": v for k, v in result.params.__dict__.items()},
                })
                mlflow.log_metrics(_flat_metrics(metrics) | result.times.as_metrics())
                mlflow.log_dict(metrics, "metrics.json")
                mlflow.log_artifacts(str(churn_plots(result, tmp / "plots")[0].parent), "plots")
                holdout = result.test.features.assign(churned=result.test.label)
                holdout.to_parquet(tmp / "churn_holdout.parquet")
                mlflow.log_artifact(str(tmp / "churn_holdout.parquet"), "holdout")
                result.model.save(tmp / "model")
                example = inputs.dropna().head(3) if inputs.dropna().shape[0] else inputs.fillna(0).head(3)
                info = mlflow.lightgbm.log_model(
                    result.model.booster,
                    name="model",
                    signature=infer_signature(inputs, result.test_scores),
                    input_example=example,
                    registered_model_name=name,
                    pip_requirements=_requirements("lightgbm", "numpy", "pandas"),
                    extra_files=[str(tmp / "model" / METADATA_FILE)],
                    metadata={"horizon_days": result.split.horizon_days, "cutoff": result.split.test.isoformat()},
                )
        return self._registered(name, info.registered_model_version, run.info.run_id, CHURN_MODEL,
                                result.metrics["auc_roc"], data)

    def log_ltv(self, result: LtvTraining, data: LoadedTransactions, name: str = LTV_MODEL) -> ModelVersionInfo:
        """Log an LTV run (params, metrics, plots, holdout, model) and register a new version."""
        import mlflow
        from mlflow.models import infer_signature

        from training.plots import ltv_plots

        metrics = result.metrics_json()
        inputs = input_frame(result.test.features)[list(result.model.inputs)]
        with tempfile.TemporaryDirectory() as tmp_dir:
            tmp = Path(tmp_dir)
            with self._run(name, f"ltv cutoff={result.split.test} horizon={result.split.horizon_days}d") as run:
                self._log_common(mlflow, data, LTV_MODEL)
                mlflow.log_params({
                    "cutoff": result.split.test.isoformat(), "horizon_days": result.split.horizon_days,
                    "train_as_of": ",".join(d.isoformat() for d in result.split.train_dates),
                    "valid_as_of": result.split.valid.isoformat(), "best_iteration": result.best_iteration,
                    "tweedie_variance_power": result.params.tweedie_variance_power,
                    **{f"btyd.{k}": round(v, 6) for k, v in result.btyd_params.items()},
                })
                mlflow.log_metrics(_flat_metrics(metrics) | result.times.as_metrics())
                mlflow.log_dict(metrics, "metrics.json")
                mlflow.log_artifacts(str(ltv_plots(result, tmp / "plots")[0].parent), "plots")
                holdout = result.test.features.assign(spend=result.test.label)
                holdout.to_parquet(tmp / "ltv_holdout.parquet")
                mlflow.log_artifact(str(tmp / "ltv_holdout.parquet"), "holdout")
                result.model.save(tmp / "model")
                example = inputs.dropna().head(3) if inputs.dropna().shape[0] else inputs.fillna(0).head(3)
                info = mlflow.lightgbm.log_model(
                    result.model.booster, name="model", signature=infer_signature(inputs, result.test_scores),
                    input_example=example, registered_model_name=name,
                    pip_requirements=_requirements("lightgbm", "numpy", "pandas"),
                    extra_files=[str(tmp / "model" / METADATA_FILE)],
                    metadata={"horizon_days": result.split.horizon_days, "cutoff": result.split.test.isoformat()},
                )
        return self._registered(name, info.registered_model_version, run.info.run_id, LTV_MODEL,
                                result.metrics["gini"], data)

    def log_response(self, result: ResponseTraining, data: LoadedTransactions, name: str = RESPONSE_MODEL) -> ModelVersionInfo:
        """Log a response (uplift) run (params, metrics, plots, holdout, both boosters) and register a new version."""
        import mlflow

        from training.plots import response_plots

        metrics = result.metrics_json()
        with tempfile.TemporaryDirectory() as tmp_dir:
            tmp = Path(tmp_dir)
            with self._run(name, f"response test_from={result.test_from}") as run:
                self._log_common(mlflow, data, RESPONSE_MODEL)
                mlflow.log_params({"test_from": result.test_from.isoformat(), "attribution_days": result.attribution_days,
                                   "learner": result.model.learner, **result.model.rounds_params()})
                mlflow.log_metrics(_flat_metrics(metrics) | result.times.as_metrics())
                mlflow.log_dict(metrics, "metrics.json")
                mlflow.log_artifacts(str(response_plots(result, tmp / "plots")[0].parent), "plots")
                result.holdout.to_parquet(tmp / "response_holdout.parquet")
                mlflow.log_artifact(str(tmp / "response_holdout.parquet"), "holdout")
                saved = result.model.save(tmp / RESPONSE_ARTIFACT)  # MLflow keeps the folder's own name
                info = mlflow.pyfunc.log_model(
                    name="model", python_model=str(Path(__file__).with_name("response_pyfunc.py")),
                    artifacts={RESPONSE_ARTIFACT: str(saved)}, registered_model_name=name,
                    pip_requirements=_requirements("lightgbm", "numpy", "pandas"),
                )
        return self._registered(name, info.registered_model_version, run.info.run_id, RESPONSE_MODEL,
                                result.metrics["qini"], data)

    def log_recommender(
        self, result: RecommenderTraining, data: LoadedTransactions, name: str = RECOMMENDER_MODEL
    ) -> ModelVersionInfo:
        """Log a recommender run (params, metrics, holdout, model) and register a new version."""
        import mlflow
        from mlflow.models import infer_signature

        import recommender as recommender_package

        metrics = result.metrics_json()
        with tempfile.TemporaryDirectory() as tmp_dir:
            tmp = Path(tmp_dir)
            with self._run(name, f"recommender test_from={result.split.test_from} k={result.k}") as run:
                self._log_common(mlflow, data, RECOMMENDER_MODEL)
                mlflow.log_params({
                    "test_from": result.split.test_from.isoformat(),
                    "validation_from": result.split.validation_from.isoformat(),
                    "k": result.k,
                    **{f"als.{k}": v for k, v in result.als_params.as_dict().items()},
                    "basket_weight": result.weights.basket,
                    **{f"blend.{k}": round(v, 6) for k, v in result.weights.coefficients.items()},
                })
                mlflow.log_metrics(_flat_metrics(metrics) | result.times.as_metrics())
                mlflow.log_dict(metrics, "metrics.json")
                holdout = {"k": result.k, "test_from": result.split.test_from.isoformat(),
                           "truth": {m: sorted(items) for m, items in result.truth.items()}}
                mlflow.log_dict(holdout, "holdout/recommender_holdout.json")
                saved = save_recommender(result.model, tmp / RECOMMENDER_ARTIFACT)
                members = list(result.truth)[:2] or ["unknown"]
                example = pd.DataFrame({"member_id": members, "basket": [""] * len(members), "k": [result.k] * len(members)})
                output = pd.DataFrame({"skus": ["|".join(r.sku for r in result.model.recommend(m, (), result.k))
                                                for m in example["member_id"]]})
                with warnings.catch_warnings():
                    # "k" is an integer column and never missing: MLflow's hint about NaN in ints does not apply.
                    warnings.simplefilter("ignore", UserWarning)
                    signature = infer_signature(example, output)
                info = mlflow.pyfunc.log_model(
                    name="model",
                    python_model=str(Path(__file__).with_name("recommender_pyfunc.py")),
                    artifacts={RECOMMENDER_ARTIFACT: str(saved)},
                    code_paths=[str(Path(recommender_package.__file__).parent)],
                    signature=signature,
                    input_example=example,
                    registered_model_name=name,
                    pip_requirements=_requirements("numpy", "scipy", "pandas", "implicit", "threadpoolctl"),
                )
        return self._registered(name, info.registered_model_version, run.info.run_id, RECOMMENDER_MODEL,
                                result.reports["blend"].ndcg, data)

    def _run(self, name: str, run_name: str) -> Any:
        import mlflow

        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        client = self.client
        experiment_name = f"nbo-{name}"
        experiment = client.get_experiment_by_name(experiment_name)
        if experiment is None:
            self.artifacts_dir.mkdir(parents=True, exist_ok=True)
            experiment_id = client.create_experiment(experiment_name, artifact_location=self.artifacts_dir.as_uri())
        else:
            experiment_id = experiment.experiment_id
        return mlflow.start_run(experiment_id=experiment_id, run_name=run_name)

    def _log_common(self, mlflow: Any, data: LoadedTransactions, kind: str) -> None:
        sha, dirty = code_version()
        frame = data.frame
        mlflow.set_tags({
            "nbo.kind": kind,
            "mlflow.source.git.commit": sha,
            "code_version": sha + ("-dirty" if dirty else ""),
            "data_fingerprint": data.fingerprint,
        })
        mlflow.log_params({
            "data_source": data.source, "data_format": data.fmt, "data_fingerprint": data.fingerprint,
            "data_lines": len(frame), "data_members": int(frame["member_id"].nunique()),
            "data_first_ts": str(data.first_ts), "data_last_ts": str(data.last_ts),
            "code_version": sha + ("-dirty" if dirty else ""),
        })

    def _registered(
        self, name: str, version: str | int, run_id: str, kind: str, metric: float, data: LoadedTransactions
    ) -> ModelVersionInfo:
        client = self.client
        version = str(version)
        for key, value in {"nbo.kind": kind, "nbo.run_id": run_id, "data_fingerprint": data.fingerprint,
                           f"metric.{PRIMARY_METRIC[kind]}": f"{metric:.6f}", "code_version": code_version()[0]}.items():
            client.set_model_version_tag(name, version, key, value)
        self._audit("model.registered", name, version, run_id=run_id, metric=PRIMARY_METRIC[kind],
                    score=round(metric, 6), data_fingerprint=data.fingerprint)
        if alias_version(client, name) is None:
            self._move_champion(name, version, previous=None)
            self._audit("model.promoted", name, version, previous=None, forced=False,
                        reason="the first version of a model becomes champion")
        return self.version_info(name, version)

    # --- reading --------------------------------------------------------------------------------

    def version_info(self, name: str, version: str) -> ModelVersionInfo:
        client = self.client
        mv = client.get_model_version(name, str(version))
        kind = mv.tags.get("nbo.kind", name)
        metric = mv.tags.get(f"metric.{PRIMARY_METRIC.get(kind, '')}")
        return ModelVersionInfo(
            name=name, version=str(mv.version), run_id=mv.run_id or "",
            created=datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC),
            metric=float(metric) if metric else None,
            is_champion=CHAMPION in (mv.aliases or []),
            tags=dict(mv.tags),
        )

    def list_models(self) -> dict[str, list[ModelVersionInfo]]:
        """Every registered model's versions, newest first."""
        client = self.client
        out = {}
        for model in client.search_registered_models():
            versions = client.search_model_versions(f"name='{model.name}'")
            infos = [self.version_info(model.name, v.version) for v in versions]
            out[model.name] = sorted(infos, key=lambda v: int(v.version), reverse=True)
        return out

    def champion(self, name: str) -> str | None:
        return alias_version(self.client, name)

    def champion_history(self, name: str) -> list[str]:
        tags = self.client.get_registered_model(name).tags
        return json.loads(tags.get(HISTORY_TAG, "[]"))

    # --- promotion ------------------------------------------------------------------------------

    def holdout_score(self, name: str, candidate: str, model_version: str) -> float:
        """``model_version``'s primary metric on ``candidate``'s holdout, computed now."""
        import mlflow.artifacts

        client = self.client
        run_id = client.get_model_version(name, candidate).run_id
        kind = client.get_model_version(name, candidate).tags.get("nbo.kind", name)
        model = load_version(client, name, model_version)
        with tempfile.TemporaryDirectory() as tmp:
            if kind == CHURN_MODEL:
                path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="holdout/churn_holdout.parquet",
                                                           dst_path=tmp, tracking_uri=self.tracking_uri)
                holdout = pd.read_parquet(path)
                scores = model.score_frame(input_frame(holdout[list(NUMERIC_FEATURES)]))
                return churn_metrics(holdout["churned"].to_numpy(), scores)["auc_roc"]
            if kind == LTV_MODEL:
                from training.ltv import ltv_metrics

                path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="holdout/ltv_holdout.parquet",
                                                           dst_path=tmp, tracking_uri=self.tracking_uri)
                holdout = pd.read_parquet(path)
                scores = model.score_frame(input_frame(holdout[list(NUMERIC_FEATURES)]))
                return ltv_metrics(holdout["spend"].to_numpy(), scores)["gini"]
            if kind == RESPONSE_MODEL:
                from training.response import holdout_qini

                path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="holdout/response_holdout.parquet",
                                                           dst_path=tmp, tracking_uri=self.tracking_uri)
                return holdout_qini(model, pd.read_parquet(path))
            path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="holdout/recommender_holdout.json",
                                                       dst_path=tmp, tracking_uri=self.tracking_uri)
            holdout = json.loads(Path(path).read_text())
        truth = {m: frozenset(items) for m, items in holdout["truth"].items()}
        return evaluate_ranking(model, truth, int(holdout["k"])).ndcg

    def promote(self, name: str, version: str | int, force: bool = False, reason: str = "") -> PromotionResult:
        """Give ``version`` the champion alias if it beats the champion on its own holdout (or ``force``).

        Raises ``PromotionRefused`` (and writes an audit line) when it does not.
        """
        version = str(version)
        client = self.client
        client.get_model_version(name, version)  # a clear MLflow error if it does not exist
        kind = client.get_model_version(name, version).tags.get("nbo.kind", name)
        metric = PRIMARY_METRIC.get(kind, "score")
        previous = alias_version(client, name)
        if previous == version:
            return PromotionResult(name, version, previous, False, force, metric, message=f"version {version} is already champion")
        result = PromotionResult(name, version, previous, True, force, metric)
        if previous is not None:
            result.candidate_score = self.holdout_score(name, version, version)
            result.champion_score = self.holdout_score(name, version, previous)
            better = result.candidate_score > result.champion_score
            comparison = (f"{metric} on version {version}'s holdout: candidate {result.candidate_score:.4f}, "
                          f"champion (version {previous}) {result.champion_score:.4f}")
            if not better and not force:
                self._audit("model.promotion_refused", name, version, champion=previous, metric=metric,
                            candidate_score=result.candidate_score, champion_score=result.champion_score, reason=reason)
                raise PromotionRefused(f"not promoted: {comparison}; use --force to override (audited)")
            result.message = comparison + ("; forced" if not better else "")
        else:
            result.message = "no champion yet"
        self._move_champion(name, version, previous)
        tags = {"nbo.promoted_at": self.audit.clock().isoformat(timespec="seconds"),
                "nbo.promoted_over": previous or "", "nbo.promotion_forced": str(bool(force)).lower()}
        if reason:
            tags["nbo.promotion_reason"] = reason
        for key, value in tags.items():
            client.set_model_version_tag(name, version, key, value)
        run_id = client.get_model_version(name, version).run_id
        if run_id and force:
            client.set_tag(run_id, "nbo.promotion_forced", "true")
        self._audit("model.promoted", name, version, previous=previous, forced=bool(force), metric=metric,
                    candidate_score=result.candidate_score, champion_score=result.champion_score, reason=reason)
        return result

    def rollback(self, name: str, reason: str = "") -> PromotionResult:
        """Give the champion alias back to the version that held it before the current one."""
        client = self.client
        current = alias_version(client, name)
        history = self.champion_history(name)
        if current is not None and (not history or history[-1] != current):
            history.append(current)  # the alias was moved outside this tool: start from where it is
        if len(history) < 2:
            raise ValueError(f"model {name!r} has no earlier champion to roll back to (champions so far: {history or 'none'})")
        history.pop()
        target = history[-1]
        client.set_registered_model_alias(name, CHAMPION, target)
        client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history))
        client.set_model_version_tag(name, target, "nbo.restored_at", self.audit.clock().isoformat(timespec="seconds"))
        self._audit("model.rolled_back", name, target, previous=current, reason=reason)
        kind = client.get_model_version(name, target).tags.get("nbo.kind", name)
        return PromotionResult(name, target, current, True, False, PRIMARY_METRIC.get(kind, "score"),
                               message=f"champion {current} -> {target}")

    def _move_champion(self, name: str, version: str, previous: str | None) -> None:
        client = self.client
        history = self.champion_history(name)
        if previous is not None and (not history or history[-1] != previous):
            history.append(previous)
        history.append(version)
        client.set_registered_model_alias(name, CHAMPION, version)
        client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history))


def code_version() -> tuple[str, bool]:
    """The git commit of the code and whether tracked files differ from it ("unknown" outside git)."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=5, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                                    capture_output=True, text=True, timeout=5).stdout.strip())
        return sha, dirty
    except (OSError, subprocess.SubprocessError):
        return "unknown", False


def _requirements(*packages: str) -> list[str]:
    out = []
    for name in packages:
        try:
            out.append(f"{name}=={package_version(name)}")
        except PackageNotFoundError:
            out.append(name)
    return out


def _flat_metrics(document: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a metrics document as MLflow metric names (``baselines.rfm.auc_roc``)."""
    out: dict[str, float] = {}
    for key, value in document.items():
        name = _METRIC_NAME.sub("_", f"{prefix}{key}")
        if isinstance(value, dict):
            out.update(_flat_metrics(value, name + "."))
        elif isinstance(value, bool):
            continue
        elif isinstance(value, int | float | np.floating | np.integer) and np.isfinite(value):
            out[name] = float(value)
    return out


_METRIC_NAME = re.compile(r"[^A-Za-z0-9_\-. /:]")  # what MLflow accepts in a metric name


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
