"""Canonical transaction lines: schema, importers, writer and basket grouping.

Every other part of the product reads transactions through this module, so the contract from
`DESIGN.md` ("Canonical transactions") is enforced here once: column names, dtypes, what makes a
row bad, and the order of the lines (by `ts`, then `member_id`).
"""

from __future__ import annotations

import mmap
import re
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

CANONICAL_COLUMNS: tuple[str, ...] = (
    "member_id",
    "ts",
    "sku",
    "qty",
    "amount",
    "store_id",
    "basket_id",
    "category",
)
REQUIRED_COLUMNS: tuple[str, ...] = ("member_id", "ts", "amount")
FORMATS: tuple[str, ...] = ("canonical", "groceries", "online-retail")
# pandas 3 parses strings and reads parquet timestamps at microsecond resolution; keep that.
TS_DTYPE = "datetime64[us]"
STR_DTYPE = pd.StringDtype("pyarrow", na_value=np.nan)  # what `dtype="str"` means in pandas 3

_SHOWN_IN_ABORT = 5


@dataclass(frozen=True)
class RowError:
    """One rejected source row: 1-based line number in the source file and why it was rejected."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass
class ImportResult:
    """Canonical lines that passed validation, the rows that did not, and notes on expected filtering."""

    frame: pd.DataFrame
    rejected: list[RowError] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class ImportAborted(Exception):
    """The file can't be imported as a whole (missing column, too many bad rows); the message says why."""

    def __init__(self, message: str, path: Path, rejected: Sequence[RowError] = ()) -> None:
        super().__init__(message)
        self.path = path
        self.rejected = list(rejected)


@dataclass
class _Source:
    """A source file already renamed to canonical columns, before row validation."""

    frame: pd.DataFrame
    lines: np.ndarray  # source line number of each row of `frame`
    malformed: list[RowError] = field(default_factory=list)  # lines the CSV parser could not split
    notes: list[str] = field(default_factory=list)
    ts_format: str = "ISO8601"
    finish: Callable[[pd.DataFrame], pd.DataFrame] | None = None  # runs on the validated lines


def read_transactions(
    path: str | Path,
    fmt: str = "canonical",
    mapping: dict[str, str] | None = None,
    max_bad_fraction: float = 0.01,
    progress: bool = False,
) -> ImportResult:
    """Read a transaction file into canonical lines sorted by `ts` then `member_id`.

    `fmt` is "canonical" (CSV or Parquet by suffix), "groceries" or "online-retail". `mapping`
    renames source columns (`{"src": "dst"}`, the CLI's `--map src=dst`) before the format reads
    them. Bad rows are returned in `rejected` with their line number, counting the CSV header as
    line 1; for Parquet the "line" is the 0-based row number + 2, so the numbering matches a CSV
    export of the same table. Raises `ImportAborted` when a required column is missing or more
    than `max_bad_fraction` of the rows are bad.
    """
    path = Path(path)
    if fmt not in _LOADERS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    with _stages(progress, path.name) as stage:
        stage("read")
        source = _LOADERS[fmt](path, mapping or {})
        stage("validate")
        frame, rejected = _validate(source, path, max_bad_fraction)
        if source.finish is not None:
            frame = source.finish(frame)
        stage("sort")
        frame = _sort_canonical(frame)
    notes = list(source.notes)
    if rejected:
        notes.append(f"rejected {len(rejected):,} bad rows (see `rejected`)")
    return ImportResult(frame=frame, rejected=rejected, notes=notes)


def write_transactions(frame: pd.DataFrame, path: str | Path) -> None:
    """Write canonical lines to Parquet (`.parquet`) or CSV (`.csv`, `.csv.gz`), chosen by suffix."""
    path = Path(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"cannot write {path}: missing canonical column(s) {', '.join(missing)}")
    out = frame[[c for c in CANONICAL_COLUMNS if c in frame.columns]]
    kind = _file_kind(path)
    if kind == "parquet":
        out.to_parquet(path, index=False)
    elif kind == "csv":
        out.to_csv(path, index=False)
    else:
        raise ValueError(f"cannot write {path}: use a .parquet, .csv or .csv.gz suffix")


