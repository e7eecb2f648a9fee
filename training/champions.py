"""What serving holds: the ``champion`` version of each model, loaded once, swapped without a restart.

    models = ChampionModels.from_settings(settings).load()     # imports mlflow here, not at import
    models.score_churn(store.member_features(member_id))       # ~15-25 us
    models.recommend(state_or_id, basket=["85123A"], k=10)     # ~100 us
    models.reload_if_changed()                                  # a background task, every minute or so
    models.versions                                             # {"churn": "3", "recommender": "2"}

The loaded models live in one immutable ``LoadedModels`` value; a reload builds a new one and
replaces the reference in a single assignment, so a request sees the old models or the new ones,
never a mix, and needs no lock.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from recommender import BlendRecommender, MemberQuery, Recommendation, load_recommender
from training.churn_model import ChurnModel, input_row
from training.response_model import ResponseScore

if TYPE_CHECKING:
    from engine.settings import Settings

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHURN_MODEL = "churn"
RECOMMENDER_MODEL = "recommender"
LTV_MODEL = "ltv"
RESPONSE_MODEL = "response"
MODEL_KINDS: tuple[str, ...] = (CHURN_MODEL, RECOMMENDER_MODEL, LTV_MODEL, RESPONSE_MODEL)
RECOMMENDER_ARTIFACT = "recommender"  # name of the saved blend inside the logged pyfunc model
RESPONSE_ARTIFACT = "response"  # name of the saved uplift model inside the logged pyfunc model


class ModelUnavailable(RuntimeError):
    """No champion of this model is loaded (none registered yet, or it failed to load)."""


@dataclass(frozen=True)
class MemberScores:
    """One member's scores by every loaded model, from one input row (None: that model is not loaded)."""

    churn: float | None = None
    ltv: float | None = None
    ltv_horizon_days: int | None = None
    response: ResponseScore | None = None


@dataclass(frozen=True)
class LoadedModels:
    """The models in use and their registry versions, by kind (a kind absent: not loaded)."""

    models: Mapping[str, Any] = field(default_factory=dict)
    versions: Mapping[str, str] = field(default_factory=dict)

    @property
    def churn(self) -> ChurnModel | None:
        return self.models.get(CHURN_MODEL)

    @property
    def recommender(self) -> BlendRecommender | None:
        return self.models.get(RECOMMENDER_MODEL)


def mlflow_client(tracking_uri: str) -> Any:
    """An ``MlflowClient`` on ``tracking_uri`` (also the registry); imports mlflow (~2 s) on first use.

    MLflow also resolves some URIs through its process-wide settings, so they are pointed at the
    same store: a process works with one store at a time.
    """
    if tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    # Local artifacts are read in place: a progress bar per model load is noise in service logs.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def model_folder(client: Any, name: str, version: str) -> Path:
    """Local folder of a registered model version's files (a local artifact store is read in place)."""
    from urllib.parse import unquote, urlparse

    import mlflow.artifacts

    model_version = client.get_model_version(name, version)
    model_id = getattr(model_version, "model_id", None)
    location = client.get_logged_model(model_id).artifact_location if model_id else model_version.source
    parsed = urlparse(location)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=location, tracking_uri=client.tracking_uri))


def load_version(client: Any, name: str, version: str) -> Any:
    """Load one registered version, as the model object serving uses."""
    folder = model_folder(client, name, version)
    kind = client.get_model_version(name, version).tags.get("nbo.kind", name)
    if kind == CHURN_MODEL:
        return ChurnModel.load(folder)
    if kind == LTV_MODEL:
        from training.ltv import LtvModel

        return LtvModel.load(folder)
    if kind == RECOMMENDER_MODEL:
        return load_recommender(folder / "artifacts" / RECOMMENDER_ARTIFACT)
    if kind == RESPONSE_MODEL:
        from training.response_model import ResponseModel

        return ResponseModel.load(folder / "artifacts" / RESPONSE_ARTIFACT)
    raise ValueError(f"model {name!r} version {version}: unknown kind {kind!r}")


