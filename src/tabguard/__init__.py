"""tabguard: robustness and security for tabular ML models used in real-time decisions.

One feature contract (:mod:`tabguard.contract`) drives the data audit
(:mod:`tabguard.data_audit`), training (:mod:`tabguard.training`), the model audit
(:mod:`tabguard.model_audit`), the guarded scoring service (:mod:`tabguard.serving`) and
monitoring. :mod:`tabguard.redteam` simulates the attacks the defences are measured against.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tabguard")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+local"

__all__ = ["__version__"]
