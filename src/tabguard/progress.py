"""Progress reporting for long work, independent of the display.

Library functions take an optional :class:`Progress`; the CLI passes a Rich progress bar,
tests and services pass nothing (:data:`NULL_PROGRESS`).

Examples
--------
>>> with NULL_PROGRESS.stage("scanning", total=3) as st:
...     for _ in range(3):
...         st.advance()
"""

from __future__ import annotations

from typing import Any, Protocol


class Stage(Protocol):
    """One step of long work with an optional total."""

    def advance(self, n: float = 1) -> None:
        """Record ``n`` more units done."""

    def __enter__(self) -> Stage: ...

    def __exit__(self, *exc: object) -> None: ...


class Progress(Protocol):
    """Factory of stages."""

    def stage(self, description: str, total: float | None = None) -> Stage:
        """Start a stage."""
        ...


class _NullStage(Stage):
    def advance(self, n: float = 1) -> None:
        pass

    def __enter__(self) -> _NullStage:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class NullProgress:
    """Progress that shows nothing."""

    def stage(self, description: str, total: float | None = None) -> Stage:
        """Return a stage that ignores updates."""
        return _NullStage()


NULL_PROGRESS = NullProgress()


class _RichStage(Stage):
    def __init__(self, bar: Any, description: str, total: float | None) -> None:
        self._bar = bar
        self._task = bar.add_task(description, total=total)

    def advance(self, n: float = 1) -> None:
        self._bar.advance(self._task, n)

    def __enter__(self) -> _RichStage:
        return self

    def __exit__(self, *exc: object) -> None:
        exc_type = exc[0] if exc else None
        task = self._bar.tasks[self._task] if self._task < len(self._bar.tasks) else None
        if task is not None and task.total is None:
            self._bar.update(
                self._task, total=max(task.completed, 1), completed=max(task.completed, 1)
            )
        elif task is not None and exc_type is None:
            self._bar.update(self._task, completed=task.total)


class RichProgress:
    """Progress bars drawn with Rich on stderr (used by the CLI).

    Use as a context manager around the work::

        with RichProgress() as p:
            audit_data(df, contract, progress=p)
    """

    def __init__(self, *, transient: bool = False, disable: bool = False) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )
        from rich.progress import Progress as RichBar

        self._bar = RichBar(
            SpinnerColumn(),
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=transient,
            disable=disable,
        )

    def __enter__(self) -> RichProgress:
        self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()

    def stage(self, description: str, total: float | None = None) -> Stage:
        """Add a bar for a stage."""
        return _RichStage(self._bar, description, total)
