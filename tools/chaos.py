"""``nbo bench chaos``: faults injected into a real running service, and what the service did.

Each fault runs against ``nbo serve`` in its own process and a redis-server this code can stop,
start again on the same port (its append-only file brings the data back) or pause:

* ``redis_restart_under_load``: Redis stopped during mixed traffic, then started again. Answers
  degrade (200, ``degraded``) or say 503 where Redis is needed, never 500; the service recovers
  without a restart; retried request ids get the coupons of their first answer; event batches
  refused during the outage are sent again by the client and applied; events already in the
  stream are applied after recovery (each exactly once).
* ``hung_redis``: Redis paused (SIGSTOP: it accepts connections and never answers) during
  next-best-offer traffic, with and without the circuit breaker (``engine.redis_circuit``).
* ``model_artifact_faults``: the champion moved to a version whose files are corrupt, then to
  one whose files are gone. The previous champion keeps serving; /readyz and the log say why.
* ``broken_rule_file``: a broken file dropped into the rules directory. The last good rules stay
  live; /readyz and GET /v1/rules say why; removing the file clears it.
* ``daily_run_killed``: ``nbo triggers run-daily`` killed mid-run and started again: it resumes its
  unfinished chunk, every member is evaluated once and each (rule, member, day) is emitted once.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from engine.keys import OUTBOX_STREAM, coupon_key, daily_run_key, emission_marker_key, event_key, issuance_key
from tools.benchmarks import BenchService, ServerProcess, environment
from tools.load import LoadResult, fixed_rate, json_body
from tools.soak import EVENTS, NBO, REDEEM, MixedTraffic

Checks = dict[str, tuple[bool, str]]


@dataclass
class FaultOutcome:
    """One fault: what was done, what was measured, and the checks with what they saw."""

    name: str
    injected: str
    checks: Checks = field(default_factory=dict)
    figures: dict[str, object] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(passed for passed, _ in self.checks.values())


def wait_for(condition: Callable[[], object], seconds: float, every: float = 0.2) -> object:
    """Poll ``condition`` until it returns something true or ``seconds`` pass; returns its last value."""
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every)


def post_json(server: ServerProcess, key: str, path: str, document: object) -> tuple[int, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}", data=json_body(document), method="POST",
                                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


class _Timeline(MixedTraffic):
    """Mixed traffic that also notes when each next-best-offer answer came and whether it was degraded."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.answers: list[tuple[float, bool, str]] = []
        self.request_members: dict[str, str] = {}

    def _offer(self, i: int):
        request = super()._offer(i)
        document = json.loads(request[2])
        self.request_members[document["request_id"]] = document["member_id"]
        return request

    def on_response(self, i: int, kind: str | None, status: int, body: bytes) -> None:
        if kind == NBO and status == 200:
            answer = json.loads(body)
            self.answers.append((time.monotonic(), answer["degraded"], answer["request_id"]))
        super().on_response(i, kind, status, body)


def _load_in_background(server: ServerProcess, key: str, factory, rate: float, seconds: float,
                        on_response=None) -> tuple[threading.Thread, list[LoadResult]]:
    results: list[LoadResult] = []

    def run() -> None:
        results.append(fixed_rate("127.0.0.1", server.port, {"Authorization": f"Bearer {key}"}, factory, rate,
                                  seconds, connections=64, on_response=on_response))

    thread = threading.Thread(target=run, name="chaos-load", daemon=True)
    thread.start()
    return thread, results


def _stream_events_applied(service: BenchService, prefix: str) -> int:
    return sum(1 for _ in service.client().scan_iter(match=event_key("*", f"{prefix}*"), count=5000))