@dataclass
class Baskets:
    """Baskets of a transaction frame: one row per basket in `table`, its lines contiguous in `lines`.

    Basket `i`'s lines are `lines.iloc[table.start[i]:table.stop[i]]`; slicing numpy arrays taken
    once from `lines` (e.g. `lines["sku"].to_numpy()`) makes a purchase event per basket cheap.
    """

    table: pd.DataFrame
    lines: pd.DataFrame

    def __len__(self) -> int:
        return len(self.table)

    def lines_of(self, i: int) -> pd.DataFrame:
        """The lines of the `i`-th basket (positional)."""
        start, stop = self.table["start"].iat[i], self.table["stop"].iat[i]
        return self.lines.iloc[start:stop]


def baskets(frame: pd.DataFrame) -> Baskets:
    """Group canonical lines into baskets, ordered by first `ts` then `member_id`.

    A basket is a (`member_id`, `basket_id`) pair, or one member's lines on one calendar date
    where `basket_id` is absent or empty; such baskets get `basket_id` "{member}-{yyyymmdd}".
    `table` has basket_id, member_id, ts (first), store_id (first line's, if present), amount
    (sum), n_lines, start, stop.
    """
    n = len(frame)
    member = frame["member_id"]
    ts = frame["ts"]
    if "basket_id" in frame.columns:
        key = frame["basket_id"].astype(STR_DTYPE)
        missing = key.isna().to_numpy()
        if missing.any():
            key = key.copy()
            key[missing] = _member_day_keys(member[missing], ts[missing]).to_numpy()
    else:
        key = _member_day_keys(member, ts)
    # Keying on the member too keeps two members apart if a source reuses receipt numbers.
    codes = pd.DataFrame({"m": member.to_numpy(), "k": key.to_numpy()}).groupby(
        ["m", "k"], sort=False
    ).ngroup().to_numpy()
    first_ts = ts.groupby(codes).transform("min").to_numpy()
    member_rank = pd.factorize(member, sort=True)[0]
    order = np.lexsort((np.arange(n), codes, member_rank, first_ts))
    lines = frame.take(order).reset_index(drop=True)
    sorted_codes = codes[order]
    if n:
        start = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
        stop = np.r_[start[1:], n].astype(np.int64)
    else:
        start = stop = np.zeros(0, dtype=np.int64)
    table = pd.DataFrame(
        {
            "basket_id": key.to_numpy()[order][start],
            "member_id": lines["member_id"].to_numpy()[start],
            "ts": first_ts[order][start],
        }
    )
    table["basket_id"] = table["basket_id"].astype(STR_DTYPE)
    table["member_id"] = table["member_id"].astype(STR_DTYPE)
    if "store_id" in lines.columns:
        table["store_id"] = lines["store_id"].to_numpy()[start]
        table["store_id"] = table["store_id"].astype(STR_DTYPE)
    amounts = lines["amount"].to_numpy(dtype=np.float64)
    table["amount"] = np.add.reduceat(amounts, start) if n else np.zeros(0)
    table["n_lines"] = stop - start
    table["start"] = start.astype(np.int64)
    table["stop"] = stop
    return Baskets(table=table, lines=lines)


# --- format loaders: each renames its source to canonical columns and says what it dropped ---


def _load_canonical(path: Path, mapping: dict[str, str]) -> _Source:
    kind = _file_kind(path)
    if kind == "csv":
        frame, lines, malformed, notes = _read_csv_text(path)
    elif kind == "parquet":
        frame = pd.read_parquet(path)
        lines, malformed, notes = np.arange(len(frame), dtype=np.int64) + 2, [], []
    else:
        raise ImportAborted(f"{path}: canonical files must be .csv, .csv.gz or .parquet", path)
    frame = _rename(frame, mapping, path)
    ignored = [c for c in frame.columns if c not in CANONICAL_COLUMNS]
    if ignored:
        notes.append(f"ignored non-canonical column(s): {', '.join(map(str, ignored))}")
    return _Source(frame=frame, lines=lines, malformed=malformed, notes=notes)


