"""The demo that ``make run`` starts with: synthetic members and history, and a dev API key."""

from __future__ import annotations

from dataclasses import dataclass

from engine.feature_store import FeatureStore
from engine.ingestion import backfill
from engine.member_state import Programme
from engine.redis_server import connect
from engine.settings import Settings
from serving.auth import ApiKeys

DEMO_MEMBERS = 2000
DEMO_DAYS = 180
DEMO_SEED = 7


@dataclass(frozen=True)
class DemoInfo:
    key: str
    member_id: str


def prepare_demo(settings: Settings) -> DemoInfo:
    """Load demo data into an empty store and return a dev key (kept in var/dev-key) and a member."""
    client = connect(settings)
    store = FeatureStore(client, Programme.from_settings(settings))
    member_id = next(store.member_ids(), None)
    if member_id is None:
        from datetime import date, timedelta

        from engine.synthetic import generate

        # History up to yesterday, so "now" in the demo looks like a live programme.
        start = date.today() - timedelta(days=DEMO_DAYS)
        data = generate(members=DEMO_MEMBERS, days=DEMO_DAYS, seed=DEMO_SEED, start=start)
        backfill(store, data.transactions, data.members)
        member_id = str(data.transactions["member_id"].iloc[-1])
    return DemoInfo(key=_dev_key(settings, ApiKeys(client)), member_id=member_id)


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
