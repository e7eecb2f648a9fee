"""Where a request's time goes: ``py-spy`` sampling a real server process while ``wrk`` loads it.

``nbo bench profile`` starts the demo service on one core, loads one kind of request from the other
core, records the server's stacks with py-spy (``--nonblocking``: the server is never paused) and
prints the functions with the most samples, own time and inclusive (the project's frames), and can
write the raw stacks for a flame graph (``--raw``; ``flamegraph.pl`` or speedscope read them).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

PROJECT = ("engine/", "serving/", "training/", "recommender/", "tools/")


@dataclass
class Profile:
    samples: int
    own: list[tuple[str, int]]
    inclusive: list[tuple[str, int]]


def read_raw(path: Path, top: int = 25) -> Profile:
    """Own and inclusive samples per frame from py-spy's raw (collapsed) output."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    project = [(f, n) for f, n in inclusive.most_common() if any(f" ({p}" in f for p in PROJECT)]
    return Profile(samples=total, own=own.most_common(top), inclusive=project[:top])


def profile_server(kind: str, seconds: float, console: Console, raw: Path | None = None, top: int = 25) -> Profile:
    """Profile ``nbo serve`` (one worker) under ``wrk`` load of ``kind`` requests for ``seconds``."""
    from tools.benchmarks import REPO_RULES, UNLIMITED_KEY, demo_service
    from tools.rules_benchmark import SHIPPED_FILES
    from tools.wrk import cores, run_wrk

    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        raise RuntimeError("py-spy is not installed (it is in the dev extras: make install)")
    available = cores()
    server_core, load_core = (available[0], available[1]) if len(available) > 1 else (None, None)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        out = raw or root / "stacks.raw"
        with demo_service(root, console, [REPO_RULES / name for name in SHIPPED_FILES]) as service:
            server = service.serve(1, core=server_core, NBO_STREAM_CONSUMER="false", **UNLIMITED_KEY)
            try:
                server.wait_ready()
                url = f"http://127.0.0.1:{server.port}"
                run_wrk(url, kind, service.key, service.members, service.skus, 5, core=load_core)  # warm-up
                worker = server.processes()[-1].pid
                recorder = subprocess.Popen([spy, "record", "--rate", "200", "--duration", str(int(seconds)),
                                             "--format", "raw", "--output", str(out), "--pid", str(worker),
                                             "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                load = run_wrk(url, kind, service.key, service.members, service.skus, seconds + 1, core=load_core)
                recorder.wait(timeout=seconds + 60)
            finally:
                server.stop()
        profile = read_raw(out, top)
    console.print(f"{kind}: {load.throughput:,.0f}/s under wrk, p50 {load.p50_us / 1000:.2f} ms, "
                  f"p99 {load.p99_us / 1000:.2f} ms; {profile.samples:,} samples")
    for title, rows in (("own time", profile.own), ("inclusive, the project's frames", profile.inclusive)):
        table = Table(title=f"{kind}: {title}")
        table.add_column("share", justify="right")
        table.add_column("frame")
        for frame, n in rows:
            table.add_row(f"{100 * n / max(profile.samples, 1):.1f}%", frame)
        console.print(table)
    return profile
