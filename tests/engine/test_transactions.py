"""Specification of the canonical transaction importers, writer and basket grouping."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.transactions import (
    CANONICAL_COLUMNS,
    REQUIRED_COLUMNS,
    ImportAborted,
    RowError,
    baskets,
    read_transactions,
    write_transactions,
)
from tests.helpers.paths import shared_data


def _csv(tmp_path: Path, text: str, name: str = "lines.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode())
    return path


def _assert_canonical(frame: pd.DataFrame) -> None:
    assert list(frame.columns) == [c for c in CANONICAL_COLUMNS if c in frame.columns]
    assert set(REQUIRED_COLUMNS) | {"qty"} <= set(frame.columns)
    assert frame["ts"].dtype.kind == "M" and frame["ts"].dt.tz is None
    assert frame["qty"].dtype == np.float64 and frame["amount"].dtype == np.float64
    for column in ("member_id", "sku", "store_id", "basket_id", "category"):
        if column in frame.columns:
            assert pd.api.types.is_string_dtype(frame[column].dtype), column
    ordered = frame.sort_values(["ts", "member_id"], kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(frame, ordered)


# --- the real datasets ---


def test_online_retail_keeps_customer_purchases_only():
    path = shared_data("online_retail.parquet")
    started = time.perf_counter()
    result = read_transactions(path, fmt="online-retail")
    elapsed = time.perf_counter() - started
    frame = result.frame

    assert len(frame) == 397_924
    assert frame["member_id"].nunique() == 4_339
    assert frame["sku"].nunique() == 3_665
    assert result.rejected == []  # filtered rows are expected, not errors
    assert any("135,080" in note and "CustomerID" in note for note in result.notes)
    assert any("8,905" in note and "cancellation" in note for note in result.notes)
    _assert_canonical(frame)
    assert {"store_id", "basket_id"} <= set(frame.columns)
    assert not frame["basket_id"].str.startswith("C").any()
    assert (frame["qty"] > 0).all()
    assert frame["member_id"].str.fullmatch(r"\d+").all()  # str(int(CustomerID)): no ".0"
    assert elapsed < 10, f"online retail import took {elapsed:.1f}s"


def test_online_retail_amount_is_quantity_times_unit_price():
    path = shared_data("online_retail.parquet")
    raw = pd.read_parquet(path)
    frame = read_transactions(path, fmt="online-retail").frame
    line = frame[(frame["basket_id"] == "536365") & (frame["sku"] == "85123A")].iloc[0]
    source = raw[(raw["InvoiceNo"] == "536365") & (raw["StockCode"] == "85123A")].iloc[0]
    assert line["member_id"] == str(int(source["CustomerID"]))
    assert line["amount"] == pytest.approx(source["Quantity"] * source["UnitPrice"])
    assert line["store_id"] == source["Country"]
    assert line["ts"] == source["InvoiceDate"]


def test_groceries_drops_exact_duplicates_and_keys_baskets_by_member_and_date():
    path = shared_data("groceries.csv")
    result = read_transactions(path, fmt="groceries")
    frame = result.frame

    assert len(frame) == 38_765 - 759
    assert any("759" in note and "duplicate" in note for note in result.notes)
    assert result.rejected == []
    assert frame["member_id"].nunique() == 3_898
    assert frame["sku"].nunique() == 167
    assert frame["basket_id"].nunique() == 14_963
    _assert_canonical(frame)
    expected_key = frame["member_id"] + "-" + frame["ts"].dt.strftime("%Y%m%d")
    assert (frame["basket_id"] == expected_key).all()
    assert (frame["amount"] == 1.0).all() and (frame["qty"] == 1.0).all()  # amount counts items
    assert (frame["category"] == frame["sku"]).all()
    assert frame["ts"].min() == pd.Timestamp("2014-01-01")
    assert frame["ts"].max() == pd.Timestamp("2015-12-30")
    assert not frame.duplicated(["member_id", "ts", "sku"]).any()
    assert (frame["sku"] == frame["sku"].str.strip()).all()


def test_groceries_baskets_match_the_data_readme():
    frame = read_transactions(shared_data("groceries.csv"), fmt="groceries").frame
    assert len(baskets(frame)) == 14_963


# --- canonical files: bad rows, line numbers, mapping, errors ---


def test_bad_rows_are_rejected_with_line_and_reason_and_good_rows_kept(tmp_path):
    path = _csv(
        tmp_path,
        "member_id,ts,sku,qty,amount\n"
        "m1,2026-01-01 10:00,A,1,3.5\n"  # line 2: good
        ",2026-01-01 10:00,A,1,3.5\n"  # line 3: no member
        "m2,yesterday,A,1,3.5\n"  # line 4: bad ts
        "m3,2026-01-02,A,1,lots\n"  # line 5: non-numeric amount
        "m4,2026-01-02,A,1,-2\n"  # line 6: negative amount
        "m5,2026-01-02,A,0,2\n"  # line 7: qty not positive
        "m6,2026-01-03,B,2,4.0\n",  # line 8: good
    )
    result = read_transactions(path, max_bad_fraction=0.9)

    assert [e.line for e in result.rejected] == [3, 4, 5, 6, 7]
    reasons = {e.line: e.reason for e in result.rejected}
    assert "member_id" in reasons[3]
    assert "'yesterday'" in reasons[4] and "ts" in reasons[4]
    assert "'lots'" in reasons[5] and "not a number" in reasons[5]
    assert "negative" in reasons[6]
    assert "qty" in reasons[7] and "not positive" in reasons[7]
    assert result.frame["member_id"].tolist() == ["m1", "m6"]
    assert result.frame["amount"].tolist() == [3.5, 4.0]
    _assert_canonical(result.frame)


def test_line_numbers_survive_blank_lines_multiline_fields_and_malformed_rows(tmp_path):
    path = _csv(
        tmp_path,
        "member_id,ts,sku,amount\r\n"  # 1
        'm1,2026-01-01,"two\r\nlines",1\r\n'  # 2-3: a quoted field spanning lines
        "\r\n"  # 4: blank
        "m2,2026-01-01,A,1,extra\r\n"  # 5: too many fields
        "m3,never,A,1\r\n"  # 6: bad ts
        "m4,2026-01-02,A,1\r\n",  # 7: good
    )
    result = read_transactions(path, max_bad_fraction=0.9)

    assert [(e.line, "malformed" in e.reason) for e in result.rejected] == [(5, True), (6, False)]
    assert result.frame["member_id"].tolist() == ["m1", "m4"]


def test_too_many_bad_rows_abort_naming_file_count_and_first_bad_lines(tmp_path):
    rows = ["member_id,ts,amount"] + [f"m{i},2026-01-01,{'x' if i % 2 else 1}" for i in range(20)]
    path = _csv(tmp_path, "\n".join(rows) + "\n", name="pos_export.csv")

    with pytest.raises(ImportAborted) as caught:
        read_transactions(path)  # default limit: 1% bad
    message = str(caught.value)
    assert "pos_export.csv" in message
    assert "10 of 20" in message
    for line in (3, 5, 7, 9, 11):  # the first five bad lines, with their reasons
        assert f"line {line}: amount 'x' is not a number" in message
    assert "line 13" not in message


def test_a_few_bad_rows_under_the_limit_do_not_abort(tmp_path):
    rows = ["member_id,ts,amount"] + [f"m{i},2026-01-01,1" for i in range(199)] + ["m,oops,1"]
    result = read_transactions(_csv(tmp_path, "\n".join(rows) + "\n"))  # 1 of 200 = 0.5%
    assert result.rejected == [RowError(201, "ts 'oops' is not a date/time")]
    assert len(result.frame) == 199


def test_mapping_renames_source_columns_like_the_cli_map_option(tmp_path):
    path = _csv(tmp_path, "card_no,paid_at,item,total,shop\nC001,2026-03-01 09:30:00,milk,6.5,S1\n")
    result = read_transactions(
        path, mapping={"card_no": "member_id", "paid_at": "ts", "item": "sku", "total": "amount", "shop": "store_id"}
    )
    row = result.frame.iloc[0]
    assert (row["member_id"], row["sku"], row["amount"], row["store_id"]) == ("C001", "milk", 6.5, "S1")
    assert row["ts"] == pd.Timestamp("2026-03-01 09:30:00")
    assert row["qty"] == 1.0  # the default when the source has no quantity


def test_mapping_a_column_the_file_does_not_have_is_an_error(tmp_path):
    path = _csv(tmp_path, "member_id,ts,amount\nm1,2026-01-01,1\n")
    with pytest.raises(ImportAborted, match="'price'.*columns present: member_id, ts, amount"):
        read_transactions(path, mapping={"price": "amount"})


def test_missing_required_column_names_file_column_and_columns_present(tmp_path):
    path = _csv(tmp_path, "member_id,date,amount\nm1,2026-01-01,1\n", name="no_ts.csv")
    with pytest.raises(ImportAborted) as caught:
        read_transactions(path)
    message = str(caught.value)
    assert "no_ts.csv" in message and "'ts'" in message
    assert "columns present: member_id, date, amount" in message


def test_ids_stay_text_blank_qty_defaults_to_one_and_extra_columns_are_ignored(tmp_path):
    path = _csv(tmp_path, "member_id,ts,sku,qty,amount,note\n007, 2026-01-01 ,0042,,2.5,hi\n")
    result = read_transactions(path)
    row = result.frame.iloc[0]
    assert (row["member_id"], row["sku"], row["qty"]) == ("007", "0042", 1.0)
    assert "note" not in result.frame.columns
    assert any("note" in n for n in result.notes)


def test_utc_offsets_are_dropped_keeping_the_wall_clock_time(tmp_path):
    path = _csv(
        tmp_path,
        "member_id,ts,amount\n"
        "m1,2026-01-15T10:00:00+08:00,1\n"
        "m2,2026-01-15T11:00:00.5Z,1\n"
        "m3,2026-01-15 12:00,1\n"
        "m4,2026-01-16,1\n",
    )
    frame = read_transactions(path).frame
    assert frame["ts"].tolist() == list(
        pd.to_datetime(["2026-01-15 10:00:00", "2026-01-15 11:00:00.5", "2026-01-15 12:00:00", "2026-01-16"], format="ISO8601")
    )


def test_parquet_rows_are_numbered_from_two_like_a_csv_export(tmp_path):
    path = tmp_path / "lines.parquet"
    pd.DataFrame(
        {"member_id": ["a", "b", "c"], "ts": pd.to_datetime(["2026-01-01"] * 3), "amount": [1.0, -1.0, 2.0]}
    ).to_parquet(path)
    result = read_transactions(path, max_bad_fraction=0.5)
    assert [e.line for e in result.rejected] == [3]
    assert result.frame["member_id"].tolist() == ["a", "c"]


def test_a_header_only_file_gives_an_empty_canonical_frame(tmp_path):
    result = read_transactions(_csv(tmp_path, "member_id,ts,sku,amount\n"))
    assert len(result.frame) == 0 and result.rejected == []
    _assert_canonical(result.frame)
    assert len(baskets(result.frame)) == 0


def test_an_empty_file_aborts_saying_so(tmp_path):
    with pytest.raises(ImportAborted, match="empty.csv: the file is empty"):
        read_transactions(_csv(tmp_path, "", name="empty.csv"))


def test_online_retail_format_names_a_missing_source_column(tmp_path):
    path = tmp_path / "retail.parquet"
    pd.DataFrame({"InvoiceNo": ["1"], "StockCode": ["A"], "Quantity": [1]}).to_parquet(path)
    with pytest.raises(ImportAborted, match="retail.parquet: missing required column.*'InvoiceDate'"):
        read_transactions(path, fmt="online-retail")


def test_unknown_format_is_refused(tmp_path):
    with pytest.raises(ValueError, match="online-retail"):
        read_transactions(_csv(tmp_path, "member_id,ts,amount\n"), fmt="excel")


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".csv.gz"])
def test_written_files_read_back_identical(tmp_path, suffix):
    source = _csv(
        tmp_path,
        "member_id,ts,sku,qty,amount,store_id,basket_id,category\n"
        "m2,2026-01-02 08:00:01,A,2,3.3,S1,b2,dairy\n"
        "m1,2026-01-01 09:00:00,B,1,0.1,S2,b1,snacks\n",
    )
    frame = read_transactions(source).frame
    target = tmp_path / f"out{suffix}"
    write_transactions(frame, target)
    pd.testing.assert_frame_equal(read_transactions(target).frame, frame)


# --- baskets ---


def test_baskets_group_lines_with_ranges_into_the_reordered_lines():
    frame = pd.DataFrame(
        {
            "member_id": ["m1", "m2", "m1", "m2", "m3"],
            # basket b1 spans two timestamps with m2's basket in between
            "ts": pd.to_datetime(
                ["2026-01-01 10:00:00", "2026-01-01 10:00:30", "2026-01-01 10:01:00", "2026-01-01 10:02:00", "2026-01-02 08:00:00"]
            ),
            "sku": ["milk", "beer", "bread", "nuts", "tea"],
            "qty": [1.0, 6.0, 1.0, 1.0, 1.0],
            "amount": [6.5, 30.0, 9.0, 8.0, 3.0],
            "store_id": ["S1", "S2", "S1", "S2", "S3"],
            "basket_id": ["b1", "b2", "b1", "b2", "b3"],
        }
    )
    result = baskets(frame)

    table = result.table
    assert len(result) == 3
    assert table["basket_id"].tolist() == ["b1", "b2", "b3"]
    assert table["member_id"].tolist() == ["m1", "m2", "m3"]
    assert table["amount"].tolist() == [15.5, 38.0, 3.0]
    assert table["n_lines"].tolist() == [2, 2, 1]
    assert table["ts"].tolist() == list(pd.to_datetime(["2026-01-01 10:00:00", "2026-01-01 10:00:30", "2026-01-02 08:00:00"]))
    assert table["store_id"].tolist() == ["S1", "S2", "S3"]
    assert result.lines_of(0)["sku"].tolist() == ["milk", "bread"]
    skus = result.lines["sku"].to_numpy()
    assert [list(skus[a:b]) for a, b in zip(table["start"], table["stop"])] == [
        ["milk", "bread"],
        ["beer", "nuts"],
        ["tea"],
    ]


def test_without_basket_ids_a_basket_is_one_members_purchases_on_one_date():
    frame = pd.DataFrame(
        {
            "member_id": ["m1", "m1", "m1", "m2"],
            "ts": pd.to_datetime(["2026-01-01 09:00", "2026-01-01 18:00", "2026-01-02 09:00", "2026-01-01 12:00"]),
            "amount": [1.0, 2.0, 4.0, 8.0],
        }
    )
    table = baskets(frame).table
    assert table["basket_id"].tolist() == ["m1-20260101", "m2-20260101", "m1-20260102"]
    assert table["amount"].tolist() == [3.0, 8.0, 4.0]
    assert "store_id" not in table.columns
