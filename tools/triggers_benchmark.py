"""``nbo bench triggers``: the daily run over many members and the cost of event triggers per event.

Members: a synthetic shop's history (``tools.synthetic``) is folded with the one fold into member
states, and each state is written ``copies`` times under new ids (``FeatureStore.write_states``),
so a million members load in a minute instead of replaying twenty million events. The daily run
then runs the shipped rules over them in ``workers`` processes sharing the run, as
``nbo triggers run-daily`` does. Event triggers: batches of purchase events are ingested with and
without the triggers, alternating, and the difference per event is reported.
"""

from __future__ import annotations

import multiprocessing
import random
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import redis

from engine.feature_store import FeatureStore
from engine.keys import OUTBOX_STREAM
from engine.point_in_time import fold_history, history_events
from engine.programme import Programme
from engine.redis_server import start_redis_server
from engine.rules import RuleLimits, RuleRuntime
from engine.settings import Settings
from engine.triggers import DailyRun, Emitter, EventTriggers
from tools.synthetic import generate

START = date(2026, 1, 1)


def _parts(url: str, settings: Settings, rules_dir: Path) -> tuple[FeatureStore, RuleRuntime, Emitter]:
    client = redis.Redis.from_url(url, decode_responses=True)
    programme = Programme.from_settings(settings)
    store = FeatureStore(client, programme, clock=lambda: datetime.combine(START, datetime.min.time()) + timedelta(days=200))
    rules = RuleRuntime(rules_dir, programme.tz)
    assert rules.reload().ok
    return store, rules, Emitter(client, RuleLimits(client, programme.tz), programme)


def _daily_run(store: FeatureStore, rules: RuleRuntime, emitter: Emitter, settings: Settings,
               worker: str | None = None) -> DailyRun:
    return DailyRun(client=store.redis, store=store, programme=store.programme, rules=rules, emitter=emitter,
                    settings=settings.triggers, clock=store.clock, worker=worker)


def _daily_worker(url: str, settings: Settings, rules_dir: Path, as_of: date, worker: str) -> None:
    store, rules, emitter = _parts(url, settings, rules_dir)
    _daily_run(store, rules, emitter, settings, worker).run(as_of)


def load_members(store: FeatureStore, base: int, days: int, copies: int, seed: int = 7) -> dict[str, Any]:
    """``base`` synthetic members' folded states, each written ``copies`` times; returns counts and timings."""
    started = time.perf_counter()
    data = generate(members=base, days=days, seed=seed, start=START)
    states = fold_history(history_events(data.transactions, data.members), store.programme)
    folded = time.perf_counter()
    items = list(states.items())
    for copy in range(copies):
        batch = {}
        for member_id, state in items:
            batch[f"{member_id}-{copy}"] = state
            if len(batch) == 2000:
                store.write_states(batch)
                batch = {}
        if batch:
            store.write_states(batch)
    return {"members": len(items) * copies, "ids": [f"{member_id}-0" for member_id, _ in items],
            "fold_seconds": folded - started,
            "write_seconds": time.perf_counter() - folded, "last_day": START + timedelta(days=days - 1)}


def run_triggers_benchmark(members: int, base: int, days: int, workers: int, events: int,
                           rules_dir: Path, say) -> dict[str, Any]:
    """The daily run over ``members`` and event-trigger cost per event, on a fresh Redis."""
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        server = start_redis_server(Path(tmp))
        try:
            settings = Settings(_env_file=None, pii_key="bench", var_dir=Path(tmp) / "var", redis_url=server.url)
            store, rules, emitter = _parts(server.url, settings, rules_dir)
            copies = max(1, round(members / base))
            loaded = load_members(store, base, days, copies)
            say(f"loaded {loaded['members']:,} members: fold {loaded['fold_seconds']:.1f} s, "
                f"write {loaded['write_seconds']:.1f} s")
            as_of = loaded["last_day"] + timedelta(days=1)

            started = time.perf_counter()
            context = multiprocessing.get_context("spawn")
            processes = [context.Process(target=_daily_worker, args=(server.url, settings, rules_dir, as_of,
                                                                     f"bench-{i}")) for i in range(workers)]
            for process in processes:
                process.start()
            for process in processes:
                process.join()
            seconds = time.perf_counter() - started
            report = _daily_run(store, rules, emitter, settings).report(as_of)
            results["daily"] = {"members": loaded["members"], "workers": workers, "seconds": round(seconds, 1),
                                "us_per_member": round(seconds / loaded["members"] * 1e6 * workers, 1),
                                "status": report.status, **report.stats, "refused": report.refused,
                                "outbox_entries": store.redis.xlen(OUTBOX_STREAM)}
            say(f"daily run over {loaded['members']:,} members with {workers} workers: {seconds:.1f} s "
                f"({report.status}; {report.stats}; refused {report.refused})")
            results["events"] = _event_trigger_cost(store, rules, emitter, loaded["ids"], events, as_of)
            say(f"event triggers: {results['events']}")
        finally:
            server.stop()
    return results


def _event_trigger_cost(store: FeatureStore, rules: RuleRuntime, emitter: Emitter, ids: list[str], events: int,
                        as_of: date, batch: int = 500) -> dict[str, Any]:
    """Ingest alternating batches without and with event triggers; the difference per event."""
    triggers = EventTriggers(store, rules, emitter)
    rng = random.Random(3)
    existing = [rng.choice(ids) for _ in range(events)]
    moment = datetime.combine(as_of, datetime.min.time()) + timedelta(hours=10)
    plain = with_triggers = 0.0
    counted = {"plain": 0, "triggers": 0}
    fired = 0
    for n, start in enumerate(range(0, len(existing), batch)):
        chunk = [{"event_id": f"bench-{start + i}", "type": "purchase", "member_id": member_id,
                  "ts": (moment + timedelta(seconds=i)).isoformat(), "store_id": "S001",
                  "lines": [{"sku": "milk", "qty": 1, "amount": 12.5}]} for i, member_id in enumerate(existing[start:start + batch])]
        t0 = time.perf_counter()
        result = store.ingest(chunk)
        if n % 2:
            stats = triggers.after_ingest(result.applied)
            fired += stats.fired
            with_triggers += time.perf_counter() - t0
            counted["triggers"] += len(chunk)
        else:
            plain += time.perf_counter() - t0
            counted["plain"] += len(chunk)
    per_plain = plain / max(counted["plain"], 1) * 1e6
    per_triggers = with_triggers / max(counted["triggers"], 1) * 1e6
    return {"events": len(existing), "ingest_us_per_event": round(per_plain, 1),
            "with_triggers_us_per_event": round(per_triggers, 1),
            "trigger_cost_us_per_event": round(per_triggers - per_plain, 1), "fired": fired}
