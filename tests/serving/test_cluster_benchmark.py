"""``nbo bench cluster``: the same ingest and reads on a single Redis and a 3-master cluster, side by side."""

from __future__ import annotations

import io

from rich.console import Console

from tools.benchmarks import run_cluster_benchmark


def test_the_cluster_benchmark_measures_both_side_by_side() -> None:
    out = io.StringIO()
    results = run_cluster_benchmark(events=300, members=30, batch=100, reads=20, processes=1,
                                    console=Console(file=out, width=160))
    assert list(results) == ["single Redis", "Redis Cluster, 3 masters"]
    for figures in results.values():
        assert figures["ingest_per_s"] > 0 and figures["parallel_ingest_per_s"] is None  # one process: no spawn
        assert 0 < figures["read_p50_us"] <= figures["read_p99_us"]
    assert "cluster / single" in out.getvalue()
