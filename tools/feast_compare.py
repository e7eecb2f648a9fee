"""The tool a user would pick instead, side by side: Feast's Python feature server over its own Redis.

``nbo bench api --compare feast`` installs Feast (``FEAST_VERSION``) in a virtual environment of its
own under ``var/bench/feast-venv`` the first time (its dependencies must not meet ours), writes a
feature repository whose one feature view holds exactly the feature vectors our store serves (every
member's ``member_features``, materialised from a Parquet file into a Redis server started for it),
and serves it with ``feast serve`` pinned to the same core as our server, with the flags that make it
fastest (no access log, one worker that is never recycled, the registry cached for an hour).
Both are loaded by the same ``wrk`` on the other core.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

FEAST_VERSION = "0.67.0"
VIEW = "member_features"

# Feast's request for one member's whole vector (the counterpart of GET /v1/members/{id}/features).
REQUEST_LUA = r"""
local features_json = "%(features)s"
function request()
  local body = '{"features": ' .. features_json .. ', "entities": {"member_id": ["' .. member() .. '"]}}'
  return wrk.format("POST", "/get-online-features", nil, body)
end
"""


def feast_python(venv: Path, say=print) -> Path:
    """The interpreter of a virtual environment with Feast installed (made and installed on first use)."""
    python = venv / "bin" / "python"
    if python.exists() and subprocess.run([python, "-c", "import feast"], capture_output=True).returncode == 0:
        return python
    say(f"installing feast[redis]=={FEAST_VERSION} into {venv} (once; about 600 MB) ...")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([python, "-m", "pip", "install", "--quiet", f"feast[redis]=={FEAST_VERSION}"], check=True)
    return python


def feast_frame(features: pd.DataFrame) -> pd.DataFrame:
    """Our feature vectors with one plain type per column, as Feast types them (``feast_type``): lists become
    comma-joined strings, a column with no value at all becomes a float column of nulls."""
    frame = pd.DataFrame(index=features.index.astype(str))
    for column in features.columns:
        values = features[column].map(lambda v: ",".join(map(str, v)) if isinstance(v, (list, tuple)) else v)
        present = values.dropna()
        if present.empty:
            frame[column] = pd.Series(float("nan"), index=frame.index, dtype="float64")
        elif present.map(lambda v: isinstance(v, bool)).all():
            frame[column] = values.astype("boolean")
        elif present.map(lambda v: isinstance(v, int) and not isinstance(v, bool)).all():
            frame[column] = values.astype("Int64")
        elif present.map(lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)).all():
            frame[column] = values.astype("float64")
        else:
            frame[column] = values.map(lambda v: None if v is None or v != v else str(v)).astype("string")
    frame = frame.rename_axis("member_id").reset_index()
    frame["event_timestamp"] = pd.Timestamp(datetime(2020, 1, 1, tzinfo=UTC))
    return frame


def feast_type(series: pd.Series) -> str:
    """The Feast type of a column of ``feast_frame``."""
    dtype = str(series.dtype)
    return {"boolean": "Bool", "Int64": "Int64", "float64": "Float64"}.get(dtype, "String")


@dataclass
class FeastRepo:
    root: Path
    features: list[str]

    def request_lua(self) -> str:
        names = json.dumps([f"{VIEW}:{name}" for name in self.features]).replace('"', '\\"')
        return REQUEST_LUA % {"features": names}


def write_repo(root: Path, frame: pd.DataFrame, redis_port: int) -> FeastRepo:
    """A Feast repository: one entity, one file source, one feature view with every column of ``frame``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(exist_ok=True)
    import pyarrow as pa
    import pyarrow.parquet as pq

    # Feast reads Arrow's large_string (pandas' string columns) as its JSON type: write plain strings.
    arrow = {"boolean": pa.bool_(), "Int64": pa.int64(), "float64": pa.float64()}
    schema = pa.schema([(c, pa.timestamp("us", tz="UTC") if c == "event_timestamp"
                         else arrow.get(str(frame[c].dtype), pa.string())) for c in frame.columns])
    pq.write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False), root / "data" / "features.parquet")
    names = [c for c in frame.columns if c not in ("member_id", "event_timestamp")]
    fields = ",\n        ".join(f'Field(name="{name}", dtype={feast_type(frame[name])})' for name in names)
    (root / "feature_store.yaml").write_text(textwrap.dedent(f"""\
        project: nbo_bench
        registry: data/registry.db
        provider: local
        online_store:
          type: redis
          connection_string: "127.0.0.1:{redis_port}"
        offline_store:
          type: file
        entity_key_serialization_version: 3
        """))
    (root / "repo.py").write_text(textwrap.dedent(f"""\
        from datetime import timedelta

        from feast import Entity, FeatureView, Field, FileSource
        from feast.types import Bool, Float64, Int64, String

        member = Entity(name="member", join_keys=["member_id"])
        source = FileSource(path="data/features.parquet", timestamp_field="event_timestamp")
        {VIEW} = FeatureView(
            name="{VIEW}", entities=[member], ttl=timedelta(days=36500), online=True, source=source,
            schema=[
                {fields}
            ],
        )
        """).replace("        Field(", "        Field(", 1))
    return FeastRepo(root=root, features=names)


def materialise(python: Path, repo: FeastRepo) -> float:
    """``feast apply`` and ``feast materialize`` into the repo's Redis; returns the seconds it took."""
    feast = python.parent / "feast"
    started = time.perf_counter()
    end = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S")
    for command in ([feast, "apply"], [feast, "materialize", "2019-12-01T00:00:00", end]):
        done = subprocess.run(command, cwd=repo.root, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(map(str, command))} failed: {(done.stderr or done.stdout)[-3000:]}")
    return time.perf_counter() - started


def serve(python: Path, repo: FeastRepo, port: int, core: int | None, log: Path) -> subprocess.Popen:
    """``feast serve`` with its fastest flags, pinned to ``core``; returns once it answers."""
    from tools.wrk import pinned

    command = pinned([str(python.parent / "feast"), "serve", "-h", "127.0.0.1", "-p", str(port), "--no-access-log",
                      "-w", "1", "--max-requests", "100000000", "-r", "3600"], core)
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=repo.root, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    body = json.dumps({"features": [f"{VIEW}:{repo.features[0]}"], "entities": {"member_id": ["x"]}}).encode()
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"feast serve exited: {log.read_text()[-2000:]}")
        try:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/get-online-features", data=body,
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=2) as response:
                if response.status == 200:
                    return process
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError(f"feast serve did not answer on port {port}: {log.read_text()[-2000:]}")


def check_same_vector(feast_port: int, repo: FeastRepo, member_id: str, ours: dict) -> int:
    """How many of ``ours`` (one member's features from our API) Feast answers equally (a sanity check)."""
    body = json.dumps({"features": [f"{VIEW}:{name}" for name in repo.features],
                       "entities": {"member_id": [member_id]}}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{feast_port}/get-online-features", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        answer = json.loads(response.read())
    names = answer["metadata"]["feature_names"]
    values = {name: result["values"][0] for name, result in zip(names, answer["results"])}
    same = 0
    for name in repo.features:
        theirs, mine = values.get(name), ours.get(name)
        if isinstance(mine, (list, tuple)):
            mine = ",".join(map(str, mine))
        if theirs == mine or (isinstance(mine, float) and isinstance(theirs, (int, float))
                              and abs(theirs - mine) < 1e-6):
            same += 1
    return same