def _load_groceries(path: Path, mapping: dict[str, str]) -> _Source:
    frame, lines, malformed, notes = _read_csv_text(path)
    frame = _rename(frame, mapping, path)
    _require(frame, ("Member_number", "Date", "itemDescription"), path)
    frame = frame[["Member_number", "Date", "itemDescription"]]
    duplicate = frame.duplicated().to_numpy()
    notes.append(
        f"dropped {int(duplicate.sum()):,} exact duplicate rows (same member, date and item)"
    )
    frame, lines = frame[~duplicate], lines[~duplicate]
    item = frame["itemDescription"]
    padded = item[item.str.strip() != item].unique()
    if len(padded):
        notes.append(
            f"stripped surrounding spaces from {len(padded)} item name(s): "
            + ", ".join(repr(s) for s in padded[:5])
        )
    notes.append("groceries has no prices: amount is 1.0 per line, so it counts items")
    canonical = pd.DataFrame(
        {
            "member_id": frame["Member_number"].to_numpy(),
            "ts": frame["Date"].to_numpy(),
            "sku": item.to_numpy(),
            "qty": 1.0,
            "amount": 1.0,
            "category": item.to_numpy(),
        }
    )
    return _Source(
        frame=canonical,
        lines=lines,
        malformed=malformed,
        notes=notes,
        ts_format="%d-%m-%Y",
        finish=_with_member_day_baskets,
    )


