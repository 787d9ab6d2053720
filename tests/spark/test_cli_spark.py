"""``tabguard monitor update --engine spark``: usage mistakes and a missing PySpark are one
line and exit 2 (no Spark session needed)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tabguard.cli import main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out + out.err


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--engine", "spark"), "--source"),
        (("--engine", "dask"), "python or spark"),
        (("--source", "archive"), "go with"),
    ],
)
def test_usage_mistakes_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], fragment: str
) -> None:
    code, text = run(capsys, "monitor", "update", "--home", str(tmp_path), *args)
    assert code == 2 and fragment in text


def test_missing_pyspark_names_the_extra(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyspark", None)  # import pyspark -> ImportError
    (tmp_path / "archive").mkdir()
    (tmp_path / "archive" / "_tabguard_archive.json").write_text('{"watermark": 5}')
    config = tmp_path / "monitor.yaml"
    config.write_text(f"log: sqlite:///{tmp_path / 'p.db'}\nstore: sqlite:///{tmp_path / 'm.db'}\n")
    code, text = run(
        capsys,
        "monitor",
        "update",
        "--config",
        str(config),
        "--engine",
        "spark",
        "--source",
        str(tmp_path / "archive"),
    )
    assert code == 2 and "pip install 'tabguard[spark]'" in text
    assert len(text.strip().splitlines()) == 1


def test_source_must_be_an_archive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "monitor.yaml"
    config.write_text(f"log: sqlite:///{tmp_path / 'p.db'}\nstore: sqlite:///{tmp_path / 'm.db'}\n")
    code, text = run(
        capsys, "monitor", "update", "--config", str(config), "--engine", "spark",
        "--source", str(tmp_path),
    )  # fmt: skip
    assert code == 2 and "tabguard log export --format parquet" in text


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--engine", "spark", "--format", "csv"), "Parquet"),
        (("--engine", "spark", "--trusted", "t.csv"), "--trusted"),
        (("--spark-master", "local[2]"), "goes with --engine spark"),
        (("--engine", "dask"), "python or spark"),
    ],
)
def test_audit_data_engine_usage_mistakes_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], fragment: str
) -> None:
    contract = tmp_path / "c.yaml"
    contract.write_text("name: x\nlabel: {column: y, positive: 1}\nfeatures: {a: {type: number}}\n")
    code, text = run(
        capsys, "audit", "data", "d.parquet", "-c", str(contract), "-o", str(tmp_path / "o"), *args
    )
    assert code == 2 and fragment in text
