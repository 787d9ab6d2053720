"""Writing tables: CSV and Parquet through Arrow read back to the same values, row selections."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tabguard import io as tio
from tabguard.io import read_table, write_table


def _frame(n: int = 50) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    amount = np.round(rng.lognormal(3, 1, n), 2)
    amount[3] = np.nan
    amount[4] = 1e-7
    amount[5] = 123456789012.5
    text = rng.choice(["in_store", "online", 'a,"quoted"', "two\nlines"], n).astype(object)
    text[6] = None
    return pd.DataFrame(
        {
            "id": np.arange(n),
            "amount": amount,
            "ratio": rng.normal(size=n) / 3,
            "channel": text,
            "card_present": rng.random(n) < 0.5,
        }
    )


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    a, b = a.reset_index(drop=True), b.reset_index(drop=True)
    assert list(a.columns) == list(b.columns)
    for c in a.columns:
        x, y = a[c], b[c]
        missing = x.isna().to_numpy()
        assert (y.isna().to_numpy() == missing).all(), c
        assert (x[~missing].to_numpy() == y[~missing].to_numpy()).all(), c


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_round_trip_keeps_every_value(tmp_path: Path, fmt: str) -> None:
    df = _frame()
    path = write_table(df, tmp_path / f"t.{fmt}", format=fmt)  # type: ignore[arg-type]
    _same(df, read_table(path))


@pytest.mark.parametrize("name", ["t.parq", "t.dat", "t.csv"])
def test_parquet_is_read_by_its_content_whatever_its_suffix(tmp_path: Path, name: str) -> None:
    df = _frame()
    path = tmp_path / name
    write_table(df, tmp_path / "t.parquet", format="parquet").rename(path)
    _same(df, read_table(path))


@pytest.mark.parametrize("n_runs", [3, 3 * tio._MAX_SLICES])
def test_selected_rows_are_written_in_order(tmp_path: Path, n_runs: int) -> None:
    n = 4 * n_runs
    df = pd.DataFrame({"i": np.arange(n), "s": [f"r{i}" for i in range(n)]})
    keep = np.arange(n) % 4 < 2  # n_runs runs of kept rows: slices, or one filtered copy
    out = read_table(write_table(df, tmp_path / "t.csv", rows=keep))
    assert out["i"].tolist() == np.flatnonzero(keep).tolist()
    assert out["s"].tolist() == [f"r{i}" for i in np.flatnonzero(keep)]


@settings(max_examples=30, deadline=None)
@given(keep=arrays(bool, st.integers(1, 60)))
def test_any_selection_writes_exactly_those_rows(keep: np.ndarray) -> None:
    import tempfile

    df = pd.DataFrame({"i": np.arange(len(keep)), "x": np.arange(len(keep)) / 7})
    with tempfile.TemporaryDirectory() as tmp:
        path = write_table(df, Path(tmp) / "t.parquet", rows=keep, format="parquet")
        out = pd.read_parquet(path)
    assert out["i"].tolist() == np.flatnonzero(keep).tolist()
    assert np.array_equal(out["x"].to_numpy(), df["x"].to_numpy()[keep])


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_column_arrow_cannot_hold_is_written_by_pandas(tmp_path: Path, fmt: str) -> None:
    df = pd.DataFrame({"mixed": pd.Series([1, "a", 2.5, None], dtype=object), "n": range(4)})
    keep = np.array([True, True, False, True])
    out = read_table(write_table(df, tmp_path / f"t.{fmt}", rows=keep, format=fmt))  # type: ignore[arg-type]
    assert out["n"].tolist() == [0, 1, 3]
    assert [str(v) for v in out["mixed"][:2]] == ["1", "a"] and out["mixed"].isna().iloc[2]


def test_usage_mistakes_are_clear(tmp_path: Path) -> None:
    df = _frame().head(4)
    with pytest.raises(ValueError, match="format must be one of \\['csv', 'parquet'\\]; got 'xml'"):
        write_table(df, tmp_path / "t.xml", format="xml")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="a mask of 4 rows is needed; got 3"):
        write_table(df, tmp_path / "t.csv", rows=np.ones(3, dtype=bool))


def test_a_large_csv_written_on_two_threads_is_the_same_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    df = _frame(301)
    keep = np.ones(len(df), dtype=bool)
    keep[[0, 150, 151, 300]] = False
    write_table(df, tmp_path / "one.csv", rows=keep)
    monkeypatch.setattr(tio, "_CSV_SPLIT_ROWS", 10)  # halves of 148 and 149 rows
    write_table(df, tmp_path / "two.csv", rows=keep)
    assert (tmp_path / "two.csv").read_bytes() == (tmp_path / "one.csv").read_bytes()
    back = read_table(tmp_path / "two.csv")
    assert len(back) == keep.sum() and back["id"].tolist() == np.flatnonzero(keep).tolist()


def test_zero_padded_whole_numbers_are_kept_as_text_on_request(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("zip,n,x,ratio\n01234,1,7,0.5\n98101,2,,0.25\n00501,3,9,1.0\n")
    plain = read_table(path)
    assert plain["zip"].tolist() == [1234, 98101, 501]
    kept = read_table(path, keep_codes=True)
    assert kept["zip"].tolist() == ["01234", "98101", "00501"]
    # whole numbers without a leading zero (with a missing cell) and fractions stay numbers
    assert kept["n"].tolist() == [1, 2, 3] and kept["x"].isna().sum() == 1
    assert kept["ratio"].dtype == float


def test_a_csv_read_before_its_contract_gets_its_text_codes_back(tmp_path: Path) -> None:
    from tabguard.contract import Contract

    c = Contract.model_validate(
        {
            "name": "t",
            "label": {"column": "y"},
            "features": {
                "region": {"type": "category", "categories": ["01", "09", "10"]},
                "n": {"type": "integer"},
            },
        }
    )
    assert c.features["region"].categories == ["01", "09", "10"]  # not coerced to 1, 9, 10
    path = tmp_path / "t.csv"
    path.write_text("region,n,y\n09,1,0\n10,2,1\n01,3,0\n")
    read = tio.keep_text_codes(read_table(path), path, c)
    assert read["region"].tolist() == ["09", "10", "01"] and read["n"].tolist() == [1, 2, 3]
    parquet = write_table(read_table(path), tmp_path / "t.parquet", format="parquet")
    assert tio.keep_text_codes(read_table(parquet), parquet, c)["region"].tolist() == [9, 10, 1]


def test_numbers_with_a_decimal_comma_are_numbers_in_a_semicolon_file(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text(
        "konto;betrag;saldo;datum;plz\n"
        "A1;12,50;1.234,56;01.02.2024;01067\n"
        "A2;-0,5;;02.02.2024;80331\n"
        "A3;7;10.000,00;03.02.2024;20095\n"
    )
    df = read_table(path)
    assert df["betrag"].tolist() == [12.5, -0.5, 7.0]
    assert df["saldo"].tolist()[0] == 1234.56 and np.isnan(df["saldo"][1])
    assert df["saldo"][2] == 10000.0
    assert df["datum"].tolist()[0] == "01.02.2024"  # a date is not a number
    assert df["konto"].tolist() == ["A1", "A2", "A3"]
    # a comma-separated file keeps a quoted "12,50" as the text it is
    comma = tmp_path / "plain.csv"
    comma.write_text('id,note\n1,"12,50"\n')
    assert read_table(comma)["note"].tolist() == ["12,50"]


def test_an_excel_export_in_windows_1252_is_read(tmp_path: Path) -> None:
    path = tmp_path / "kredit.csv"
    text = "Kunde;Geschlecht;Betrag\nMüller;männlich;1.234,50\nBöhm;weiblich;99,00\n"
    path.write_bytes(text.encode("cp1252"))
    df = read_table(path)
    assert df["Kunde"].tolist() == ["Müller", "Böhm"] and df["Betrag"].tolist() == [1234.5, 99.0]
    bom = tmp_path / "utf8.csv"
    bom.write_bytes(text.encode("utf-8-sig"))
    assert read_table(bom).columns[0] == "Kunde"


def test_a_contract_is_written_with_its_own_letters(tmp_path: Path) -> None:
    from tabguard.contract import contract_from_dict, load_contract, save_contract

    c = contract_from_dict(
        {
            "name": "kredit",
            "label": {"column": "Ausfall", "positive": "ja"},
            "features": {
                "Geschlecht": {"type": "category", "categories": ["männlich", "weiblich"]}
            },
        }
    )
    path = save_contract(c, tmp_path / "c.yaml")
    assert "männlich" in path.read_text(encoding="utf-8")
    assert load_contract(path).features["Geschlecht"].categories == ["männlich", "weiblich"]


def test_a_missing_value_marker_keeps_a_number_column_numbers(tmp_path: Path) -> None:
    # one k.A. ("keine Angabe") kept a German export's income column text: 11,707 categories
    path = tmp_path / "export.csv"
    path.write_text(
        "kunde;einkommen;rate;kommentar;nur\n"
        "A1;2.441,59;12;gut;-\n"
        "A2;k.A.;-;k.A.;-\n"
        "A3;1.000,00;7,5;schlecht;-\n"
        "A4;#NV;3;-;-\n"
    )
    df = read_table(path)
    assert df["einkommen"].tolist()[::2] == [2441.59, 1000.0]
    assert df["einkommen"][[1, 3]].isna().all()
    assert df["rate"].tolist()[0] == 12.0 and np.isnan(df["rate"][1])
    assert df["kommentar"].tolist() == ["gut", "k.A.", "schlecht", "-"]  # text stays text
    assert df["nur"].tolist() == ["-"] * 4  # a column of markers alone is left as it is
    comma = tmp_path / "plain.csv"
    comma.write_text("id,amount,code\n1,12.5,A\n2,?,B\n3,n.v.,?\n4,-3e2,C\n")
    read = read_table(comma)
    assert read["amount"].tolist()[::3] == [12.5, -300.0] and read["amount"][1:3].isna().all()
    assert read["code"].tolist() == ["A", "B", "?", "C"]


def test_text_columns_are_given_up_on_their_first_values(tmp_path: Path) -> None:
    # a million-row category costs one hash pass; 70 distinct numbers then a word stay text
    values = [str(k) for k in range(70)] + ["seventy"]
    path = tmp_path / "t.csv"
    path.write_text("v\n" + "\n".join(values) + "\n")
    assert read_table(path)["v"].tolist() == values


@pytest.mark.parametrize("late", ["A", "k.A."])
def test_a_column_whose_text_starts_after_the_first_chunk_reads_as_one_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, late: str
) -> None:
    # numbers in the first chunks, then a word or a missing-value marker: the reader guesses
    # each chunk's types on its own, and the column came out floats and strings mixed
    x = [str(i) for i in range(9)] + [late, "10"]
    p = tmp_path / "late.csv"
    pd.DataFrame({"x": x, "y": range(11)}).to_csv(p, index=False)
    whole = read_table(p)
    monkeypatch.setattr(tio, "_CHUNK_ROWS", 4)
    chunked = read_table(p)
    pd.testing.assert_frame_equal(chunked, whole)
    assert {type(v) for v in chunked["x"].dropna()} == {type(v) for v in whole["x"].dropna()}
    if late == "A":
        assert chunked["x"].tolist() == x  # text, as the file wrote it
    else:
        assert chunked["x"].isna().sum() == 1 and chunked["x"].dtype == float
