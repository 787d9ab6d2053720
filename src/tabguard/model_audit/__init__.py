"""The model security audit (requirements M1-M4).

* M1 - directional importance (SHAP), partial dependence, dangerous value ranges, neutral
  values and the blast radius of gameable features;
* M2 - unacceptable-case tests from the contract and a backdoor probe that finds trigger values
  and value combinations from the model and clean data alone;
* M3 - white-hat attacks: minimal decision-flipping changes (the gameability rate), surrogate
  extraction and membership inference;
* M4 - disparate impact of decisions by protected attribute.

Any model can be audited: a tabguard model directory, a third-party LightGBM / XGBoost / skops
file trained on the contract's raw columns, or any object with ``predict_proba(df_raw)``.

Examples
--------
>>> from tabguard.model_audit import audit_model, load_audit_model
>>> model = load_audit_model("models/credit")  # doctest: +SKIP
>>> result = audit_model(model, clean_df)  # doctest: +SKIP
>>> [f.features for f in result.report.by_check("backdoor")]  # doctest: +SKIP
[['AGE']]
"""

# Importing the check modules registers them (each check's ``order`` sets the report order).
from tabguard.model_audit import (  # noqa: F401  # noqa: F401
    _attacks,
    _checks,
    _importance,
    _membership,
    _plots,
    _probe_check,
    _unacceptable,
)
from tabguard.model_audit._attacks import (
    ExtractionOptions,
    GameabilityOptions,
    GameabilityResult,
    extraction_curve,
    marginal_queries,
    minimal_flips,
)
from tabguard.model_audit._audit import (
    ModelAuditResult,
    audit_model,
    build_model_context,
    load_audit_model,
    write_model_audit,
)
from tabguard.model_audit._backdoor import (
    ProbeCandidate,
    ProbeOptions,
    ProbeResult,
    probe_backdoors,
)
from tabguard.model_audit._base import (
    REGISTRY,
    ModelAuditContext,
    ModelCheck,
    ModelCheckResult,
    register_check,
    registered_checks,
)
from tabguard.model_audit._checks import (
    FairnessOptions,
    FairnessResult,
    PerformanceOptions,
    PerformanceResult,
    measure_performance,
)
from tabguard.model_audit._importance import FeatureEffect, ImportanceOptions, partial_dependence
from tabguard.model_audit._membership import MembershipOptions, MembershipResult, membership_attack
from tabguard.model_audit._model import (
    AuditedModel,
    MatrixModel,
    RawMatrix,
    RawScorer,
    TransformMatrix,
    as_audited_model,
)
from tabguard.model_audit._thirdparty import (
    SKOPS_TRUSTED_TYPES,
    ThirdPartyModel,
    load_third_party,
    sniff_model_file,
)
from tabguard.model_audit._trees import TreeEnsemble, read_trees
from tabguard.model_audit._unacceptable import UnacceptableOptions, automatic_cases

__all__ = [
    "REGISTRY",
    "SKOPS_TRUSTED_TYPES",
    "AuditedModel",
    "ExtractionOptions",
    "FairnessOptions",
    "FairnessResult",
    "FeatureEffect",
    "GameabilityOptions",
    "GameabilityResult",
    "ImportanceOptions",
    "MatrixModel",
    "MembershipOptions",
    "MembershipResult",
    "ModelAuditContext",
    "ModelAuditResult",
    "ModelCheck",
    "ModelCheckResult",
    "PerformanceOptions",
    "PerformanceResult",
    "ProbeCandidate",
    "ProbeOptions",
    "ProbeResult",
    "RawMatrix",
    "RawScorer",
    "ThirdPartyModel",
    "TransformMatrix",
    "TreeEnsemble",
    "UnacceptableOptions",
    "as_audited_model",
    "audit_model",
    "automatic_cases",
    "build_model_context",
    "extraction_curve",
    "load_audit_model",
    "load_third_party",
    "marginal_queries",
    "measure_performance",
    "membership_attack",
    "minimal_flips",
    "partial_dependence",
    "probe_backdoors",
    "read_trees",
    "register_check",
    "registered_checks",
    "sniff_model_file",
    "write_model_audit",
]
