"""Loading, saving and fingerprinting contracts."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from tabguard.contract._spec import Contract
from tabguard.errors import ContractError

_FIXES = {
    "literal_error": "use one of the allowed values",
    "extra_forbidden": "remove the key or check its spelling",
    "missing": "add the key",
}


def _format_loc(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for p in loc:
        if isinstance(p, int):
            parts.append(f"[{p}]")
        elif p in ("function-after[_consistent(), FeatureSpec]",):
            continue
        else:
            parts.append(("." if parts else "") + str(p))
    return "".join(parts) or "<contract>"


def contract_error_from_pydantic(exc: ValidationError) -> ContractError:
    """Turn the first pydantic error into a one-line :class:`ContractError`."""
    err = exc.errors(include_url=False)[0]
    # Drop pydantic's union/validator markers from the location so it reads like the YAML path.
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p and "]" in p))
    key = _format_loc(loc)
    msg = str(err["msg"])
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
        # Our own validators already include the received value; keep the sentence whole. A
        # check across keys (no location) received the whole contract: its rule names the keys.
        return ContractError(
            key,
            msg.split("; got ")[0],
            _received(msg, err.get("input")),
            _fix_for(msg),
            show_value="; got " in msg or bool(loc),
        )
    return ContractError(key, msg, err.get("input"), _FIXES.get(str(err["type"])))


def _received(msg: str, default: Any) -> Any:
    if "; got " in msg:
        return _Verbatim(msg.split("; got ", 1)[1])
    return default


class _Verbatim(str):
    """A value already formatted by a validator (repr prints it as-is)."""

    def __repr__(self) -> str:
        return str(self)


def _fix_for(msg: str) -> str | None:
    if "min must be <= max" in msg:
        return "swap min and max"
    if "neutral must" in msg:
        return "set neutral to an allowed value or widen the range"
    if "strictly increasing" in msg:
        return "sort the bin edges and remove repeats"
    if "unknown features" in msg:
        return "declare those features or fix their names"
    if "needs a non-empty 'categories'" in msg:
        return "list the allowed values under categories"
    return None


def contract_from_dict(data: Mapping[str, Any]) -> Contract:
    """Validate a mapping into a :class:`Contract`.

    Raises
    ------
    ContractError
        With the key, rule and value of the first problem found.
    """
    if not isinstance(data, Mapping):
        raise ContractError(
            "<contract>", "must be a mapping of keys (YAML object)", type(data).__name__
        )
    try:
        return Contract.model_validate(dict(data))
    except ValidationError as exc:
        raise contract_error_from_pydantic(exc) from None


def load_contract(path: str | Path) -> Contract:
    """Load and validate a contract from a YAML (or JSON) file.

    Parameters
    ----------
    path : str or Path
        The contract file.

    Returns
    -------
    Contract

    Raises
    ------
    ContractError
        If the file is missing, not YAML, or breaks a contract rule.
    """
    p = Path(path)
    if not p.is_file():
        raise ContractError(str(p), "contract file must exist", str(p), "check the path")
    try:
        text = p.read_text(encoding="utf-8")
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ContractError(
            str(p), f"must be valid YAML{where}", str(exc).splitlines()[0]
        ) from None
    except UnicodeDecodeError:
        raise ContractError(
            str(p),
            "must be a contract: UTF-8 YAML text",
            _Verbatim("binary content (a Parquet or compressed data file?)"),
            "give the contract's YAML file; draft one from data with "
            "`tabguard contract infer DATA --label COLUMN --out contract.yaml`",
        ) from None
    if data is None:
        raise ContractError(str(p), "must not be empty", "")
    if not isinstance(data, Mapping):
        # a data file given as the contract reads as one YAML string or list
        raise ContractError(
            str(p),
            "must be a contract: a YAML mapping of keys (name, label, features, ...)",
            _Verbatim(
                "rows of a data file"
                if _looks_like_data(text)
                else {"str": "one line of text", "list": "a list"}.get(
                    type(data).__name__, f"a {type(data).__name__}"
                )
            ),
            "give the contract's YAML file; draft one from data with "
            "`tabguard contract infer DATA --label COLUMN --out contract.yaml`",
        )
    return contract_from_dict(data)


def _looks_like_data(text: str) -> bool:
    first = text.split("\n", 1)[0]
    return first.count(",") >= 2 or first.count("\t") >= 2


def _tidy(v: Any) -> Any:
    # Ranges are floats in the model; 18.0 reads better as 18 in YAML and JSON.
    if isinstance(v, float) and v.is_integer() and abs(v) < 2**53:
        return int(v)
    if isinstance(v, dict):
        return {k: _tidy(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_tidy(x) for x in v]
    return v


def contract_to_dict(contract: Contract) -> dict[str, Any]:
    """Return the contract as plain data, defaults omitted, ready for YAML/JSON."""
    data = contract.model_dump(mode="json", by_alias=True, exclude_defaults=True, exclude_none=True)
    tidy: dict[str, Any] = _tidy(data)
    return tidy


#: Text a YAML 1.2 reader takes for a number (``008``, ``1_000``, ``0x1F``, ``1e3``): PyYAML
#: writes such text codes bare where its YAML 1.1 resolver sees no number (``008`` is no
#: octal), and other readers then load the code ``'008'`` as the number 8.
_NUMBER_LIKE = re.compile(r"[-+]?(0[xo][0-9a-fA-F_]+|[0-9][0-9_]*(\.[0-9_]*)?([eE][-+]?[0-9]+)?)")


class _Dumper(yaml.SafeDumper):
    """Quotes text that any YAML reader could take for a number."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "'" if _NUMBER_LIKE.fullmatch(value) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def contract_yaml(contract: Contract) -> str:
    """The contract as YAML text, as :func:`save_contract` writes it (key order kept, text
    that could read as a number quoted, letters unescaped)."""
    text: str = yaml.dump(
        contract_to_dict(contract),
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=None,
        width=100,
        allow_unicode=True,  # 'Männlich', not "M\xE4nnlich": the file is read by people
    )
    return text


def save_contract(contract: Contract, path: str | Path) -> Path:
    """Write a contract as YAML (:func:`contract_yaml`) and return the path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(contract_yaml(contract), encoding="utf-8")
    return p


def contract_hash(contract: Contract) -> str:
    """SHA-256 of the contract's canonical JSON (order of keys does not matter)."""
    payload = json.dumps(contract_to_dict(contract), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()
