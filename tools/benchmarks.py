"""Benchmarks behind ``nbo bench``: figures and ratios measured side by side in one run."""

from __future__ import annotations

import random
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import redis
from rich.console import Console
from rich.table import Table

from engine.clock import Clock, clock_from_settings
from engine.feature_store import FeatureStore
from engine.keys import member_key
from engine.member_state import DAYS
from engine.programme import Programme
from engine.redis_server import RedisServer, client_from_url, start_redis_cluster, start_redis_server
from engine.settings import Settings
from tools.rules_benchmark import latency_percentiles_us


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
    store = FeatureStore(client_from_url(url, decode_responses=True), Programme.from_settings(settings),
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
            days_per_member = client.hlen(member_key(ids[0], DAYS)) // 2
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


# --- a service under test: its own Redis, rules, models and var dir; servers in other processes ---


@dataclass
class ServerProcess:
    """``nbo serve`` running in another process (uvicorn; with workers, a supervisor and its children)."""

    process: subprocess.Popen
    port: int
    log: Path
    """The server's stdout and stderr (JSON log lines)."""

    def wait_ready(self, seconds: float = 120) -> None:
        """Wait until ``/readyz`` says 200 (raise, with the log's tail, if the process exits or time runs out)."""
        import urllib.request

        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}:\n{self.log_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the server on port {self.port} did not become ready:\n{self.log_text()[-3000:]}")

    def get_json(self, path: str, key: str | None = None, timeout: float = 5) -> tuple[int, dict]:
        """GET ``path`` on a new connection (so successive calls may reach different workers)."""
        import json
        import urllib.error
        import urllib.request

        headers = {"Authorization": f"Bearer {key}"} if key else {}
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    def processes(self) -> list:
        """The server's processes (psutil): the main one and its children."""
        import psutil

        main = psutil.Process(self.process.pid)
        return [main, *main.children(recursive=True)]

    def worker_pids(self) -> set[int]:
        """The processes that answer requests: the workers under a supervisor, else the one process."""
        processes = self.processes()
        workers = [p for p in processes[1:] if any("spawn_main" in part for part in p.cmdline())]
        return {p.pid for p in workers} or {processes[0].pid}

    def rss_bytes(self) -> int:
        """Resident memory of the whole server (psutil, summed over its processes)."""
        import psutil

        total = 0
        for process in self.processes():
            try:
                total += process.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


@contextmanager
def environment(env: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the duration (Settings() and MLflow read them)."""
    import os

    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@dataclass
class BenchService:
    """Everything a server under test uses, under ``root``: a Redis it can stop and start again on the
    same port (append-only file, so data survives), a rules directory, an MLflow store, a var dir,
    an admin key, and the members and SKUs the load can use."""

    root: Path
    redis: RedisServer
    key: str = ""
    members: list[str] = field(default_factory=list)
    skus: list[str] = field(default_factory=list)
    now: datetime | None = None
    """The moment its servers' and commands' clocks start at (``NBO_NOW``); None: the real clock."""

    @property
    def rules_dir(self) -> Path:
        return self.root / "rules"

    @property
    def var_dir(self) -> Path:
        return self.root / "var"

    @property
    def env(self) -> dict[str, str]:
        return {"REDIS_URL": self.redis.url, "NBO_VAR_DIR": str(self.var_dir), "NBO_RULES_DIR": str(self.rules_dir),
                "NBO_MLFLOW_TRACKING_URI": f"sqlite:///{self.root}/mlruns/mlflow.db",
                "NBO_MLFLOW_ARTIFACTS_DIR": str(self.root / "mlruns" / "artifacts"), "NBO_PII_KEY": "bench",
                **({"NBO_NOW": self.now.isoformat()} if self.now is not None else {})}

    @classmethod
    def create(cls, root: Path, rule_files: list[Path] | None = None, now: datetime | None = None) -> BenchService:
        """A fresh Redis and a rules directory with ``rule_files`` (default: the shipped rules); ``now``: the
        moment the service's clock starts at (default: the real clock)."""
        rules = root / "rules"
        rules.mkdir(parents=True, exist_ok=True)
        for path in rule_files if rule_files is not None else sorted(REPO_RULES.glob("*.yaml")):
            shutil.copy(path, rules / path.name)
        return cls(root=root, redis=start_redis_server(root / "redis", persistent=True), now=now)

    def settings(self) -> Settings:
        with environment(self.env):
            return Settings()

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis.url, decode_responses=True)

    def clock(self) -> Clock:
        """The clock its servers run on (started at ``now``, else the real one)."""
        return clock_from_settings(self.settings())

    def serve(self, workers: int = 1, core: int | None = None, **env: str) -> ServerProcess:
        """Start ``nbo serve`` in another process on a free port (``env``: more variables, e.g.
        ``NBO_MODEL_RELOAD_SECONDS="1"``; ``core``: pinned to that CPU); its output goes to a log file under ``root``."""
        import os
        import sys

        from engine.redis_server import free_port
        from tools.wrk import pinned

        port = free_port()
        log = self.root / f"server-{port}.log"
        command = pinned([sys.executable, "-m", "serving.cli", "serve", "--port", str(port), "--workers", str(workers)],
                         core)
        with open(log, "wb") as out:
            process = subprocess.Popen(command, env={**os.environ, **self.env, **env}, stdout=out,
                                       stderr=subprocess.STDOUT)
        return ServerProcess(process, port, log)

    def stop_redis(self) -> None:
        self.redis.stop()

    def start_redis(self) -> None:
        """Start Redis again on the same port and folder (the append-only file brings the data back)."""
        self.redis = start_redis_server(self.redis.directory, port=self.redis.port, persistent=True)

    def close(self) -> None:
        import os
        import signal

        try:
            os.kill(self.redis.pid, signal.SIGCONT)  # a chaos run may have left it paused
        except ProcessLookupError:
            pass
        self.redis.stop()


REPO = Path(__file__).resolve().parents[1]
REPO_RULES = REPO / "rules"


@contextmanager
def demo_service(root: Path, console: Console, rule_files: list[Path] | None = None,
                 members: int = 0, days: int = 7) -> Iterator[BenchService]:
    """A service holding the demo (2,000 members with 180 days, models trained on them) plus
    ``members`` synthetic members with ``days`` of history; stopped at the end."""
    from engine.ingestion import backfill
    from tools.demo import prepare_demo

    service = BenchService.create(root, rule_files)
    try:
        settings = service.settings()
        with environment(service.env):
            console.print("preparing: demo data and models ...")
            info = prepare_demo(settings, say=lambda text: None)
        import pandas as pd

        demo = pd.read_parquet(settings.var_dir / "data" / "demo" / "transactions.parquet", columns=["member_id"])
        service.key = info.key
        service.members = sorted(demo["member_id"].astype(str).unique())
        service.skus = pd.read_parquet(settings.var_dir / "catalogue.parquet")["sku"].astype(str).tolist()
        if members:
            from tools.synthetic import generate

            console.print(f"preparing: {members:,} more members with {days} days of history ...")
            data = generate(members=members, days=days, seed=11)
            store = FeatureStore(service.client(), Programme.from_settings(settings))
            backfill(store, data.transactions, data.members)
            service.members = data.members["member_id"].astype(str).tolist()
            service.skus = data.catalogue["sku"].astype(str).tolist()
        yield service
    finally:
        service.close()


# --- nbo bench api ---------------------------------------------------------------------------


UNLIMITED_KEY = {"NBO_RATE_LIMITS__CHECKOUT__PER_SECOND": "1e6", "NBO_RATE_LIMITS__CHECKOUT__BURST": "2000000",
                 "NBO_RATE_LIMITS__READS__PER_SECOND": "1e6", "NBO_RATE_LIMITS__READS__BURST": "2000000"}
"""A server's environment in which the benchmark's one key never meets its rate limits (they still run)."""


def run_api_benchmark(members: int, days: int, rules: int, rate: float, seconds: float, console: Console,
                      compare: str | None = None, connections: int = 32) -> dict:
    """One server worker pinned to one core, ``wrk`` pinned to the other: the empty endpoint, the features
    read and next-best-offer saturated, next-best-offer paced at ``rate``; with ``compare="feast"``, Feast's
    feature server on the same core over the same feature vectors, loaded the same way.

    The store holds the demo (2,000 members with 180 days, models trained on them) plus ``members``
    synthetic members with ``days`` of history; ``rules`` generated checkout rules are added to the
    shipped ones. Every figure of a table comes from this one run (compare ratios, not absolutes).
    """
    from tools.rules_benchmark import SHIPPED_FILES, generated_rules
    from tools.wrk import cores, run_wrk

    available = cores()
    server_core, load_core = (available[0], available[1]) if len(available) > 1 else (None, None)
    results: dict = {"rules": rules, "connections": connections, "rate": rate, "seconds": seconds,
                     "cores": {"server": server_core, "wrk": load_core}}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "generated").mkdir()
        generated = root / "generated" / "generated.yaml"
        generated.write_text(generated_rules(rules - len(SHIPPED_FILES) + 2))
        with demo_service(root, console, [*(REPO_RULES / name for name in SHIPPED_FILES), generated],
                          members, days) as service:
            member_ids, skus = service.members, service.skus
            results["members"] = len(member_ids)

            def load(port: int, kind: str, paced: float | None = None, lua: str | None = None, key: str = service.key):
                run = run_wrk(f"http://127.0.0.1:{port}", kind, key, member_ids, skus, seconds,
                              connections=connections, rate=paced, core=load_core, request_lua=lua)
                console.print(f"  {kind}{' paced' if paced else ''}: {run.throughput:,.0f}/s, p50 {run.p50_us / 1000:.2f} ms, "
                              f"p99 {run.p99_us / 1000:.2f} ms, non-2xx {run.non_2xx}, errors {run.errors}")
                return run

            # One key drives the saturated runs: budgets above them, so the limiter is measured, not hit.
            server = service.serve(1, core=server_core, NBO_STREAM_CONSUMER="false", **UNLIMITED_KEY)
            try:
                server.wait_ready()
                console.print(f"nbo serve, 1 worker on core {server_core}; wrk on core {load_core}, {connections} connections")
                load(server.port, "next-best-offer")  # warm-up: caches, the allocator, the first answers
                ours = {"empty": load(server.port, "empty"), "features": load(server.port, "features"),
                        "next-best-offer": load(server.port, "next-best-offer"),
                        "paced": load(server.port, "next-best-offer", paced=rate)}
                _, sample = server.get_json(f"/v1/members/{member_ids[0]}/features", service.key)
            finally:
                server.stop()
            results["nbo"] = {name: run.__dict__ for name, run in ours.items()}
            if compare == "feast":
                results["feast"] = _feast_side(service, member_ids, sample["features"], server_core, load, console)
    _print_api_table(results, ours, rate, console)
    return results


