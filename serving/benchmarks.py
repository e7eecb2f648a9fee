"""Benchmarks behind ``nbo bench``: figures and ratios measured side by side in one run."""

from __future__ import annotations

import random
import re
import shutil
import subprocess
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import redis
from rich.console import Console
from rich.table import Table

from engine.feature_store import FeatureStore
from engine.member_state import Programme
from engine.redis_server import start_redis_server
from engine.rules.benchmark import latency_percentiles_us
from engine.settings import Settings


def redis_benchmark_hset(port: int, requests: int = 200_000, pipeline: int = 64) -> float | None:
    """redis-benchmark's pipelined HSET rate (requests/s) against the server on ``port``."""
    binary = shutil.which("redis-benchmark")
    if binary is None:
        return None
    out = subprocess.run(
        [binary, "-h", "127.0.0.1", "-p", str(port), "-t", "hset", "-n", str(requests), "-P", str(pipeline), "-q"],
        capture_output=True, text=True, timeout=120,
    ).stdout
    found = re.findall(r"HSET[^:]*:\s*([\d.]+)\s*requests per second", out.replace("\r", "\n"))
    return float(found[-1]) if found else None


def purchase_events(members: int, events: int, now: datetime, seed: int = 1) -> tuple[list[dict], list[dict]]:
    """Register events and raw purchase events (3 lines each) spread over ``members``."""
    rng = random.Random(seed)
    registers = [
        {"event_id": f"r{m}", "type": "register", "member_id": f"B{m}", "ts": (now - timedelta(days=400)).isoformat(),
         "store_id": f"S{m % 40:03d}", "region": "north"}
        for m in range(members)
    ]
    purchases = []
    for i in range(events):
        ts = now - timedelta(days=rng.randrange(0, 365), minutes=rng.randrange(0, 1440))
        purchases.append({
            "event_id": f"p{i}", "type": "purchase", "member_id": f"B{rng.randrange(members)}", "ts": ts.isoformat(),
            "store_id": "S001",
            "lines": [{"sku": f"SKU{rng.randrange(2000):05d}", "qty": 1, "amount": round(rng.uniform(2, 40), 2),
                       "category": "snacks"} for _ in range(3)],
        })
    return registers, purchases


def _ingest_worker(url: str, shard: list[dict], batch: int, now: datetime, ready, go, done) -> None:
    settings = Settings(_env_file=None, pii_key="bench")
    store = FeatureStore(redis.Redis.from_url(url, decode_responses=True), Programme.from_settings(settings),
                         clock=lambda: now)
    ready.release()
    go.wait()
    accepted = sum(store.ingest(shard[i:i + batch]).accepted for i in range(0, len(shard), batch))
    done.put(accepted)


