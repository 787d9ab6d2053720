"""Running the data audit: contract → checks → report, clean data, quarantine, treatments."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property, partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from tabguard import __version__
from tabguard._preformat import PreformattedCsv
from tabguard.contract import (
    Contract,
    FeatureTransform,
    FrameValidation,
    check_columns,
    contract_hash,
    validate_frame,
)
from tabguard.data_audit._base import (
    REGISTRY,
    AuditContext,
    CheckResult,
    DataCheck,
    Treatment,
)
from tabguard.data_audit._label_noise import LabelNoiseOptions, prepare_trusted
from tabguard.data_audit._spare import Job
from tabguard.errors import DataError
from tabguard.io import FORMATS, TableFormat, check_labels, frame_sha256, write_table
from tabguard.progress import NULL_PROGRESS, Progress
from tabguard.reports import Finding, Report, Section, Table, now_iso, write_report

REASON_COLUMN = "tabguard_reason"
ROW_COLUMN = "tabguard_row"


@dataclass
class DataAuditResult:
    """The outcome of :func:`audit_data`.

    Attributes
    ----------
    report : Report
        Findings (``findings.json``) and sections (``report.html``).
    data : DataFrame
        The audited rows (index 0..n-1, original columns).
    clean_mask : ndarray of bool
        Rows neither quarantined nor suspected.
    quarantine : DataFrame
        Quarantined rows with ``tabguard_row`` (0-based position) and ``tabguard_reason``.
    treatments : list of Treatment
        Every row dropped, clipped, imputed or quarantined, with why (D5).
    """

    report: Report
    data: pd.DataFrame
    clean_mask: np.ndarray
    quarantine: pd.DataFrame
    treatments: list[Treatment] = field(default_factory=list)
    check_results: dict[str, CheckResult] = field(default_factory=dict)

    @cached_property
    def clean(self) -> pd.DataFrame:
        """Rows neither quarantined nor suspected (original columns; built on first use:
        :func:`write_audit` writes them from ``data`` without this copy)."""
        return self.data.loc[self.clean_mask]

    @property
    def suspicious_rows(self) -> list[int]:
        """0-based positions of rows suspected of poisoning."""
        return self.report.suspicious_rows

    def exit_code(self) -> int:
        """0 without critical findings, 1 with at least one."""
        return self.report.exit_code()


def _check_types(df: pd.DataFrame, contract: Contract, numeric: pd.DataFrame) -> None:
    """Refuse data whose declared numeric columns are mostly not numbers (wrong file/contract)."""
    for name, spec in contract.items():
        if spec.type not in ("integer", "number", "boolean") or name not in numeric:
            continue
        col = df[name]
        present = col.notna().to_numpy()
        if not present.any():
            continue
        bad = np.isnan(numeric[name].to_numpy()) & present
        if bad.sum() > 0.5 * present.sum():
            example = col[bad].iloc[0]
            raise DataError(
                f"column {name!r}: type mismatch, the contract declares {spec.type} but "
                f"{bad.sum() / present.sum():.0%} of its values are not (e.g. {example!r}); "
                "fix the contract's type or use the right file"
            )


def build_context(
    data: pd.DataFrame,
    contract: Contract,
    *,
    random_state: int = 0,
    progress: Progress | None = None,
    options: Mapping[str, Any] | None = None,
    trusted: pd.DataFrame | None = None,
    validation: FrameValidation | None = None,
) -> AuditContext:
    """Validate the options and the data and build the shared :class:`AuditContext`
    (``validation``: ``validate_frame(data, contract)`` when the caller has it).

    Raises
    ------
    OptionsError, UnknownCheckError
        Invalid options, or options of a check the audit does not have.
    DataError
        Data that cannot be audited, or a trusted sample that breaks the contract or is too
        small.
    """
    parsed = REGISTRY.options(REGISTRY.ordered(), options)
    if len(data) == 0:
        raise DataError("data has no rows")
    if trusted is not None:  # before the audit's work: a bad trusted file fails at once
        opts = parsed.get(LabelNoiseOptions.check)
        trusted = prepare_trusted(
            trusted,
            contract,
            opts if isinstance(opts, LabelNoiseOptions) else LabelNoiseOptions(),
        )
    check_columns(data, contract)
    df = data.reset_index(drop=True)
    y = check_labels(df, contract).to_numpy()
    if validation is None:
        validation = validate_frame(df, contract)
    elif validation.n_rows != len(df) or validation.row_offset:
        raise ValueError("validation: not validate_frame(data, contract) of these rows")
    _check_types(df, contract, validation.numeric)
    valid = ~validation.invalid_mask()
    return AuditContext(
        data=df,
        contract=contract,
        y=y,
        validation=validation,
        valid=valid,
        transform=FeatureTransform(contract),
        random_state=random_state,
        progress=progress or NULL_PROGRESS,
        options=parsed,
        trusted=trusted,
    )


PARALLEL_ROWS = 50_000
_T = TypeVar("_T")
_TIMING_LOCK = threading.Lock()


def _run_checks(
    ctx: AuditContext, checks: Mapping[str, type[DataCheck]], n_jobs: int | None
) -> tuple[dict[str, CheckResult], dict[str, float]]:
    """Run the checks, in two lanes when asked to or when the data is large.

    The second lane takes the checks marked ``concurrent`` (descriptive statistics,
    near-duplicates, label noise, disparate impact), one after the other: while the shared
    matrix is being built (by the first check that reads it), a check that does not read it
    (``reads_matrix``); then those another check waits for, then the others in running order.
    A main-lane check with a ``prepare`` step whose ``prepare_after`` checks all run in the
    second lane (RONI: its models that do not depend on the trigger scan) has that step run
    there too, right after them. The main lane runs the others in order; each waits for the
    checks it lists in ``after`` and for its prepared step.

    Neither lane idles while the other has work (the lanes' shares of the work differ from one
    machine to the next): a main lane whose next check waits takes the second lane's last
    waiting task (the one needed latest), and a second lane with nothing left of its own runs
    the main lane's next check once its inputs are ready. Between its tasks, and while it has
    none, a lane first runs the jobs a check running in the other lane lent (``ctx.spare``,
    :mod:`~tabguard.data_audit._spare`: the trigger scan's pure parts), and it stays until
    the other lane's last task ends. Each check and each lent job keeps its own random state,
    so the results do not depend on the lanes.
    """
    results: dict[str, CheckResult] = {}
    timings: dict[str, float] = {}

    def timed(name: str, step: Callable[[], _T]) -> _T:
        t0 = time.perf_counter()
        out = step()
        with _TIMING_LOCK:  # a check's seconds: its prepared step and its run
            timings[name] = round(timings.get(name, 0.0) + time.perf_counter() - t0, 3)
        return out

    def run(name: str) -> CheckResult:
        return timed(name, lambda: checks[name]().run(ctx))

    n_jobs = _lanes(ctx, n_jobs)
    side = [n for n in checks if n_jobs > 1 and checks[n].concurrent]
    # the side lane first runs what the main lane will wait for (label noise, for RONI)
    awaited = {d for n in checks for d in checks[n].after}
    side.sort(key=lambda n: n not in awaited)  # stable: otherwise in running order
    if len(side) == 0 or len(side) == len(checks):
        for name in checks:
            results[name] = run(name)
        return results, timings
    # (kind, name): "run" a check, or "prepare" a main-lane check after its inputs
    tasks: list[tuple[str, str]] = [("run", n) for n in side]
    for name in checks:
        deps = [d for d in _prepare_after(checks[name]) if d in checks]
        if name in side or not hasattr(checks[name], "prepare"):
            continue
        if all(d in side for d in deps):
            last = max((tasks.index(("run", d)) for d in deps), default=-1)
            tasks.insert(last + 1, ("prepare", name))
    main = [("run", n) for n in checks if n not in side]
    lanes = _Lanes(ctx, checks, tasks, main, run, timed)
    with (
        ctx.spare.lanes(),
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="tabguard-audit") as pool,
    ):
        lane = pool.submit(lanes.work, "side")
        lanes.work("main")
        lane.result()
    # errors raised as one lane after the other would: the main lane's checks in order (each
    # after its inputs), then the second lane's
    for task in [*main, *(("run", n) for n in side)]:
        for dep in lanes.deps[task]:
            lanes.done[dep].result()
        results[task[1]] = lanes.done[task].result()
    return {n: results[n] for n in checks}, {n: timings[n] for n in checks}


_Task = tuple[str, str]


class _Lanes:
    """The two lanes' queues (see :func:`_run_checks`): ``side``, the second lane's tasks in
    its order; ``main``, the main lane's checks in running order."""

    def __init__(
        self,
        ctx: AuditContext,
        checks: Mapping[str, type[DataCheck]],
        side: list[_Task],
        main: list[_Task],
        run: Callable[[str], CheckResult],
        timed: Callable[[str, Callable[[], Any]], Any],
    ) -> None:
        self.ctx, self.checks, self.side, self.main = ctx, checks, list(side), list(main)
        self._run, self._timed = run, timed
        self.done: dict[_Task, Future[Any]] = {t: Future() for t in [*side, *main]}
        self.deps: dict[_Task, list[_Task]] = {}
        for i, task in enumerate(main):  # in order, after their inputs and prepared steps
            name = task[1]
            self.deps[task] = [("run", d) for d in checks[name].after if ("run", d) in self.done]
            self.deps[task] += [("prepare", name)] if ("prepare", name) in self.done else []
            self.deps[task] += main[i - 1 : i] if i else []
        for task in side:
            after = _prepare_after(checks[task[1]]) if task[0] == "prepare" else ()
            self.deps[task] = [("run", d) for d in after if ("run", d) in self.done]
        self.spare = ctx.spare
        self._cond = ctx.spare.cond  # lent jobs wake a waiting lane too
        self._running = 0  # tasks started and not ended: they may lend jobs
        self._stopped = False

    def _ready(self, task: _Task) -> bool:
        return all(self.done[d].done() for d in self.deps[task])

    def _next(self, lane: str) -> _Task | Job[object] | None:
        """The lane's next task or lent job (None: nothing left to start), waiting while
        none is ready."""
        with self._cond:
            while not self._stopped and (self.main or self.side or self._running):
                job = self.spare.take()
                if job is not None:
                    return job
                ready = [t for t in self.side if self._ready(t)]
                pick: _Task | None = None
                if lane == "main":
                    if self.main and self._ready(self.main[0]):
                        pick = self.main.pop(0)
                    elif ready:
                        pick = ready[-1]  # the side lane keeps what is awaited
                else:
                    if "matrix" not in self.ctx.cache:  # being built: what does not wait for it
                        ready.sort(key=lambda t: _reads_matrix(self.checks[t[1]]))  # stable
                    if ready:
                        pick = ready[0]
                    elif self.main and self._ready(self.main[0]):
                        pick = self.main.pop(0)
                if pick is not None:
                    if pick in self.side:
                        self.side.remove(pick)
                    self._running += 1  # ended in :meth:`work`
                    return pick
                self._cond.wait()
            return None

    def work(self, lane: str) -> None:
        """Run tasks in this lane until none is left to start and the other lane's last task
        has ended."""
        try:
            while (task := self._next(lane)) is not None:
                if isinstance(task, Job):
                    task.run()  # its error is raised where its result is read
                    continue
                kind, name = task
                try:
                    if kind == "prepare":
                        step = self.checks[name]().prepare  # type: ignore[attr-defined]
                        self._timed(name, partial(step, self.ctx))
                        out: CheckResult | None = None
                    else:
                        for dep in self.deps[task]:  # an input's error fails its reader
                            self.done[dep].result()
                        out = self._run(name)
                    self.done[task].set_result(out)
                except Exception as exc:  # raised where the result is read
                    self.done[task].set_exception(exc)
                finally:
                    with self._cond:
                        self._running -= 1
                        self._cond.notify_all()
        except BaseException:
            # interrupted (Ctrl-C reaches the main lane): nothing more is started, and the
            # other lane, which may be waiting for this one, stops after its current task
            with self._cond:
                self._stopped = True
                self.main.clear()
                self.side.clear()
                self._cond.notify_all()
            raise


def _prepare_after(check: type[DataCheck]) -> tuple[str, ...]:
    # the checks whose results a check's ``prepare`` step reads (none: it reads the data)
    return tuple(getattr(check, "prepare_after", ()))


def _lanes(ctx: AuditContext, n_jobs: int | None) -> int:
    """Lanes the checks run in: ``n_jobs``, by default 2 from PARALLEL_ROWS rows."""
    return _lane_count(len(ctx.data), n_jobs)


def _lane_count(n_rows: int, n_jobs: int | None) -> int:
    if n_jobs is not None:
        return n_jobs
    return 2 if n_rows >= PARALLEL_ROWS and (os.cpu_count() or 1) >= 2 else 1


def _reads_matrix(check: type[DataCheck]) -> bool:
    # checks registered before the attribute existed are taken to read it
    return bool(getattr(check, "reads_matrix", True))


def audit_data(
    data: pd.DataFrame,
    contract: Contract,
    *,
    checks: Sequence[str] | None = None,
    random_state: int = 0,
    progress: Progress | None = None,
    options: Mapping[str, Any] | None = None,
    source: str | None = None,
    n_jobs: int | None = None,
    trusted: pd.DataFrame | None = None,
    validation: FrameValidation | None = None,
) -> DataAuditResult:
    """Audit a training data set against its contract (requirements D1-D5).

    Parameters
    ----------
    data : DataFrame
        Features and label, as read from the file.
    contract : Contract
    checks : sequence of str, optional
        Names of the checks to run (default: every registered check); they run in the
        registry's order whatever the order given.
    random_state : int
    progress : Progress, optional
    options : mapping, optional
        Per-check options, e.g. ``{"trigger_scan": {"alpha": 0.01}}``: a mapping per check or
        the check's options object (``TriggerScanOptions(alpha=0.01)``).
    source : str, optional
        Where the data came from (shown in the report).
    n_jobs : int, optional
        1 runs the checks one after the other; 2 runs independent checks in a second thread.
        Default: 2 from 50,000 rows on a machine with at least two cores. Results are the same.
    trusted : DataFrame, optional
        A vetted sample with the same columns (last year's audited data, a reviewed slice),
        satisfying the contract. The label-noise check then flags rows whose label the
        trusted sample's models find improbable (conformal p-value at most
        ``label_noise.trusted_level``, the share of clean rows flagged) as suspects; see
        docs/data-audit.md.
    validation : FrameValidation, optional
        ``validate_frame(data, contract)`` when the caller has computed it (the command
        validates the rows in the thread that read them, while the audit's modules are
        imported); the audit's first step otherwise. Not checked beyond its number of rows.

    Returns
    -------
    DataAuditResult

    Raises
    ------
    UnknownCheckError
        A check name (in ``checks`` or ``options``) the audit does not have.
    OptionsError
        An option that is unknown, of the wrong type or out of range.
    DataError
        Data that cannot be audited (missing columns or label, NaN labels, wrong types), or a
        trusted sample that breaks the contract or is too small.
    """
    started = time.perf_counter()
    selected = REGISTRY.select(checks)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tabguard-hash") as pool:
        # the data's hash (for the report; of the values, whatever the index) beside the
        # validation and the checks when they run in two lanes
        two = _lane_count(len(data), n_jobs) > 1
        digest = pool.submit(frame_sha256, data) if two else None
        ctx = build_context(
            data,
            contract,
            random_state=random_state,
            progress=progress,
            options=options,
            trusted=trusted,
            validation=validation,
        )
        results, timings = _run_checks(ctx, selected, n_jobs)
        data_sha256 = frame_sha256(ctx.data) if digest is None else digest.result()
    outcome = AuditOutcome.of(results)
    qrows = outcome.rows
    df = ctx.data
    keep = np.ones(len(df), dtype=bool)
    keep[qrows] = False
    quarantined = df.iloc[qrows].copy()
    quarantined.insert(0, ROW_COLUMN, qrows)
    quarantined[REASON_COLUMN] = [outcome.quarantine[int(r)] for r in qrows]
    report = outcome.report(
        contract,
        len(df),
        results,
        timings,
        base_rate=ctx.base_rate,
        meta={
            "data_sha256": data_sha256,
            "source": source or "<frame>",
            "random_state": random_state,
            "elapsed_seconds": round(time.perf_counter() - started, 2),
        },
    )
    return DataAuditResult(report, df, keep, quarantined, outcome.treatments, results)


@dataclass(frozen=True)
class AuditOutcome:
    """What the checks' results decide together, whichever engine ran them."""

    findings: list[Finding]
    #: Rows suspected of poisoning (sorted).
    suspicious: list[int]
    #: Each quarantined row and its reasons (joined with ``"; "``, first occurrence order).
    quarantine: dict[int, str]
    treatments: list[Treatment]

    @classmethod
    def of(cls, results: Mapping[str, CheckResult]) -> AuditOutcome:
        """Combine the results: a suspicious row without another reason is quarantined as a
        poisoning suspect."""
        suspicious = sorted({int(i) for r in results.values() for i in r.suspicious_rows})
        reasons: dict[int, list[str]] = {}
        for r in results.values():
            for row, why in r.quarantine.items():
                reasons.setdefault(int(row), []).append(why)
        for row in suspicious:
            reasons.setdefault(row, ["poisoning suspect"])
        return cls(
            findings=[f for r in results.values() for f in r.findings],
            suspicious=suspicious,
            quarantine={row: "; ".join(dict.fromkeys(why)) for row, why in reasons.items()},
            treatments=[t for r in results.values() for t in r.treatments],
        )

    @property
    def rows(self) -> np.ndarray:
        """The quarantined rows, sorted."""
        return np.array(sorted(self.quarantine), dtype=np.int64)

    def report(
        self,
        contract: Contract,
        n: int,
        results: Mapping[str, CheckResult],
        timings: dict[str, float],
        *,
        base_rate: float,
        meta: dict[str, Any],
        summary: dict[str, Any] | None = None,
        sections: Sequence[Section] = (),
    ) -> Report:
        """The audit report of ``n`` rows: the treatments section, ``sections``, then each
        check's; ``summary`` and ``meta`` add to the common keys."""
        n_clean = n - len(self.quarantine)
        return Report(
            kind="data_audit",
            title=f"Data security audit: {contract.name}",
            rows=n,
            suspicious_rows=self.suspicious,
            findings=self.findings,
            summary={
                "clean_rows": n_clean,
                "quarantined_rows": len(self.quarantine),
                "suspicious_rows": len(self.suspicious),
                "base_rate": base_rate,
                "checks": {k: v.summary for k, v in results.items()},
                "seconds": timings,
                "treatments": [t.to_dict() for t in self.treatments],
                **(summary or {}),
            },
            meta={
                "tabguard_version": __version__,
                "created": now_iso(),
                "contract": contract.name,
                "contract_sha256": contract_hash(contract),
                **meta,
            },
            sections=[
                _treatment_section(self.treatments, n, n_clean),
                *sections,
                *(s for r in results.values() for s in r.sections),
            ],
        )


def _treatment_section(treatments: list[Treatment], n: int, n_clean: int) -> Section:
    rows = [[t.action, len(t.rows), t.reason, t.check, ", ".join(t.features)] for t in treatments]
    return Section(
        title="Treatments (D5)",
        text=[
            f"{n_clean} of {n} rows are written to the clean data (clean.csv or "
            "clean.parquet). Every row dropped, clipped, imputed or quarantined is listed below "
            "with why; the quarantine file holds each quarantined row with its reason."
        ],
        tables=[Table(columns=["action", "rows", "reason", "check", "features"], rows=rows)]
        if rows
        else [],
    )


def write_audit(
    result: DataAuditResult,
    out_dir: str | Path,
    *,
    format: TableFormat = "csv",
    preformatted: PreformattedCsv | None = None,
) -> dict[str, Path]:
    """Write the audit's outputs into ``out_dir`` and return their paths.

    ``findings.json``, ``report.html`` and ``treatments.json``, and the clean and quarantined
    rows as ``clean.csv`` / ``quarantine.csv`` (``format="csv"``) or ``clean.parquet`` /
    ``quarantine.parquet`` (``format="parquet"``). The clean rows are written from the audited
    frame without copying it; the report is drawn meanwhile in a second thread (the Arrow
    writers release the interpreter lock). ``preformatted``: the CSV text of the audited rows
    formatted ahead (:class:`~tabguard._preformat.PreformattedCsv` of the frame passed to
    :func:`audit_data`), used for ``clean.csv``; the files are the same without it.

    Raises
    ------
    ValueError
        An unknown format.
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {sorted(FORMATS)}; got {format!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    suffix = FORMATS[format]
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tabguard-report") as pool:
        report = pool.submit(write_report, result.report, out)
        paths: dict[str, Path] = {}
        paths["clean"] = write_table(
            result.data,
            out / f"clean{suffix}",
            rows=result.clean_mask,
            format=format,
            preformatted=preformatted,
        )
        paths["quarantine"] = write_table(
            result.quarantine, out / f"quarantine{suffix}", format=format
        )
        paths["treatments"] = out / "treatments.json"
        paths["treatments"].write_text(
            json.dumps([t.to_dict() for t in result.treatments], indent=2)
        )
        return {**report.result(), **paths}