def redis_restart_under_load(service: BenchService, server: ServerProcess, seconds: float = 30, rate: float = 100,
                             outage: float | None = None, stream_events: int = 2000,
                             stream_wait: float = 60) -> FaultOutcome:
    """Stop Redis a quarter into ``seconds`` of mixed traffic, start it again ``outage`` seconds later."""
    from engine.ingestion import publish_events

    outage = outage if outage is not None else seconds * 0.3
    pid_before = server.process.pid
    prefix = f"chaos{int(time.time())}"
    clock = service.clock()
    traffic = _Timeline(service.members, service.skus, prefix=prefix, seed=3, clock=clock)
    thread, results = _load_in_background(server, service.key, traffic, rate, seconds, traffic.on_response)
    time.sleep(seconds / 4)
    # Events a gateway put on the stream just before Redis went: some are consumed, the rest wait in it.
    now = clock().isoformat(timespec="seconds")
    stream_prefix = f"{prefix}-s"
    publish_events(service.client(), [{"event_id": f"{stream_prefix}{n}", "type": "checkin",
                                       "member_id": service.members[n % len(service.members)], "ts": now}
                                      for n in range(stream_events)])
    service.stop_redis()
    stopped_at = time.monotonic()
    time.sleep(outage)
    service.start_redis()
    started_at = time.monotonic()
    thread.join()
    load = results[0]

    ready = wait_for(lambda: server.get_json("/readyz")[0] == 200, 20)
    still_failing = traffic.resend_failed_events(server, service.key)
    # Every request degraded during the outage, and a sample answered before it, asked again.
    degraded_ids = sorted({rid for t, degraded, rid in traffic.answers if degraded})
    before_ids = [rid for rid, codes in traffic.first_coupons.items() if codes][:50]
    retried_differently, still_degraded = 0, 0
    for request_id in degraded_ids[:200] + before_ids:
        body = {"request_id": request_id, "member_id": traffic.request_members[request_id], "store_id": "S001",
                "channel": "pos", "basket": [{"sku": service.skus[0], "qty": 1, "price": 10.0}]}
        status, first = post_json(server, service.key, "/v1/next-best-offer", body)
        _, again = post_json(server, service.key, "/v1/next-best-offer", body)
        codes = {o["coupon"]["code"] for o in first.get("offers", []) if o.get("coupon")}
        if status != 200 or first.get("degraded"):
            still_degraded += 1
        if codes != {o["coupon"]["code"] for o in again.get("offers", []) if o.get("coupon")}:
            retried_differently += 1
        if request_id in traffic.first_coupons and traffic.first_coupons[request_id] != codes:
            retried_differently += 1
    applied = wait_for(lambda: _stream_events_applied(service, stream_prefix) >= stream_events and
                       _stream_events_applied(service, stream_prefix), stream_wait, every=1)
    applied = applied or _stream_events_applied(service, stream_prefix)
    client = service.client()
    coupons = sum(1 for _ in client.scan_iter(match=coupon_key("*"), count=5000))
    markers = sum(1 for _ in client.scan_iter(match=issuance_key("*", "*"), count=5000))

    full_after = [t for t, degraded, _ in traffic.answers if not degraded and t > started_at]
    nbo, events, redeem = (load.kinds.get(k, LoadResult()) for k in (NBO, EVENTS, REDEEM))
    outcome = FaultOutcome(
        "redis stopped and restarted under load",
        f"redis-server stopped (SHUTDOWN) {seconds / 4:.0f} s into {seconds:.0f} s of mixed traffic at {rate:g}/s, "
        f"started again {outage:.0f} s later on the same port; {stream_events} events put on the stream just before")
    outcome.figures = {
        "requests": load.sent, "statuses": {kind: r.statuses for kind, r in load.kinds.items()},
        "dropped connections": load.errors, "degraded answers": traffic.stats["degraded answers"],
        "full answers": traffic.stats["full answers"],
        "first full answer after restart (s)": round(min(full_after) - started_at, 2) if full_after else None,
        "outage (s)": round(started_at - stopped_at, 2), "event batches resent": traffic.stats["event batches resent"],
        "stream events applied": applied, "requests asked again after recovery": len(degraded_ids[:200]) + len(before_ids),
        "coupons": coupons, "issuance markers": markers,
        "nbo p50/p99 ms": f"{nbo.percentile_ms(50):.1f} / {nbo.percentile_ms(99):.1f}",
    }
    outcome.checks = {
        "no 500 and no dropped connection": (load.statuses.get(500, 0) == 0 and load.errors == 0,
                                             f"statuses {load.statuses}, dropped {load.errors}"),
        "next-best-offer always answered (200)": (set(nbo.statuses) <= {200}, f"{nbo.statuses}"),
        "the outage was seen (degraded answers)": (traffic.stats["degraded answers"] > 0,
                                                  f"{traffic.stats['degraded answers']} degraded"),
        "events and redemptions: 200 or a clear 503": (set(events.statuses) <= {200, 503} and
                                                       set(redeem.statuses) <= {200, 404, 409, 503},
                                                       f"events {events.statuses}, redeem {redeem.statuses}"),
        "recovered without a restart": (bool(full_after) and bool(ready) and server.process.poll() is None
                                        and server.process.pid == pid_before,
                                        f"full answers after restart: {len(full_after)}, ready: {bool(ready)}"),
        "refused event batches applied when resent": (still_failing == 0, f"{still_failing} still failing"),
        "stream events all applied, once": (applied == stream_events, f"{applied} of {stream_events}"),
        "retried requests: same coupons, nothing issued twice": (
            retried_differently == 0 and still_degraded == 0 and coupons == markers,
            f"{retried_differently} differed, {still_degraded} still degraded; {coupons} coupons for {markers} issuances"),
    }
    return outcome


