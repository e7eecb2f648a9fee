"""``nbo bench soak``: mixed traffic at a fixed rate against a server in another process, for minutes.

The traffic (``MixedTraffic``) is what tills and apps send: 80% next-best-offer (members of the
store, baskets from the catalogue, a few retries of an earlier request id), 15% event batches
(purchases, check-ins, registrations of new members, a few duplicates) and 5% redemptions of
coupons the offers handed out (a few twice). The soak then checks what a long run can break:

* no 5xx and no dropped connection;
* next-best-offer p99 within the serving budget (at a rate one worker holds on this machine);
* the server's resident memory (psutil, all its processes) flat after warm-up (growth < 5%);
* Redis keys explained by the traffic: every answer, event-dedup, coupon-issuance marker and
  coupon key has a TTL; new answers, dedup keys, coupons and members match what was answered,
  accepted, issued and registered; no key of an unknown kind;
* a retried request got the same coupons as the first answer (nothing issued twice).
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field

import redis
from rich.console import Console
from rich.table import Table

from engine.clock import Clock, utc_now
from engine.keys import KINDS, kind_of
from tools.benchmarks import BenchService, ServerProcess
from tools.load import LoadResult, fixed_rate, json_body

NBO, EVENTS, REDEEM = "next-best-offer", "events", "redeem"

UNKNOWN = "unknown"
"""The census's name for a key that no kind of ``engine.keys.KINDS`` explains."""


def key_kind(key: str) -> str:
    """The name of the key's kind (``engine.keys``), or 'unknown'."""
    kind = kind_of(key)
    return kind.name if kind is not None else UNKNOWN


@dataclass
class KeyCensus:
    """Redis keys by kind, how many of the kinds that must expire do not, and memory used."""

    counts: Counter = field(default_factory=Counter)
    without_ttl: Counter = field(default_factory=Counter)
    used_memory: int = 0
    unknown_sample: list[str] = field(default_factory=list)

    @classmethod
    def take(cls, client: redis.Redis) -> KeyCensus:
        census = cls(used_memory=int(client.info("memory")["used_memory"]))
        must_expire = {kind.name for kind in KINDS if kind.expires}
        batch: list[str] = []

        def check_ttls() -> None:
            pipe = client.pipeline(transaction=False)
            for key in batch:
                pipe.ttl(key)
            for key, ttl in zip(batch, pipe.execute()):
                if ttl == -1:
                    census.without_ttl[key_kind(key)] += 1
            batch.clear()

        for key in client.scan_iter(count=2000):
            key = key.decode() if isinstance(key, bytes) else key
            kind = key_kind(key)
            census.counts[kind] += 1
            if kind == UNKNOWN and len(census.unknown_sample) < 5:
                census.unknown_sample.append(key)
            if kind in must_expire:
                batch.append(key)
                if len(batch) >= 2000:
                    check_ttls()
        check_ttls()
        return census


