"""Attack simulators used to measure tabguard's defences (requirement L2).

* :func:`poison` - the seed's backdoor (trigger value(s) → chosen label) and its variants;
* :func:`flip_labels` - label flipping without a trigger;
* :func:`simulate_traffic` - weeks of simulated applications through the real scoring
  pipeline, with seasonality, segments, a holiday and an attack at a known time (the proof of
  the monitoring alerts), and :func:`vulnerable_model`, a model such an attack moves;
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
from tabguard.redteam._traffic import (
    AttackSpec,
    Channel,
    SimulatedClock,
    TrafficError,
    TrafficOptions,
    TrafficResult,
    attack_value,
    simulate_traffic,
)
from tabguard.redteam._vulnerable import vulnerable_model

__all__ = [
    "Answer",
    "AttackConfig",
    "AttackResult",
    "AttackSpec",
    "Channel",
    "DecisionTarget",
    "HttpTarget",
    "PoisonResult",
    "ProbingAttacker",
    "SimulatedClock",
    "TrafficError",
    "TrafficOptions",
    "TrafficResult",
    "attack_value",
    "denied_applications",
    "flip_labels",
    "poison",
    "simulate_traffic",
    "vulnerable_model",
]
