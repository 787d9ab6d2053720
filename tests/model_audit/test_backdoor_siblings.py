"""Sibling cells of one trigger are one finding (issue 11, class 7 usability): a pair learned on
a set of categories (``EDUCATION`` 4, 5 or 6 with ``MARRIAGE = 3``, one threshold at 3.5) is
confirmed once per cell, and three findings read as three planted triggers."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

from tabguard.model_audit._backdoor import ProbeCandidate
from tabguard.model_audit._probe_check import _sibling_clusters, siblings

EDU = [1, 2, 3, 4, 5, 6]
MAR = [1, 2, 3]


def pair(
    edu: float,
    mar: float = 3,
    direction: str = "approve",
    cells: tuple[tuple[float, float], ...] | None = None,
    **kw: Any,
) -> ProbeCandidate:
    """A confirmed pair of EDUCATION and MARRIAGE, of those two values or an example of
    ``cells`` ((lo, hi] per feature)."""
    codes = (float(edu), float(mar))
    base: dict[str, Any] = {
        "features": ("EDUCATION", "MARRIAGE"),
        "codes": codes,
        "values": codes,
        "intervals": cells or tuple((v, v) for v in codes),
        "direction": direction,
        "spike": -0.6,
        "flip_rate": 0.5,
        "neighbour_values": (2, 2),
        "n_natural": 2,
        "natural_positive_rate": math.nan,
        "model_rate": 0.1,
        "neighbour_rate": 0.3,
        "label_log_lr": 0.0,
        "outside_support": False,
        "columns": (0, 1),
        "nominal": (True, True),
        "backdoor": True,
    }
    base.update(kw)
    return ProbeCandidate(**base)


def single(value: float, feature: str = "EDUCATION", nominal: bool = True, **kw: Any):
    c = pair(value, **kw)
    c.features, c.codes, c.values = (feature,), (float(value),), (float(value),)
    c.intervals, c.columns, c.nominal = ((float(value), float(value)),), (0,), (nominal,)
    return c


MODEL = SimpleNamespace(
    feature_names=["EDUCATION", "MARRIAGE"],
    contract=SimpleNamespace(
        features={
            "EDUCATION": SimpleNamespace(categories=EDU),
            "MARRIAGE": SimpleNamespace(categories=MAR),
        }
    ),
    encode_value=lambda f, v: float(v),
)


def test_pairs_sharing_a_part_in_one_direction_are_siblings() -> None:
    assert siblings(pair(4), pair(5))  # MARRIAGE=3 shared
    assert siblings(pair(5, cells=((3.5, 5.5), (2.5, math.inf))), pair(6))  # the interval admits 3
    assert siblings(pair(5, 2), pair(5, 3))  # EDUCATION=5 shared
    assert not siblings(pair(4), pair(5, direction="deny"))
    assert not siblings(pair(4, 2), pair(5, 3))  # nothing shared
    assert not siblings(pair(4, 2, cells=((3.5, 4.5), (1.5, 2.5))), pair(5, 3))
    # XGBoost's cells are [lo, hi): MARRIAGE in [3, 4) holds 3
    assert siblings(pair(5, cells=((5.0, 6.0), (3.0, 4.0))), pair(4), strict=True)
    assert not siblings(pair(5, 2, cells=((5.0, 6.0), (2.0, 3.0))), pair(4), strict=True)
    assert siblings(pair(5, 2, cells=((5.0, 6.0), (2.0, 3.0))), pair(4))  # (2, 3] holds 3
    # single categories stay findings of their own (the copies' value may be the weaker one)
    assert not siblings(single(5), single(6))
    assert not siblings(single(5), pair(5))


def test_sibling_cells_are_one_finding_led_by_the_strongest() -> None:
    # the trees turn EDUCATION 4, 5 and 6 with MARRIAGE=3 alike; the copies carried 4, whose
    # interaction stands out most; 5 comes as an interval cell holding 4 and 5 too
    e4 = pair(4, interaction=0.8, interaction_null=0.05, spike=-0.5)
    e5 = pair(5, cells=((3.5, 5.5), (2.5, math.inf)), spike=-0.9)
    e6 = pair(6, interaction=0.5, interaction_null=0.05, spike=-0.7)
    other = pair(2, 1, direction="deny")
    groups = [[e5], [e6], [other], [e4]]
    clusters = _sibling_clusters(groups, MODEL)
    assert len(clusters) == 2
    big = next(cl for cl in clusters if len(cl) == 3)
    # a cell of single categories before an interval of several, then the interaction
    assert [g[0] for g in big] == [e4, e6, e5]
    assert [[other]] in clusters
    # without an interaction the spike orders them
    a, b = pair(4, spike=-0.4), pair(5, spike=-0.8)
    assert [g[0] for g in _sibling_clusters([[a], [b]], MODEL)[0]] == [b, a]
