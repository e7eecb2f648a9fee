"""Hot reload: atomic (old rules or new, never a mix), and a broken file keeps the last good rules live."""

from __future__ import annotations

import threading
from pathlib import Path

from engine.rules import RuleRuntime
from engine.rules.runtime import watch_rules
from tests.helpers.rules import TZ, context, rule, runtime


def _fired(rt: RuleRuntime, member: dict) -> tuple[str, ...]:
    basket = context(basket=[{"sku": "A", "price": 20.0}])
    return tuple(f.rule_id for f in rt.evaluate("checkout", member, basket).firings)


def test_broken_file_keeps_last_good_rules_live(rules_dir, member) -> None:
    directory = rules_dir({"a.yaml": rule("good", "basket_total > 10")})
    rt = runtime(directory)
    good_version = rt.version
    (directory / "a.yaml").write_text(rule("good", "basket_totl > 10"), encoding="utf-8")
    (directory / "b.yaml").write_text(rule("new", "basket_total > 1"), encoding="utf-8")

    report = rt.reload()

    assert not report.ok and report.version == good_version and report.rules == ("good",)
    assert "a.yaml:4: unknown feature 'basket_totl' (did you mean 'basket_total'?)" in str(report.errors[0])
    assert _fired(rt, member) == ("good",)
    statuses = {s.id: s for s in rt.statuses(context().at)}
    assert statuses["good"].status == "invalid" and statuses["good"].serving
    assert "unknown feature 'basket_totl'" in statuses["good"].errors[0]
    assert statuses["new"].status == "live" and not statuses["new"].serving


def test_a_fixed_file_goes_live_on_the_next_reload(rules_dir, member) -> None:
    directory = rules_dir({"a.yaml": rule("one", "basket_total > 10")})
    rt = runtime(directory)
    (directory / "a.yaml").write_text(rule("one", "basket_total > 100"), encoding="utf-8")
    (directory / "b.yaml").write_text(rule("two", "basket_total > 1"), encoding="utf-8")
    report = rt.reload()
    assert report.ok and report.changed and report.rules == ("one", "two")
    assert _fired(rt, member) == ("two",)


def test_a_reload_without_changes_keeps_everything(rules_dir) -> None:
    rt = runtime(rules_dir({"a.yaml": rule("one", "basket_total > 10")}))
    created = rt.rulesets_created
    report = rt.reload()
    assert report.ok and not report.changed and rt.rulesets_created == created


def test_unchanged_shards_keep_their_durable_rules_ruleset(rules_dir) -> None:
    directory = rules_dir({"a.yaml": rule("one", "basket_total > 10"),
                           "b.yaml": rule("daily", "registered", trigger="schedule.daily")})
    rt = runtime(directory)
    assert rt.rulesets_created == 2
    (directory / "b.yaml").write_text(rule("daily", "not registered", trigger="schedule.daily"), encoding="utf-8")
    rt.reload()
    assert rt.rulesets_created == 3  # only the daily shard was rebuilt


def test_reload_is_atomic_under_concurrent_evaluation(rules_dir, member) -> None:
    # Version A fires a1+a2, version B fires b1+b2: an evaluation sees one version or the other.
    a = {"x.yaml": rule("a1", "basket_total > 1") + "priority: 60\n", "y.yaml": rule("a2", "basket_total > 2")}
    b = {"x.yaml": rule("b1", "basket_total > 1") + "priority: 60\n", "y.yaml": rule("b2", "basket_total > 2")}
    directory = rules_dir(a)
    rt = runtime(directory)
    seen: set[tuple[str, ...]] = set()
    stop = threading.Event()
    failures: list[BaseException] = []

    def evaluate() -> None:
        try:
            while not stop.is_set():
                seen.add(_fired(rt, member))
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=evaluate) for _ in range(4)]
    for thread in threads:
        thread.start()
    for round_ in range(30):
        for name, text in (b if round_ % 2 == 0 else a).items():
            (directory / name).write_text(text, encoding="utf-8")
        assert rt.reload().ok
    stop.set()
    for thread in threads:
        thread.join()
    assert not failures
    assert seen <= {("a1", "a2"), ("b1", "b2")} and len(seen) == 2


def test_the_file_watcher_reloads_when_a_file_changes(rules_dir, member) -> None:
    directory = rules_dir({"a.yaml": rule("before", "basket_total > 1")})
    rt = runtime(directory)
    stop = threading.Event()
    reloaded = threading.Event()
    reports = []

    def on_reload(report) -> None:
        reports.append(report)
        reloaded.set()

    watcher = threading.Thread(target=watch_rules, args=(rt, stop, 0.02, on_reload), daemon=True)
    watcher.start()
    try:
        (directory / "a.yaml").write_text(rule("after", "basket_total > 1"), encoding="utf-8")
        assert reloaded.wait(timeout=10)
    finally:
        stop.set()
        watcher.join()
    assert reports[0].ok and _fired(rt, member) == ("after",)


def test_a_missing_directory_serves_no_rules_and_says_why(tmp_path: Path, member) -> None:
    rt = RuleRuntime(tmp_path / "nowhere", TZ)
    report = rt.reload()
    assert not report.ok and "does not exist" in str(report.errors[0])
    assert rt.evaluate("checkout", member, context()).firings == ()
