"""One registry protocol for data and model checks.

A check is one class with a ``name``, an ``order`` (running and report order), ``after`` (the
checks whose results it reads; they run first), ``concurrent`` (whether it may run in a second
lane beside the others: it reads only the data and its own cache entries), an ``Options`` class
(a :class:`~tabguard.checks.CheckOptions`) and ``run(ctx)``. The four attributes are declared by
every check; :meth:`CheckRegistry.register` refuses a class that misses one or declares it with
the wrong type, so the audits read them directly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from tabguard.checks._options import CheckOptions, parse_options
from tabguard.errors import OptionsError, UnknownCheckError


class Check(Protocol):
    """What the data and model audits require of a check class."""

    name: ClassVar[str]
    order: ClassVar[int]
    after: ClassVar[tuple[str, ...]]
    concurrent: ClassVar[bool]
    Options: ClassVar[type[CheckOptions]]

    def run(self, ctx: Any) -> Any:
        """Run the check on the audit's context."""
        ...


C = TypeVar("C", bound=type)


class CheckRegistry(Generic[C]):
    """The checks of one audit (``kind`` ``data`` or ``model``), in running order.

    Parameters
    ----------
    kind : str
        Named in errors ("unknown data check 'x'").
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._checks: dict[str, C] = {}

    def register(self, cls: C) -> C:
        """Class decorator adding a check (raises TypeError for a malformed check class)."""
        declared = {
            "name": str,
            "order": int,
            "after": tuple,
            "concurrent": bool,
            "Options": type,
        }
        for attr, tp in declared.items():
            if attr not in dir(cls) or not isinstance(getattr(cls, attr), tp):
                raise TypeError(
                    f"{self.kind} check {cls.__name__} must declare {attr} "
                    f"({tp.__name__}); see tabguard.checks.Check"
                )
        opts = cls.Options  # type: ignore[attr-defined]
        if not issubclass(opts, CheckOptions) or opts.check != cls.name:  # type: ignore[attr-defined]
            raise TypeError(
                f"{self.kind} check {cls.name}: Options must be a CheckOptions "  # type: ignore[attr-defined]
                f"subclass whose check is {cls.name!r}"  # type: ignore[attr-defined]
            )
        self._checks[cls.name] = cls  # type: ignore[attr-defined]
        return cls

    def ordered(self) -> dict[str, C]:
        """Every check, by ``order`` (then registration order)."""
        items = sorted(self._checks.items(), key=lambda kv: kv[1].order)  # type: ignore[attr-defined]
        return dict(items)

    def select(self, names: Sequence[str] | None) -> dict[str, C]:
        """The checks named (all when None), in running order.

        Raises
        ------
        UnknownCheckError
            A name no check has; the message lists the valid ones.
        """
        available = self.ordered()
        if names is None:
            return available
        wanted = list(dict.fromkeys(names))
        unknown = [n for n in wanted if n not in available]
        if unknown:
            raise UnknownCheckError(self.kind, unknown, list(available))
        return {n: c for n, c in available.items() if n in wanted}

    def options(
        self, checks: Mapping[str, C], given: Mapping[str, Any] | None
    ) -> dict[str, CheckOptions]:
        """Each of ``checks``' options parsed from ``given`` (check name -> mapping), up front.

        Everything is validated before any check runs, so a typo in the last check's options
        fails in a second, not after the first checks' minutes of work.

        Raises
        ------
        OptionsError
            ``given`` is not a mapping, or one check's options are invalid.
        UnknownCheckError
            A key of ``given`` names no check of this audit (a misspelt name is never ignored).
        """
        if given is None:
            given = {}
        if not isinstance(given, Mapping):
            raise OptionsError("*", None, "options must map check names to their options", given)
        self.select(list(given))
        return {
            name: parse_options(cls.Options, given.get(name))  # type: ignore[attr-defined]
            for name, cls in checks.items()
        }
