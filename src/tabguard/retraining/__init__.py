"""The retraining loop (requirement L1): learn from exploits, gated by the audits.

:func:`retrain` assembles the next training set from the current model's training data,
matured production requests (raw attributes as received) and exploit attempts (probing-flagged
requests, requests inside alert windows, the red team's adversarial inputs) with their true
labels; runs the data audit on the combined set (quarantining what was planted through the
loop), trains with the current model's preset, runs the model audit, and compares champion and
challenger on a recent holdout and on the exploit set. ``tabguard retrain`` exits 0 when the
challenger is ready, 1 when a gate blocked it, 2 on bad input.

Examples
--------
>>> from tabguard.monitoring import load_monitor_config
>>> from tabguard.retraining import retrain
>>> res = retrain("models/credit", "models/credit-next",
...               monitor=load_monitor_config("monitor.yaml"))  # doctest: +SKIP
>>> res.summary["comparison"]["exploits"]["all"]  # doctest: +SKIP
{'n': 412, 'before': 0.61, 'after': 0.04, ...}
"""

from tabguard.retraining._assemble import (
    EXPLOIT_KINDS,
    BaseData,
    LoopData,
    assemble,
    find_base_data,
    logged_rows,
    read_redteam,
)
from tabguard.retraining._gates import GateResult, data_gate, model_gate, performance_gate
from tabguard.retraining._options import RetrainOptions
from tabguard.retraining._retrain import (
    RetrainBlockedError,
    RetrainResult,
    parent_config,
    retrain,
)

__all__ = [
    "EXPLOIT_KINDS",
    "BaseData",
    "GateResult",
    "LoopData",
    "RetrainBlockedError",
    "RetrainOptions",
    "RetrainResult",
    "assemble",
    "data_gate",
    "find_base_data",
    "logged_rows",
    "model_gate",
    "parent_config",
    "performance_gate",
    "read_redteam",
    "retrain",
]