def hung_redis(service: BenchService, server: ServerProcess, seconds: float = 12, rate: float = 50,
               pause: float = 4) -> dict[str, object]:
    """Pause Redis (SIGSTOP) ``pause`` seconds a third into ``seconds`` of next-best-offer traffic; the figures."""
    traffic = _Timeline(service.members, service.skus, prefix=f"hung{int(time.time())}", seed=4, mix=(1.0, 0.0, 0.0),
                        clock=service.clock())
    thread, results = _load_in_background(server, service.key, traffic, rate, seconds, traffic.on_response)
    time.sleep(seconds / 3)
    os.kill(service.redis.pid, signal.SIGSTOP)
    try:
        time.sleep(pause)
    finally:
        os.kill(service.redis.pid, signal.SIGCONT)
    thread.join()
    load = results[0]
    return {"requests": load.sent, "statuses": load.statuses, "dropped connections": load.errors,
            "degraded answers": traffic.stats["degraded answers"],
            "p50 ms": round(load.percentile_ms(50), 1), "p99 ms": round(load.percentile_ms(99), 1),
            "max ms": round(max(load.latencies) * 1000, 1) if load.latencies else None,
            "seconds to send and answer all": round(load.seconds, 1)}


def model_artifact_faults(service: BenchService, server: ServerProcess, model: str = "churn",
                          wait: float = 30) -> FaultOutcome:
    """Move the champion to a copy whose files are corrupt, then to one whose files are gone; then back.

    The server must poll the registry often (``NBO_MODEL_RELOAD_SECONDS=1``)."""
    from training.champions import CHAMPION, alias_version, mlflow_client, model_folder

    outcome = FaultOutcome("model artifact corrupt, then deleted",
                           f"the {model} champion moved to a new version whose files were overwritten with garbage, "
                           "then to one whose folder was removed, then back")
    with environment(service.env):
        client = mlflow_client(service.settings().mlflow_tracking_uri)
        good = alias_version(client, model)
        source = client.get_model_version(model, good)
        folder = model_folder(client, model, good)
        backup = service.root / "faults" / f"{model}-{good}"
        shutil.rmtree(backup, ignore_errors=True)
        shutil.copytree(folder, backup)

        def new_version() -> str:
            # Another version over the same files (the served model is in memory; only a reload reads them).
            return str(client.create_model_version(model, source.source, run_id=source.run_id, tags=source.tags,
                                                   model_id=getattr(source, "model_id", None)).version)

        def refused_for(version: str) -> str | None:
            status, ready = server.get_json("/readyz")
            reason = ready.get("models_refused", {}).get(model, "")
            return reason if f"version {version}:" in reason else None

        def serving_version() -> str | None:
            status, answer = post_json(server, service.key, "/v1/next-best-offer", {
                "request_id": f"model-fault-{time.monotonic_ns()}", "member_id": service.members[0],
                "store_id": "S001", "channel": "pos", "basket": [{"sku": service.skus[0], "qty": 1, "price": 5.0}]})
            return answer.get("model_versions", {}).get(model) if status == 200 else None

        try:
            corrupt = new_version()
            for path in folder.rglob("*"):
                if path.is_file():
                    path.write_bytes(b"\x00 not a model \x00")
            client.set_registered_model_alias(model, CHAMPION, corrupt)
            corrupt_reason = wait_for(lambda: refused_for(corrupt), wait)
            corrupt_serving = serving_version()
            shutil.rmtree(folder)
            shutil.copytree(backup, folder)

            gone = new_version()
            shutil.move(folder, folder.with_name(folder.name + ".gone"))
            client.set_registered_model_alias(model, CHAMPION, gone)
            gone_reason = wait_for(lambda: refused_for(gone), wait)
            gone_serving = serving_version()
        finally:
            if folder.with_name(folder.name + ".gone").exists():
                shutil.move(folder.with_name(folder.name + ".gone"), folder)
            if not folder.exists() or not any(folder.iterdir()):
                shutil.rmtree(folder, ignore_errors=True)
                shutil.copytree(backup, folder)
            else:
                shutil.rmtree(folder)
                shutil.copytree(backup, folder)
            client.set_registered_model_alias(model, CHAMPION, good)
        cleared = wait_for(lambda: not server.get_json("/readyz")[1].get("models_refused", {}).get(model), wait)
    log = server.log_text()
    outcome.figures = {"champion in use": good, "corrupt version": corrupt, "deleted version": gone,
                       "reason given (corrupt)": (corrupt_reason or "")[:160],
                       "reason given (deleted)": (gone_reason or "")[:160]}
    outcome.checks = {
        "corrupt: the previous champion kept serving": (corrupt_serving == good and bool(corrupt_reason),
                                                        f"answers from version {corrupt_serving}; "
                                                        f"/readyz: {(corrupt_reason or 'no reason')[:100]}"),
        "deleted: the previous champion kept serving": (gone_serving == good and bool(gone_reason),
                                                        f"answers from version {gone_serving}; "
                                                        f"/readyz: {(gone_reason or 'no reason')[:100]}"),
        "the reasons are in the server log": (f"could not load {model} version {corrupt}" in log and
                                              f"could not load {model} version {gone}" in log,
                                              "log lines 'could not load ...' for both versions"),
        "champion moved back: nothing refused": (bool(cleared), "models_refused cleared"),
    }
    return outcome