_ONLINE_RETAIL_COLUMNS = ("InvoiceNo", "StockCode", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country")


def _load_online_retail(path: Path, mapping: dict[str, str]) -> _Source:
    if _file_kind(path) != "parquet":
        # The UCI CSV/XLSX exports use US month/day dates; we ship and read the Parquet copy.
        raise ImportAborted(f"{path}: the online-retail format reads the Parquet file", path)
    raw = pd.read_parquet(path)
    raw = _rename(raw, mapping, path)
    _require(raw, _ONLINE_RETAIL_COLUMNS, path)
    lines = np.arange(len(raw), dtype=np.int64) + 2
    notes: list[str] = []
    keep = raw["CustomerID"].notna().to_numpy()
    notes.append(f"dropped {int((~keep).sum()):,} rows without CustomerID")
    cancelled = raw["InvoiceNo"].astype(STR_DTYPE).str.startswith("C").fillna(False).to_numpy()
    notes.append(f"dropped {int((keep & cancelled).sum()):,} cancellation rows (InvoiceNo starting with C)")
    keep = keep & ~cancelled
    quantity = pd.to_numeric(raw["Quantity"], errors="coerce").to_numpy(dtype=np.float64)
    nonpositive = ~(quantity > 0)
    notes.append(f"dropped {int((keep & nonpositive).sum()):,} rows with non-positive Quantity")
    keep = keep & ~nonpositive
    kept = raw[keep]
    quantity = quantity[keep]
    price = pd.to_numeric(kept["UnitPrice"], errors="coerce").to_numpy(dtype=np.float64)
    canonical = pd.DataFrame(
        {
            "member_id": _integral_ids(kept["CustomerID"]).reset_index(drop=True),
            "ts": kept["InvoiceDate"].to_numpy(),
            "sku": kept["StockCode"].to_numpy(),
            "qty": quantity,
            # Not rounded to cents: a few lines have sub-cent unit prices (0.001).
            "amount": quantity * price,
            "store_id": kept["Country"].to_numpy(),
            "basket_id": kept["InvoiceNo"].to_numpy(),
        }
    )
    n_zero = int((price == 0).sum())
    if n_zero:
        notes.append(f"kept {n_zero:,} lines with UnitPrice 0 (amount 0)")
    return _Source(frame=canonical, lines=lines[keep], notes=notes)


_LOADERS: dict[str, Callable[[Path, dict[str, str]], _Source]] = {
    "canonical": _load_canonical,
    "groceries": _load_groceries,
    "online-retail": _load_online_retail,
}


# --- validation shared by every format ---


def _validate(
    source: _Source, path: Path, max_bad_fraction: float
) -> tuple[pd.DataFrame, list[RowError]]:
    """Check every row at once; return the good rows in canonical dtypes and the bad rows."""
    raw = source.frame
    _require(raw, REQUIRED_COLUMNS, path)
    n = len(raw)
    member = _as_text(raw["member_id"])
    ts = _parse_ts(raw["ts"], source.ts_format)
    amount = _to_float(raw["amount"])
    raw_amount_missing = _missing(raw["amount"])

    # Each check: (rows failing it, how to word the reason for one failing row's raw value).
    checks: list[tuple[np.ndarray, pd.Series, Callable[[object], str]]] = []
    checks.append((member.isna().to_numpy(), raw["member_id"], lambda v: "missing member_id"))
    ts_missing = _missing(raw["ts"])
    checks.append((ts_missing, raw["ts"], lambda v: "missing ts"))
    checks.append(
        (ts.isna().to_numpy() & ~ts_missing, raw["ts"], lambda v: f"ts {_shown(v)} is not a date/time")
    )
    checks.append((raw_amount_missing, raw["amount"], lambda v: "missing amount"))
    checks.append(
        (
            ~np.isfinite(amount) & ~raw_amount_missing,
            raw["amount"],
            lambda v: f"amount {_shown(v)} is not a number",
        )
    )
    checks.append((amount < 0, raw["amount"], lambda v: f"amount {_shown(v)} is negative"))
    if "qty" in raw.columns:
        qty_missing = _missing(raw["qty"])
        qty = _to_float(raw["qty"])
        qty = np.where(qty_missing, 1.0, qty)  # the contract's default for a blank qty
        checks.append(
            (~np.isfinite(qty), raw["qty"], lambda v: f"qty {_shown(v)} is not a number")
        )
        checks.append((qty <= 0, raw["qty"], lambda v: f"qty {_shown(v)} is not positive"))
    else:
        qty = np.ones(n)

    bad = np.zeros(n, dtype=bool)
    for failing, _, _ in checks:
        bad |= failing
    n_bad = int(bad.sum()) + len(source.malformed)
    n_total = n + len(source.malformed)
    too_many = n_bad > max_bad_fraction * n_total
    # Word reasons only for the rows we report: all of them (few) or, when aborting, the first ones.
    report_rows = np.flatnonzero(bad)
    if too_many:
        report_rows = report_rows[:_SHOWN_IN_ABORT]
    reasons: dict[int, list[str]] = {int(i): [] for i in report_rows}
    for failing, values, word in checks:
        rows = report_rows[failing[report_rows]]
        for i, v in zip(rows, values.iloc[rows].tolist()):
            reasons[int(i)].append(word(v))
    rejected = sorted(
        [RowError(int(source.lines[i]), "; ".join(r)) for i, r in reasons.items()]
        + source.malformed,
        key=lambda e: e.line,
    )
    if too_many:
        shown = "; ".join(str(e) for e in rejected[:_SHOWN_IN_ABORT])
        raise ImportAborted(
            f"{path}: {n_bad:,} of {n_total:,} rows are bad ({n_bad / max(n_total, 1):.1%}, "
            f"limit {max_bad_fraction:.1%}); first bad lines: {shown}",
            path,
            rejected,
        )

    good = ~bad

    def kept(values: pd.Series) -> pd.Series:
        return values[good].reset_index(drop=True)

    out = pd.DataFrame({"member_id": kept(member), "ts": kept(ts)})
    if "sku" in raw.columns:
        out["sku"] = kept(_as_text(raw["sku"]))
    out["qty"] = qty[good]
    out["amount"] = amount[good]
    for column in ("store_id", "basket_id", "category"):
        if column in raw.columns:
            out[column] = kept(_as_text(raw[column]))
    return out, rejected


def _sort_canonical(frame: pd.DataFrame) -> pd.DataFrame:
    # Stable, so the lines of one basket keep their source order.
    return frame.sort_values(["ts", "member_id"], kind="stable").reset_index(drop=True)


# --- helpers for reading and coercing columns ---


_SKIPPED_LINE = re.compile(r"Skipping line (\d+): (.*)")


def _read_csv_text(path: Path) -> tuple[pd.DataFrame, np.ndarray, list[RowError], list[str]]:
    """Read a CSV as text columns, with each row's true line number and the unsplittable lines."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", pd.errors.ParserWarning)
        # Blank lines are kept (as all-empty rows) so the row -> line arithmetic stays exact.
        try:
            frame = pd.read_csv(path, dtype="str", skip_blank_lines=False, on_bad_lines="warn")
        except pd.errors.EmptyDataError:
            raise ImportAborted(f"{path}: the file is empty (not even a header line)", path) from None
    # pandas numbers records (header = 1), not physical lines: map both to physical lines below.
    skipped = [
        (int(m.group(1)), m.group(2).strip())
        for w in caught
        if issubclass(w.category, pd.errors.ParserWarning)
        for m in _SKIPPED_LINE.finditer(str(w.message))
    ]
    for w in caught:
        if not issubclass(w.category, pd.errors.ParserWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    records = np.arange(len(frame), dtype=np.int64) + 2
    skipped_records = np.sort(np.array([r for r, _ in skipped], dtype=np.int64))
    if len(skipped_records):
        # A row after k skipped records sits k records further down.
        compressed = skipped_records - np.arange(len(skipped_records))
        records += np.searchsorted(compressed, records, side="right")
    # Quoted fields may span lines: each row moves down by the newlines in the rows before it.
    embedded = np.zeros(len(frame), dtype=np.int64)
    if _may_quote(path):
        for column in frame.columns:
            embedded += frame[column].str.count("\n").fillna(0).to_numpy(dtype=np.int64)
    newlines_through = np.cumsum(embedded)
    lines = records + np.r_[0, newlines_through[:-1]] if len(frame) else records
    rows_before = np.searchsorted(records, [r for r, _ in skipped])
    malformed = [
        RowError(int(r + (newlines_through[k - 1] if k else 0)), f"malformed CSV row: {why}")
        for (r, why), k in zip(skipped, rows_before)
    ]
    blank = frame.isna().all(axis=1).to_numpy()
    notes = [f"skipped {int(blank.sum()):,} blank lines"] if blank.any() else []
    return frame[~blank].reset_index(drop=True), lines[~blank], malformed, notes


def _may_quote(path: Path) -> bool:
    """Whether the file has a double quote at all: without one no field can span lines."""
    if path.name.lower().endswith(".gz"):
        return True  # not worth decompressing twice to find out
    with path.open("rb") as handle:
        if path.stat().st_size == 0:
            return False
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return data.find(b'"') >= 0


def _rename(frame: pd.DataFrame, mapping: dict[str, str], path: Path) -> pd.DataFrame:
    if not mapping:
        return frame
    unknown = [src for src in mapping if src not in frame.columns]
    if unknown:
        raise ImportAborted(
            f"{path}: cannot map column(s) {', '.join(map(repr, unknown))}: not in the file; "
            f"columns present: {', '.join(map(str, frame.columns))}",
            path,
        )
    renamed = frame.rename(columns=mapping)
    duplicated = sorted(set(renamed.columns[renamed.columns.duplicated()]))
    if duplicated:
        raise ImportAborted(
            f"{path}: mapping gives more than one column the name(s) {', '.join(map(repr, duplicated))}",
            path,
        )
    return renamed


def _require(frame: pd.DataFrame, columns: Sequence[str], path: Path) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ImportAborted(
            f"{path}: missing required column(s) {', '.join(map(repr, missing))}; "
            f"columns present: {', '.join(map(str, frame.columns))} "
            "(rename a column with --map SRC=DST)",
            path,
        )


def _file_kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith((".csv", ".csv.gz")):
        return "csv"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    return "unknown"


def _missing(values: pd.Series) -> np.ndarray:
    missing = values.isna().to_numpy()
    if values.dtype == object or pd.api.types.is_string_dtype(values.dtype):
        missing = missing | (values.astype(STR_DTYPE).str.strip() == "").fillna(False).to_numpy(dtype=bool)
    return missing


def _as_text(values: pd.Series) -> pd.Series:
    """Ids as stripped strings; blank becomes missing; integral floats (12346.0) lose the '.0'."""
    if pd.api.types.is_float_dtype(values.dtype):
        finite = values.dropna()
        if (finite == np.floor(finite)).all():
            return _integral_ids(values)
    if pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype):
        text = values.astype(STR_DTYPE)
        text[values.isna()] = np.nan
        return text
    text = values.astype(STR_DTYPE).str.strip()
    return text.mask(text == "")


def _to_float(values: pd.Series) -> np.ndarray:
    """Numbers as float64; anything unparseable becomes NaN."""
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    if pd.api.types.is_string_dtype(values.dtype):
        try:  # Arrow's parser is several times faster; it refuses the whole column on one bad value
            parsed = pc.cast(pa.array(values.astype(STR_DTYPE)), pa.float64())
            return parsed.to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)


def _integral_ids(values: pd.Series) -> pd.Series:
    """Whole-number ids stored as floats (missing values force float in pandas) as '12346' strings."""
    codes, labels = pd.factorize(values.to_numpy(dtype=np.float64))
    # Formatting the few distinct ids and taking them is much cheaper than formatting every row.
    label_text = pa.array(np.asarray(labels).astype(np.int64).astype(str))
    text = pa.DictionaryArray.from_arrays(pa.array(codes, mask=codes < 0), label_text).cast(pa.string())
    return pd.Series(text, index=values.index, dtype=STR_DTYPE)


# An offset only counts after a time of day, so the "-15" of "2026-01-15" is never taken for one.
_TRAILING_OFFSET = re.compile(r"(\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)\s*(?:Z|[+-]\d{2}(?::?\d{2})?)$")


def _parse_ts(values: pd.Series, ts_format: str) -> pd.Series:
    """Parse timestamps to naive local time; unparseable values become NaT.

    A UTC offset in the source is dropped, not applied: `ts` is the store's wall-clock time as
    written, which is what weekday/hour features and "today" rules need.
    """
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        parsed = values
    else:
        text = values.astype(STR_DTYPE).str.strip()
        try:
            parsed = pd.to_datetime(text, format=ts_format, errors="coerce")
        except ValueError:
            # Mixed offsets (or naive mixed with aware) can't share one dtype: drop the offsets.
            parsed = pd.to_datetime(
                text.str.replace(_TRAILING_OFFSET, r"\1", regex=True), format=ts_format, errors="coerce"
            )
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        parsed = parsed.dt.tz_localize(None)
    return parsed.astype(TS_DTYPE)


def _shown(value: object) -> str:
    text = str(value)
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _member_day_keys(member: pd.Series, ts: pd.Series) -> pd.Series:
    """"{member}-{yyyymmdd}" per line; dates are formatted once per distinct day, then taken."""
    day_codes, days = pd.factorize(ts.dt.normalize())
    day_text = pd.Series(pd.DatetimeIndex(days).strftime("%Y%m%d"), dtype=STR_DTYPE)
    day_per_line = day_text.take(day_codes).reset_index(drop=True)
    keys = member.astype(STR_DTYPE).reset_index(drop=True) + "-" + day_per_line
    return keys.set_axis(member.index)


def _with_member_day_baskets(frame: pd.DataFrame) -> pd.DataFrame:
    frame["basket_id"] = _member_day_keys(frame["member_id"], frame["ts"])
    return frame[[c for c in CANONICAL_COLUMNS if c in frame.columns]]


@contextmanager
def _stages(enabled: bool, name: str) -> Iterator[Callable[[str], None]]:
    """A three-step progress bar (read, validate, sort); the work in each step is vectorised."""
    if not enabled:
        yield lambda _stage: None
        return
    from tqdm import tqdm  # imported lazily: only interactive imports show progress

    bar = tqdm(total=3, desc=name, unit="step", file=sys.stderr, leave=True)
    first = [True]

    def stage(label: str) -> None:
        if not first[0]:
            bar.update(1)
        first[0] = False
        bar.set_postfix_str(label)

    try:
        yield stage
        bar.update(1)
    finally:
        bar.close()
