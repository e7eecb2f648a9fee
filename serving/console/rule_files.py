"""Checking a rule file before it goes live, and saving it (a marketer's action, audited).

A check puts the candidate next to the other files of ``rules/`` in a scratch folder and runs what
``nbo rules lint``, ``nbo rules test`` and ``nbo rules backtest`` run (``engine.rules``): the
loader's ``file:line`` problems, every example of the file's rules, and a backtest of its rules
over the feature store's members as they are today. Saving checks again, refuses a file with
errors or failing examples (the rules live now stay), writes the file atomically, records it in
the audit log and reloads the rules.
"""

from __future__ import annotations

import atexit
import hashlib
import multiprocessing
import os
import re
import shutil
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from pathlib import Path

import pandas as pd

from engine.feature_store import FeatureStore
from engine.features import FEATURE_NAMES, member_features
from engine.programme import Programme
from engine.rules import (
    RESERVED_FILES,
    ExampleReport,
    ExampleResult,
    RuleBacktest,
    backtest,
    compile_rules,
    load_rules,
    run_examples,
)

RULE_FILE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}\.ya?ml$")
MAX_FILE_BYTES = 64_000
BACKTEST_MEMBERS = 20_000
"""Members a check backtests on at most (the first the store lists): a check should take seconds."""
EXAMPLE_RUNS_PER_WORKER = 100
_save_lock = threading.Lock()
_worker_lock = threading.Lock()
_worker: ProcessPoolExecutor | None = None


class RuleFileRefused(ValueError):
    """The file name or text cannot be taken (a message the marketer can act on)."""


@dataclass
class RuleCheck:
    """What a check found for one file."""

    file: str
    text: str
    rule_ids: list[str] = field(default_factory=list)
    """The rules the file defines (valid ones)."""
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    examples: list[ExampleResult] = field(default_factory=list)
    backtest: list[RuleBacktest] | None = None
    backtest_members: int = 0
    backtest_day: str = ""

    @property
    def examples_passed(self) -> int:
        return sum(r.passed for r in self.examples)

    @property
    def ok(self) -> bool:
        """Fit to go live: no errors and every example passes."""
        return not self.errors and all(r.passed for r in self.examples)


def rule_file_path(rules_dir: Path, name: str) -> Path:
    """The path of a rule file of ``rules_dir``; refuses names that are not plain rule files."""
    if not RULE_FILE.match(name or ""):
        raise RuleFileRefused(f"file name {name!r}: use lower-case letters, digits, '-' or '_', ending .yaml")
    if name in RESERVED_FILES:
        raise RuleFileRefused(f"{name} is not a rule file (coupon templates and festivals are edited as files)")
    return rules_dir / name


def read_rule_file(rules_dir: Path, name: str) -> str:
    path = rule_file_path(rules_dir, name)
    if not path.exists():
        raise RuleFileRefused(f"there is no {name} in {rules_dir}")
    return path.read_text(encoding="utf-8")


def check_rule_file(rules_dir: Path, name: str, text: str, programme: Programme, store: FeatureStore | None,
                    now: datetime) -> RuleCheck:
    """Lint, examples and a backtest of ``text`` as ``rules_dir/name``, without touching ``rules_dir``."""
    rule_file_path(rules_dir, name)
    if len(text.encode("utf-8")) > MAX_FILE_BYTES:
        raise RuleFileRefused(f"the file is larger than {MAX_FILE_BYTES:,} bytes")
    check = RuleCheck(file=name, text=text)
    shown = f"{rules_dir.name}/{name}"
    with tempfile.TemporaryDirectory(prefix="nbo-rule-check-") as scratch:
        folder = Path(scratch) / rules_dir.name
        shutil.copytree(rules_dir, folder, ignore=shutil.ignore_patterns("*.json", ".*"))
        (folder / name).write_text(text, encoding="utf-8")
        loaded = load_rules(folder, programme.settings.points.points_per_yuan_redeemed)
        for problem in loaded.problems:
            line = str(problem).replace(str(folder), rules_dir.name)
            (check.errors if problem.severity == "error" else check.warnings).append(line)
        mine = {r.id for r in loaded.rules if Path(r.file).name == name}
        check.rule_ids = sorted(mine)
        if not loaded.ok:
            return check
        examples = run_examples_apart(folder, programme)
        check.examples = [ExampleResult(r.rule_id, r.index, r.name, shown, r.line, r.passed,
                                        r.message.replace(str(folder), rules_dir.name))
                          for r in examples.results if r.rule_id in mine]
        if store is not None:
            features = live_features(store, now)
            check.backtest_members = len(features)
            day = programme.local(now).date()
            check.backtest_day = day.isoformat()
            if len(features):
                report = backtest(compile_rules(loaded), features, day, programme)
                check.backtest = [r for r in report.rules if r.rule_id in mine]
    return check


def save_rule_file(rules_dir: Path, name: str, text: str, check: RuleCheck, audit, actor: str) -> Path:
    """Write a checked file into ``rules_dir`` (atomically) and audit it; refuses a file that failed its check."""
    if not check.ok or check.text != text or check.file != name:
        raise RuleFileRefused("the file failed its check; fix it first (the rules live now stay)")
    path = rule_file_path(rules_dir, name)
    with _save_lock:
        previous = path.read_bytes() if path.exists() else None
        handle, temporary = tempfile.mkstemp(dir=rules_dir, prefix=f".{name}.", suffix=".tmp")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    audit.record("rules.file_saved", actor=actor, subject=f"{rules_dir.name}/{name}", file=name,
                 rules=check.rule_ids,
                 sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
                 previous_sha256=hashlib.sha256(previous).hexdigest() if previous is not None else None)
    return path


def run_examples_apart(folder: Path, programme: Programme) -> ExampleReport:
    """``run_examples`` in a worker process. Each run creates durable_rules rulesets, and durable_rules
    keeps memory after they are deleted (measured: ~0.4 MB a run of rules/'s examples, growing without
    bound); the server's own process stays flat, and the worker is replaced every
    ``EXAMPLE_RUNS_PER_WORKER`` runs. The first check starts the worker (~1.5 s); later ones reuse it."""
    global _worker
    with _worker_lock:
        if _worker is None:
            _worker = ProcessPoolExecutor(max_workers=1, max_tasks_per_child=EXAMPLE_RUNS_PER_WORKER,
                                          mp_context=multiprocessing.get_context("spawn"),
                                          initializer=_exit_with_parent, initargs=(os.getpid(),))
            atexit.register(_worker.shutdown, cancel_futures=True)
        worker = _worker
    return worker.submit(run_examples, folder, programme).result(timeout=120)


def _exit_with_parent(parent: int) -> None:
    """In the worker: end when the server's process is gone, however it ended (no orphan is left)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def live_features(store: FeatureStore, now: datetime, limit: int = BACKTEST_MEMBERS) -> pd.DataFrame:
    """Members' features now, from the store (``member_features``: the one definition), one row each."""
    ids = list(islice(store.member_ids(), limit))
    rows, index = [], []
    for start in range(0, len(ids), 500):
        for member_id, state in store.read_states(ids[start:start + 500]).items():
            if state is not None:
                rows.append(member_features(state, now, store.programme))
                index.append(member_id)
    return pd.DataFrame(rows, index=pd.Index(index, name="member_id"), columns=list(FEATURE_NAMES))

