"""Step one of every pipeline: load canonical transactions and fingerprint them.

Data-quality decisions for the real logs, made here once:

* Online Retail's exact duplicate lines (5,192 in the raw file, 5,194 among the canonical lines)
  and its two huge orders that were cancelled (74,215 x 23166 by customer 12346, 80,995 x 23843
  by 16446; the importer drops cancellation lines, so the originals stay) are **kept** as
  imported. The online feature store ingests the same lines (`nbo data import --backfill`), and
  training on anything else would be train/serve skew. Their effect is bounded by design: the
  recommender counts the baskets that hold an item, not quantities or lines, so neither a
  duplicate line nor an 80,995-unit order weighs more than one purchase; the churn model is a
  tree ensemble, whose splits depend on the order of values, not their size. Checked against the
  churn label (cutoff 2011-09-01, 90 days): 12346 bought only once (2011-01-18, the cancelled
  order) and is labelled churned, which is true; 16446's order is on 2011-12-09, after the label
  window, so it changes no label.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from engine.transactions import read_transactions


@dataclass
class LoadedTransactions:
    """Canonical lines, where they came from, a content fingerprint and the importer's notes."""

    frame: pd.DataFrame
    source: str
    fmt: str
    fingerprint: str
    notes: list[str] = field(default_factory=list)

    @property
    def first_ts(self) -> pd.Timestamp:
        return pd.Timestamp(self.frame["ts"].min())

    @property
    def last_ts(self) -> pd.Timestamp:
        return pd.Timestamp(self.frame["ts"].max())


def load_transactions(path: str | Path, fmt: str = "canonical", exclude_members: Iterable[str] = ()) -> LoadedTransactions:
    """Read a transaction file (canonical CSV/Parquet, or the raw groceries / online-retail files), without the
    lines of ``exclude_members`` (the erasure list: members forgotten at their request are never trained on)."""
    from engine.data_rights import drop_erased

    result = read_transactions(path, fmt=fmt)
    frame, dropped = drop_erased(result.frame, exclude_members)
    notes = list(result.notes) + ([f"{dropped:,} lines of erased members left out"] if dropped else [])
    return from_frame(frame, source=str(path), fmt=fmt, notes=notes)


def from_frame(frame: pd.DataFrame, source: str = "<frame>", fmt: str = "canonical", notes: list[str] | None = None) -> LoadedTransactions:
    """Wrap canonical lines already in memory (tests, synthetic data)."""
    return LoadedTransactions(frame=frame, source=source, fmt=fmt, fingerprint=data_fingerprint(frame), notes=notes or [])


def data_fingerprint(frame: pd.DataFrame) -> str:
    """A SHA-256 of the canonical lines' content (column names and values, in order): same data, same hash."""
    digest = hashlib.sha256()
    digest.update(",".join(map(str, frame.columns)).encode())
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy(dtype=np.uint64)
    digest.update(hashed.tobytes())
    return digest.hexdigest()
