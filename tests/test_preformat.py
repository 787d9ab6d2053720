"""The CSV text formatted ahead (``tabguard._preformat``) writes the file write_table writes."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tabguard import _preformat
from tabguard._preformat import PreformattedCsv
from tabguard.io import write_table


def _frame(n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    amount = np.round(rng.lognormal(3, 1, n), 2)
    amount[[3, 40]] = np.nan
    amount[4] = 1e-7
    amount[5] = 123456789012.5
    amount[6] = -0.0
    text = rng.choice(
        ["in_store", "online", 'a,"quoted"', "two\nlines", ""], n, p=[0.5, 0.3, 0.1, 0.05, 0.05]
    )
    df = pd.DataFrame(
        {
            "id": np.arange(n),
            "amount": amount,
            "ratio": rng.normal(size=n) / 3,
            "channel": pd.array(text, dtype="str"),
            "card_present": rng.random(n) < 0.5,
        }
    )
    df.loc[7, "channel"] = None
    return df


def _masks(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(2)
    few = np.ones(n, dtype=bool)
    few[[0, 1, 96, 97, 150, n - 1]] = False
    return [np.ones(n, dtype=bool), np.zeros(n, dtype=bool), few, rng.random(n) < 0.5]


@pytest.fixture
def normal_priority(monkeypatch: pytest.MonkeyPatch) -> None:
    # the formatting thread at the usual priority: on a busy test machine an idle-class
    # thread may not run before the file is written (the file is the same either way)
    monkeypatch.setattr(_preformat, "_idle_class", lambda: True)


@pytest.mark.usefixtures("normal_priority")
@pytest.mark.parametrize("ahead", [True, False])
def test_the_rows_formatted_ahead_are_the_file_write_table_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ahead: bool
) -> None:
    # blocks of 97 rows: some with a value holding a line break (those blocks' kept rows are
    # formatted again), rows cut at a block's first and last row, blocks with no row kept
    df = _frame()
    if not ahead:  # nothing formatted ahead: every block with a kept row at the end
        monkeypatch.setattr(_preformat, "_idle_class", lambda: False)
    for i, keep in enumerate(_masks(len(df))):
        write_table(df, tmp_path / f"plain{i}.csv", rows=keep)
        pre = PreformattedCsv(df.reset_index(drop=True), block_rows=97)
        pre._thread.join()
        assert all(b is not None for b in pre._blocks) == ahead
        assert pre.matches(df)
        path = write_table(df, tmp_path / f"ahead{i}.csv", rows=keep, preformatted=pre)
        assert path.read_bytes() == (tmp_path / f"plain{i}.csv").read_bytes(), i
    pre = PreformattedCsv(df, block_rows=97)
    write_table(df, tmp_path / "all.csv", preformatted=pre)
    write_table(df, tmp_path / "all_plain.csv")
    assert (tmp_path / "all.csv").read_bytes() == (tmp_path / "all_plain.csv").read_bytes()


@pytest.mark.usefixtures("normal_priority")
def test_a_block_being_formatted_when_the_file_is_written_is_formatted_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    df = _frame()
    keep = _masks(len(df))[2]
    started, release = threading.Event(), threading.Event()
    real = _preformat._format

    def slow_second(table: object, start: int, stop: int) -> object:
        if threading.current_thread().name == "tabguard-csv-ahead" and start > 0:
            started.set()
            release.wait(10)  # still formatting when the writer closes the blocks
        return real(table, start, stop)

    monkeypatch.setattr(_preformat, "_format", slow_second)
    pre = PreformattedCsv(df, block_rows=97)
    assert started.wait(10)
    write_table(df, tmp_path / "ahead.csv", rows=keep, preformatted=pre)
    release.set()
    pre._thread.join()
    assert pre._blocks[1] is None  # the late block was not kept
    write_table(df, tmp_path / "plain.csv", rows=keep)
    assert (tmp_path / "ahead.csv").read_bytes() == (tmp_path / "plain.csv").read_bytes()


@pytest.mark.usefixtures("normal_priority")
def test_text_formatted_from_other_values_is_not_used(tmp_path: Path) -> None:
    df = _frame()
    pre = PreformattedCsv(df, block_rows=97)
    other = df.copy()  # other memory (and one value changed): not the frame formatted
    other.loc[0, "amount"] = 1.5
    assert not pre.matches(other) and not pre.matches(df.iloc[:-1])
    write_table(other, tmp_path / "a.csv", preformatted=pre)
    write_table(other, tmp_path / "b.csv")
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    mixed = pd.DataFrame({"x": np.array([1, "a"] * 5, dtype=object)})  # Arrow cannot hold it
    pre = PreformattedCsv(mixed)
    assert not pre.matches(mixed)  # object columns are never taken as the same memory
    write_table(mixed, tmp_path / "m.csv", preformatted=pre)
    assert pd.read_csv(tmp_path / "m.csv")["x"].astype(str).tolist() == ["1", "a"] * 5


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="no idle scheduling class")
def test_the_formatting_thread_runs_in_the_idle_class() -> None:
    policy: list[int] = []

    def probe() -> None:
        if _preformat._idle_class():
            policy.append(os.sched_getscheduler(0))

    t = threading.Thread(target=probe)
    t.start()
    t.join()
    assert policy in ([os.SCHED_IDLE], [])  # [] where the system refuses the class
    assert os.sched_getscheduler(0) != os.SCHED_IDLE  # the calling thread is left as it was


@pytest.mark.usefixtures("normal_priority")
def test_a_failure_ahead_is_left_to_the_writer_without_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the thread only works ahead: it prints nothing (no "Exception in thread ..." on the
    # user's terminal) and the writer formats every block itself
    df = _frame()
    real = _preformat._format

    def failing_ahead(table: object, start: int, stop: int) -> object:
        if threading.current_thread().name == "tabguard-csv-ahead":
            raise MemoryError("no room ahead")
        return real(table, start, stop)

    hooked: list[object] = []
    monkeypatch.setattr(threading, "excepthook", hooked.append)
    monkeypatch.setattr(_preformat, "_format", failing_ahead)
    pre = PreformattedCsv(df, block_rows=97)
    pre._thread.join()
    assert hooked == [] and all(b is None for b in pre._blocks)
    write_table(df, tmp_path / "a.csv", preformatted=pre)
    write_table(df, tmp_path / "b.csv")
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


@pytest.mark.usefixtures("normal_priority")
def test_the_text_kept_ahead_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a file of tens of millions of rows: the text beyond the bound is formatted at the end
    df = _frame()
    monkeypatch.setattr(_preformat, "MAX_AHEAD_BYTES", 1)
    pre = PreformattedCsv(df, block_rows=97)
    pre._thread.join()
    assert [b is not None for b in pre._blocks] == [True, False, False, False]
    keep = _masks(len(df))[3]
    write_table(df, tmp_path / "a.csv", rows=keep, preformatted=pre)
    write_table(df, tmp_path / "b.csv", rows=keep)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
