"""``tabguard audit data``: the data security audit (D1-D5)."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NamedTuple, cast

import typer
from rich.markup import escape
from rich.table import Table

from tabguard.cli._app import (
    QUIET_HELP,
    SparkMasterOption,
    audit_app,
    check_names,
    console,
    end_program,
    output_directory,
)

if TYPE_CHECKING:
    import pandas as pd

    from tabguard._preformat import PreformattedCsv
    from tabguard.contract import Contract, FrameValidation
    from tabguard.data_audit import DataAuditResult
    from tabguard.io import TableFormat
    from tabguard.progress import RichProgress
    from tabguard.spark._audit import SparkAuditResult

_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}


def print_findings(
    result: DataAuditResult | SparkAuditResult,
    *,
    limit: int = 12,
    min_severity: str = "warning",
    quiet: bool = False,
) -> None:
    """Print the most severe findings as a Rich table (not when ``quiet``), then the summary
    line."""
    from tabguard.reports import SEVERITY_ORDER

    rep = result.report
    shown = (
        []
        if quiet
        else [
            f
            for f in rep.sorted_findings()
            if SEVERITY_ORDER[f.severity] <= SEVERITY_ORDER[min_severity]
        ][:limit]
    )
    if shown:
        table = Table("severity", "check", "finding", show_lines=False, expand=True)
        for f in shown:
            table.add_row(f"[{_STYLE[f.severity]}]{f.severity}[/]", f.check, escape(f.message))
        console.print(table)
    c = rep.counts()
    console.print(
        f"{rep.rows} rows: {len(rep.suspicious_rows)} suspected of poisoning, "
        f"{rep.summary.get('quarantined_rows', 0)} quarantined, "
        f"{rep.summary.get('clean_rows', 0)} clean; findings: "
        f"[bold red]{c['critical']} critical[/], [yellow]{c['warning']} warning[/], "
        f"{c['info']} info"
    )


def _read_trusted(path: Path, contract: Contract, advance: Any) -> pd.DataFrame:
    """Read the --trusted file; its errors name the option."""
    from tabguard.errors import DataError, TabguardError
    from tabguard.io import read_table

    try:
        return read_table(path, progress=advance, contract=contract)
    except TabguardError as exc:
        raise DataError(f"--trusted: {exc}") from exc


def _trusted_sample(
    trusted: Path | None, contract: Contract, progress: RichProgress
) -> pd.DataFrame | None:
    """The ``--trusted`` file read and checked against the contract (``None`` without it)."""
    if trusted is None:
        return None
    from tabguard.data_audit import LabelNoiseOptions
    from tabguard.data_audit._label_noise import prepare_trusted

    with progress.stage(f"reading {trusted.name}") as st:
        sample = _read_trusted(trusted, contract, st.advance)
    prepare_trusted(sample, contract, LabelNoiseOptions())
    return sample


def _reuse_freed_memory() -> None:
    """Have glibc's allocator keep freed memory for reuse instead of returning it to the kernel.

    The audit allocates and frees arrays of a million rows by the thousand (8 MB a column).
    By default glibc hands each block over 128 kB (a threshold that adapts up to 32 MB) back to
    the kernel when it is freed, and the next array of that size is faulted in again, a page of
    4 kB at a time: at 1,000,313 rows about 540,000 page faults and 5 CPU seconds of system
    time (a sixth of the command's CPU) on a 2-core virtual machine. Serving blocks of up to
    32 MB from the heap, and keeping up to 1 GB of freed heap, leaves about 350,000 faults and
    3.7 s (peak memory +0.2 GB). A no-op where the C library is not glibc. Only the command
    sets it: the process is the command's, whereas a program calling :func:`audit_data` keeps
    its allocator as it set it.
    """
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # musl and others: no glibc, nothing to tune
        return
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3  # glibc's malloc.h
    mallopt(m_mmap_threshold, 32 << 20)  # glibc's largest (a larger value is refused)
    mallopt(m_trim_threshold, 1 << 30)
    mallopt(m_top_pad, 256 << 20)


def _small_pages() -> None:
    """Have NumPy leave its large arrays on the kernel's ordinary 4 kB pages.

    NumPy asks for transparent huge pages (``madvise``) on every array of 4 MB or more. On a
    kernel whose huge pages are granted on request with direct compaction (``madvise`` in
    ``/sys/kernel/mm/transparent_hugepage/defrag``, this project's machines among them), each
    2 MB page first faulted in stalls while the kernel compacts memory to find one. The
    audit's arrays are mostly written once and read a few times in sequence, which gains
    little from fewer TLB entries: at 1,000,313 rows the command spent about 0.9 CPU-s more
    in the kernel with huge pages than without, and gained at most a few tenths in user time
    (paired runs, docs/benchmarks.md, session 13). Left to NumPy when
    ``NUMPY_MADVISE_HUGEPAGE`` is set (NumPy reads it). Only the command sets it, as
    :func:`_reuse_freed_memory`.
    """
    import importlib
    import os

    if "NUMPY_MADVISE_HUGEPAGE" in os.environ:
        return
    for module in ("numpy._core.multiarray", "numpy.core.multiarray"):  # NumPy 2, NumPy 1
        try:
            setter = getattr(importlib.import_module(module), "_set_madvise_hugepage", None)
        except ImportError:
            continue
        if setter is not None:  # NumPy's switch since 1.20
            setter(False)
        return


class _Read(NamedTuple):
    """What :func:`_read_in_background` read: the rows as read, and, when the contract could
    be read and the rows validated, that contract, the rows with its text codes as text
    (:func:`~tabguard.io.keep_text_codes`), their validation and, when asked for and the
    rows are many, their CSV text being formatted ahead."""

    rows: pd.DataFrame
    contract: Contract | None = None
    coded: pd.DataFrame | None = None
    validation: FrameValidation | None = None
    csv: PreformattedCsv | None = None


def _read_in_background(path: Path, contract_path: Path, *, csv: bool = False) -> Future[_Read]:
    """``read_table(path)`` in a daemon thread (a usage error raised meanwhile ends the
    process without waiting for the read); its result or error in the future.

    The thread then reads the contract, keeps its text codes as text and validates the rows
    against it (:func:`~tabguard.contract.validate_frame`, what the audit starts with), while
    the main thread is still importing the audit's modules. When any of that fails, only the
    rows are kept: the command does it again itself and says what is wrong where it would
    have. With ``csv`` (the clean rows are written as CSV), their CSV text is formatted from
    the validation on, on a core left idle (:class:`~tabguard._preformat.PreformattedCsv`)."""
    from tabguard._preformat import MIN_ROWS, PreformattedCsv
    from tabguard.contract import load_contract, validate_frame
    from tabguard.io import keep_text_codes, read_table

    future: Future[_Read] = Future()

    def read() -> None:
        try:
            df = read_table(path)
        except BaseException as exc:  # raised where the data is awaited
            future.set_exception(exc)
            return
        try:
            contract = load_contract(contract_path)
            coded = keep_text_codes(df, path, contract)
            ahead = PreformattedCsv(coded) if csv and len(coded) >= MIN_ROWS else None
            future.set_result(_Read(df, contract, coded, validate_frame(coded, contract), ahead))
        except Exception:
            future.set_result(_Read(df))

    threading.Thread(target=read, name="tabguard-read", daemon=True).start()
    return future


@audit_app.command("data")
def audit_data_cmd(
    data: Annotated[
        Path,
        typer.Argument(
            help="Training data (CSV, CSV.gz or Parquet); with --engine spark a Parquet file or "
            "directory, or a table name."
        ),
    ],
    contract_path: Annotated[Path, typer.Option("--contract", "-c", help="Contract YAML.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output directory.", callback=output_directory)
    ],
    checks: Annotated[
        str | None, typer.Option(help="Comma-separated checks to run (default: all).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed of the statistical checks.")] = 0,
    alpha: Annotated[
        float, typer.Option(help="Family-wise error rate of the trigger scan.")
    ] = 0.01,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help=QUIET_HELP)] = False,
    out_format: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="Format of the clean and quarantined rows: csv or parquet (the input's format "
            "is Parquet or CSV by its content). Default: csv; parquet with --engine spark.",
            show_default=False,
        ),
    ] = None,
    trusted: Annotated[
        Path | None,
        typer.Option(
            "--trusted",
            help="A vetted sample with reviewed labels (CSV, CSV.gz or Parquet; same contract, "
            "ideally 5-10 % of DATA's size): rows whose label it finds improbable are flagged "
            "(--engine spark: among the driver sample's random rows).",
        ),
    ] = None,
    engine: Annotated[
        str,
        typer.Option(
            help="python: read the data into this process; spark: count and validate with "
            "Apache Spark, run the model-based stages on a driver sample (docs/spark.md).",
        ),
    ] = "python",
    spark_master: SparkMasterOption = None,
    driver_rows: Annotated[
        int,
        typer.Option(
            help="--engine spark: rows of the driver sample (every candidate pattern's rows, "
            "then random rows).",
            min=1000,
        ),
    ] = 100_000,
) -> None:
    """Audit training data for contract violations, poisoning and backdoors, bias.

    Writes DIR/findings.json, DIR/report.html, DIR/treatments.json and the clean and
    quarantined rows as DIR/clean.csv and DIR/quarantine.csv (--format parquet:
    DIR/clean.parquet and DIR/quarantine.parquet). With --trusted, labels are tested against
    models of the trusted sample: when more rows carry an improbable label than clean data
    gives (1 %, option label_noise.trusted_level), those rows are suspects. Exit status: 0
    without critical findings, 1 with one, 2 for bad input.
    """
    from tabguard.contract import load_contract
    from tabguard.io import FORMATS, keep_text_codes, read_table
    from tabguard.progress import RichProgress

    if engine not in ("python", "spark"):
        raise typer.BadParameter(f"must be python or spark; got {engine!r}", param_hint="--engine")
    if engine == "python" and spark_master is not None:
        raise typer.BadParameter("--spark-master goes with --engine spark", param_hint="--engine")
    fmt = (out_format or ("parquet" if engine == "spark" else "csv")).strip().lower()
    if engine == "spark" and fmt != "parquet":
        raise typer.BadParameter(
            "--engine spark writes the clean and quarantined rows as Parquet (Spark); use "
            "--format parquet or leave it out",
            param_hint="--format",
        )
    if fmt not in FORMATS:
        raise typer.BadParameter(
            f"must be one of {', '.join(FORMATS)}; got {out_format!r}", param_hint="--format"
        )
    # The file is read in a thread while the audit's modules are imported (about as long: the
    # checks bring SciPy, LightGBM and matplotlib; the CSV parser releases the interpreter
    # lock). Its errors are raised where it is awaited, after those of the options and the
    # contract. With --trusted that file is read and checked first, as before.
    if engine == "python":
        _reuse_freed_memory()
        _small_pages()
    reading = (
        _read_in_background(data, contract_path, csv=fmt == "csv")
        if engine == "python" and trusted is None
        else None
    )
    from tabguard.data_audit import REGISTRY, audit_data, write_audit

    names = check_names(checks, REGISTRY)  # before the data is read
    contract = load_contract(contract_path)
    if engine == "spark":
        from tabguard.spark._audit import audit_data_spark

        with RichProgress(disable=quiet) as progress:
            # first: a bad trusted file fails before Spark starts
            strusted = _trusted_sample(trusted, contract, progress)
            sresult = audit_data_spark(
                str(data),
                contract,
                out,
                master=spark_master,
                checks=names,
                random_state=seed,
                options={"trigger_scan": {"alpha": alpha}},
                driver_rows=driver_rows,
                progress=progress,
                trusted=strusted,
            )
        print_findings(sresult, quiet=quiet)
        console.print(
            f"report: {sresult.paths['report']}  findings: {sresult.paths['findings']}  "
            f"(driver sample: {sresult.sample_rows} rows)",
            soft_wrap=True,
        )
        raise typer.Exit(sresult.exit_code())
    with RichProgress(disable=quiet) as progress:
        # first: a bad trusted file fails before a large read
        trusted_df = _trusted_sample(trusted, contract, progress)
        validation, ahead = None, None
        with progress.stage(f"reading {data.name}") as st:
            if reading is None:
                df = read_table(data, progress=st.advance, contract=contract)
            else:
                got = reading.result()
                if got.contract == contract and got.coded is not None:
                    df, validation, ahead = got.coded, got.validation, got.csv
                else:  # read before the contract was loaded: its text codes ('09') as text
                    df = keep_text_codes(got.rows, data, contract)
                st.advance(len(df))
        result = audit_data(
            df,
            contract,
            checks=names,
            random_state=seed,
            progress=progress,
            options={"trigger_scan": {"alpha": alpha}},
            source=str(data),
            trusted=trusted_df,
            validation=validation,
        )
        with progress.stage(f"writing {out}"):
            paths = write_audit(result, out, format=cast("TableFormat", fmt), preformatted=ahead)
    print_findings(result, quiet=quiet)
    console.print(f"report: {paths['report']}  findings: {paths['findings']}", soft_wrap=True)
    end_program(result.exit_code())
