"""The demo that ``make run`` starts with: synthetic members and history, trained models, a dev key."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from engine.clock import clock_from_settings
from engine.feature_store import FeatureStore
from engine.ingestion import backfill
from engine.programme import Programme
from engine.redis_server import connect
from engine.settings import Settings
from serving.auth import ApiKeys

DEMO_MEMBERS = 2000
DEMO_DAYS = 180
DEMO_SEED = 7
DEMO_HORIZON_DAYS = 30


@dataclass(frozen=True)
class DemoInfo:
    key: str
    member_id: str


def prepare_demo(settings: Settings, say: Callable[[str], None] = print) -> DemoInfo:
    """Demo members and history in an empty store, both models trained if none is registered,
    and a dev key (kept in var/dev-key). Each step is skipped when already done."""
    client = connect(settings)
    clock = clock_from_settings(settings)
    programme = Programme.from_settings(settings)
    store = FeatureStore(client, programme, clock=clock)
    today = programme.local(clock()).date()
    transactions = settings.var_dir / "data" / "demo" / "transactions.parquet"
    member_id = next(store.member_ids(), None)
    if member_id is None or not transactions.exists():
        data = _demo_data(transactions, today)
        if member_id is None:
            say(f"loading demo data: {DEMO_MEMBERS:,} members, {DEMO_DAYS} days of purchases ...")
            backfill(store, data.transactions, data.members)
            member_id = str(data.transactions["member_id"].iloc[-1])
    _train_missing_models(settings, transactions, today, say)
    return DemoInfo(key=_dev_key(settings, ApiKeys(client, clock=clock)), member_id=member_id)


def _demo_data(path: Path, today: date):
    """The demo's synthetic history, ending yesterday so the demo looks like a live programme."""
    from engine.transactions import write_transactions
    from tools.synthetic import generate

    start = today - timedelta(days=DEMO_DAYS)
    data = generate(members=DEMO_MEMBERS, days=DEMO_DAYS, seed=DEMO_SEED, start=start)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_transactions(data.transactions, path)
    # Serving reads sku -> category from here (basket categories for the rules).
    data.catalogue[["sku", "category"]].to_parquet(path.parents[2] / "catalogue.parquet", index=False)
    return data


def _train_missing_models(settings: Settings, transactions: Path, today: date, say: Callable[[str], None]) -> None:
    """Train each model that has no champion yet (its first version becomes the champion)."""
    from training.champions import ChampionModels
    from training.runs import train_churn_command, train_recommender_command

    versions = ChampionModels.from_settings(settings).champion_versions()
    last_month = today - timedelta(days=DEMO_HORIZON_DAYS)
    if versions["churn"] is None:
        say("training the churn model on the demo history ...")
        train_churn_command(transactions, "canonical", last_month, DEMO_HORIZON_DAYS, settings)
    if versions["recommender"] is None:
        say("training the recommender on the demo history ...")
        train_recommender_command(transactions, "canonical", last_month, 10, settings)


def _dev_key(settings: Settings, keys: ApiKeys) -> str:
    path = settings.var_dir / "dev-key"
    if path.exists():
        key = path.read_text().strip()
        if keys.verify(key) is not None:
            return key
    key = keys.create("admin", name="dev key (make run)")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key
