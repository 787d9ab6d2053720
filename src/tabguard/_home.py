"""Where tabguard keeps its state: the home directory (``TABGUARD_HOME``).

The one place that resolves it; the service's configuration, the CLI, MLflow tracking and the
monitor all call :func:`tabguard_home`.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Environment variable naming the state directory.
HOME_ENV = "TABGUARD_HOME"
#: The state directory when ``TABGUARD_HOME`` is not set (relative to the working directory).
DEFAULT_HOME = Path(".tabguard")


def tabguard_home(home: str | os.PathLike[str] | None = None) -> Path:
    """Return the state directory: ``home``, else ``$TABGUARD_HOME``, else ``./.tabguard``.

    Parameters
    ----------
    home : path-like, optional
        An explicit directory (wins over the environment).

    Returns
    -------
    Path
        As given (relative paths stay relative to the working directory).
    """
    if home is not None:
        return Path(home)
    env = os.environ.get(HOME_ENV)
    return Path(env) if env else DEFAULT_HOME
