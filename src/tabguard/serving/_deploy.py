"""Which model is live and which is in shadow: the deployment pointer and its changes.

The pointer is one small JSON file, ``$TABGUARD_HOME/models.json``, replaced atomically (written
beside, then renamed) under an exclusive lock, so a reader sees the old file or the new one,
never half of one. Every serving process of the home watches it (``[server] model_interval``)
and loads what it names, verified against the digest recorded at promotion (and the signing
key, when one is configured): a directory tampered with after promotion is refused there too.

.. code-block:: json

    {"format": "tabguard-deployment", "version": 1,
     "live": [{"path": "/models/credit-2", "digest": "…", "model_version": "credit_default/2",
               "contract_sha256": "…", "threshold": 0.5, "at": "…", "by": "alice"}],
     "shadow": null,
     "history": [{"action": "promote", "stage": "live", "digest": "…", "at": "…", "by": "…"}]}

``live`` is a stack: a promotion pushes, :func:`rollback` pops (an empty stack means the model
the service was started with). ``shadow`` is one entry or ``null``.
"""

from __future__ import annotations

import getpass
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from tabguard._files import atomic_write_text, file_lock
from tabguard.errors import DataError

#: File name of the pointer inside ``TABGUARD_HOME``.
POINTER_FILE = "models.json"
FORMAT = "tabguard-deployment"
Stage = Literal["live", "shadow"]
STAGES: tuple[Stage, ...] = ("live", "shadow")
_HISTORY = 200


@dataclass
class Deployment:
    """The content of the pointer file.

    Attributes
    ----------
    live : list of dict
        Promoted live models, the current one last (empty: the model the service started with).
    shadow : dict or None
        The challenger scored beside the live model, if any.
    history : list of dict
        Promotions and rollbacks, oldest first (the last 200).
    """

    live: list[dict[str, Any]] = field(default_factory=list)
    shadow: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def current(self) -> dict[str, Any] | None:
        """The live entry in force (``None``: the service's start model)."""
        return self.live[-1] if self.live else None

    def to_json(self) -> str:
        """The file's text."""
        body = {
            "format": FORMAT,
            "version": 1,
            "live": self.live,
            "shadow": self.shadow,
            "history": self.history[-_HISTORY:],
        }
        return json.dumps(body, indent=2, sort_keys=True) + "\n"

    @classmethod
    def parse(cls, text: str, where: str) -> Deployment:
        """Read the file's text.

        Raises
        ------
        DataError
            Not JSON, or not a deployment pointer.
        """
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise DataError(
                f"{where}: not JSON ({exc}); restore it from history or remove it"
            ) from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise DataError(f"{where}: not a tabguard deployment pointer (format {FORMAT!r})")
        live = data.get("live") or []
        shadow = data.get("shadow")
        for entry in [*live, *([shadow] if shadow else [])]:
            if not isinstance(entry, dict) or not entry.get("path") or not entry.get("digest"):
                raise DataError(f"{where}: an entry without path and digest: {entry!r}")
        return cls(list(live), shadow, list(data.get("history") or []))


def pointer_path(home: str | os.PathLike[str] | None = None) -> Path:
    """``$TABGUARD_HOME/models.json``."""
    from tabguard._home import tabguard_home

    return tabguard_home(home) / POINTER_FILE


def read_deployment(path: Path) -> Deployment:
    """The pointer at ``path`` (an absent file is an empty deployment)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Deployment()
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc})") from None
    return Deployment.parse(text, str(path))


def _lock_path(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(path.name + ".lock")


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def _actor(by: str | None) -> str:
    if by:
        return by
    try:
        return getpass.getuser()
    except Exception:  # no user name in some containers
        return "unknown"


def entry_of(model_dir: str | Path, *, by: str | None = None) -> tuple[dict[str, Any], Any]:
    """Verify a model directory (hashes, and signature when a key is configured) and describe it.

    Raises
    ------
    ArtifactIntegrityError
        A modified, missing or unlisted file, or a bad signature: the directory is refused.
    """
    from tabguard.contract import contract_hash
    from tabguard.training import load_model

    root = Path(model_dir).resolve()
    bundle = load_model(root)
    entry = {
        "path": str(root),
        "digest": bundle.digest,
        "model_version": bundle.version,
        "signature": bundle.signature,
        "contract_sha256": contract_hash(bundle.contract),
        "threshold": bundle.threshold,
        "at": _now(),
        "by": _actor(by),
    }
    return entry, bundle


def _compatible(new: dict[str, Any], live: dict[str, Any] | None) -> None:
    if live is None:
        return
    if new["contract_sha256"] != live.get("contract_sha256"):
        raise DataError(
            f"{new['path']}: its contract differs from the live model's ({live['model_version']}); "
            "a running service only swaps models under the same contract: deploy it with a "
            "restart (tabguard serve NEW_DIR)"
        )
    if float(new["threshold"]) != float(live.get("threshold", new["threshold"])):
        raise DataError(
            f"{new['path']}: its threshold {new['threshold']} differs from the live model's "
            f"{live['threshold']}; deploy it with a restart, or set the threshold flag"
        )


def promote(
    model_dir: str | Path,
    stage: Stage,
    *,
    home: str | os.PathLike[str] | None = None,
    by: str | None = None,
) -> tuple[dict[str, Any], Deployment]:
    """Make a verified model directory live or shadow.

    Raises
    ------
    ArtifactIntegrityError
        The directory fails verification: nothing changes.
    DataError
        Unknown stage, a contract or threshold other than the live model's, a broken pointer.
    """
    if stage not in STAGES:
        raise DataError(f"--stage {stage!r}: must be one of {', '.join(STAGES)}")
    entry, _bundle = entry_of(model_dir, by=by)
    path = pointer_path(home)
    with file_lock(_lock_path(path)):
        dep = read_deployment(path)
        _compatible(entry, dep.current)
        if stage == "live":
            if dep.current is not None and dep.current["digest"] == entry["digest"]:
                return entry, dep  # already live
            dep.live.append(entry)
            if dep.shadow is not None and dep.shadow["digest"] == entry["digest"]:
                dep.shadow = None  # the challenger became the champion
        else:
            dep.shadow = entry
        dep.history.append({"action": "promote", "stage": stage, **entry})
        atomic_write_text(path, dep.to_json())
    return entry, dep


def rollback(
    stage: Stage = "live",
    *,
    home: str | os.PathLike[str] | None = None,
    by: str | None = None,
) -> tuple[dict[str, Any] | None, Deployment]:
    """Undo the last live promotion (``live``) or stop shadow scoring (``shadow``).

    Returns the entry now in force (``None``: the service's start model, or no shadow).

    Raises
    ------
    DataError
        Nothing to roll back.
    """
    if stage not in STAGES:
        raise DataError(f"--stage {stage!r}: must be one of {', '.join(STAGES)}")
    path = pointer_path(home)
    with file_lock(_lock_path(path)):
        dep = read_deployment(path)
        if stage == "shadow":
            if dep.shadow is None:
                raise DataError(f"{path}: no model is in shadow; nothing to roll back")
            gone, dep.shadow = dep.shadow, None
        else:
            if not dep.live:
                raise DataError(
                    f"{path}: no promoted live model; the service already serves the model it "
                    "was started with"
                )
            gone = dep.live.pop()
        dep.history.append(
            {
                "action": "rollback",
                "stage": stage,
                "digest": gone["digest"],
                "model_version": gone.get("model_version"),
                "path": gone["path"],
                "at": _now(),
                "by": _actor(by),
            }
        )
        atomic_write_text(path, dep.to_json())
    return (dep.current if stage == "live" else None), dep
