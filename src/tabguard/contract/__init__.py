"""The feature contract: the one declaration that data validation, training transforms, the
scoring API, sanitisation, monitoring and every audit read.

Examples
--------
>>> from tabguard.contract import load_contract, validate_frame
>>> from tabguard.datasets import credit_default_contract, load_credit_default
>>> contract = credit_default_contract()
>>> validate_frame(load_credit_default(), contract).ok
True
"""

from tabguard.contract._infer import (
    EntityGuess,
    date_columns,
    guess_entity,
    guess_id,
    infer_contract,
    unnamed_entities,
)
from tabguard.contract._io import (
    contract_from_dict,
    contract_hash,
    contract_to_dict,
    contract_yaml,
    load_contract,
    save_contract,
)
from tabguard.contract._protected import (
    ProtectedMatch,
    looks_protected,
    protected_name_match,
    protected_value_match,
)
from tabguard.contract._spec import (
    Condition,
    Contract,
    DecisionSpec,
    FeatureSpec,
    LabelSpec,
    Rule,
    UnacceptableCase,
)
from tabguard.contract._transform import FeatureTransform, TransformOptions
from tabguard.contract._validate import (
    FrameValidation,
    RecordValidator,
    ViolationGroup,
    check_columns,
    validate_frame,
)

__all__ = [
    "Condition",
    "Contract",
    "DecisionSpec",
    "EntityGuess",
    "FeatureSpec",
    "FeatureTransform",
    "FrameValidation",
    "LabelSpec",
    "ProtectedMatch",
    "RecordValidator",
    "Rule",
    "TransformOptions",
    "UnacceptableCase",
    "ViolationGroup",
    "check_columns",
    "contract_from_dict",
    "contract_hash",
    "contract_to_dict",
    "contract_yaml",
    "date_columns",
    "guess_entity",
    "guess_id",
    "infer_contract",
    "load_contract",
    "looks_protected",
    "protected_name_match",
    "protected_value_match",
    "save_contract",
    "unnamed_entities",
    "validate_frame",
]
