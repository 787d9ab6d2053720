"""The check shape: options validated by one function, one registry protocol for both audits."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tabguard.checks import (
    CheckOptions,
    CheckRegistry,
    at_least,
    describe_options,
    interval,
    option,
    parse_options,
    refresh_option_tables,
)
from tabguard.data_audit import REGISTRY as DATA
from tabguard.errors import OptionsError, TabguardError, UnknownCheckError
from tabguard.model_audit import REGISTRY as MODEL

ALL_CHECKS = [*DATA.ordered().values(), *MODEL.ordered().values()]


@dataclass(frozen=True)
class _Opts(CheckOptions):
    check: ClassVar[str] = "demo"

    rate: float = option(0.5, "a share", interval(0.0, 1.0, "neither"))
    rows: int = option(5, "a count", at_least(1))
    flag: bool = option(True, "a switch")
    cuts: tuple[float, ...] = option((0.1, 0.2), "thresholds", interval(0.0, 1.0))


@pytest.mark.parametrize(
    ("given_", "key", "rule"),
    [
        ({"rat": 0.1}, "rat", "unknown option; known: rate, rows, flag, cuts"),
        ({"rate": 1.0}, "rate", "must be in (0, 1)"),
        ({"rate": 0.0}, "rate", "must be in (0, 1)"),
        ({"rate": math.nan}, "rate", "must be in (0, 1)"),
        ({"rate": "0.5"}, "rate", "must be float"),
        ({"rate": True}, "rate", "must be float"),
        ({"rows": 0}, "rows", "must be in [1, inf)"),
        ({"rows": 2.5}, "rows", "must be int"),
        ({"rows": False}, "rows", "must be int"),
        ({"flag": 1}, "flag", "must be bool"),
        ({"cuts": 0.1}, "cuts", "must be tuple of float"),
        ({"cuts": [0.1, 2.0]}, "cuts", "must be in [0, 1]"),
        ({"cuts": ["a"]}, "cuts", "must be tuple of float"),
    ],
)
def test_bad_options_name_check_key_rule_and_value(
    given_: dict[str, Any], key: str, rule: str
) -> None:
    with pytest.raises(OptionsError) as info:
        parse_options(_Opts, given_)
    err = info.value
    assert isinstance(err, TabguardError)  # the CLI maps it to exit 2
    assert (err.check, err.key) == ("demo", key)
    assert str(err).startswith(f"options.demo.{key}: {rule}")
    assert str(err).endswith(f"got {given_[key]!r}")


def test_a_non_mapping_is_an_error_not_defaults() -> None:
    with pytest.raises(OptionsError, match=r"options.demo: options must be a mapping.*got \[1\]"):
        parse_options(_Opts, [1])
    assert parse_options(_Opts, None) == _Opts()
    assert parse_options(_Opts, {}) == _Opts()


def test_values_are_converted_to_the_declared_type() -> None:
    o = parse_options(_Opts, {"rate": 1 / 4, "rows": 1e3, "cuts": [0, 1]})
    assert o.rows == 1000 and isinstance(o.rows, int)
    assert o.cuts == (0.0, 1.0) and all(isinstance(c, float) for c in o.cuts)
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.rows = 3  # type: ignore[misc]


def test_direct_construction_is_validated_too() -> None:
    with pytest.raises(OptionsError, match=r"options\.demo\.rows"):
        _Opts(rows=-1)


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_interval_rule_matches_its_text(v: float) -> None:
    rule = interval(0.0, 1.0, "left")
    assert rule.text == "in [0, 1)"
    assert rule(v) == (0.0 <= v < 1.0)


@pytest.mark.parametrize("cls", ALL_CHECKS, ids=lambda c: c.name)
def test_every_check_declares_the_protocol_and_documents_its_options(cls: Any) -> None:
    assert isinstance(cls.order, int) and isinstance(cls.concurrent, bool)
    assert isinstance(cls.after, tuple)
    assert cls.Options.check == cls.name
    defaults = cls.Options()  # the defaults satisfy the rules
    assert parse_options(cls.Options, None) == defaults
    with pytest.raises(OptionsError, match=rf"options.{cls.name}.no_such_key: unknown option"):
        parse_options(cls.Options, {"no_such_key": 1})
    for doc in describe_options(cls.Options):
        assert doc.reason and "\n" not in doc.reason, f"{cls.name}.{doc.name}: one-line reason"
        assert getattr(defaults, doc.name) == doc.default


@pytest.mark.parametrize("registry", [DATA, MODEL], ids=["data", "model"])
def test_after_names_earlier_checks(registry: CheckRegistry[Any]) -> None:
    order = list(registry.ordered())
    for name, cls in registry.ordered().items():
        for dep in cls.after:
            assert order.index(dep) < order.index(name)


def test_select_keeps_running_order_and_names_valid_checks() -> None:
    assert list(DATA.select(["roni", "trigger_scan"])) == ["trigger_scan", "roni"]
    with pytest.raises(UnknownCheckError) as info:
        DATA.select(["integrity", "typo"])
    msg = str(info.value)
    assert "\n" not in msg
    assert msg == (
        "unknown data check(s) 'typo'; valid checks: integrity, descriptive, trigger_scan, "
        "near_duplicates, label_noise, roni, bias"
    )
    with pytest.raises(UnknownCheckError, match=r"unknown model check.*valid checks: performance"):
        MODEL.select(["Backdoor"])


def test_options_of_an_unknown_check_are_an_error() -> None:
    with pytest.raises(UnknownCheckError, match="'trigger_scn'"):
        DATA.options(DATA.ordered(), {"trigger_scn": {"alpha": 0.01}})
    with pytest.raises(OptionsError, match=r"options.\*: options must map check names"):
        MODEL.options(MODEL.ordered(), [("backdoor", {})])  # type: ignore[arg-type]
    with pytest.raises(OptionsError, match=r"options\.backdoor\.alpha: must be in"):
        MODEL.options(MODEL.ordered(), {"backdoor": {"alpha": 5}})
    with pytest.raises(OptionsError, match=r"options\.performance\.x: unknown option"):
        MODEL.options(MODEL.ordered(), {"performance": {"x": 1}})


def test_registration_refuses_a_check_missing_a_declaration() -> None:
    reg: CheckRegistry[Any] = CheckRegistry("data")

    class NoAfter:
        name: ClassVar[str] = "demo"
        order: ClassVar[int] = 1
        concurrent: ClassVar[bool] = False
        Options = _Opts

    with pytest.raises(TypeError, match="must declare after"):
        reg.register(NoAfter)

    class WrongOptions(NoAfter):
        name: ClassVar[str] = "other"
        after: ClassVar[tuple[str, ...]] = ()

    with pytest.raises(TypeError, match="Options must be a CheckOptions subclass whose check"):
        reg.register(WrongOptions)


DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.mark.parametrize(
    ("guide", "registry"), [("data-audit.md", DATA), ("model-audit.md", MODEL)]
)
def test_guides_show_every_option_as_the_code_declares_it(
    guide: str, registry: CheckRegistry[Any]
) -> None:
    """The option tables of the guides are the declarations (refresh them with
    ``refresh_option_tables`` after changing an option)."""
    text = (DOCS / guide).read_text()
    options = {name: cls.Options for name, cls in registry.ordered().items()}
    assert refresh_option_tables(text, options) == text, f"docs/{guide}: option tables are stale"
    with_options = {n for n, o in options.items() if dataclasses.fields(o)}
    shown = {n for n in options if f"<!-- options:{n} -->" in text}
    assert with_options <= shown, f"docs/{guide} lacks the options of {with_options - shown}"