BROKEN_RULE = """id: broken-on-purpose
name: a rule with a typo in a feature name
trigger: checkout
when:
  all:
    - recency_dayz >= 30
then:
  - issue_coupon: {template: NO-SUCH-TEMPLATE}
"""


def broken_rule_file(service: BenchService, server: ServerProcess, wait: float = 20) -> FaultOutcome:
    """Drop a broken rule file into the rules directory, check the last good rules stay live, remove it."""
    outcome = FaultOutcome("broken rule file", "zz-broken.yaml (unknown feature, unknown template) written into "
                                               "the rules directory of the running service, then removed")
    before = server.get_json("/readyz")[1].get("rules_version")
    broken = service.rules_dir / "zz-broken.yaml"
    broken.write_text(BROKEN_RULE)
    try:
        refused = wait_for(lambda: server.get_json("/readyz")[1].get("rules_refused"), wait)
        status, ready = server.get_json("/readyz")
        _, rules = server.get_json("/v1/rules", service.key)
        listed = [r for r in rules.get("rules", []) if r.get("file", "").endswith("zz-broken.yaml")]
        offer_status, answer = post_json(server, service.key, "/v1/next-best-offer", {
            "request_id": f"rules-fault-{time.monotonic_ns()}", "member_id": service.members[0], "store_id": "S001",
            "channel": "pos", "basket": [{"sku": service.skus[0], "qty": 1, "price": 5.0}]})
    finally:
        broken.unlink()
    cleared = wait_for(lambda: not server.get_json("/readyz")[1].get("rules_refused"), wait)
    after = server.get_json("/readyz")[1].get("rules_version")
    outcome.figures = {"rules version": before, "refused because": "; ".join(refused or [])[:200]}
    outcome.checks = {
        "last good rules stay live": (status == 200 and ready.get("rules_version") == before and before is not None,
                                      f"/readyz {status}, version {ready.get('rules_version')} (before {before})"),
        "/readyz says why": (any("zz-broken.yaml" in p for p in refused or []), "; ".join(refused or [])[:150]),
        "GET /v1/rules says why": (bool(listed) and listed[0]["status"] == "invalid" and bool(listed[0]["errors"]),
                                   f"{listed[0]['status']}: {listed[0]['errors'][:2]}" if listed else "not listed"),
        "checkout answers go on": (offer_status == 200 and not answer.get("degraded"), f"{offer_status}"),
        "file removed: nothing refused, same rules": (bool(cleared) and after == before, f"version {after}"),
    }
    return outcome