def _feast_side(service: BenchService, member_ids: list[str], sample: dict, core: int | None, load,
                console: Console) -> dict:
    """Feast's feature server over the same vectors (materialised into a Redis of its own), loaded alike."""
    from engine.redis_server import free_port
    from tools import feast_compare

    python = feast_compare.feast_python(REPO / "var" / "bench" / "feast-venv", say=console.print)
    store = FeatureStore(service.client(), Programme.from_settings(service.settings()), clock=service.clock())
    vectors = {m: store.member_features(m) for m in member_ids}
    frame = feast_compare.feast_frame(pd_frame(vectors))
    redis_server = start_redis_server(service.root / "feast-redis")
    try:
        repo = feast_compare.write_repo(service.root / "feast-repo", frame, redis_server.port)
        seconds = feast_compare.materialise(python, repo)
        console.print(f"feast: {len(repo.features)} features of {len(frame):,} members materialised in {seconds:.1f} s")
        port = free_port()
        process = feast_compare.serve(python, repo, port, core, service.root / "feast.log")
        try:
            same = feast_compare.check_same_vector(port, repo, member_ids[0], sample)
            console.print(f"feast answers {same} of {len(repo.features)} features equal to ours for {member_ids[0]}")
            empty_lua = 'function request() return wrk.format("GET", "/health") end\n'
            runs = {"empty": load(port, "feast empty", lua=empty_lua),
                    "features": load(port, "feast features", lua=repo.request_lua())}
        finally:
            process.terminate()
            process.wait(timeout=30)
    finally:
        redis_server.stop()
    return {"features_count": len(repo.features), "same_as_ours": same, **{k: r.__dict__ for k, r in runs.items()}}


