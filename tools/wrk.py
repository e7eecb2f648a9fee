"""HTTP load from ``wrk`` (C, Debian's package), pinned to its own core, with Lua scripts that make every
request fresh (a new request id, a random member, a random basket) and report JSON.

The Python generator in ``tools.load`` tops out near the server's own rate on two cores, so it measures
itself as much as the server; ``wrk`` with one thread on the other core does not. Saturation runs are
closed-loop (``connections`` requests in flight); paced runs spread each connection's requests with
``delay()`` so the whole run offers ``rate`` requests a second, and report what was achieved.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

# The common Lua: one random stream per thread, members read from a file, JSON summary at the end.
_PRELUDE = r"""
local members = {}
local skus = {}
local counter = 0
local prefix = ""
local function lines(path, into)
  local f = assert(io.open(path, "r"))
  for line in f:lines() do if #line > 0 then into[#into + 1] = line end end
  f:close()
end
lines("%(members)s", members)
lines("%(skus)s", skus)
math.randomseed(%(seed)d)
prefix = tostring(math.random(1, 1000000000))
wrk.headers["Authorization"] = "Bearer %(key)s"
wrk.headers["Content-Type"] = "application/json"
local function member() return members[math.random(1, #members)] end
local function sku() return skus[math.random(1, #skus)] end
local pace_ms = %(pace_ms)f
if pace_ms > 0 then
  function delay() return pace_ms * (0.5 + math.random()) end
end
function done(summary, latency, requests)
  local out = io.open("%(out)s", "w")
  out:write(string.format('{"requests": %%d, "seconds": %%f, "connect_errors": %%d, "read_errors": %%d, ' ..
    '"write_errors": %%d, "timeouts": %%d, "non_2xx": %%d, "p50_us": %%d, "p90_us": %%d, "p99_us": %%d, ' ..
    '"max_us": %%d}', summary.requests, summary.duration / 1e6, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.timeout, summary.errors.status, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency.max))
  out:close()
end
"""

REQUESTS: dict[str, str] = {
    "empty": r"""
function request() return wrk.format("GET", "/healthz") end
""",
    "features": r"""
function request() return wrk.format("GET", "/v1/members/" .. member() .. "/features") end
""",
    "next-best-offer": r"""
function request()
  counter = counter + 1
  local lines = {}
  for i = 1, math.random(1, 4) do
    lines[i] = string.format('{"sku": "%s", "qty": 1, "price": %.1f}', sku(), 3 + math.random() * 37)
  end
  local body = string.format('{"request_id": "wrk-%s-%d", "member_id": "%s", "store_id": "S001", ' ..
    '"channel": "pos", "basket": [%s]}', prefix, counter, member(), table.concat(lines, ", "))
  return wrk.format("POST", "/v1/next-best-offer", nil, body)
end
""",
}
"""What each kind of run asks for; more (e.g. a Feast feature server's request) are passed in as Lua."""


@dataclass
class WrkResult:
    """One wrk run: throughput, latency percentiles (from wrk's histogram) and errors."""

    kind: str
    connections: int
    requests: int
    seconds: float
    p50_us: int
    p90_us: int
    p99_us: int
    max_us: int
    non_2xx: int = 0
    errors: int = 0
    rate: float | None = None
    """What a paced run offered (requests / s); None when saturated."""
    extra: dict = field(default_factory=dict)

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def wrk_available() -> str | None:
    """The wrk binary, or None (``make bench-api`` installs Debian's ``wrk`` when it can)."""
    return shutil.which("wrk")


def cores() -> list[int]:
    """The CPUs this process may run on."""
    return sorted(os.sched_getaffinity(0))


def pinned(command: list[str], core: int | None) -> list[str]:
    """``command`` run on one core (``taskset``), or as it is when there is no second core to give it."""
    if core is None or shutil.which("taskset") is None:
        return command
    return ["taskset", "-c", str(core), *command]


def run_wrk(url: str, kind: str, key: str, members: list[str], skus: list[str], seconds: float,
            connections: int = 32, rate: float | None = None, core: int | None = None, seed: int = 7,
            request_lua: str | None = None) -> WrkResult:
    """Load ``url`` with ``kind`` requests for ``seconds`` (saturated, or paced at ``rate`` per second)."""
    binary = wrk_available()
    if binary is None:
        raise RuntimeError("wrk is not installed: `apt-get install wrk` (make bench-api does it when it can)")
    with tempfile.TemporaryDirectory(prefix="wrk-") as tmp:
        root = Path(tmp)
        (root / "members").write_text("\n".join(members) + "\n")
        (root / "skus").write_text("\n".join(skus or ["_"]) + "\n")
        out = root / "result.json"
        pace_ms = connections * 1000.0 / rate if rate else 0.0
        script = _PRELUDE % {"members": root / "members", "skus": root / "skus", "seed": seed, "key": key,
                             "pace_ms": pace_ms, "out": out}
        script += request_lua if request_lua is not None else REQUESTS[kind]
        (root / "script.lua").write_text(script)
        command = pinned([binary, "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "5s",
                          "-s", str(root / "script.lua"), url], core)
        completed = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
        if completed.returncode != 0 or not out.exists():
            raise RuntimeError(f"wrk failed ({completed.returncode}): {completed.stderr or completed.stdout}")
        figures = json.loads(out.read_text())
    errors = sum(figures[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts"))
    return WrkResult(kind=kind, connections=connections, requests=figures["requests"], seconds=figures["seconds"],
                     p50_us=figures["p50_us"], p90_us=figures["p90_us"], p99_us=figures["p99_us"],
                     max_us=figures["max_us"], non_2xx=figures["non_2xx"], errors=errors, rate=rate)
