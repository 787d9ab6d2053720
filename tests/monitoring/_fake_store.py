"""A stand-in for the bucket store in rule tests: counts given per hour, the documented frames.

Only what the rules read (``decision_counts``, ``volume``, ``probing_counts``,
``guard_action_counts``, ``first_bucket``, ``bucket``, ``engine``, and a pass's ``with_counts``
view), from counts the test states directly, so each decision rule is tested on numbers chosen
for it. Integration with the real store is tested in ``test_attack_e2e.py`` and ``test_live.py``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from tabguard.storage import create_sql_engine


class FakeStore:
    bucket = timedelta(hours=1)

    def __init__(self, url: str = "memory://") -> None:
        self.engine = create_sql_engine(url)
        self.rows: list[dict[str, Any]] = []
        self._df: pd.DataFrame | None = None
        self._df_rows: tuple[int, int] = (0, 0)

    def add(
        self,
        hour: datetime,
        segments: dict[str, str],
        decision: str | None,
        n: int,
        status: str = "accepted",
    ) -> None:
        """``n`` requests in the bucket starting at ``hour`` with these segment values."""
        for key, value in {"all": "all", **segments}.items():
            self.rows.append(
                {
                    "bucket": hour,
                    "segment_key": key,
                    "segment_value": value,
                    "status": status,
                    "decision": decision,
                    "n": n,
                }
            )

    def fill(
        self, start: datetime, hours: int, segments: dict[str, str], n: int, deny: float
    ) -> None:
        """``n`` decided requests an hour, a share ``deny`` of them denied (rounded)."""
        for h in range(hours):
            t = start + timedelta(hours=h)
            k = round(n * deny)
            if k:
                self.add(t, segments, "deny", k)
            if n - k:
                self.add(t, segments, "approve", n - k)

    #: Set on a view only (``with_counts``), as on the real store.
    counts_snapshot: Any = None

    def with_counts(self, start: datetime, end: datetime, families: Sequence[str]) -> FakeStore:
        """A pass's view with its counters read once, as ``SqlMonitorStore.with_counts``
        gives it: the rules then sum windows from the stated counts (the live pass's path;
        the frames above are the frozen-history path)."""
        from tabguard.monitoring._store import BucketCounts
        from tabguard.monitoring._window import epoch_seconds

        lo, hi = epoch_seconds(start), epoch_seconds(end)
        rows = []
        for r in self.rows:
            b = epoch_seconds(r["bucket"])
            if not lo <= b < hi:
                continue
            seg = (r["segment_key"], r["segment_value"])
            rows.append((b, *seg, "sd", f"{r['status']}|{r['decision'] or ''}", r["n"]))
            if r["status"] == "probing":
                rows.append((b, *seg, "probing", "client_flagged", r["n"]))
        view = copy.copy(self)
        view.counts_snapshot = BucketCounts(lo, hi, families, sorted(rows, key=lambda r: r[0]))
        return view

    def first_bucket(self) -> datetime | None:
        """The earliest hour given counts (``SqlMonitorStore.first_bucket``)."""
        return min((r["bucket"] for r in self.rows), default=None)

    def _frame(self, start: datetime, end: datetime) -> pd.DataFrame:
        if self._df is None or self._df_rows != (id(self.rows), len(self.rows)):
            cols = ["bucket", "segment_key", "segment_value", "status", "decision", "n"]
            self._df, self._df_rows = (
                pd.DataFrame(self.rows, columns=cols),
                (id(self.rows), len(self.rows)),
            )
        df = self._df
        return df[(df["bucket"] >= start) & (df["bucket"] < end)]

    def decision_counts(self, start: datetime, end: datetime, segment: Any = None) -> pd.DataFrame:
        df = self._frame(start, end).fillna({"decision": ""})
        out = df.groupby(["segment_key", "segment_value", "status", "decision"], as_index=False)[
            "n"
        ].sum()
        out["decision"] = out["decision"].replace("", None)
        return out

    def volume(self, start: datetime, end: datetime, segment: Any = None) -> pd.DataFrame:
        df = self._frame(start, end)
        return df.groupby(["segment_key", "segment_value"], as_index=False)["n"].sum()

    def probing_counts(self, start: datetime, end: datetime, segment: Any = None) -> pd.DataFrame:
        df = self._frame(start, end)
        df = df[df["status"] == "probing"]
        out = df.groupby(["segment_key", "segment_value"], as_index=False)["n"].sum()
        out["signal"] = "client_flagged"
        return out

    def guard_action_counts(
        self, start: datetime, end: datetime, segment: Any = None
    ) -> pd.DataFrame:
        return pd.DataFrame(
            columns=["segment_key", "segment_value", "step", "action", "column", "n"]
        )
