"""A bad contract gets a one-line error naming the key, the rule and the value."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from tabguard.contract import (
    contract_from_dict,
    contract_hash,
    load_contract,
    save_contract,
)
from tabguard.datasets import credit_default_contract_path
from tabguard.errors import ContractError

BASE: dict[str, Any] = {
    "name": "toy",
    "id": "id",
    "label": {"column": "y", "positive": 1},
    "features": {
        "age": {
            "type": "integer",
            "min": 18,
            "max": 125,
            "neutral": 35,
            "gameable": True,
            "bins": [18, 30, 60, 125],
        },
        "sex": {"type": "category", "categories": [1, 2], "protected": True},
        "amount": {"type": "number", "min": 0, "max": 1000, "precision": 2},
    },
}


def with_change(path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    *parents, last = path.split(".")
    node = data
    for p in parents:
        node = node[p]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return data


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "key", "words"),
    [
        ("features.age.type", "float", "features.age.type", ["integer", "float"]),
        ("features.age.min", 200, "features.age", ["min must be <= max", "200"]),
        ("features.age.neutral", 999, "features.age", ["neutral must lie within", "999"]),
        ("features.age.bins", [18, 60, 30], "features.age", ["strictly increasing", "[18"]),
        ("features.sex.categories", [], "features.sex", ["non-empty 'categories'"]),
        ("features.age.gamable", True, "features.age.gamable", ["Extra inputs", "True"]),
        ("label", _DELETE, "label", ["Field required"]),
        ("label.column", "age", "<contract>", ["label column 'age' cannot also be a feature"]),
        ("id", "age", "<contract>", ["identifier, never a feature"]),
        ("entity", "age", "<contract>", ["entity column 'age' groups rows", "never a feature"]),
        ("entity", "y", "<contract>", ["entity column 'y' cannot be the label column"]),
        ("features.amount.categories", [1], "features.amount", ["only apply to type 'category'"]),
        ("features.age.clip", [10, 50], "features.age", ["clip must lie within"]),
    ],
)
def test_bad_contract_one_line_error(path: str, value: Any, key: str, words: list[str]) -> None:
    with pytest.raises(ContractError) as info:
        contract_from_dict(with_change(path, value))
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(key), msg
    for w in words:
        assert w in msg, msg


def test_rule_on_unknown_feature() -> None:
    data = copy.deepcopy(BASE)
    data["rules"] = [{"name": "r1", "when": {"ghost": {"min": 1}}}]
    with pytest.raises(
        ContractError, match=r"rules\[0\] \(r1\) refers to unknown features \['ghost'\]"
    ):
        contract_from_dict(data)


def test_rule_across_keys_does_not_echo_the_whole_contract() -> None:
    # The bundled credit contract with its PAY_ features removed (a user's model without payment
    # history): its unacceptable case chronic_late_payer still names them. The error said so,
    # then printed the whole contract as the value received (3,400 characters on one line).
    data = yaml.safe_load(credit_default_contract_path().read_text())
    for name in ["PAY_0", "PAY_2", "PAY_3", "PAY_4", "PAY_5", "PAY_6"]:
        del data["features"][name]
    with pytest.raises(ContractError) as info:
        contract_from_dict(data)
    msg = str(info.value)
    assert msg.startswith("<contract>: unacceptable[3] (chronic_late_payer) refers to unknown")
    assert msg.endswith("Fix: declare those features or fix their names"), msg
    assert "got" not in msg and len(msg) < 300, msg
    # a validator that names the value received still shows it
    rule = {"name": "r", "when": {"age": {"min": 1}}, "require": {"amount": {"min": 0}}}
    with pytest.raises(ContractError, match=r"rule names must be unique; got \['r', 'r'\]"):
        contract_from_dict({**BASE, "rules": [rule, rule]})


def test_valid_contract_views() -> None:
    c = contract_from_dict(BASE)
    assert c.model_features() == ["age", "amount"]
    assert c.protected_features() == ["sex"]
    assert c.gameable_features() == ["age"]
    assert c.columns() == ["id", "age", "sex", "amount", "y"]
    panel = contract_from_dict({**BASE, "entity": "account"})
    assert panel.columns() == ["id", "account", "age", "sex", "amount", "y"]
    assert contract_from_dict({**BASE, "entity": "id"}).columns()[:2] == ["id", "age"]


def test_yaml_round_trip_keeps_hash(tmp_path: Path) -> None:
    c = contract_from_dict(BASE)
    p = save_contract(c, tmp_path / "c.yaml")
    again = load_contract(p)
    assert again == c
    assert contract_hash(again) == contract_hash(c)
    changed = c.with_updates(age={"max": 120})
    assert contract_hash(changed) != contract_hash(c)


def test_text_codes_that_read_as_numbers_are_quoted(tmp_path: Path) -> None:
    # written bare, '008' is the number 8 to a YAML 1.2 reader (fresh19)
    codes = ["008", "009", "1_000", "0x1F", "1e3", "-7", "A1", "08.15"]
    spec = {**BASE, "features": {"code": {"type": "category", "categories": codes}}}
    c = contract_from_dict(spec)
    text = save_contract(c, tmp_path / "c.yaml").read_text()
    for code in [*codes[:6], "08.15"]:
        assert f"'{code}'" in text, code
    assert "- A1" in text
    assert load_contract(tmp_path / "c.yaml") == c


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match="contract file must exist"):
        load_contract(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ContractError, match="must be valid YAML at line"):
        load_contract(bad)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(ContractError, match="must not be empty"):
        load_contract(empty)
    lst = tmp_path / "list.yaml"
    lst.write_text("- a\n- b\n")
    with pytest.raises(ContractError, match=r"list.yaml: must be a contract: a YAML mapping"):
        load_contract(lst)
    data = tmp_path / "credit.csv"
    data.write_text("ID,AGE,DEFAULT\n1,30,0\n")
    with pytest.raises(
        ContractError, match=r"credit.csv: .*; got rows of a data file\. Fix: .*contract infer"
    ):
        load_contract(data)
    parquet = tmp_path / "rows.parquet"
    parquet.write_bytes(b"PAR1\x15\x04\xff\xfe")
    with pytest.raises(ContractError, match=r"rows.parquet: .*binary content.*contract infer"):
        load_contract(parquet)


def test_bundled_contract_matches_issue() -> None:
    raw = yaml.safe_load(credit_default_contract_path().read_text())
    c = contract_from_dict(raw)
    assert c.features["SEX"].protected
    assert c.features["AGE"].gameable and c.features["AGE"].max == 125
    assert c.features["AGE"].min == 18
    assert all(c.features[f"PAY_AMT{i}"].gameable for i in range(1, 7))
    assert "SEX" not in c.model_features()
