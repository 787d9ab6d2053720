"""Attack simulators used to measure tabguard's defences (requirement L2).

* :func:`poison` - the seed's backdoor (trigger value(s) → chosen label) and its variants;
* :func:`flip_labels` - label flipping without a trigger.
"""

from tabguard.redteam._poison import PoisonResult, flip_labels, poison

__all__ = ["PoisonResult", "flip_labels", "poison"]
