"""The shape every data and model check takes (and monitoring rules and retraining gates next).

* **Options**: a frozen dataclass deriving from :class:`CheckOptions`, each field declared with
  :func:`option` (default, rule, one-line reason); validated on construction, parsed from a user's
  mapping by :func:`parse_options` (unknown key, wrong type or out of range raise
  :class:`~tabguard.errors.OptionsError`), documented by :func:`describe_options`.
* **Computation**: a function taking the audit's context and the options and returning a typed
  result (data, no wording).
* **Wording**: a separate function turning that result into findings and report sections.
* **Registration**: a class with ``name``, ``order``, ``after``, ``concurrent``, ``Options`` and
  ``run(ctx)`` (the :class:`Check` protocol), added to its audit's :class:`CheckRegistry`.
"""

from tabguard.checks._options import (
    NON_NEGATIVE,
    POSITIVE,
    PROBABILITY_OPEN,
    SHARE,
    CheckOptions,
    OptionDoc,
    Rule,
    at_least,
    describe_options,
    interval,
    non_empty,
    option,
    options_markdown,
    parse_options,
    refresh_option_tables,
)
from tabguard.checks._registry import Check, CheckRegistry

__all__ = [
    "NON_NEGATIVE",
    "POSITIVE",
    "PROBABILITY_OPEN",
    "SHARE",
    "Check",
    "CheckOptions",
    "CheckRegistry",
    "OptionDoc",
    "Rule",
    "at_least",
    "describe_options",
    "interval",
    "non_empty",
    "option",
    "options_markdown",
    "parse_options",
    "refresh_option_tables",
]
