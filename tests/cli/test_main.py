"""The command line's conventions: usage errors, ``--version``, ``python -m``, completion.

Each behaviour is checked through the real entry point twice: as a subprocess running
``python -m tabguard`` (what a shell sees: exit status, stdout, stderr) and in process through
``main(argv)``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pandas as pd
import pytest

import tabguard
import tabguard.cli._state as cli_state
from tabguard.cli import main
from tabguard.errors import DataError

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def run_module(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m tabguard ARGS`` with a plain, narrow-safe terminal."""
    full_env = {**os.environ, "COLUMNS": "120", "NO_COLOR": "1", **(env or {})}
    full_env.pop("TABGUARD_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "tabguard", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=full_env,
    )


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    code = info.value.code
    return (code if isinstance(code, int) else (0 if code is None else 1)), out, ANSI.sub("", err)


# (argv, the usage line's command, the error text)
USAGE_MISTAKES = [
    (["--bogus"], "tabguard", "No such option: --bogus"),
    (["audit", "data", "--bogus"], "tabguard audit data", "No such option: --bogus"),
    (["audit", "data"], "tabguard audit data", "Missing argument"),
    (["nosuchcmd"], "tabguard", "No such command 'nosuchcmd'"),
    (["keys", "create"], "tabguard keys create", "Missing argument"),
    (["serve", "model", "--workers", "0"], "tabguard serve", "Invalid value for '--workers'"),
    (["flags", "history", "--limit", "many"], "tabguard flags history", "Invalid value"),
    (["contract", "check"], "tabguard contract check", "missing the contract"),
    (["contract", "check", "d.csv", "c.yaml"], "tabguard contract check", "c.yaml d.csv"),
    (["contract", "check", "a", "b", "-c", "c.yaml"], "tabguard contract check", "only the data"),
]


def test_contract_check_takes_the_contract_first_or_as_an_option(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from tabguard.contract import save_contract
    from tabguard.datasets import credit_default_contract, load_credit_default

    contract = save_contract(credit_default_contract(), tmp_path / "c.yaml")
    data = tmp_path / "d.csv"
    load_credit_default().head(50).to_csv(data, index=False)
    code, out, _ = run_main(capsys, "contract", "check", "--help")
    assert code == 0 and "contract check [OPTIONS] [CONTRACT] [DATA]" in out
    for argv in ([str(contract), str(data)], [str(data), "-c", str(contract)]):
        code, out, err = run_main(capsys, "contract", "check", *argv)
        assert code == 0, err
        assert "all 50 rows satisfy the contract" in " ".join(out.split())


def _command_paths() -> list[list[str]]:
    import typer

    from tabguard.cli import app

    paths: list[list[str]] = []

    def walk(command: object, path: list[str]) -> None:
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*path, name])
        if not hasattr(command, "commands"):
            paths.append(path)

    walk(typer.main.get_command(app), [])
    return paths