class MixedTraffic:
    """A request factory (``tools.load``) of checkout traffic, and the ``on_response`` hook that
    learns from the answers (coupons to redeem, what was accepted, retries that changed)."""

    def __init__(self, members: list[str], skus: list[str], prefix: str = "soak", seed: int = 1,
                 mix: tuple[float, float, float] = (0.80, 0.15, 0.05), retry_share: float = 0.02,
                 clock: Clock = utc_now) -> None:
        self.rng = random.Random(seed)
        self.clock = clock
        """The events' time: the service's clock (``BenchService.clock``), so they are never in its future."""
        self.members = list(members)
        self.skus = list(skus)
        self.prefix = prefix
        self.mix = mix
        self.retry_share = retry_share
        self.stores = [f"S{n:03d}" for n in range(1, 6)]
        self._recent_requests: deque[tuple[str, str]] = deque(maxlen=2000)
        self._recent_events: deque[dict] = deque(maxlen=2000)
        self._codes: deque[tuple[str, str]] = deque(maxlen=5000)
        self._redeemed: deque[tuple[str, str]] = deque(maxlen=500)
        self._pending: dict[int, tuple[str, object]] = {}
        self.first_coupons: dict[str, frozenset[str]] = {}
        """request_id -> codes of the first non-degraded answer (to compare retries with)."""
        self._registered: set[str] = set()
        self.stats = Counter()
        self.failed_event_batches: list[list[dict]] = []
        """Event batches that did not get a 200: a client resends them (``resend_failed_events``)."""

    # --- requests --------------------------------------------------------------------------------

    def __call__(self, i: int) -> tuple[str, str, bytes | None, str]:
        draw = self.rng.random()
        if draw < self.mix[0]:
            return self._offer(i)
        if draw < self.mix[0] + self.mix[1]:
            return self._events(i)
        return self._redeem(i)

    def _offer(self, i: int):
        if self._recent_requests and self.rng.random() < self.retry_share:
            request_id, member = self.rng.choice(self._recent_requests)
            self.stats["offer retries"] += 1
        else:
            request_id, member = f"{self.prefix}-r{i}", self.rng.choice(self.members)
            self._recent_requests.append((request_id, member))
        basket = [{"sku": self.rng.choice(self.skus), "qty": self.rng.randint(1, 3),
                   "price": round(self.rng.uniform(2, 40), 1)} for _ in range(self.rng.randint(1, 4))]
        self._pending[i] = (NBO, request_id)
        return "POST", "/v1/next-best-offer", json_body(
            {"request_id": request_id, "member_id": member, "store_id": self.rng.choice(self.stores),
             "channel": "pos", "basket": basket}), NBO

    def _events(self, i: int):
        now = self.clock().isoformat(timespec="seconds")
        batch = []
        for n in range(self.rng.randint(1, 3)):
            draw = self.rng.random()
            event_id = f"{self.prefix}-e{i}-{n}"
            if draw < 0.05 and self._recent_events:
                event = self.rng.choice(self._recent_events)  # a till resending what it sent before
                self.stats["duplicate events sent"] += 1
            elif draw < 0.15:
                member = f"{self.prefix.upper()}{i}N{n}"
                event = {"event_id": event_id, "type": "register", "member_id": member, "ts": now,
                         "store_id": self.rng.choice(self.stores), "region": "north"}
                self.members.append(member)
            elif draw < 0.30:
                event = {"event_id": event_id, "type": "checkin", "member_id": self.rng.choice(self.members), "ts": now}
            else:
                lines = [{"sku": self.rng.choice(self.skus), "qty": 1, "amount": round(self.rng.uniform(2, 60), 2)}
                         for _ in range(self.rng.randint(1, 4))]
                event = {"event_id": event_id, "type": "purchase", "member_id": self.rng.choice(self.members),
                         "ts": now, "store_id": self.rng.choice(self.stores), "lines": lines}
            self._recent_events.append(event)
            batch.append(event)
        self._pending[i] = (EVENTS, batch)
        return "POST", "/v1/events", json_body(batch), EVENTS

    def _redeem(self, i: int):
        if self._redeemed and self.rng.random() < 0.1:
            code, member = self.rng.choice(self._redeemed)  # presented twice: a 409 that says when
            self.stats["second redemptions sent"] += 1
        elif self._codes:
            code, member = self._codes.popleft()
            self._redeemed.append((code, member))
        else:
            code, member = "0" * 16, self.rng.choice(self.members)  # an unknown code: a 404
        self._pending[i] = (REDEEM, code)
        return "POST", f"/v1/coupons/{code}/redeem", json_body({"member_id": member, "store_id": "S001"}), REDEEM

    # --- answers ---------------------------------------------------------------------------------

    def on_response(self, i: int, kind: str | None, status: int, body: bytes) -> None:
        _, sent = self._pending.pop(i, (None, None))
        if kind == EVENTS:
            if status == 200:
                self._count_events(sent, json.loads(body))
            else:
                self.failed_event_batches.append(sent)
        elif kind == NBO and status == 200:
            answer = json.loads(body)
            if answer["degraded"]:
                self.stats["degraded answers"] += 1
                return
            self.stats["full answers"] += 1
            codes = frozenset(o["coupon"]["code"] for o in answer["offers"] if o.get("coupon"))
            if sent not in self.first_coupons:
                self.first_coupons[sent] = codes
                self.stats["coupons issued"] += len(codes)
                self._codes.extend((code, answer["member_id"]) for code in codes)
            elif self.first_coupons[sent] != codes:
                self.stats["retries answered with other coupons"] += 1
        elif kind == REDEEM and status == 200:
            self.stats["coupons redeemed"] += 1

    def _count_events(self, batch: list[dict], answer: dict) -> None:
        self.stats["events accepted"] += answer["accepted"]
        self.stats["event duplicates"] += answer["duplicates"]
        self.stats["events rejected"] += len(answer["rejected"])
        for event in batch:
            if event["type"] == "register" and event["event_id"] not in self._registered:
                self._registered.add(event["event_id"])
                self.stats["members registered"] += 1

    def resend_failed_events(self, server: ServerProcess, key: str) -> int:
        """Send the batches that failed again (as a till does after an outage); returns how many still fail."""
        import urllib.error
        import urllib.request

        failed, self.failed_event_batches = self.failed_event_batches, []
        for batch in failed:
            request = urllib.request.Request(
                f"http://127.0.0.1:{server.port}/v1/events", data=json_body(batch), method="POST",
                headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    self._count_events(batch, json.loads(response.read()))
                    self.stats["event batches resent"] += 1
            except (urllib.error.URLError, OSError):
                self.failed_event_batches.append(batch)
        return len(self.failed_event_batches)


class MemorySampler:
    """Samples the server's resident memory every ``interval`` seconds on a thread."""

    def __init__(self, server: ServerProcess, interval: float) -> None:
        self.server = server
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._start = time.monotonic()

    def __enter__(self) -> MemorySampler:
        self._start = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append((time.monotonic() - self._start, self.server.rss_bytes()))

    def _run(self) -> None:
        while True:
            self.samples.append((time.monotonic() - self._start, self.server.rss_bytes()))
            if self._stop.wait(self.interval):
                return

    def at(self, seconds: float) -> int:
        """The first sample taken at or after ``seconds``."""
        return next((rss for t, rss in self.samples if t >= seconds), self.samples[-1][1])


@dataclass
class SoakReport:
    seconds: float
    rate: float
    workers: int
    load: LoadResult
    traffic: Counter
    rss_start: int
    rss_warm: int
    rss_end: int
    keys_start: KeyCensus
    keys_end: KeyCensus
    checks: dict[str, tuple[bool, str]]

    @property
    def ok(self) -> bool:
        return all(passed for passed, _ in self.checks.values())

    def as_json(self) -> dict:
        return {"seconds": self.seconds, "rate": self.rate, "workers": self.workers, "load": self.load.summary(),
                "traffic": dict(self.traffic), "rss_mb": {"start": self.rss_start / 2**20, "after_warm_up": self.rss_warm / 2**20,
                                                          "end": self.rss_end / 2**20},
                "keys": {"start": dict(self.keys_start.counts), "end": dict(self.keys_end.counts),
                         "without_ttl": dict(self.keys_end.without_ttl)},
                "redis_used_memory_mb": {"start": self.keys_start.used_memory / 2**20,
                                         "end": self.keys_end.used_memory / 2**20},
                "checks": {name: {"ok": ok, "detail": detail} for name, (ok, detail) in self.checks.items()}}


def run_soak(service: BenchService, seconds: float, rate: float, workers: int = 1, warm_up: float | None = None,
             p99_budget_ms: float | None = 10.0, max_rss_growth: float | None = 0.05, connections: int = 64,
             server: ServerProcess | None = None) -> SoakReport:
    """Soak a server of ``service`` (started here unless given) with ``MixedTraffic`` at ``rate`` for ``seconds``.

    ``p99_budget_ms`` and ``max_rss_growth`` are checked only when given (a short run in the test
    suite checks errors and keys, not timings or memory).
    """
    own = server is None
    server = server or service.serve(workers)
    try:
        server.wait_ready()
        client = service.client()
        traffic = MixedTraffic(service.members, service.skus, prefix=f"soak{int(time.time())}", clock=service.clock())
        keys_start = KeyCensus.take(client)
        warm_up = min(60.0, seconds / 5) if warm_up is None else warm_up
        with MemorySampler(server, interval=max(1.0, seconds / 120)) as memory:
            load = fixed_rate("127.0.0.1", server.port, {"Authorization": f"Bearer {service.key}"}, traffic,
                              rate, seconds, connections=connections, on_response=traffic.on_response)
        keys_end = KeyCensus.take(client)
    finally:
        if own:
            server.stop()
    rss_start, rss_warm, rss_end = memory.samples[0][1], memory.at(warm_up), memory.samples[-1][1]
    checks = soak_checks(load, traffic.stats, keys_start, keys_end)
    nbo = load.kinds.get(NBO, LoadResult())
    if p99_budget_ms is not None:
        p99 = nbo.percentile_ms(99)
        checks["next-best-offer p99 within budget"] = (p99 <= p99_budget_ms, f"{p99:.2f} ms (budget {p99_budget_ms} ms)")
    if max_rss_growth is not None:
        growth = (rss_end - rss_warm) / rss_warm
        checks["server memory flat after warm-up"] = (
            growth < max_rss_growth, f"{growth:+.1%} ({rss_warm / 2**20:.0f} -> {rss_end / 2**20:.0f} MB)")
    return SoakReport(seconds, rate, workers, load, traffic.stats, rss_start, rss_warm, rss_end, keys_start,
                      keys_end, checks)


def soak_checks(load: LoadResult, stats: Counter, start: KeyCensus, end: KeyCensus) -> dict[str, tuple[bool, str]]:
    """The checks that do not depend on timing: errors, TTLs, and key growth explained by the traffic."""
    grown = {kind.name: end.counts[kind.name] - start.counts[kind.name] for kind in KINDS}
    without_ttl = sum(end.without_ttl.values())
    return {
        "no 5xx": (load.server_errors == 0, f"{load.server_errors} of {load.sent}"),
        "no dropped connections": (load.errors == 0, f"{load.errors}"),
        "retries got the same coupons": (stats["retries answered with other coupons"] == 0,
                                         f"{stats['retries answered with other coupons']} differed"),
        "expiring keys have a TTL": (without_ttl == 0, ", ".join(f"{k}: {v}" for k, v in end.without_ttl.items())
                                     or "all answer, dedup, issuance and coupon keys expire"),
        "no unknown keys": (end.counts[UNKNOWN] == 0, f"{end.counts[UNKNOWN]} {end.unknown_sample}"),
        "answers kept <= full answers": (grown["answer"] <= stats["full answers"],
                                         f"+{grown['answer']} keys for {stats['full answers']} full answers"),
        # A redemption is applied to the member as a coupon_redeemed event (exactly once per code), and
        # an event trigger's delivered action (bonus points) as a points_awarded event: at most one
        # per delivery marker.
        "dedup keys = events accepted + redemptions (+ trigger deliveries)": (
            0 <= grown["event dedup"] - stats["events accepted"] - stats["coupons redeemed"]
            <= grown["trigger delivery marker"],
            f"+{grown['event dedup']} keys for {stats['events accepted']} events accepted, "
            f"{stats['coupons redeemed']} redemptions and +{grown['trigger delivery marker']} trigger deliveries"),
        # Coupons come from answers, and from event triggers' deliveries (at most one per delivery marker).
        "coupons = issuances = coupons answered (+ trigger deliveries)": (
            grown["coupon"] == grown["coupon issuance"] and
            0 <= grown["coupon"] - stats["coupons issued"] <= grown["trigger delivery marker"],
            f"+{grown['coupon']} coupons, +{grown['coupon issuance']} issuance markers for "
            f"{stats['coupons issued']} coupons in answers and +{grown['trigger delivery marker']} trigger deliveries"),
        "members = registrations": (grown["member profile"] == stats["members registered"],
                                    f"+{grown['member profile']} profiles for {stats['members registered']} registrations"),
    }


def print_soak(report: SoakReport, console: Console) -> None:
    load = report.load
    table = Table(title=f"nbo bench soak: {report.seconds / 60:.1f} min at {report.rate:.0f}/s, "
                        f"{report.workers} worker(s)")
    for column in ("kind", "sent", "statuses", "p50 ms", "p99 ms"):
        table.add_column(column, justify="right" if column != "kind" else "left")
    for kind, result in sorted(load.kinds.items()):
        table.add_row(kind, f"{result.sent:,}", json.dumps(result.statuses), f"{result.percentile_ms(50):.2f}",
                      f"{result.percentile_ms(99):.2f}")
    table.add_row("all", f"{load.sent:,}", json.dumps(load.statuses), f"{load.percentile_ms(50):.2f}",
                  f"{load.percentile_ms(99):.2f}")
    console.print(table)
    mb = 2**20
    console.print(f"server RSS: start {report.rss_start / mb:.0f} MB, after warm-up {report.rss_warm / mb:.0f} MB, "
                  f"end {report.rss_end / mb:.0f} MB")
    console.print(f"Redis: {sum(report.keys_start.counts.values()):,} keys, {report.keys_start.used_memory / mb:.1f} MB "
                  f"-> {sum(report.keys_end.counts.values()):,} keys, {report.keys_end.used_memory / mb:.1f} MB")
    keys = Table(title="Redis keys by kind")
    for column in ("kind", "start", "end", "must expire", "without TTL"):
        keys.add_column(column, justify="right" if column != "kind" else "left")
    for kind, expires in (*((k.name, k.expires) for k in KINDS), (UNKNOWN, False)):
        keys.add_row(kind, f"{report.keys_start.counts[kind]:,}", f"{report.keys_end.counts[kind]:,}",
                     "yes" if expires else "", f"{report.keys_end.without_ttl[kind]:,}" if expires else "")
    console.print(keys)
    console.print("traffic: " + ", ".join(f"{k} {v:,}" for k, v in sorted(report.traffic.items())))
    for name, (ok, detail) in report.checks.items():
        console.print(f"[{'green' if ok else 'red'}]{'ok  ' if ok else 'FAIL'}[/] {name}: {detail}")


def soak_demo(minutes: float, rate: float, workers: int, p99_budget_ms: float, max_rss_growth: float,
              console: Console, out: str | None = None) -> bool:
    """``nbo bench soak``: the demo in a throw-away Redis and MLflow store, soaked; True if every check held."""
    import tempfile
    from pathlib import Path

    from tools.benchmarks import demo_service

    with tempfile.TemporaryDirectory() as tmp, demo_service(Path(tmp), console) as service:
        console.print(f"soaking: {minutes:g} min at {rate:g}/s on {workers} worker(s) ...")
        report = run_soak(service, minutes * 60, rate, workers, p99_budget_ms=p99_budget_ms,
                          max_rss_growth=max_rss_growth)
    print_soak(report, console)
    if out:
        Path(out).write_text(json.dumps(report.as_json(), indent=2, default=str))
    return report.ok
