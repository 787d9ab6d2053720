"""Runtime feature flags with an audit trail (requirement S3).

Flags switch the scoring service's behaviour without a deploy: disable the flow, pick the
fallback model or the rule policy, tighten the threshold, neutralise a gameable feature, delay
decisions. Every change is recorded (who, when, old → new, why). A running service watches the
store with :class:`FlagWatcher` and picks changes up within a second.

Backends share one protocol, :class:`FlagStore`, and are chosen by URL with
:func:`open_flag_store`: ``memory://``, ``sqlite:///path``, ``postgresql://...``,
``redis://...``.
"""

from typing import TYPE_CHECKING

from tabguard._lazy import attach

if TYPE_CHECKING:  # the public names; imported on first use (tabguard._lazy)
    from tabguard.flags._base import BaseFlagStore, FlagStore
    from tabguard.flags._memory import MemoryFlagStore
    from tabguard.flags._model import (
        FLAG_SPECS,
        FlagChange,
        FlagError,
        Flags,
        FlagSnapshot,
        FlagSpec,
        parse_flag,
    )
    from tabguard.flags._open import open_flag_store
    from tabguard.flags._redis import RedisFlagStore
    from tabguard.flags._sql import SqlFlagStore
    from tabguard.flags._watch import FlagWatcher

__getattr__, __dir__ = attach(__name__, __file__)

__all__ = [
    "FLAG_SPECS",
    "BaseFlagStore",
    "FlagChange",
    "FlagError",
    "FlagSnapshot",
    "FlagSpec",
    "FlagStore",
    "FlagWatcher",
    "Flags",
    "MemoryFlagStore",
    "RedisFlagStore",
    "SqlFlagStore",
    "open_flag_store",
    "parse_flag",
]