def daily_run_killed(service: BenchService, as_of: str = "2026-04-01", chunk_size: int = 20,
                     kill_after_chunks: int = 2, timeout: float = 300) -> FaultOutcome:
    """``nbo triggers run-daily`` killed (SIGKILL) mid-run, then started again: the run completes once."""
    import subprocess
    import sys
    from datetime import date

    outcome = FaultOutcome("daily run killed", f"nbo triggers run-daily --as-of {as_of} killed (SIGKILL) after "
                                               f"{kill_after_chunks} chunks of {chunk_size} members, then run again")
    client = service.client()
    key = daily_run_key(date.fromisoformat(as_of))
    env = {**os.environ, **service.env, "NBO_TRIGGERS__CHUNK_SIZE": str(chunk_size)}
    command = [sys.executable, "-m", "serving.cli", "triggers", "run-daily", "--as-of", as_of, "--worker", "chaos"]
    log = service.root / "daily-run.log"
    with open(log, "wb") as out:
        first = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        reached = wait_for(lambda: int(client.hget(key, "chunks_done") or 0) >= kill_after_chunks
                           or first.poll() is not None, timeout, every=0.02)
        killed_at = int(client.hget(key, "chunks_done") or 0)
        first.send_signal(signal.SIGKILL)
        first.wait()
        started = time.monotonic()
        again = subprocess.run(command, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout)
    run = client.hgetall(key)
    period = f"d{as_of}"
    emitted = int(run.get("emitted", 0))
    # The emissions of the day: one marker per (rule, member); the outbox entries themselves may
    # already be delivered and deleted by a running server, whose deliveries must not repeat a key.
    markers = list(client.scan_iter(match=emission_marker_key("*", "*", period), count=1000))
    deliveries = service.var_dir / "outbox" / "deliveries.jsonl"
    delivered = [json.loads(line)["key"] for line in deliveries.read_text().splitlines()] if deliveries.exists() else []
    delivered = [k for k in delivered if k.split("#")[0].endswith(f"|{period}")]
    # One entry per action of an emission: (key, action) is what must not repeat.
    pending = [(entry["key"], entry["action"]) for entry in
               (json.loads(fields["e"]) for _, fields in client.xrange(OUTBOX_STREAM))]
    outcome.figures = {"chunks when killed": f"{killed_at} of {run.get('chunks')}",
                       "members planned / evaluated": f"{run.get('member_ids')} / {run.get('members')}",
                       "emitted": emitted, "emission markers": len(markers), "delivered so far": len(delivered),
                       "resumed run seconds": round(time.monotonic() - started, 1)}
    outcome.checks = {
        "killed mid-run": (bool(reached) and 0 < killed_at < int(run.get("chunks", 0)),
                           f"{killed_at} of {run.get('chunks')} chunks done when killed"),
        "the second run completes it": (again.returncode == 0 and run.get("status") == "done"
                                        and run.get("chunks_done") == run.get("chunks"),
                                        f"exit {again.returncode}, {run.get('status')}, "
                                        f"{run.get('chunks_done')}/{run.get('chunks')}"),
        "every member evaluated once": (run.get("members") == run.get("member_ids"),
                                        f"{run.get('members')} evaluated of {run.get('member_ids')}"),
        "one emission per (rule, member, day)": (len(markers) == emitted > 0,
                                                 f"{len(markers)} markers, {emitted} emitted"),
        "nothing delivered twice": (len(delivered) == len(set(delivered)) and len(pending) == len(set(pending)),
                                    f"{len(delivered)} deliveries of {len(set(delivered))} keys, "
                                    f"{len(pending)} pending of {len(set(pending))}"),
    }
    return outcome


