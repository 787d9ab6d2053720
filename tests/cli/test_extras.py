"""A serving-only install: the audit and training libraries are extras, named when missing.

Each subprocess hides the extras' packages (``sys.modules[name] = None`` makes importing them
fail as if they were not installed) and runs the real entry point.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tabguard._extras import OPTIONAL_MODULES, missing_dependency
from tabguard.datasets import credit_default_contract_path

AUDIT_AND_TRAIN = [m for m, (_, extra) in OPTIONAL_MODULES.items() if extra in ("audit", "train")]
DATA = Path(credit_default_contract_path()).with_name("credit_default.csv.gz")


def without_extras(code: str, *args: str, home: Path) -> subprocess.CompletedProcess[str]:
    hide = f"import sys\nfor m in {AUDIT_AND_TRAIN!r}:\n    sys.modules[m] = None\n"
    env = {**os.environ, "TABGUARD_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-c", hide + code, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


CLI = "from tabguard.cli import main\nmain(sys.argv[1:])\n"


@pytest.mark.parametrize(
    ("argv", "extra"),
    [
        (
            ["audit", "data", str(DATA), "-c", str(credit_default_contract_path()), "-o", "out"],
            "audit",
        ),
        (["train", str(DATA), "-c", str(credit_default_contract_path()), "-o", "model"], "train"),
        (["demo", "-q", "-o", "demo"], "train"),
    ],
)
def test_a_command_needing_a_missing_extra_says_which_in_one_line(
    tmp_path: Path, argv: list[str], extra: str
) -> None:
    r = without_extras(CLI, *argv, home=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    command = " ".join(["tabguard", *argv[: 2 if argv[0] == "audit" else 1]])
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"error: `{command}` needs the '")
    assert lines[0].endswith(f"install it with `pip install 'tabguard[{extra}]'`")


def test_the_service_and_its_commands_run_without_the_extras(tmp_path: Path) -> None:
    code = (
        "import tabguard.serving, tabguard.monitoring, tabguard.cli\n"
        "from tabguard.training import load_model\n"
        f"heavy = [m for m in {AUDIT_AND_TRAIN!r} if sys.modules.get(m) is not None]\n"
        "print('loaded:', heavy)\n" + CLI
    )
    r = without_extras(code, "keys", "create", "app", home=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "loaded: []" in r.stdout and r.stdout.strip().splitlines()[-1].startswith("tg_")


def test_missing_dependency_maps_only_optional_packages() -> None:
    err = missing_dependency(ModuleNotFoundError("x", name="shap.plots"), "`tabguard audit model`")
    assert err is not None
    assert str(err) == (
        "`tabguard audit model` needs the 'shap' package; "
        "install it with `pip install 'tabguard[audit]'`"
    )
    as_train = missing_dependency(ModuleNotFoundError("x", name="shap"), "t", extra="train")
    assert as_train is not None and "tabguard[train]" in str(as_train)
    assert missing_dependency(ModuleNotFoundError("x", name="numpy"), "t") is None
    assert missing_dependency(ModuleNotFoundError("x"), "t") is None


def test_every_optional_package_is_in_the_extra_that_names_it() -> None:
    root = Path(__file__).resolve().parents[2]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    core = " ".join(project["dependencies"])
    for module, (package, extra) in OPTIONAL_MODULES.items():
        listed = " ".join(extras[extra])
        assert package in listed, f"{package} ({module}) is not in tabguard[{extra}]"
        assert package not in core, f"{package} is optional but in the core dependencies"
    assert "tabguard[train" in " ".join(extras["all"]) and "tabguard[audit]" in extras["train"][0]


@pytest.mark.parametrize(
    ("toml", "setting"),
    [
        ('[limits]\nstorage = "redis://:s3cret@127.0.0.1:1/0"\n', "[limits] storage"),
        ('[stores]\nflags = "redis://:s3cret@127.0.0.1:1/0"\n', "[stores] flags"),
        ('[probing]\nstorage = "redis://:s3cret@127.0.0.1:1/0"\n', "[probing] storage"),
    ],
)
def test_serve_with_a_redis_store_but_no_redis_package_names_the_extra(
    tmp_path: Path, toml: str, setting: str
) -> None:
    (tmp_path / "tabguard.toml").write_text(toml)
    code = "import sys\nsys.modules['redis'] = None\n" + CLI
    r = without_extras(code, "serve", str(tmp_path / "no-model"), home=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.strip() == (
        f"error: {setting} 'redis://:***@127.0.0.1:1/0' needs the 'redis' package; "
        "install it with `pip install 'tabguard[redis]'`"
    )


def test_the_subpackages_resolve_every_public_name_lazily() -> None:
    import importlib

    from tabguard._lazy import lazy_names

    for name in ("tabguard.serving", "tabguard.storage", "tabguard.flags"):
        package = importlib.import_module(name)
        names = lazy_names(str(package.__file__))
        assert sorted(names) == sorted(package.__all__), name
        for public in package.__all__:
            assert getattr(package, public) is not None
        with pytest.raises(AttributeError, match="no attribute 'nope'"):
            _ = package.nope