def test_every_help_fits_80_columns_without_cutting_a_text(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Rich cuts a word longer than its cell with "…": an option's help must not lose its end
    monkeypatch.setenv("COLUMNS", "80")
    paths = _command_paths()
    assert len(paths) > 20 and ["train"] in paths
    for path in paths:
        code, out, _ = run_main(capsys, *path, "--help")
        assert code == 0, path
        cut = [ln for ln in out.splitlines() if "… │" in ln or "…│" in ln]
        assert not cut, (path, cut)
        assert max(len(ln) for ln in out.splitlines()) <= 80, path


def test_contract_infer_drafts_a_panel_id_as_the_entity(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import yaml

    data = tmp_path / "panel.csv"
    rows = [(100 + i, 1000 * (i % 7 + 1), m, int(i % 5 == 0)) for i in range(30) for m in range(4)]
    pd.DataFrame(rows, columns=["account", "limit", "month", "bad"]).to_csv(data, index=False)
    code, out, err = run_main(capsys, "contract", "infer", str(data), "-l", "bad")
    assert code == 0, err
    drafted = yaml.safe_load(out)  # the note goes to stderr: stdout stays YAML
    assert drafted["entity"] == "account" and "account" not in drafted["features"]
    assert "entity: account drafted from its name" in " ".join(err.split())
    # named after its file (four drafts named "inferred" became one registry model); a
    # hospital's record number is an id of a unit (fresh19)
    assert drafted["name"] == "panel"
    visits = tmp_path / "ed-visits.2024.csv"
    pd.read_csv(data).rename(columns={"account": "mrn"}).to_csv(visits, index=False)
    code, out, err = run_main(capsys, "contract", "infer", str(visits), "-l", "bad")
    assert code == 0 and yaml.safe_load(out)["name"] == "ed-visits"
    assert yaml.safe_load(out)["entity"] == "mrn"
    code, out, err = run_main(capsys, "contract", "infer", str(data), "-l", "bad", "--no-entity")
    assert code == 0 and "entity" not in yaml.safe_load(out) and not err
    code, _, err = run_main(
        capsys, "contract", "infer", str(data), "-l", "bad", "--no-entity", "--entity", "month"
    )
    assert code == 2 and "--entity or --no-entity" in err
    # an id whose name does not say so is drafted as a feature, and named on stderr
    frame = pd.read_csv(data).rename(columns={"account": "zper"})
    frame.to_csv(data, index=False)
    code, out, err = run_main(capsys, "contract", "infer", str(data), "-l", "bad")
    assert code == 0 and "zper" in yaml.safe_load(out)["features"]
    assert "zper repeats like an id of units" in " ".join(err.split())


def test_text_codes_survive_infer_check_and_audit(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Zero-padded codes ('09') and codes that spell numbers ('3e2') stay the codes they are
    from the draft to the clean rows written back."""
    import yaml

    data, contract, out_dir = tmp_path / "codes.csv", tmp_path / "c.yaml", tmp_path / "out"
    region = ["01", "09", "10", "02"] * 30
    code = ["3e2", "1e5", "a1b2", "3e2", "00ff", "540445e9"] * 20
    frame = pd.DataFrame({"region": region, "code": code, "bad": [0, 1, 0] * 40})
    frame.to_csv(data, index=False)
    status, _, err = run_main(
        capsys, "contract", "infer", str(data), "-l", "bad", "-o", str(contract)
    )
    assert status == 0, err
    drafted = yaml.safe_load(contract.read_text())["features"]
    assert drafted["region"]["categories"] == ["01", "02", "09", "10"]
    assert "3e2" in drafted["code"]["categories"]
    status, out, err = run_main(capsys, "contract", "check", str(contract), str(data))
    assert status == 0 and "all 120 rows satisfy the contract" in " ".join(out.split()), out + err
    status, _, err = run_main(
        capsys, "audit", "data", str(data), "-c", str(contract), "-o", str(out_dir), "--quiet"
    )
    assert status in (0, 1), err
    written = pd.read_csv(out_dir / "clean.csv", dtype=str)
    assert sorted(set(written["region"])) == ["01", "02", "09", "10"]
    assert set(written["code"]) == set(code)


@pytest.mark.parametrize(("argv", "command", "message"), USAGE_MISTAKES)
def test_usage_mistakes_exit_2_with_usage_line_and_hint_in_process(
    capsys: pytest.CaptureFixture[str], argv: list[str], command: str, message: str
) -> None:
    code, out, err = run_main(capsys, *argv)
    assert code == 2, (out, err)
    assert f"Usage: {command} " in err
    assert f"Try '{command} --help' for help." in err
    assert message in err
    assert "internal error" not in err + out


@pytest.mark.parametrize(
    ("argv", "command", "message"),
    [USAGE_MISTAKES[1], USAGE_MISTAKES[2], USAGE_MISTAKES[3]],
)
def test_usage_mistakes_exit_2_as_a_subprocess(argv: list[str], command: str, message: str) -> None:
    r = run_module(*argv)
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"Usage: {command} " in r.stderr
    assert f"Try '{command} --help' for help." in r.stderr
    assert message in r.stderr
    assert "internal error" not in r.stdout + r.stderr


def test_version_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(capsys, "--version")
    assert (code, out.strip(), err) == (0, f"tabguard {tabguard.__version__}", "")


def test_python_dash_m_tabguard_runs_the_cli() -> None:
    r = run_module("--version")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"tabguard {tabguard.__version__}"
    helped = run_module("--help")
    assert helped.returncode == 0, helped.stderr
    for command in ("audit", "train", "serve", "keys", "flags", "log", "--version"):
        assert command in helped.stdout


def test_no_arguments_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(capsys)
    assert code == 2
    assert "Usage: tabguard" in out + err and "serve" in out + err


def test_bad_input_is_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def bad() -> None:
        raise DataError("data.csv: no such file; check the path")

    monkeypatch.setattr(cli_state, "_config", bad)
    code, _, err = run_main(capsys, "keys", "list")
    assert code == 2
    assert err.strip() == "error: data.csv: no such file; check the path"


def test_a_bug_is_exit_3_with_one_line_and_the_traceback_on_request(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def bug() -> None:
        raise KeyError("oops")

    monkeypatch.setattr(cli_state, "_config", bug)
    monkeypatch.delenv("TABGUARD_DEBUG", raising=False)
    code, _, err = run_main(capsys, "keys", "list")
    assert code == 3
    assert err.startswith("internal error: KeyError:") and "TABGUARD_DEBUG=1" in err
    assert len(err.strip().splitlines()) == 1
    monkeypatch.setenv("TABGUARD_DEBUG", "1")
    with pytest.raises(KeyError, match="oops"):
        main(["keys", "list"])


def in_bash(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m tabguard ARGS`` from a bash shell (Typer detects the shell it runs under)."""
    command = " ".join([sys.executable, "-m", "tabguard", *args])
    full_env = {**os.environ, **(env or {})}
    # "; exit $?" keeps bash as the parent process (it would exec a lone command).
    return subprocess.run(
        ["bash", "-c", f"{command}; exit $?"],
        capture_output=True,
        text=True,
        timeout=120,
        env=full_env,
    )


def test_show_completion_prints_a_script_for_the_shell() -> None:
    r = in_bash("--show-completion")
    assert r.returncode == 0, r.stderr
    assert "_TABGUARD_COMPLETE=complete_bash" in r.stdout
    assert "complete " in r.stdout and " tabguard" in r.stdout


@pytest.mark.parametrize(
    ("words", "cword", "expected"),
    [("tabguard au", 1, "audit"), ("tabguard flags s", 2, "set"), ("tabguard audit ", 2, "model")],
)
def test_completion_completes_commands(words: str, cword: int, expected: str) -> None:
    r = run_module(
        env={"_TABGUARD_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
    )
    assert r.returncode == 0, r.stderr
    assert expected in r.stdout.split()


def test_install_completion_writes_the_shell_startup_file(tmp_path: Path) -> None:
    r = in_bash("--install-completion", env={"HOME": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    bashrc = (tmp_path / ".bashrc").read_text()
    sourced = re.search(r"source ['\"]?([^'\"\s]+)", bashrc)
    assert sourced is not None, bashrc
    script = Path(sourced.group(1).replace("~", str(tmp_path), 1)).read_text()
    assert "_TABGUARD_COMPLETE=complete_bash" in script


# (argv before --out, whether --out names a directory)
OUT_COMMANDS = [
    (["train", "data.csv", "-c", "c.yaml"], True),
    (["audit", "data", "data.csv", "-c", "c.yaml"], True),
    (["audit", "model", "model"], True),
    (["demo", "-q"], True),
    (["contract", "infer", "data.csv", "-l", "DEFAULT"], False),
    (["redteam", "poison", "data.csv", "-c", "c.yaml", "--trigger", "AGE=999"], False),
]


@pytest.mark.parametrize(("argv", "is_dir"), OUT_COMMANDS)
def test_out_at_an_existing_file_is_one_line_exit_2_before_any_work(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], is_dir: bool
) -> None:
    existing = tmp_path / "existing"
    existing.write_text("keep me")
    for out, expected in [
        (existing, "is an existing file" if is_dir else "the file exists"),
        (existing / "sub", f"{existing} is a file, not a directory"),
    ]:
        code, _, err = run_main(capsys, *argv, "--out", str(out))
        assert code == 2, err
        assert len(err.strip().splitlines()) == 1 and expected in err, err
        assert err.startswith(f"error: --out {out}: ")
    assert existing.read_text() == "keep me"
    if not is_dir:  # a file output may be overwritten on request only
        code, _, err = run_main(capsys, *argv, "--out", str(tmp_path), "--force")
        assert code == 2 and "is a directory" in err


def test_tabguard_version_does_not_import_the_service_stack() -> None:
    code = (
        "import sys, tabguard.cli\n"
        "heavy = ['fastapi', 'numba', 'lightgbm', 'sqlalchemy', 'pandas', 'sklearn']\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def _fake_main(monkeypatch: pytest.MonkeyPatch, path: str, **names: object) -> types.ModuleType:
    """A ``__main__`` module run from ``path`` (not by name: no spec) holding ``names``,
    installed as ``sys.modules["__main__"]`` for the test."""
    module = types.ModuleType("__main__")
    module.__file__ = path
    module.__spec__ = None
    for name, value in names.items():
        setattr(module, name, value)
    monkeypatch.setitem(sys.modules, "__main__", module)
    return module


def test_spawned_processes_skip_the_console_script(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under the generated ``tabguard`` script, ``spawn`` children are told to skip it (as under
    ``python -m tabguard``): they would otherwise import every command again."""
    import multiprocessing.spawn

    from tabguard.cli import _spawned_processes_skip_the_script

    # ``main`` is what the generated script imports.
    _fake_main(monkeypatch, "/venv/bin/tabguard", main=main)
    before = multiprocessing.spawn.get_preparation_data("child")
    assert before["init_main_from_path"] == "/venv/bin/tabguard"  # the script runs again
    _spawned_processes_skip_the_script()
    after = multiprocessing.spawn.get_preparation_data("child")
    assert "init_main_from_path" not in after
    assert after["init_main_from_name"] == "tabguard.__main__"  # skipped by the child


def test_a_program_of_its_own_keeps_its_main_module(monkeypatch: pytest.MonkeyPatch) -> None:
    """A program calling ``main`` from its own script keeps it: its children may need it."""

    from tabguard.cli import _spawned_processes_skip_the_script

    program = _fake_main(monkeypatch, "/home/me/wrapper.py")
    _spawned_processes_skip_the_script()
    assert program.__spec__ is None


def test_a_program_importing_main_keeps_its_own_definitions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A program that imports ``main`` by name and defines a function of its own keeps its
    module: a spawned child unpickles ``__main__.task`` from it."""

    from tabguard.cli import _spawned_processes_skip_the_script

    # `from tabguard.cli import main`, then a function defined in __main__
    program = _fake_main(monkeypatch, "/home/me/wrapper.py", main=main)
    exec("def task(x):\n    return x\n", vars(program))
    assert program.task.__module__ == "__main__"
    _spawned_processes_skip_the_script()
    assert program.__spec__ is None


def test_a_script_holding_objects_whose_attributes_fail_is_still_marked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only functions and classes are looked at: an object of the script whose attribute
    lookup raises (a proxy outside its context) neither breaks ``main`` nor keeps the mark."""

    from tabguard.cli import _spawned_processes_skip_the_script

    class Proxy:
        def __getattribute__(self, name: str) -> object:
            raise RuntimeError("working outside of context")

    script = _fake_main(monkeypatch, "/venv/bin/tabguard", main=main, proxy=Proxy())
    _spawned_processes_skip_the_script()
    assert script.__spec__ is not None and script.__spec__.name == "tabguard.__main__"


def test_end_program_in_process_raises_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Called in process (tests, ``main(argv)``), a command's end is ``typer.Exit``."""
    import typer

    from tabguard.cli import _app

    monkeypatch.setattr(_app._Process, "program", False)
    with pytest.raises(typer.Exit) as info:
        _app.end_program(1)
    assert info.value.exit_code == 1


def test_end_program_as_the_program_exits_at_once_even_on_a_closed_pipe(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As the program it flushes what it can and ends with ``os._exit(code)``; a stream whose
    reader went away (``| head``) does not turn the exit status into an error."""
    from tabguard.cli import _app

    class Gone:
        def flush(self) -> None:
            raise BrokenPipeError

    ended: list[int] = []

    class EndedError(Exception):
        pass

    def fake_exit(code: int) -> None:
        ended.append(code)
        raise EndedError

    monkeypatch.setattr(_app._Process, "program", True)
    monkeypatch.setattr(_app.os, "_exit", fake_exit)
    monkeypatch.setattr(_app.sys, "stdout", Gone())
    with pytest.raises(EndedError):
        _app.end_program(1)
    assert ended == [1]


def test_help_paragraphs_are_reflowed_lists_and_examples_kept() -> None:
    from tabguard.cli import _reflow

    doc = """First line.

    A paragraph broken
    at the source's width.

    - an item
    - another
    """
    assert (
        _reflow(doc)
        == "First line.\n\nA paragraph broken at the source's width.\n\n- an item\n- another"
    )