def _ingest_in_processes(url: str, purchases: list[dict], processes: int, batch: int, now: datetime) -> float:
    """Events per second with ``processes`` ingesters sharing the load (as stream consumers do)."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    ready, go, done = ctx.Semaphore(0), ctx.Event(), ctx.Queue()
    shards = [[] for _ in range(processes)]
    for event in purchases:  # by member, as a consumer group keyed on member would
        shards[hash(event["member_id"]) % processes].append({**event, "event_id": "x" + event["event_id"]})
    workers = [ctx.Process(target=_ingest_worker, args=(url, shard, batch, now, ready, go, done)) for shard in shards]
    for worker in workers:
        worker.start()
    for _ in workers:
        ready.acquire()
    started = time.perf_counter()
    go.set()
    accepted = sum(done.get() for _ in workers)
    elapsed = time.perf_counter() - started
    for worker in workers:
        worker.join()
    return accepted / elapsed


def run_ingest_benchmark(
    events: int, members: int, batch: int, reads: int, console: Console, processes: int = 2
) -> dict:
    """Ingest rate vs raw HSET rate on the same fresh Redis, then one-member read latency."""
    now = datetime(2026, 6, 1, 12)
    with tempfile.TemporaryDirectory() as tmp:
        server = start_redis_server(Path(tmp))
        try:
            client = redis.Redis.from_url(server.url, decode_responses=True)
            settings = Settings(_env_file=None, pii_key="bench", var_dir=Path(tmp) / "var")
            store = FeatureStore(client, Programme.from_settings(settings), clock=lambda: now)
            registers, purchases = purchase_events(members, events, now)
            for start in range(0, len(registers), batch):
                store.ingest(registers[start:start + batch])

            started = time.perf_counter()
            accepted = 0
            for start in range(0, len(purchases), batch):
                accepted += store.ingest(purchases[start:start + batch]).accepted
            ingest_seconds = time.perf_counter() - started
            ingest_rate = accepted / ingest_seconds

            parallel_rate = _ingest_in_processes(server.url, purchase_events(members, events, now, seed=2)[1],
                                                 processes, batch, now)
            hset_rate = redis_benchmark_hset(server.port)

            ids = [f"B{random.randrange(members)}" for _ in range(reads)]
            read_samples, feature_samples = [], []
            for member_id in ids:
                t0 = time.perf_counter()
                store.read_state(member_id)
                t1 = time.perf_counter()
                store.member_features(member_id)
                t2 = time.perf_counter()
                read_samples.append(t1 - t0)
                feature_samples.append(t2 - t1)
            ping_samples = []
            for _ in range(reads):
                t0 = time.perf_counter()
                client.ping()
                ping_samples.append(time.perf_counter() - t0)
            days_per_member = client.hlen(f"m:{{{ids[0]}}}:d") // 2
        finally:
            server.stop()

    read_p50, read_p99 = latency_percentiles_us(read_samples)
    feat_p50, feat_p99 = latency_percentiles_us(feature_samples)
    ping_p50, ping_p99 = latency_percentiles_us(ping_samples)
    table = Table(title=f"nbo bench ingest ({events:,} purchases, {members:,} members, batch {batch})")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("ratio", justify="right")
    table.add_row("purchase events ingested / s", f"{ingest_rate:,.0f}",
                  f"{ingest_rate / hset_rate:.3f} of raw HSET" if hset_rate else "n/a")
    table.add_row(f"... with {processes} ingest processes / s", f"{parallel_rate:,.0f}",
                  f"{parallel_rate / hset_rate:.3f} of raw HSET" if hset_rate else "n/a")
    table.add_row("redis-benchmark HSET -P 64 / s", f"{hset_rate:,.0f}" if hset_rate else "not installed", "1.000")
    table.add_row("read one member's state (1 round trip) p50 / p99 us", f"{read_p50:.0f} / {read_p99:.0f}",
                  f"{read_p50 / ping_p50:.1f}x PING p50")
    table.add_row("read + compute full feature vector p50 / p99 us", f"{feat_p50:.0f} / {feat_p99:.0f}", "")
    table.add_row("PING p50 / p99 us", f"{ping_p50:.0f} / {ping_p99:.0f}", "1.0x")
    table.add_row("daily buckets per member (avg-ish)", f"{days_per_member}", "")
    console.print(table)
    return {"ingest_per_s": ingest_rate, "parallel_ingest_per_s": parallel_rate, "hset_per_s": hset_rate, "read_p99_us": read_p99, "features_p99_us": feat_p99}


# --- nbo bench api ---------------------------------------------------------------------------


def _wait_ready(port: int, seconds: float = 120) -> None:
    import urllib.request

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the server on port {port} did not become ready")


def _serve(env: dict, port: int, workers: int):
    import os
    import sys

    command = [sys.executable, "-m", "serving.cli", "serve", "--port", str(port), "--workers", str(workers)]
    return subprocess.Popen(command, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run_api_benchmark(members: int, days: int, rules: int, rate: float, seconds: float, console: Console) -> dict:
    """next-best-offer against an empty endpoint of the same app, latency at a fixed rate, 1 and 2 workers.

    The store holds the demo (2,000 members with 180 days, models trained on them) plus
    ``members`` synthetic members with ``days`` of history; ``rules`` generated checkout rules
    are added to the shipped ones. The load comes from this process; the server is another.
    """
    import os

    from engine.redis_server import free_port
    from engine.rules.benchmark import SHIPPED_FILES, generated_rules
    from engine.synthetic import generate
    from serving.demo import prepare_demo
    from serving.load import fixed_rate, json_body, saturate

    repo_rules = Path(__file__).resolve().parents[1] / "rules"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        server = start_redis_server(root / "redis")
        try:
            rules_dir = root / "rules"
            rules_dir.mkdir()
            for name in SHIPPED_FILES:
                shutil.copy(repo_rules / name, rules_dir / name)
            (rules_dir / "generated.yaml").write_text(generated_rules(rules - len(list(rules_dir.glob("*.yaml"))) + 2))
            env = {"REDIS_URL": server.url, "NBO_VAR_DIR": str(root / "var"), "NBO_RULES_DIR": str(rules_dir),
                   "NBO_MLFLOW_TRACKING_URI": f"sqlite:///{root}/mlruns/mlflow.db",
                   "NBO_MLFLOW_ARTIFACTS_DIR": str(root / "mlruns" / "artifacts"), "NBO_PII_KEY": "bench",
                   "NBO_STREAM_CONSUMER": "false"}
            saved = {k: os.environ.get(k) for k in env}
            os.environ.update(env)
            try:
                from engine.settings import Settings

                settings = Settings()
                console.print("preparing: demo data and models ...")
                info = prepare_demo(settings, say=lambda text: None)
                console.print(f"preparing: {members:,} more members with {days} days of history ...")
                data = generate(members=members, days=days, seed=11)
                from engine.feature_store import FeatureStore
                from engine.ingestion import backfill

                store = FeatureStore(redis.Redis.from_url(server.url, decode_responses=True),
                                     Programme.from_settings(settings))
                backfill(store, data.transactions, data.members)
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
            member_ids = data.members["member_id"].tolist()
            skus = data.catalogue["sku"].tolist()
            rng = random.Random(5)
            headers = {"Authorization": f"Bearer {info.key}"}

            def offer_request(i: int) -> tuple[str, str, bytes]:
                basket = [{"sku": rng.choice(skus), "qty": 1, "price": round(rng.uniform(3, 40), 1)}
                          for _ in range(rng.randint(1, 4))]
                return "POST", "/v1/next-best-offer", json_body(
                    {"request_id": f"bench-{i}-{rng.random()}", "member_id": rng.choice(member_ids),
                     "store_id": "S001", "channel": "pos", "basket": basket})

            def empty(i: int) -> tuple[str, str, None]:
                return "GET", "/healthz", None

            results: dict = {"rules": rules, "members": members + 2000}
            for workers in (1, 2):
                port = free_port()
                process = _serve(env, port, workers)
                try:
                    _wait_ready(port)
                    saturate("127.0.0.1", port, headers, offer_request, 2, connections=8)  # warm up
                    empty_run = saturate("127.0.0.1", port, headers, empty, seconds, connections=16)
                    offers_run = saturate("127.0.0.1", port, headers, offer_request, seconds, connections=16)
                    row = {"empty_rps": empty_run.throughput, "nbo_rps": offers_run.throughput,
                           "nbo_statuses": offers_run.statuses}
                    if workers == 1:
                        paced = fixed_rate("127.0.0.1", port, headers, offer_request, rate, seconds, connections=64)
                        row["paced"] = paced.summary()
                    results[workers] = row
                finally:
                    process.terminate()
                    process.wait(10)
        finally:
            server.stop()

    one, two = results[1], results[2]
    table = Table(title=f"nbo bench api ({rules} rules, {results['members']:,} members, 1,000-item catalogue)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("ratio", justify="right")
    paced = one["paced"]
    table.add_row(f"next-best-offer at {rate:.0f}/s, 1 worker: p50 / p99 ms", f"{paced['p50_ms']:.2f} / {paced['p99_ms']:.2f}",
                  f"{paced['ok']}/{paced['sent']} ok")
    table.add_row("empty endpoint, 1 worker, saturated / s", f"{one['empty_rps']:,.0f}", "1.00")
    table.add_row("next-best-offer, 1 worker, saturated / s", f"{one['nbo_rps']:,.0f}",
                  f"{one['nbo_rps'] / one['empty_rps']:.2f} of empty")
    table.add_row("empty endpoint, 2 workers / s", f"{two['empty_rps']:,.0f}", f"{two['empty_rps'] / one['empty_rps']:.2f}x 1 worker")
    table.add_row("next-best-offer, 2 workers / s", f"{two['nbo_rps']:,.0f}", f"{two['nbo_rps'] / one['nbo_rps']:.2f}x 1 worker")
    console.print(table)
    console.print(f"statuses: 1 worker {one['nbo_statuses']}, 2 workers {two['nbo_statuses']}")
    return results
