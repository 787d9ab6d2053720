"""Reading and writing tabular files with clear errors, and fingerprints of data.

:func:`read_table` reads CSV (plain or gzip) in chunks, reporting progress, and Parquet. Every
way a file can be unusable (absent, a directory, empty, binary, not CSV) becomes a one-line
:class:`~tabguard.errors.DataError`. :func:`write_table` writes a frame, or a selection of its
rows, as CSV or Parquet through Arrow. :func:`check_labels` validates the label column.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from tabguard._preformat import PreformattedCsv, arrow_table
from tabguard.contract import Contract
from tabguard.contract._validate import missing_label_error
from tabguard.errors import DataError

ProgressFn = Callable[[int], None]
_CHUNK_ROWS = 250_000
TableFormat = Literal["csv", "parquet"]
FORMATS: dict[str, str] = {"csv": ".csv", "parquet": ".parquet"}
# a selection of rows is written as zero-copy slices of the runs of kept rows up to this many
# runs; beyond, one filtered copy is cheaper than thousands of slices
_MAX_SLICES = 4096


def _sniff(path: Path) -> bytes:
    with path.open("rb") as fh:
        head = fh.read(8192)
    if head[:2] == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as gz:
                head = gz.read(8192)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{path}: looks gzip-compressed but cannot be read ({exc})") from None
    return head


def _is_parquet(p: Path) -> bool:
    """Whether :func:`read_table` reads ``p`` as Parquet: by its suffix, else by its magic
    bytes (a file named .parq or .dat)."""
    return p.suffix.lower() in (".parquet", ".pq") or _sniff(p).startswith(b"PAR1")


def read_table(
    path: str | Path,
    *,
    sep: str | None = None,
    progress: ProgressFn | None = None,
    dtype: dict[str, Any] | None = None,
    columns: list[str] | None = None,
    keep_codes: bool = False,
    contract: Contract | None = None,
) -> pd.DataFrame:
    """Read a CSV (optionally gzip) or Parquet file into a frame.

    Parquet is read when the file is named ``.parquet`` or ``.pq`` or starts with Parquet's
    magic bytes, whatever its suffix; anything else is read as CSV.

    Parameters
    ----------
    path : str or Path
    sep : str, optional
        CSV delimiter; sniffed from the header line when omitted (``,`` ``;`` tab ``|``).
        The encoding is UTF-8 (with or without a byte-order mark), else Windows-1252 (what
        Excel's "CSV" writes on Windows), else Latin-1.
        A text column whose every value is a number or a missing-value marker
        (:data:`MISSING_MARKERS`: ``k.A.``, ``n.v.``, ``-``, ...; read as missing) is read as
        numbers; in a file not separated by commas, the numbers may be written with a decimal
        comma (``1.234,56``, ``-0,5``). A large file is read in chunks of 250,000 rows, and
        a column is typed as one read of the whole file would type it (numbers early and text
        later make a text column).
    progress : callable, optional
        Called with the number of rows read after each chunk.
    dtype : dict, optional
        Column types passed to the CSV reader.
    columns : list of str, optional
        Read only these CSV columns.
    keep_codes : bool, default False
        Keep as text the CSV columns the reader would take for whole numbers but whose text
        has a leading zero (``007``, ``09``): such a column holds codes, and as numbers
        ``09`` and ``9`` would be one value and ``09`` could not be written back. For a file
        with no contract yet (``contract infer``); with a contract, pass ``contract``.
    contract : Contract, optional
        The contract the rows are read for: its text codes are read as text
        (:func:`text_code_dtypes`, added to ``dtype``), so ``'09'`` is neither 9 nor a break.

    Returns
    -------
    DataFrame

    Raises
    ------
    DataError
        Missing file, directory, empty file, binary or malformed content, no data rows.
    """
    if contract is not None:
        dtype = {**text_code_dtypes(contract), **(dtype or {})} or None
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: file not found; check the path")
    if p.is_dir():
        raise DataError(f"{p}: is a directory, expected a CSV or Parquet file")
    if p.stat().st_size == 0:
        raise DataError(f"{p}: file is empty (0 bytes); expected a CSV with a header row")
    if _is_parquet(p):
        try:
            df = pd.read_parquet(p)
        except Exception as exc:
            raise DataError(
                f"{p}: not a readable Parquet file ({type(exc).__name__}: {exc})"
            ) from None
        if progress:
            progress(len(df))
        return _nonempty(df, p)
    head = _sniff(p)
    if head.startswith(b"PK\x03\x04"):
        raise DataError(f"{p}: is a ZIP/Excel file, not CSV; export it as CSV first")
    if b"\x00" in head:
        raise DataError(f"{p}: is binary, not a CSV text file")
    encoding = None  # UTF-8, a byte-order mark skipped
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if len(head) == 8192 and exc.start >= len(head) - 3:
            text = head[: exc.start].decode("utf-8")  # the block ends inside a character
        else:
            # Excel's "CSV" on Windows writes the ANSI code page (umlauts as single bytes)
            encoding = "cp1252"
            try:
                text = head.decode(encoding)
            except UnicodeDecodeError:
                encoding = "latin-1"
                text = head.decode(encoding)
    first = text.splitlines()[0] if text.strip() else ""
    if not first.strip():
        raise DataError(f"{p}: has no header row; expected column names on the first line")
    if sep is None:
        try:
            sep = csv.Sniffer().sniff(first, delimiters=",;\t|").delimiter
        except csv.Error:
            sep = ","
    df = _read_csv(p, sep, progress, dtype, columns, encoding)
    df = _numbers_in_text(df, dtype, sep)
    if keep_codes:
        df = _zero_padded_as_text(df, p, sep, encoding)
    return df


def _read_csv(
    p: Path,
    sep: str,
    progress: ProgressFn | None,
    dtype: dict[str, Any] | None,
    columns: list[str] | None,
    encoding: str | None = None,
) -> pd.DataFrame:
    chunks: list[pd.DataFrame] = []
    try:
        reader = pd.read_csv(
            p,
            sep=sep,
            chunksize=_CHUNK_ROWS,
            dtype=dtype,
            usecols=columns,
            low_memory=False,
            encoding=encoding,
        )
        for chunk in reader:
            chunks.append(chunk)
            if progress:
                progress(len(chunk))
    except pd.errors.EmptyDataError:
        raise DataError(f"{p}: has no columns; expected a CSV with a header row") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        msg = str(exc).strip().splitlines()[0]
        raise DataError(f"{p}: is not valid CSV ({msg})") from None
    except (OSError, EOFError, zlib.error) as exc:  # truncated or corrupt compressed data
        raise DataError(f"{p}: cannot be read ({type(exc).__name__}: {exc})") from None
    if not chunks:
        raise DataError(f"{p}: has a header but no data rows")
    if len(chunks) == 1:
        return _nonempty(chunks[0], p)
    df = pd.concat(chunks, ignore_index=True)
    # The reader guesses each chunk's types on its own: a column of numbers in the first
    # chunks and text later would come out as floats and strings mixed, where one read of the
    # whole file gives text. Such columns (rare) are read again as text, as one read would.
    mixed = [
        c
        for c in df.columns
        if len({str(ch[c].dtype) for ch in chunks}) > 1
        and any(pd.api.types.is_string_dtype(ch[c].dtype) for ch in chunks)
    ]
    if mixed:
        again = pd.read_csv(
            p, sep=sep, usecols=mixed, dtype=dict.fromkeys(mixed, str), encoding=encoding
        )
        df = df.copy(deep=False)
        for c in mixed:
            df[c] = again[c]
    return _nonempty(df, p)


_LEADING_ZERO = r"^\s*[+-]?0\d"
# 1234,56 or 1.234,56 (a point between groups of three digits); a whole number beside them
_DECIMAL_COMMA = r"^\s*[+-]?(?:\d+|\d{1,3}(?:\.\d{3})+)(?:,\d+)?\s*$"
#: What spreadsheets and statistics exports write for a missing number, beyond pandas' own
#: markers (``NA``, ``N/A``, ``null``, ...): German ``k.A.`` ("keine Angabe"), ``n.v.`` and
#: Excel's ``#NV``, French and Italian ``n.d.``, dashes, ``?`` and the dots of statistics
#: offices' tables. Read as missing only in a column whose every other value is a number.
MISSING_MARKERS = frozenset(
    m.casefold()
    for m in (
        "k.A.", "k. A.", "keine Angabe", "n.v.", "n. v.", "#NV", "n.d.", "nd", "n.a.", "na.",
        "-", "--", "\u2013", "\u2014", "?", ".", "..", "...",
    )
)  # fmt: skip


def _numbers_in_text(df: pd.DataFrame, dtype: dict[str, Any] | None, sep: str) -> pd.DataFrame:
    """Text columns that hold numbers, as numbers; columns given a ``dtype`` are left.

    A column is read as numbers when every value is a number or a missing-value marker
    (:data:`MISSING_MARKERS`, read as missing): one ``k.A.`` kept a whole export's income
    column text. In a file not separated by commas the numbers may be written with a decimal
    comma (a European export: ``1.234,56``); in a comma-separated file a comma inside a
    number is not a decimal comma, and such a column stays text.
    """
    found: dict[str, pd.Series] = {}
    for c in df.columns:
        col = df[c]
        if (dtype and c in dtype) or not pd.api.types.is_string_dtype(col):
            continue
        # decided on the distinct values, the first few of them first: a million rows of a
        # category cost one hash pass, and a text column is given up on at its first words
        distinct = pd.Series(col.dropna().unique())
        numbers = _as_numbers(distinct[:64], sep)
        if numbers is not None and len(distinct) > 64:
            numbers = _as_numbers(distinct, sep)
        if numbers is None or numbers.isna().all():
            continue  # text, or nothing but markers
        found[c] = col.map(dict(zip(distinct, numbers, strict=True))).astype(float)
    if not found:
        return df
    df = df.copy(deep=False)
    for c, values in found.items():
        df[c] = values
    return df


def _as_numbers(values: pd.Series, sep: str) -> pd.Series | None:
    """Distinct text ``values`` as numbers, missing-value markers as NaN; None when one value
    is neither."""
    text = values.astype(str).str.strip()
    marker = text.str.casefold().isin(MISSING_MARKERS)
    numbers = pd.to_numeric(text[~marker], errors="coerce")
    if numbers.isna().any():
        if sep == "," or not text[~marker].str.fullmatch(_DECIMAL_COMMA).all():
            return None
        plain = text[~marker].str.replace(".", "", regex=False).str.replace(",", ".")
        numbers = pd.to_numeric(plain)
    return numbers.astype(float).reindex(values.index)


def _zero_padded_as_text(df: pd.DataFrame, p: Path, sep: str, encoding: str | None) -> pd.DataFrame:
    """The whole-number columns of ``df`` whose text in ``p`` has a leading zero, as text."""
    whole = [
        c
        for c in df.columns
        if pd.api.types.is_integer_dtype(df[c])
        or (
            pd.api.types.is_float_dtype(df[c])
            and bool(np.all(np.isnan(v := df[c].to_numpy()) | (v == np.round(v))))
        )
    ]
    if not whole:
        return df
    text = _read_csv(p, sep, None, dict.fromkeys(whole, str), whole, encoding)
    padded = [c for c in whole if text[c].str.contains(_LEADING_ZERO, na=False).any()]
    if padded:
        df = df.copy(deep=False)
        for c in padded:
            df[c] = text[c]
    return df


def text_code_dtypes(contract: Contract) -> dict[str, Any]:
    """CSV column types that keep a contract's text codes as text.

    A category whose listed values are all text (``'01'``, ``'09'``, ``'1e5'``) is read as
    text: left to the CSV reader's guess, ``'01'`` becomes the number 1 and matches no listed
    value, so every row would break the contract. Numbers, booleans and numeric codes keep the
    reader's types.

    Parameters
    ----------
    contract : Contract

    Returns
    -------
    dict
        ``{column: str}``, for :func:`read_table`'s ``dtype``.
    """
    return {
        name: str
        for name, spec in contract.features.items()
        if spec.type == "category"
        and spec.categories
        and all(isinstance(c, str) for c in spec.categories)
    }


def keep_text_codes(df: pd.DataFrame, path: str | Path, contract: Contract) -> pd.DataFrame:
    """A CSV read before its contract was known, with the contract's text codes as text.

    The columns :func:`text_code_dtypes` names that the reader took for numbers (``'09'``
    read as 9) are read again, alone, as text. A frame whose codes are already text, or a
    Parquet file (its types are its own), is returned as it is.

    Parameters
    ----------
    df : DataFrame
        The frame read from ``path`` by :func:`read_table` without ``dtype``.
    path : str or Path
    contract : Contract

    Returns
    -------
    DataFrame
    """
    again = [
        c
        for c in text_code_dtypes(contract)
        if c in df.columns and not pd.api.types.is_string_dtype(df[c])
    ]
    p = Path(path)
    if not again or _is_parquet(p):
        return df
    text = read_table(p, dtype=dict.fromkeys(again, str), columns=again)
    df = df.copy(deep=False)
    for c in again:
        df[c] = text[c]
    return df


def _nonempty(df: pd.DataFrame, p: Path) -> pd.DataFrame:
    if len(df) == 0:
        raise DataError(f"{p}: has a header but no data rows")
    if len(df.columns) == 1 and any(s in str(df.columns[0]) for s in (";", "\t", "|")):
        raise DataError(f"{p}: was read as a single column {df.columns[0]!r}; pass the delimiter")
    return df


def write_table(
    data: pd.DataFrame,
    path: str | Path,
    *,
    rows: np.ndarray | None = None,
    format: TableFormat = "csv",
    preformatted: PreformattedCsv | None = None,
) -> Path:
    """Write a frame, or some of its rows, as CSV or Parquet.

    The frame goes through Arrow: its columns are shared, not copied, and a selection of rows
    is written as zero-copy slices of the runs of selected rows. Arrow's CSV writer formats
    numbers in their shortest exact form and quotes text, so reading the file back with
    :func:`read_table` gives the same values. A frame Arrow cannot represent (an object column
    mixing numbers and text) is written by pandas instead.

    Parameters
    ----------
    data : DataFrame
    path : str or Path
    rows : ndarray of bool, optional
        Which rows to write (a mask of ``len(data)``); all rows when omitted.
    format : {"csv", "parquet"}
    preformatted : PreformattedCsv, optional
        The CSV text of ``data``'s rows formatted ahead (:mod:`tabguard._preformat`); used
        for CSV when it was made from this frame's values (the same memory), else ignored.
        The file is the same either way.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ValueError
        An unknown format, or a mask whose length is not the frame's.
    """
    p = Path(path)
    if format not in FORMATS:
        raise ValueError(f"format must be one of {sorted(FORMATS)}; got {format!r}")
    if rows is not None and len(rows) != len(data):
        raise ValueError(f"rows: a mask of {len(data)} rows is needed; got {len(rows)}")
    if (
        format == "csv"
        and preformatted is not None
        and preformatted.matches(data)
        and preformatted.write(p, rows)
    ):
        return p
    table = arrow_table(data)
    if table is None:
        # Columns Arrow cannot type (ints and strings mixed in one object column): pandas
        # writes them as they are (as text in Parquet), slower but without losing a value.
        frame = data if rows is None else data.loc[np.asarray(rows, dtype=bool)]
        if format == "parquet":
            frame.astype({c: str for c in frame.columns if frame[c].dtype == object}).to_parquet(
                p, index=False
            )
        else:
            frame.to_csv(p, index=False)
        return p
    if rows is not None:
        table = _take_rows(table, np.asarray(rows, dtype=bool))
    if format == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, p)
    else:
        _write_csv(table, p)
    return p


_CSV_SPLIT_ROWS = 200_000


def _write_csv(table: Any, path: Path) -> None:
    """Arrow's CSV writer, on two threads for large tables: the second half of the rows is
    formatted into memory while the first is written to the file, then appended (the writer
    runs on one thread and releases the interpreter lock; the file is the same)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    opts = {"quoting_style": "needed"}
    if table.num_rows < _CSV_SPLIT_ROWS:
        pacsv.write_csv(table, path, pacsv.WriteOptions(**opts))
        return
    half = table.num_rows // 2

    def tail() -> Any:
        sink = pa.BufferOutputStream()
        pacsv.write_csv(table.slice(half), sink, pacsv.WriteOptions(include_header=False, **opts))
        return sink.getvalue()

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tabguard-csv") as pool:
        rest = pool.submit(tail)
        with pa.OSFile(str(path), "wb") as f:
            pacsv.write_csv(table.slice(0, half), f, pacsv.WriteOptions(**opts))
            f.write(rest.result())


def _take_rows(table: Any, keep: np.ndarray) -> Any:
    """The rows of an Arrow table where ``keep`` is True (slices when there are few runs)."""
    import pyarrow as pa

    if keep.all():
        return table
    edges = np.flatnonzero(np.diff(np.concatenate([[False], keep, [False]]).astype(np.int8)))
    starts, stops = edges[0::2], edges[1::2]
    if len(starts) > _MAX_SLICES:
        return table.filter(pa.array(keep))
    if len(starts) == 0:
        return table.slice(0, 0)
    return pa.concat_tables([table.slice(a, b - a) for a, b in zip(starts, stops, strict=True)])


def check_labels(df: pd.DataFrame, contract: Contract) -> pd.Series:
    """Validate the label column and return it as a 0/1 series (1 = positive class).

    Raises
    ------
    DataError
        The label column is absent, has missing values, or values the contract does not allow.
    """
    col = contract.label.column
    if col not in df.columns:
        raise missing_label_error(col, df.columns)
    y = df[col]
    nan = y.isna().to_numpy()
    if nan.any():
        rows = np.flatnonzero(nan)
        raise DataError(
            f"label column {col!r} has {len(rows)} missing value(s) (NaN) at rows "
            f"{rows[:5].tolist()}; drop or fix those rows"
        )
    pos = contract.label.positive
    is_pos = _matches(y, pos)
    if contract.label.negative is not None:
        is_neg = _matches(y, contract.label.negative)
        other = ~(is_pos | is_neg)
        if other.any():
            bad = pd.unique(y[other])[:5].tolist()
            raise DataError(
                f"label column {col!r} must hold {pos!r} (positive) or "
                f"{contract.label.negative!r} (negative); got {bad}"
            )
    if not is_pos.any():
        raise DataError(f"label column {col!r} has no row of the positive class {pos!r}")
    return pd.Series(is_pos.astype(np.int8), index=df.index, name=col)


def _matches(y: pd.Series, value: Any) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(y) and not isinstance(value, str):
        return y.to_numpy() == value
    return (y.astype(str).str.strip() == str(value)).to_numpy()


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def frame_sha256(df: pd.DataFrame) -> str:
    """SHA-256 of a frame's content (columns, order and values), independent of file format."""
    h = hashlib.sha256()
    h.update("\x1f".join(map(str, df.columns)).encode())
    h.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return h.hexdigest()