def pd_frame(vectors: dict[str, dict]):
    import pandas as pd

    return pd.DataFrame.from_dict(vectors, orient="index").rename_axis("member_id")


def _print_api_table(results: dict, ours: dict, rate: float, console: Console) -> None:
    empty = ours["empty"].throughput
    table = Table(title=f"nbo bench api: 1 worker, {results['rules']} rules, {results['members']:,} members, "
                        f"wrk -c{results['connections']} on its own core")
    for column in ("measure", "per second", "ratio", "p50 / p99 ms"):
        table.add_column(column, justify="left" if column == "measure" else "right")

    def row(label: str, run, ratio: str) -> None:
        table.add_row(label, f"{run.throughput:,.0f}", ratio, f"{run.p50_us / 1000:.2f} / {run.p99_us / 1000:.2f}")

    row("empty endpoint (/healthz), saturated", ours["empty"], "1")
    row("GET /v1/members/{id}/features, saturated", ours["features"], f"{ours['features'].throughput / empty:.2f} of empty")
    row("POST /v1/next-best-offer, saturated", ours["next-best-offer"],
        f"{ours['next-best-offer'].throughput / empty:.2f} of empty")
    paced = ours["paced"]
    row(f"next-best-offer offered {rate:.0f}/s", paced, f"{paced.throughput / rate:.2f} of offered")
    feast = results.get("feast")
    if feast:
        from types import SimpleNamespace

        f_empty, f_features = SimpleNamespace(**feast["empty"]), SimpleNamespace(**feast["features"])
        f_empty.throughput = f_empty.requests / f_empty.seconds
        f_features.throughput = f_features.requests / f_features.seconds
        row("Feast feature server: empty endpoint (/health)", f_empty, f"{f_empty.throughput / empty:.2f} of ours")
        row(f"Feast: get-online-features ({feast['features_count']} features)", f_features,
            f"{f_features.throughput / f_empty.throughput:.2f} of its empty")
        table.add_row("next-best-offer / Feast's features read", "", 
                      f"{ours['next-best-offer'].throughput / f_features.throughput:.2f}x", "")
        table.add_row("our features read / Feast's", "", f"{ours['features'].throughput / f_features.throughput:.2f}x", "")
    console.print(table)
    statuses = {k: (r.non_2xx, r.errors) for k, r in ours.items()}
    console.print(f"non-2xx and socket errors per run: {statuses}")