def run_chaos(service: BenchService, seconds: float, rate: float, console: Console,
              hung_seconds: float = 12, hung_rate: float = 20, hung_pause: float = 2) -> list[FaultOutcome]:
    """Every fault against servers of ``service``; prints each outcome as it comes."""
    outcomes: list[FaultOutcome] = []
    server = service.serve(1, NBO_MODEL_RELOAD_SECONDS="1")
    try:
        server.wait_ready()
        for fault in (lambda: redis_restart_under_load(service, server, seconds, rate),
                      lambda: model_artifact_faults(service, server),
                      lambda: broken_rule_file(service, server),
                      lambda: daily_run_killed(service)):
            outcomes.append(fault())
            print_outcome(outcomes[-1], console)
        with_circuit = hung_redis(service, server, hung_seconds, hung_rate, hung_pause)
    finally:
        server.stop()
    plain = service.serve(1, NBO_REDIS_CIRCUIT_FAILURES="0")
    try:
        plain.wait_ready()
        without_circuit = hung_redis(service, plain, hung_seconds, hung_rate, hung_pause)
    finally:
        plain.stop()
    hung = FaultOutcome("redis hung (paused)", f"redis-server paused (SIGSTOP) for {hung_pause:g} s during "
                                               f"{hung_seconds:g} s of next-best-offer at {hung_rate:g}/s")
    hung.figures = {"with the circuit breaker": with_circuit, "without (NBO_REDIS_CIRCUIT_FAILURES=0)": without_circuit}
    hung.checks = {
        "no 5xx, answers degraded": (all(f["statuses"].keys() <= {200} and f["dropped connections"] == 0
                                         and f["degraded answers"] > 0 for f in (with_circuit, without_circuit)),
                                     f"{with_circuit['statuses']} / {without_circuit['statuses']}"),
        "the breaker cuts the p99": (with_circuit["p99 ms"] < without_circuit["p99 ms"],
                                     f"{with_circuit['p99 ms']} ms with, {without_circuit['p99 ms']} ms without"),
    }
    outcomes.append(hung)
    print_outcome(hung, console)
    return outcomes


def print_outcome(outcome: FaultOutcome, console: Console) -> None:
    console.rule(f"{outcome.name}: {'held' if outcome.ok else 'FAILED'}")
    console.print(f"injected: {outcome.injected}")
    for name, value in outcome.figures.items():
        console.print(f"  {name}: {value}")
    for name, (ok, detail) in outcome.checks.items():
        console.print(f"[{'green' if ok else 'red'}]{'ok  ' if ok else 'FAIL'}[/] {name}: {detail}")


def chaos_demo(seconds: float, rate: float, console: Console, out: str | None = None) -> bool:
    """``nbo bench chaos``: every fault against the demo in a throw-away Redis and MLflow store."""
    import tempfile

    from tools.benchmarks import demo_service

    with tempfile.TemporaryDirectory() as tmp, demo_service(Path(tmp), console) as service:
        outcomes = run_chaos(service, seconds, rate, console)
    if out:
        Path(out).write_text(json.dumps([{"name": o.name, "injected": o.injected, "figures": o.figures,
                                          "checks": {k: {"ok": ok, "detail": d} for k, (ok, d) in o.checks.items()}}
                                         for o in outcomes], indent=2, default=str))
    return all(o.ok for o in outcomes)
