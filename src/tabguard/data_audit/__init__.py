"""The data security audit (requirements D1-D5): integrity, descriptive analysis, poisoning
and backdoor scan, label noise, RONI confirmation, disparate impact and the treatments log.

Examples
--------
>>> from tabguard.data_audit import audit_data
>>> from tabguard.datasets import credit_default_contract, load_credit_default
>>> result = audit_data(load_credit_default(), credit_default_contract())  # doctest: +SKIP
>>> result.report.exit_code()  # doctest: +SKIP
0
"""

# Importing the check modules registers them; each check's ``order`` sets the running order.
from tabguard.data_audit import (  # noqa: F401
    _bias,
    _descriptive,
    _duplicates,
    _integrity,
    _label_noise,
    _roni,
    _triggers,
)
from tabguard.data_audit._audit import (
    REASON_COLUMN,
    ROW_COLUMN,
    DataAuditResult,
    audit_data,
    build_context,
    write_audit,
)
from tabguard.data_audit._base import (
    REGISTRY,
    AuditContext,
    CheckResult,
    DataCheck,
    Treatment,
    register_check,
    registered_checks,
)
from tabguard.data_audit._bias import BiasOptions
from tabguard.data_audit._descriptive import DescriptiveOptions, DescriptiveResult
from tabguard.data_audit._duplicates import (
    CopyGroup,
    NearDuplicatesOptions,
    NearDuplicatesResult,
    find_near_duplicates,
)
from tabguard.data_audit._integrity import IntegrityOptions
from tabguard.data_audit._label_noise import LabelNoiseOptions, LabelNoiseResult, find_label_issues
from tabguard.data_audit._roni import RoniGroup, RoniOptions, confirm_groups
from tabguard.data_audit._trigger_options import TriggerScanOptions
from tabguard.data_audit._triggers import TriggerScanResult, scan_triggers

__all__ = [
    "REASON_COLUMN",
    "REGISTRY",
    "ROW_COLUMN",
    "AuditContext",
    "BiasOptions",
    "CheckResult",
    "CopyGroup",
    "DataAuditResult",
    "DataCheck",
    "DescriptiveOptions",
    "DescriptiveResult",
    "IntegrityOptions",
    "LabelNoiseOptions",
    "LabelNoiseResult",
    "NearDuplicatesOptions",
    "NearDuplicatesResult",
    "RoniGroup",
    "RoniOptions",
    "Treatment",
    "TriggerScanOptions",
    "TriggerScanResult",
    "audit_data",
    "build_context",
    "confirm_groups",
    "find_label_issues",
    "find_near_duplicates",
    "register_check",
    "registered_checks",
    "scan_triggers",
    "write_audit",
]
