"""M1: directional importance, partial dependence, neutral values and blast radius."""

from __future__ import annotations

import numpy as np

from tabguard.model_audit import as_audited_model, audit_model, partial_dependence
from tabguard.reports import PlotSpec, render_png
from tests.model_audit.test_model import LinearScorer, toy_contract, toy_frame

FAST = {"importance": {"shap_rows": 60, "pd_rows": 120, "blast_rows": 200}}


def test_partial_dependence_follows_the_model():
    m = as_audited_model(LinearScorer(), toy_contract())
    X = m.encode(toy_frame())
    grid, S = partial_dependence(m, X, "x", [0.0, 2.5, 5.0, 7.5, 10.0])
    pd_ = S.mean(axis=1)
    assert grid == [0.0, 2.5, 5.0, 7.5, 10.0]
    assert np.all(np.diff(pd_) > 0)
    grid, S = partial_dependence(m, X, "c", ["a", "b", "c", "nope"])
    assert grid == ["a", "b", "c"]  # an unknown category cannot be encoded
    assert S.mean(axis=1)[2] > S.mean(axis=1)[0]


def test_importance_check_direction_neutral_and_blast_radius():
    c = toy_contract()
    res = audit_model(
        LinearScorer(), toy_frame(400), contract=c, checks=["importance"], options=FAST
    )
    effects = {e.feature: e for e in res.context.cache["effects"]}
    x = effects["x"]
    assert res.report.summary["checks"]["importance"]["top_features"][0] == "x"
    assert x.direction == "higher raises score"
    assert effects["n"].mean_abs_shap < 1e-9  # the model ignores n
    assert 3.0 <= float(x.neutral) <= 6.5
    assert x.steepest is not None and x.favourable_range[0] == 0.0
    assert x.blast["value"] == 0.0 and x.blast["to_approve"] > 0.2 and x.blast["to_deny"] == 0
    blast = [f for f in res.report.findings if f.check == "blast_radius"]
    assert blast and blast[0].features == ["x"] and blast[0].severity == "warning"


def test_declared_neutral_far_from_the_model_is_flagged():
    c = toy_contract().with_updates(x={"neutral": 9.5})
    res = audit_model(
        LinearScorer(), toy_frame(400), contract=c, checks=["importance"], options=FAST
    )
    found = [f for f in res.report.findings if f.check == "neutral_value"]
    assert [f.features for f in found] == [["x"]]
    assert found[0].evidence["declared_neutral_shift"] > 0


def test_beeswarm_renders():
    rng = np.random.default_rng(0)
    spec = PlotSpec(
        kind="beeswarm",
        title="t",
        data={
            "features": ["a", "b"],
            "shap": rng.normal(size=(2, 50)).tolist(),
            "color": rng.random((2, 50)).tolist(),
        },
    )
    png = render_png(spec)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
