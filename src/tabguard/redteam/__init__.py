"""Attack simulators used to measure tabguard's defences (requirement L2).

* :func:`poison` - the seed's backdoor (trigger value(s) → chosen label) and its variants;
* :func:`flip_labels` - label flipping without a trigger;
* :class:`ProbingAttacker` - a black-box client that tries to flip its own decision by trial
  and error on the gameable fields, against the scoring API (:class:`HttpTarget`).
"""

from tabguard.redteam._poison import PoisonResult, flip_labels, poison
from tabguard.redteam._probing import (
    Answer,
    AttackConfig,
    AttackResult,
    DecisionTarget,
    HttpTarget,
    ProbingAttacker,
    denied_applications,
)

__all__ = [
    "Answer",
    "AttackConfig",
    "AttackResult",
    "DecisionTarget",
    "HttpTarget",
    "PoisonResult",
    "ProbingAttacker",
    "denied_applications",
    "flip_labels",
    "poison",
]