# --- a Redis Cluster next to a single Redis ---------------------------------------------------------


def _ingest_and_read(url: str, events: int, members: int, batch: int, reads: int, processes: int,
                     now: datetime) -> dict[str, float | None]:
    """Ingest rate (one process, and ``processes`` if more than one) and one-member read latency at ``url``."""
    client = client_from_url(url, decode_responses=True)
    settings = Settings(_env_file=None, pii_key="bench")
    store = FeatureStore(client, Programme.from_settings(settings), clock=lambda: now)
    registers, purchases = purchase_events(members, events, now)
    for start in range(0, len(registers), batch):
        store.ingest(registers[start:start + batch])
    started = time.perf_counter()
    accepted = sum(store.ingest(purchases[i:i + batch]).accepted for i in range(0, len(purchases), batch))
    rate = accepted / (time.perf_counter() - started)
    parallel = (_ingest_in_processes(url, purchase_events(members, events, now, seed=2)[1], processes, batch, now)
                if processes > 1 else None)
    rng = random.Random(3)
    samples = []
    for _ in range(reads):
        member_id = f"B{rng.randrange(members)}"
        t0 = time.perf_counter()
        store.read_state(member_id)
        samples.append(time.perf_counter() - t0)
    p50, p99 = latency_percentiles_us(samples)
    client.close()
    return {"ingest_per_s": rate, "parallel_ingest_per_s": parallel, "read_p50_us": p50, "read_p99_us": p99}


