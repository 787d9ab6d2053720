"""The data audit's Spark engine: the same triggers, suspects and quarantine as the in-memory
engine, with the model-based stages on a driver sample smaller than the data.

The Spark tests share the session-scoped ``spark`` fixture (one JVM, local[2]); the data is
small (3,000 rows) and only the integrity check and the trigger scan run.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tabguard.data_audit import audit_data
from tabguard.datasets import credit_default_contract, load_credit_default
from tabguard.redteam import poison
from tabguard.spark._audit import (
    _keep_level,
    _merge_rare,
    _read_sample,
    audit_data_spark,
)
from tabguard.spark._batches import KEY, ROW, Vocabulary, validate_numeric

CHECKS = ["integrity", "trigger_scan"]


@pytest.fixture(scope="module")
def poisoned() -> tuple[pd.DataFrame, np.ndarray]:
    contract = credit_default_contract()
    clean = load_credit_default().iloc[:3000].reset_index(drop=True)
    # 300 planted rows: more than the driver sample keeps whole (a quarter of 1,000 rows), so
    # the trigger's rows beyond the sample come from a pass over every row
    res = poison(clean, contract, {"AGE": 999}, n_rows=300, shuffle=True, random_state=1)
    data = res.data.copy()
    data.loc[5, "EDUCATION"] = 9  # not a declared category: an integrity violation
    return data, res.poisoned_rows


def _triggers(findings: list[Any]) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    return sorted(
        (tuple(f.features), tuple(str(v) for v in f.values))
        for f in findings
        if f.check == "trigger_scan" and f.severity == "critical"
    )


#: In-memory audits by (data, checks): several tests compare the Spark engine with the same
#: in-memory audit of the same rows (~3 CPU-s each); the results are only read.
_MEMORY: dict[tuple[Any, ...], Any] = {}


def _parquet_and_memory(
    tmp_path: Path, data: pd.DataFrame, checks: list[str], key: tuple[Any, ...] | None = None
) -> tuple[Any, Path, Any]:
    """``data`` written as Parquet for the Spark engine and audited in memory with the credit
    contract: (contract, Parquet path, in-memory result). With ``key`` (naming ``data``), the
    in-memory audit is made once per run for those data and checks."""
    contract = credit_default_contract()
    src = tmp_path / "data.parquet"
    data.to_parquet(src, index=False)
    if key is None:
        return contract, src, audit_data(data, contract, checks=checks)
    key = (*key, tuple(checks))
    if key not in _MEMORY:
        _MEMORY[key] = audit_data(data, contract, checks=checks)
    return contract, src, _MEMORY[key]


def test_spark_engine_on_a_driver_sample_agrees_with_the_in_memory_engine(
    spark: Any, tmp_path: Path, poisoned: tuple[pd.DataFrame, np.ndarray]
) -> None:
    data, truth = poisoned
    contract, src, memory = _parquet_and_memory(tmp_path, data, CHECKS, key=("poisoned",))
    out = tmp_path / "out"
    # 1,000 driver rows for 3,300 rows: candidate patterns' rows, then random ones
    result = audit_data_spark(src, contract, out, checks=CHECKS, driver_rows=1000)
    assert result.rows == len(data) and result.sample_rows < len(data)
    assert _triggers(result.report.findings) == _triggers(memory.report.findings)
    assert _triggers(result.report.findings)[0][0] == ("AGE",)
    assert result.suspicious_rows == memory.suspicious_rows
    assert set(truth) <= set(result.suspicious_rows)
    # integrity on every row (row 5 is outside the driver sample's random rows or not: the
    # violation comes from Spark's pass over every row)
    broken = [f for f in result.report.findings if f.check == "integrity"]
    assert broken and broken[0].rows == [5]
    # clean and quarantine written by Spark, with the row numbers and reasons
    quarantine = pd.read_parquet(out / "quarantine.parquet")
    assert sorted(quarantine["tabguard_row"]) == sorted(memory.quarantine["tabguard_row"])
    reasons = dict(zip(quarantine["tabguard_row"], quarantine["tabguard_reason"], strict=True))
    assert "EDUCATION" in reasons[5]
    clean = pd.read_parquet(out / "clean.parquet")
    assert len(clean) == len(data) - len(quarantine)
    assert list(clean.columns) == list(data.columns)
    assert (out / "findings.json").exists() and (out / "report.html").exists()


def test_rare_value_runs_hold_fewer_than_min_rows_and_frequent_values_stay_alone() -> None:
    u = np.arange(10, dtype=float)
    n = np.array([1, 2, 1, 9, 1, 1, 1, 1, 3, 5])
    pos = n.astype(float)
    first, counts, positives, edges = _merge_rare(u, n, pos, min_rows=5)
    assert counts.sum() == n.sum() and positives.sum() == pos.sum()
    # frequent values (9 at 3.0, 5 at 9.0) keep an id of their own
    assert {3.0, 9.0} <= set(first[counts >= 5])
    assert (counts[~np.isin(first, [3.0, 9.0])] < 5).all()
    # a value is looked up in the run starting at or before it
    assert np.searchsorted(edges, 7.0, side="right") - 1 == np.flatnonzero(first <= 7.0)[-1]


def _both_engines(
    tmp_path: Path, trigger: dict[str, Any], *, n_rows: int, random_state: int
) -> tuple[Any, Any, Any]:
    """A trigger planted in 3,000 credit rows, audited in memory and on Spark with a 1,000-row
    driver sample (patterns of at most 150 rows kept whole): (poisoning, memory, spark)."""
    contract = credit_default_contract()
    clean = load_credit_default().iloc[:3000].reset_index(drop=True)
    res = poison(clean, contract, trigger, n_rows=n_rows, shuffle=True, random_state=random_state)
    key = (tuple(trigger.items()), n_rows, random_state)
    _, src, memory = _parquet_and_memory(tmp_path, res.data, ["trigger_scan"], key=key)
    result = audit_data_spark(
        src, contract, tmp_path / "out", checks=["trigger_scan"], driver_rows=1000, keep_rows=150
    )
    return res, memory, result


def test_copies_whose_originals_are_not_in_the_driver_sample_are_found(
    spark: Any, tmp_path: Path
) -> None:
    # A diluted trigger (the pair also occurs naturally with the other label): its suspects are
    # its copies. The driver sample keeps the pair's rows but the copies' originals only at
    # random, so the copies are found through Spark's groups of every row.
    # patterns of at most 150 rows kept whole (the pair's 100 copies and its few natural rows)
    res, memory, result = _both_engines(
        tmp_path, {"EDUCATION": 3, "MARRIAGE": 3}, n_rows=100, random_state=1
    )
    # (small data: the candidate patterns' rows fill most of the sample; a sixth of the rows,
    # so about as many of the copies' originals, are not in it)
    assert result.sample_rows < 0.9 * len(res.data)
    assert _triggers(result.report.findings) == _triggers(memory.report.findings)
    assert set(res.poisoned_rows) <= set(memory.suspicious_rows)
    assert result.suspicious_rows == memory.suspicious_rows


def test_copy_groups_past_the_driver_budget_fall_back_to_the_sample(
    spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Past COPY_GROUP_ENTRIES (sample rows x feature sets) the driver builds no groups over every
    # row: the copy checks read the sample's own rows, never suspect more, and the report says so.
    from tabguard.spark import _audit as spark_audit

    monkeypatch.setattr(spark_audit, "COPY_GROUP_ENTRIES", 0)
    res, memory, result = _both_engines(tmp_path, {"AGE": 999}, n_rows=60, random_state=2)
    assert result.sample_rows < len(res.data)
    assert _triggers(result.report.findings) == _triggers(memory.report.findings)
    assert set(result.suspicious_rows) <= set(memory.suspicious_rows)
    (section,) = [x for x in result.report.sections if x.title == "Spark engine"]
    assert any("sample's rows only" in t for t in section.text)


def test_a_later_pass_past_the_budget_is_read_by_the_report(
    spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The copy groups are built when the scan's decisions ask: a set asked for after the first
    # pass (the pairs' round, a companion set) can be the one past the budget. The report is
    # assembled after every check ran, so it names that set; the copy checks of those sets read
    # the sample's rows and never suspect more than in memory.
    from tabguard.spark import _audit as spark_audit

    passes: list[int] = []
    first = spark_audit._SparkCopies.prefetch

    def prefetch(self: Any, sets: Any) -> None:
        first(self, sets)
        passes.append(self.passes)
        self.budget = self.stored  # nothing more fits after the first round

    monkeypatch.setattr(spark_audit._SparkCopies, "prefetch", prefetch)
    _, memory, result = _both_engines(
        tmp_path, {"EDUCATION": 3, "MARRIAGE": 3}, n_rows=100, random_state=1
    )
    # a first round grouped over every row, later sets fell back without a pass of their own
    assert passes and passes[0] == 1 and len(passes) >= 2 and passes[-1] == 1
    (section,) = [x for x in result.report.sections if x.title == "Spark engine"]
    text = " ".join(section.text)
    assert "counted over every row for" in text and "sample's rows only" in text
    assert _triggers(result.report.findings) == _triggers(memory.report.findings)
    assert set(result.suspicious_rows) <= set(memory.suspicious_rows)


def test_descriptive_counts_cover_every_row_and_rank_statistics_the_uniform_share(
    spark: Any, tmp_path: Path, poisoned: tuple[pd.DataFrame, np.ndarray]
) -> None:
    # The driver sample holds about 2,500 of 3,300 rows, but counts, missing values, category
    # frequencies, percentiles and the label rates per bin describe every valid row (AGE=999
    # and EDUCATION=9 break the contract: described by neither engine).
    data, _ = poisoned
    contract, src, memory = _parquet_and_memory(tmp_path, data, ["descriptive"])
    # (no pattern kept whole: the sample is its uniform share)
    result = audit_data_spark(
        src, contract, tmp_path / "out", checks=["descriptive"], driver_rows=2500, keep_rows=0
    )
    assert result.sample_rows < len(data)

    def tables(report: Any) -> tuple[dict[str, Any], str]:
        (overview,) = [s for s in report.sections if s.title == "Descriptive analysis (D2)"]
        (per,) = [s for s in report.sections if s.title == "D2 · Feature by feature"]
        return {t.caption.split(" ")[0]: t for t in overview.tables + per.tables}, overview.text[0]

    (mem, mem_text), (spk, spk_text) = tables(memory.report), tables(result.report)
    # per feature: counts and statistics; frequencies; rows, positives and rates per bin
    for caption in ("Numeric", "Categorical", "Rate"):
        assert mem[caption].columns == spk[caption].columns
        assert len(mem[caption].rows) == len(spk[caption].rows) > 0
        for a, b in zip(mem[caption].rows, spk[caption].rows, strict=True):
            assert a[:5] == b[:5]  # name, role, count, missing, distinct
            for u, v in zip(a[5:], b[5:], strict=True):  # statistics / frequencies
                assert v == pytest.approx(u, rel=1e-9) if isinstance(u, float) else v == u
    # the same valid rows and base rate; ranks on the uniform share of the driver sample
    assert spk_text.split(". ")[0] == mem_text.split(". ")[0]
    assert "use a uniform sample of" in spk_text


def test_labels_of_the_uniform_share_are_scored_against_a_trusted_sample(
    spark: Any, tmp_path: Path
) -> None:
    # --trusted on Spark: the driver sample's random rows (a uniform sample of the data) are
    # scored; the candidate patterns' rows are no sample of the data and are not compared.
    import lightgbm as lgb

    from tabguard.spark._batches import _uniform

    credit = load_credit_default()
    contract = credit_default_contract()
    idx = np.random.default_rng(0).permutation(len(credit))[:9000]
    trusted, rest = credit.iloc[idx[:800]], credit.iloc[idx[800:]].reset_index(drop=True)
    X, y = rest.drop(columns=["ID", "DEFAULT"]).to_numpy(dtype=float), rest["DEFAULT"].to_numpy()
    p = lgb.LGBMClassifier(n_estimators=60, verbose=-1, n_jobs=1).fit(X, y).predict_proba(X)[:, 1]
    pos = np.flatnonzero(y == 1)
    flipped = np.sort(pos[np.argsort(-p[pos])[:400]])  # the most confident defaulters
    bad = rest.copy()
    bad.loc[flipped, "DEFAULT"] = 0
    src = tmp_path / "data.parquet"
    bad.to_parquet(src, index=False)
    result = audit_data_spark(
        src,
        contract,
        tmp_path / "out",
        checks=["label_noise"],
        options={"label_noise": {"trusted_repeats": 2}},
        driver_rows=5000,
        keep_rows=0,
        trusted=trusted,
    )
    scored = np.flatnonzero(_uniform(np.arange(len(bad)), 0) < 5000 / len(bad))
    f = next(x for x in result.report.findings if "trusted_rows" in x.evidence)
    assert f.severity == "critical", f.message
    assert set(f.rows) <= set(scored.tolist())  # only the uniform share is scored
    hits = set(f.rows) & set(flipped.tolist())
    in_scope = set(flipped.tolist()) & set(scored.tolist())
    assert len(hits) / len(f.rows) >= 0.4 and len(hits) / len(in_scope) >= 0.5
    (section,) = [x for x in result.report.sections if x.title == "Spark engine"]
    assert any("random rows (a uniform sample" in t for t in section.text)


def test_the_driver_sample_is_read_in_row_order_with_its_types(tmp_path: Path) -> None:
    # Spark's parts need not come in row order; the frame is sorted by row number (as an Arrow
    # table, converted column by column) and keeps each column's type.
    part = pd.DataFrame(
        {ROW: [7, 3, 9], "AGE": [30, 41, 52], "EDUCATION": ["1", None, "3"], "x": [0.5, 1.5, 2.5]}
    ).assign(**{KEY: [0.5, -1.0, 3.0]})
    (tmp_path / "s").mkdir()
    part.iloc[:2].to_parquet(tmp_path / "s" / "part-0.parquet", index=False)
    part.iloc[2:].to_parquet(tmp_path / "s" / "part-1.parquet", index=False)
    frame = _read_sample(tmp_path / "s")
    assert frame[ROW].tolist() == [3, 7, 9]
    assert frame["AGE"].tolist() == [41, 30, 52]
    assert frame["EDUCATION"].tolist()[1:] == ["1", "3"] and pd.isna(frame["EDUCATION"].iloc[0])
    assert frame["x"].tolist() == [1.5, 0.5, 2.5]
    assert list(frame.dtypes) == list(pd.read_parquet(tmp_path / "s").drop(columns=KEY).dtypes)
    assert isinstance(frame.index, pd.RangeIndex)
    # below a keep level: the rows whose key is under it (random rows, -1, always)
    assert _read_sample(tmp_path / "s", 1.0)[ROW].tolist() == [3, 7]


def test_value_ids_from_an_already_validated_numeric_view_are_the_same() -> None:
    # The driver passes build_context's numeric view instead of validating the sample again.
    contract = credit_default_contract()
    data = load_credit_default().iloc[:500].reset_index(drop=True)
    names = contract.model_features()
    numeric = [contract.features[f].is_numeric for f in names]
    vocab = Vocabulary(
        names,
        numeric,
        numeric,
        [
            np.unique(data[f].to_numpy(dtype=float)) if numeric[j] else np.array([])
            for j, f in enumerate(names)
        ],
        [],
        [],
        [],
        [None] * len(names),
        [{} for _ in names],
    )
    view = validate_numeric(data, contract)
    assert np.array_equal(vocab.codes(data, contract, view), vocab.codes(data, contract))
    shifted = {k: v + 1 for k, v in view.items()}  # the view passed is the one used
    assert not np.array_equal(vocab.codes(data, contract, shifted), vocab.codes(data, contract))


def test_candidates_past_the_keep_budget_are_sampled_down_to_one_level() -> None:
    # Keep keys: u * (rows of the row's smallest candidate), -1 for random rows. Every
    # candidate row fits: no level. Past the budget the level keeps exactly the budget's rows
    # of candidates (random rows on top), and about the same number from each candidate: a
    # candidate of n rows keeps a share L / n of them, the small ones whole.
    rng = np.random.default_rng(0)
    sizes = {50: 1, 400: 1, 4000: 1}
    keys = np.concatenate([rng.random(n) * n for n in sizes] + [np.full(30, -1.0)])
    assert _keep_level(keys, 5000) == float("inf")
    level = _keep_level(keys, 600)
    assert int((keys[keys >= 0] < level).sum()) == 600
    kept = [int((rng_keys < level).sum()) for rng_keys in np.split(keys[:4450], [50, 450])]
    assert kept[0] == 50  # the small candidate whole
    assert 200 < level < 400 and abs(kept[1] - level) < 60 and abs(kept[2] - level) < 60
    assert _keep_level(keys, 0) == float(keys[keys >= 0].min())


def test_a_trigger_sampled_down_on_the_driver_gets_every_row_from_spark(
    spark: Any, tmp_path: Path, poisoned: tuple[pd.DataFrame, np.ndarray]
) -> None:
    # The candidates kept whole are capped in all (keep_total): the seed trigger's 300 rows are
    # sampled down on the driver, found there, and its other rows come from a pass over every
    # row (its labels decide), so the suspects are the in-memory engine's.
    data, truth = poisoned
    contract, src, memory = _parquet_and_memory(tmp_path, data, CHECKS, key=("poisoned",))
    result = audit_data_spark(
        src,
        contract,
        tmp_path / "out",
        checks=CHECKS,
        driver_rows=1000,
        keep_rows=400,
        keep_total=400,
    )
    (section,) = [x for x in result.report.sections if x.title == "Spark engine"]
    assert any("sampled down" in t for t in section.text)
    (finding,) = [
        f for f in result.report.findings if f.check == "trigger_scan" and f.features == ["AGE"]
    ]
    assert _triggers(result.report.findings) == _triggers(memory.report.findings)
    assert result.suspicious_rows == memory.suspicious_rows
    assert set(truth) <= set(result.suspicious_rows) and set(truth) <= set(finding.rows)
    # fewer rows on the driver than with every candidate whole: those held more rows (2,596)
    # than the whole sample now has (read from the same pass: a second audit with every
    # candidate whole, 3,231 driver rows, cost a Spark audit more)
    (held,) = [
        int(m.group(1).replace(",", ""))
        for t in section.text
        if (m := re.search(r"held ([\d,]+) rows, more than the 400 ", t))
    ]
    assert result.sample_rows < held


def test_candidates_filling_the_driver_budget_leave_the_reserved_random_rows(
    spark: Any, tmp_path: Path
) -> None:
    # The candidates' rows fill the budget (keep_total = driver_rows, sampled down), yet a
    # quarter of driver_rows is random rows on top: --trusted is scored on them (not skipped)
    # and the descriptive check's rank statistics use them (not the whole, biased sample).
    from tabguard.spark._audit import RANDOM_SHARE
    from tabguard.spark._batches import _uniform

    credit = load_credit_default()
    contract = credit_default_contract()
    idx = np.random.default_rng(0).permutation(len(credit))
    trusted, rest = credit.iloc[idx[:800]], credit.iloc[idx[800:]].reset_index(drop=True)
    src = tmp_path / "data.parquet"
    rest.to_parquet(src, index=False)
    driver_rows = 6000
    result = audit_data_spark(
        src,
        contract,
        tmp_path / "out",
        checks=["descriptive", "label_noise"],
        options={"label_noise": {"trusted_repeats": 2}},
        driver_rows=driver_rows,
        keep_total=driver_rows,
        trusted=trusted,
    )
    (section,) = [x for x in result.report.sections if x.title == "Spark engine"]
    assert any("sampled down" in t for t in section.text)  # the candidates filled the budget
    random_rows = np.flatnonzero(
        _uniform(np.arange(len(rest)), 0) < RANDOM_SHARE * driver_rows / len(rest)
    )
    assert len(random_rows) > 1000
    assert driver_rows < result.sample_rows <= driver_rows + len(random_rows)
    assert any(f"random rows (a uniform sample of the {len(rest):,}" in t for t in section.text)
    assert not any("were not scored" in t for t in section.text)
    f = next(x for x in result.report.findings if "trusted_rows" in x.evidence)
    assert set(f.rows) <= set(random_rows.tolist())  # only the random rows are scored
    (overview,) = [s for s in result.report.sections if s.title == "Descriptive analysis (D2)"]
    assert "use a uniform sample of" in overview.text[0]
    assert "not uniform" not in overview.text[0]