def alias_version(client: Any, name: str, alias: str = CHAMPION) -> str | None:
    """The version that holds ``alias``, or None if the model or the alias does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def member_query(member: object) -> MemberQuery:
    """A recommender query from a member id, a ``MemberState``, a feature dict or a ``MemberQuery``."""
    if member is None or isinstance(member, MemberQuery):
        return member or MemberQuery()
    if isinstance(member, str):
        return MemberQuery(member_id=member)
    profile = getattr(member, "profile", None)
    if isinstance(profile, Mapping):  # engine.member_state.MemberState: live purchases and store
        store = profile.get("store") or profile.get("last_store")
        return MemberQuery(member_id=member.member_id, items=dict(member.items), store=store)
    if isinstance(member, Mapping):  # a feature dict (member_features)
        member_id = member.get("member_id")
        store = member.get("home_store") or member.get("last_store")
        return MemberQuery(member_id=str(member_id) if member_id is not None else None, store=store)
    raise TypeError(f"cannot recommend for a {type(member).__name__}: pass a member id, MemberState or features")


class ChampionModels:
    """The champion churn, lifetime-value and response models and the recommender, from the MLflow registry."""

    def __init__(
        self,
        tracking_uri: str | None,
        churn_name: str = CHURN_MODEL,
        recommender_name: str = RECOMMENDER_MODEL,
        alias: str = CHAMPION,
        ltv_name: str = LTV_MODEL,
        response_name: str = RESPONSE_MODEL,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.names = {CHURN_MODEL: churn_name, RECOMMENDER_MODEL: recommender_name, LTV_MODEL: ltv_name,
                      RESPONSE_MODEL: response_name}
        self.alias = alias
        self._loaded = LoadedModels()
        self._reload_lock = threading.Lock()  # one reload at a time; readers never wait
        self.refused: dict[str, str] = {}
        """Per model, why the registry's champion could not be loaded (the previous one still serves)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> ChampionModels:
        return cls(settings.mlflow_tracking_uri)

    @classmethod
    def from_models(
        cls,
        churn: ChurnModel | None = None,
        recommender: BlendRecommender | None = None,
        churn_version: str = "local",
        recommender_version: str = "local",
        ltv: Any = None,
        response: Any = None,
        version: str = "local",
    ) -> ChampionModels:
        """Models already in memory (tests, notebooks); ``reload_if_changed`` then does nothing."""
        models = cls(None)
        given = {CHURN_MODEL: (churn, churn_version), RECOMMENDER_MODEL: (recommender, recommender_version),
                 LTV_MODEL: (ltv, version), RESPONSE_MODEL: (response, version)}
        models._loaded = LoadedModels({k: m for k, (m, _) in given.items() if m is not None},
                                      {k: v for k, (m, v) in given.items() if m is not None})
        return models

    def load(self) -> Self:
        """Load the current champions (a model without one stays unavailable).

        Also limits BLAS to one thread in this process: one member's matrix-vector product is far
        too small to split, and OpenBLAS's thread hand-off made it ~40% slower.
        """
        from threadpoolctl import threadpool_limits

        threadpool_limits(1, "blas")
        self.reload_if_changed()
        return self

    def champion_versions(self) -> dict[str, str | None]:
        """The registry's current champion version of each model (asks the registry)."""
        if self.tracking_uri is None:
            return self.versions
        client = mlflow_client(self.tracking_uri)
        return {kind: alias_version(client, name, self.alias) for kind, name in self.names.items()}

    def reload_if_changed(self) -> bool:
        """Load any champion that moved since the last load and swap it in; True if anything changed.

        A version that fails to load is logged and the model in use is kept.
        """
        if self.tracking_uri is None:
            return False
        with self._reload_lock:
            wanted = self.champion_versions()
            current = self._loaded
            models, versions = dict(current.models), dict(current.versions)
            client = mlflow_client(self.tracking_uri)
            for kind in MODEL_KINDS:
                if wanted[kind] != versions.get(kind):
                    loaded = self._load_or_keep(client, kind, wanted[kind])
                    if loaded is not False:
                        if loaded is None:
                            models.pop(kind, None)
                            versions.pop(kind, None)
                        else:
                            models[kind], versions[kind] = loaded, wanted[kind]
                if wanted[kind] == versions.get(kind):  # the champion moved back to the version in use
                    self.refused.pop(kind, None)
            if versions == dict(current.versions):
                return False
            self._loaded = LoadedModels(models, versions)  # the swap: one reference assignment
            log.info("models now %s", self.versions)
            return True

    def _load_or_keep(self, client: Any, kind: str, version: str | None) -> Any:
        if version is None:
            return None
        try:
            loaded = load_version(client, self.names[kind], version)
        except Exception as exc:
            # A deleted or corrupt artifact: the previous champion keeps serving; the reason is logged
            # (with the traceback the first time) and kept in ``refused`` for /readyz, and the version
            # is tried again at the next reload (the files may be being copied).
            reason = f"version {version}: {type(exc).__name__}: {exc}"[:500]
            first = self.refused.get(kind) != reason
            self.refused[kind] = reason
            log.error("could not load %s %s; keeping version %s in use", self.names[kind], reason,
                      self.versions[kind], exc_info=first)
            return False
        self.refused.pop(kind, None)
        return loaded

    @property
    def versions(self) -> dict[str, str | None]:
        """Versions in use: ``{"churn": "3", "recommender": "2", "ltv": None, "response": None}`` (None: none loaded)."""
        loaded = self._loaded.versions
        return {kind: loaded.get(kind) for kind in MODEL_KINDS}

    def model(self, kind: str) -> Any:
        """The loaded model of a kind, or None."""
        return self._loaded.models.get(kind)

    @property
    def churn_model(self) -> ChurnModel | None:
        return self._loaded.churn

    @property
    def recommender(self) -> BlendRecommender | None:
        return self._loaded.recommender

    def score_churn(self, features: Mapping[str, object]) -> float:
        """Churn probability of one member from their feature dict (``FeatureStore.member_features``)."""
        model = self._loaded.churn
        if model is None:
            raise ModelUnavailable("no churn model is loaded (train one: nbo train churn ...)")
        return model.score(features)

    def score_member(self, features: Mapping[str, object]) -> MemberScores:
        """Churn, lifetime value and response of one member: the input row is built once for all three
        (they read the same inputs), so the three cost ~3 booster calls more than churn alone."""
        loaded = self._loaded
        churn, ltv, response = loaded.churn, loaded.models.get(LTV_MODEL), loaded.models.get(RESPONSE_MODEL)
        rows: dict[tuple[str, ...], Any] = {}

        def row(inputs: tuple[str, ...]) -> Any:
            if inputs not in rows:
                rows[inputs] = input_row(features, inputs)
            return rows[inputs]

        return MemberScores(
            churn=churn.score_row(row(churn.inputs)) if churn is not None else None,
            ltv=ltv.score_row(row(ltv.inputs)) if ltv is not None else None,
            ltv_horizon_days=int(ltv.horizon_days) if ltv is not None else None,
            response=response.score_row(row(response.inputs), loaded.versions.get(RESPONSE_MODEL))
            if response is not None else None,
        )

    def score_ltv(self, features: Mapping[str, object]) -> float:
        """Predicted spend (yuan) over the LTV model's horizon of one member from their feature dict."""
        model = self._loaded.models.get(LTV_MODEL)
        if model is None:
            raise ModelUnavailable("no lifetime-value model is loaded (train one: nbo train ltv ...)")
        return model.score(features)

    @property
    def ltv_horizon_days(self) -> int | None:
        model = self._loaded.models.get(LTV_MODEL)
        return None if model is None else int(model.horizon_days)

    @property
    def response_model(self) -> Any:
        """The champion uplift model (``training.response_model.ResponseModel``) or None."""
        return self._loaded.models.get(RESPONSE_MODEL)

    def recommend(self, member: object, basket: Sequence[str] = (), k: int = 10) -> list[Recommendation]:
        """Top ``k`` items for a member id, ``MemberState``, feature dict or ``MemberQuery``, never in ``basket``."""
        model = self._loaded.recommender
        if model is None:
            raise ModelUnavailable("no recommender is loaded (train one: nbo train recommender ...)")
        return model.recommend(member_query(member), basket, k)

    def similar(self, skus: Sequence[str], k: int = 10) -> list[Recommendation]:
        """Basket completion from item-item similarity (see ``ItemSimilarity.similar``)."""
        model = self._loaded.recommender
        if model is None:
            raise ModelUnavailable("no recommender is loaded (train one: nbo train recommender ...)")
        return model.similar(skus, k)
