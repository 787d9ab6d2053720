"""The two-lane runner gives the same audit as running the checks one after the other."""

from __future__ import annotations

import pandas as pd

from tabguard.contract import Contract
from tabguard.data_audit import DataAuditResult, audit_data
from tabguard.redteam import poison


def _essence(result: DataAuditResult) -> tuple[object, ...]:
    return (
        result.suspicious_rows,
        sorted(
            (f.check, f.severity, tuple(f.features), tuple(map(str, f.values)))
            for f in result.report.findings
        ),
        len(result.clean),
        len(result.quarantine),
    )


def test_two_lanes_match_one_lane(credit_df: pd.DataFrame, credit_contract: Contract) -> None:
    # 5,000 rows: the lanes do not depend on the size below PARALLEL_ROWS (n_jobs is explicit)
    df = poison(credit_df.iloc[:5000], credit_contract, {"AGE": 999}, rate=0.2).data
    one = audit_data(df, credit_contract, n_jobs=1)
    two = audit_data(df, credit_contract, n_jobs=2)
    assert _essence(one) == _essence(two)
    assert set(two.report.summary["seconds"]) == set(one.report.summary["seconds"])
    assert [f.check for f in two.report.findings] == [f.check for f in one.report.findings]
    assert any(f.check == "trigger_scan" and f.features == ["AGE"] for f in two.report.findings)