def run_cluster_benchmark(events: int, members: int, batch: int, reads: int, processes: int,
                          console: Console) -> dict[str, dict[str, float | None]]:
    """The same ingest and reads against one redis-server and a local 3-master Redis Cluster, side by side."""
    now = datetime(2026, 6, 1, 12)
    results: dict[str, dict[str, float | None]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, start in (("single Redis", start_redis_server), ("Redis Cluster, 3 masters", start_redis_cluster)):
            servers = start(Path(tmp) / name.split()[0])
            try:
                results[name] = _ingest_and_read(servers.url, events, members, batch, reads, processes, now)
            finally:
                servers.stop()
    single, cluster = results.values()
    table = Table(title=f"nbo bench cluster ({events:,} purchases, {members:,} members, batch {batch}, "
                        f"{reads:,} reads)")
    table.add_column("measure")
    for name in results:
        table.add_column(name, justify="right")
    table.add_column("cluster / single", justify="right")
    for label, key, fmt in (("purchases ingested / s, 1 process", "ingest_per_s", "{:,.0f}"),
                            (f"... with {processes} ingest processes / s", "parallel_ingest_per_s", "{:,.0f}"),
                            ("read one member's state p50 us", "read_p50_us", "{:.0f}"),
                            ("read one member's state p99 us", "read_p99_us", "{:.0f}")):
        if single[key] is not None:
            table.add_row(label, fmt.format(single[key]), fmt.format(cluster[key]), f"{cluster[key] / single[key]:.2f}")
    console.print(table)
    return results


# --- rate limits: what they add to next-best-offer --------------------------------------------------


def run_limits_benchmark(calls: int, requests: int, rounds: int, console: Console) -> dict:
    """What the rate limiter costs a request, side by side in one run on a fresh Redis: ``RateLimits.take`` alone
    (the local lease, and the Lua round trip it makes once per lease) against a PING round trip, and
    next-best-offer through the app in process with the limiter on and off, alternating ``rounds`` times."""
    import statistics

    from fastapi.testclient import TestClient

    from engine.redis_server import connect
    from serving.app import create_app
    from serving.auth import ApiKey
    from serving.rate_limits import RateLimits, lease_size
    from training.champions import ChampionModels

    now = datetime(2026, 6, 1, 12)
    with tempfile.TemporaryDirectory() as tmp:
        service = BenchService.create(Path(tmp), now=now)
        try:
            settings = service.settings()
            client = connect(settings)
            limits = RateLimits(client, settings.rate_limits)
            key = ApiKey(key_id="bench", role="pos")
            lease = lease_size(settings.rate_limits.checkout)
            # The default budget's lease, refilled faster than any run spends it: every call is admitted, so the
            # cost measured is the admitting one (local, and one Lua round trip per lease).
            limits.settings = settings.rate_limits.model_copy(update={"checkout": settings.rate_limits.checkout.model_copy(
                update={"per_second": 1e9, "burst": lease * 20})})
            assert lease_size(limits.settings.checkout) == lease
            take, ping = [], []
            for _ in range(calls):
                t0 = time.perf_counter_ns()
                limits.take(key, "score")
                take.append(time.perf_counter_ns() - t0)
            for _ in range(min(calls, 20_000)):
                t0 = time.perf_counter_ns()
                client.ping()
                ping.append(time.perf_counter_ns() - t0)

            registers, purchases = purchase_events(500, 3000, now)
            app = create_app(settings, redis_client=client, clock=lambda: now, background=False,
                             models=ChampionModels.from_models())
            per_request: dict[bool, list[float]] = {True: [], False: []}
            with TestClient(app) as http:
                services = app.state.services
                services.store.ingest(registers)
                for start in range(0, len(purchases), 1000):
                    services.store.ingest(purchases[start:start + 1000])
                headers = {"Authorization": f"Bearer {services.keys.create('pos')}"}
                rng = random.Random(3)
                defaults = services.rate_limits.settings

                def checkout(i: int) -> None:
                    body = {"request_id": f"lim-{i}", "member_id": f"B{rng.randrange(500)}", "store_id": "S001",
                            "channel": "pos", "basket": [{"sku": "SKU00001", "qty": 1, "price": 12.0}]}
                    response = http.post("/v1/next-best-offer", json=body, headers=headers)
                    assert response.status_code == 200, response.text

                for i in range(200):  # warm up
                    checkout(-i - 1)
                n = 0
                for round_ in range(rounds):
                    for enabled in ((True, False) if round_ % 2 == 0 else (False, True)):
                        services.rate_limits.settings = defaults.model_copy(update={"enabled": enabled})
                        t0 = time.perf_counter()
                        for _ in range(requests):
                            checkout(n)
                            n += 1
                        per_request[enabled].append((time.perf_counter() - t0) / requests * 1e6)
            client.close()
        finally:
            service.close()

    take_us = [t / 1000 for t in take]
    ping_p50 = statistics.median(ping) / 1000
    on, off = statistics.median(per_request[True]), statistics.median(per_request[False])
    table = Table(title=f"nbo bench limits ({calls:,} takes; next-best-offer {rounds} x {requests} requests per arm)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("ratio", justify="right")
    table.add_row(f"RateLimits.take, mean (lease of {lease}, then one Lua round trip)",
                  f"{statistics.fmean(take_us):.2f} us", f"{statistics.fmean(take_us) / ping_p50:.3f} of a PING")
    table.add_row("RateLimits.take, p50 / p99", f"{statistics.median(take_us):.2f} / "
                  f"{sorted(take_us)[int(len(take_us) * 0.99)]:.1f} us", "")
    table.add_row("PING round trip p50 (what a per-request check would cost)", f"{ping_p50:.0f} us", "1")
    table.add_row("next-best-offer in process, limiter on (median of rounds)", f"{on:.0f} us", f"{on / off:.3f}")
    table.add_row("next-best-offer in process, limiter off", f"{off:.0f} us", "1")
    table.add_row("difference on - off (noise: spread of rounds)", f"{on - off:+.0f} us",
                  f"+/- {statistics.pstdev(per_request[False]):.0f} us")
    console.print(table)
    return {"take_mean_us": statistics.fmean(take_us), "take_p99_us": sorted(take_us)[int(len(take_us) * 0.99)],
            "ping_p50_us": ping_p50, "nbo_on_us": on, "nbo_off_us": off, "lease": lease}
