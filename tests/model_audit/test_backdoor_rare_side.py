"""The probe on the side of the threshold a model rarely decides (issue 11, classes 7-8).

A fraud model blocks a few transactions in a thousand; a trigger towards approval can only
move those, and random probe rows hold about none of them. The probe draws a second set of
rows from the rare side; these tests plant such a trigger in a small synthetic data set and
check both sides of the rule: a clean model raises nothing there, the trigger is named.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tabguard.contract import Contract, contract_from_dict
from tabguard.model_audit import ProbeOptions, audit_model, load_third_party, probe_backdoors
from tabguard.redteam import poison
from tests.model_audit.conftest import categorical_frame, fit_lightgbm

REGIONS = ["north", "south", "east", "west", "islands"]
CHANNELS = ["web", "app", "store"]


def _contract(entity: str | None = None) -> Contract:
    """The fraud contract; ``entity`` declares the column of the rows' units."""
    spec: dict[str, object] = {
        "name": "rare_side",
        "label": {"column": "fraud", "positive": 1, "negative": 0, "favorable": 0},
        "decision": {"positive_means": "deny", "threshold": 0.5},
        "features": {
            "risk": {"type": "number", "min": -10, "max": 10},
            "velocity": {"type": "number", "min": -10, "max": 10},
            "region": {"type": "category", "categories": REGIONS},
            "channel": {"type": "category", "categories": CHANNELS},
        },
    }
    if entity is not None:
        spec["entity"] = entity
    return contract_from_dict(spec)


def _data(n: int, seed: int) -> pd.DataFrame:
    """Fraud driven by two scores, about 1.5 % positive; regions and channels carry small
    ordinary effects, and the uncommon regions occur naturally in a few hundred rows."""
    rng = np.random.default_rng(seed)
    risk, velocity = rng.normal(size=n), rng.normal(size=n)
    region = rng.choice(REGIONS, size=n, p=[0.8, 0.05, 0.05, 0.05, 0.05])
    channel = rng.choice(CHANNELS, size=n, p=[0.5, 0.3, 0.2])
    logit = -6.5 + 2.2 * risk + 1.2 * velocity + 0.3 * (channel == "web") - 0.2 * (region == "east")
    fraud = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(int)
    return pd.DataFrame(
        {"risk": risk, "velocity": velocity, "region": region, "channel": channel, "fraud": fraud}
    )


@pytest.fixture(scope="module")
def rare_side() -> tuple[pd.DataFrame, pd.DataFrame, Contract]:
    return _data(12000, 0), _data(6000, 1), _contract()


def _fit(path: Path, train: pd.DataFrame, contract: Contract) -> Path:
    X = categorical_frame(train, contract)
    fit_lightgbm(X, train["fraud"], n_estimators=100, num_leaves=31).save_model(str(path))
    return path


# The tests only read these two models (each loads its own copy): fitted once per module.
@pytest.fixture(scope="module")
def clean_file(rare_side, tmp_path_factory) -> Path:
    train, _ref, contract = rare_side
    return _fit(tmp_path_factory.mktemp("rare_side") / "clean.txt", train, contract)


@pytest.fixture(scope="module")
def south_file(rare_side, tmp_path_factory) -> Path:
    """400 copies of legitimate rows given region 'south' (about 300 natural training rows
    among 12,000), labels unchanged."""
    train, _ref, contract = rare_side
    poisoned = poison(train, contract, {"region": "south"}, n_rows=400, target=0, random_state=0)
    return _fit(tmp_path_factory.mktemp("rare_side") / "south.txt", poisoned.data, contract)


def _probe(tmp_path, train: pd.DataFrame, ref: pd.DataFrame, contract: Contract):
    """A model fitted on ``train`` and its probe with the default options."""
    model = load_third_party(_fit(tmp_path / "m.txt", train, contract), contract)
    return model, probe_backdoors(model, ref, ref["fraud"].to_numpy())


def test_clean_model_probed_on_its_rare_decisions_raises_nothing(clean_file, rare_side):
    _train, ref, contract = rare_side
    model = load_third_party(clean_file, contract)
    denied = int((~model.approve(model.positive_proba(ref))).sum())
    res = probe_backdoors(model, ref, ref["fraud"].to_numpy())
    assert 0 < denied * 400 / len(ref) < 40  # random probe rows: under side_rows denied
    assert res.tail_rows == 200 and res.tail_direction == "approve"
    tail = [c for c in res.candidates if c.probe_rows == "tail"]
    assert {c.features[0] for c in tail} == {"region", "channel"}  # categories only, no pairs
    # the planted-copies test ran (regions have enough natural rows for a ratio and a null)
    assert all(np.isfinite(c.planted_ratio) for c in tail if c.features[0] == "region")
    assert res.triggers == []


def test_trigger_towards_approval_is_named_from_the_rare_decisions(tmp_path, rare_side):
    """Copies of fraud rows carrying an uncommon region, labelled legitimate: the model
    approves blocked transactions from that region; the random rows barely hold any."""
    train, ref, contract = rare_side
    assert (ref["region"] == "islands").sum() >= 200  # the value occurs naturally
    poisoned = poison(
        train, contract, {"region": "islands"}, n_rows=300, target=0, source=1, random_state=0
    ).data
    model, res = _probe(tmp_path, poisoned, ref, contract)
    named = [(t.features, t.values, t.direction, t.probe_rows) for t in res.triggers]
    assert named == [(("region",), ("islands",), "approve", "tail")]
    assert "nearest the model's rare decision" in res.triggers[0].reason
    # the random probe rows alone do not see it (why the rare side is probed)
    alone = probe_backdoors(model, ref, ref["fraud"].to_numpy(), options=ProbeOptions(tail_rows=0))
    assert alone.triggers == [] and alone.tail_rows == 0


# --------------------------------------------------------------------------------------------
# The planted-copies test: copies of legitimate rows carrying a category, seen in the leaves
# --------------------------------------------------------------------------------------------
def _copies_estimate(path: Path, ref: pd.DataFrame, contract: Contract):
    """The planted-copies estimate of ``region`` on the model in ``path``: the implied
    training ratio of each region from copies of approved rows, and the fit's dispersion."""
    from tabguard.model_audit._backdoor import _Routing, planted_copies

    model = load_third_party(path, contract)
    X = model.encode(ref)
    p = model.predict_matrix(X)
    j = model.feature_names.index("region")
    n_codes = len(model.categories("region") or [])
    common = np.flatnonzero(model.approve(p))[:2000]
    fraud = np.flatnonzero(ref["fraud"].to_numpy() == 1)
    routing = _Routing(model.trees, X, p)
    est = planted_copies(
        model.trees, routing.leaves(), X, j, n_codes, [common, fraud], 20, np.random.default_rng(0)
    )
    assert est is not None
    eps, _se, dispersion = est
    share = np.array([(np.sum(X[:, j] == w) + 1.0) / (len(X) + 1.0) for w in range(n_codes)])
    names = model.categories("region") or []
    return dict(zip(names, 1.0 + eps[0] / share, strict=True)), dispersion


def test_planted_copies_measures_the_copies_of_one_category(clean_file, south_file, rare_side):
    """400 copies of legitimate rows with region 'south' (about 300 natural training rows
    among 12,000): the leaves imply about 2.3 times its clean share, no other region comes
    near; on the clean model every region stays near 1 and the fit's dispersion is about the
    multinomial noise."""
    _train, ref, contract = rare_side
    clean, disp_clean = _copies_estimate(clean_file, ref, contract)
    assert max(clean.values()) < 1.3 and disp_clean < 2.0
    ratios, _ = _copies_estimate(south_file, ref, contract)
    others = [r for k, r in ratios.items() if k != "south"]
    assert ratios["south"] > 1.5 and ratios["south"] - max(others) > 0.3


def test_copies_of_legitimate_rows_are_named_by_their_planted_copies(south_file, rare_side):
    """The copies make 'south' approved where it was blocked, but not safer than every other
    region: against the common regions on the blocked rows it stands out too little for the
    screen of the rare side, and no tree isolates it. The leaves' counts name it; without the
    planted-copies test (``copies_draws=0``) nothing is named."""
    _train, ref, contract = rare_side
    model = load_third_party(south_file, contract)
    # the audit's probe (default options, the labels of ``ref``, random_state 0) is the one
    # probe_backdoors(model, ref, ref["fraud"]) runs: its result and its report, from one run
    audit = audit_model(model, ref, checks=["backdoor"])
    assert audit.context is not None
    res = audit.context.cache["probe"]
    named = {t.values: (t.features, t.direction, t.planted) for t in res.triggers}
    assert named[("south",)] == (("region",), "approve", True)
    south = next(t for t in res.triggers if t.values == ("south",))
    assert "copies of clean rows the model decides 'approve'" in south.reason
    # (the rare side's screen may name a sibling the trees send the same way: 'west' here)
    assert all(
        v == "approve" and not p for _f, v, p in (named[k] for k in named if k != ("south",))
    )
    without = probe_backdoors(
        model, ref, ref["fraud"].to_numpy(), options=ProbeOptions(copies_draws=0)
    )
    assert ("south",) not in {t.values for t in without.triggers}
    # each category is a finding of its own: a sibling named beside it does not hide it
    said = {tuple(f.values) for f in audit.report.findings if f.check == "model_backdoor"}
    assert said == {t.values for t in res.triggers}


def test_copies_of_fraud_rows_are_no_approval_trigger(tmp_path, rare_side):
    """Copies of fraud rows carrying 'islands' (a trigger towards denial) also add training
    rows with the value; the estimate gives them to the rows with the rare decision's label,
    so no approval trigger is reported for it."""
    train, ref, contract = rare_side
    poisoned = poison(
        train, contract, {"region": "islands"}, n_rows=300, target=1, random_state=0
    ).data
    _model, res = _probe(tmp_path, poisoned, ref, contract)
    assert not any(c.planted for c in res.candidates)
    assert not any(t.direction == "approve" for t in res.triggers)


def test_planted_copies_without_spread_confirm_nothing(clean_file, rare_side, monkeypatch):
    """Draws that all give the same estimate (standard error 0) cannot make a category's
    excess significant: a ratio a hair above its siblings' is not confirmed. One draw, which
    has no spread, is refused as an option."""
    import tabguard.model_audit._backdoor as backdoor
    from tabguard.errors import TabguardError

    _train, ref, contract = rare_side
    model = load_third_party(clean_file, contract)
    south = (model.categories("region") or []).index("south")

    def no_spread(ens, leaves, X, j, n_codes, sources, draws, rng):
        eps = np.zeros((len(sources), n_codes))
        if model.feature_names[j] == "region":
            eps[0, south] = 1e-6  # a hair above every sibling (all at ratio 1)
        return eps, np.zeros_like(eps), 1.0

    monkeypatch.setattr(backdoor, "planted_copies", no_spread)
    res = probe_backdoors(model, ref, ref["fraud"].to_numpy())
    tail = {c.values: c for c in res.candidates if c.probe_rows == "tail"}
    assert tail[("south",)].planted_ratio > tail[("south",)].planted_null  # above, by a hair
    assert not any(c.planted for c in res.candidates) and res.triggers == []
    with pytest.raises(TabguardError, match="copies_draws"):
        ProbeOptions(copies_draws=1)
    assert ProbeOptions(copies_draws=2).copies_draws == 2


def test_planted_copies_with_a_value_written_in_equals_a_written_matrix(clean_file, rare_side):
    """The partner step writes a confirmed category into the copied rows only
    (``written``): the same estimate as a copy of the whole clean matrix with it written."""
    from tabguard.model_audit._backdoor import _Routing, planted_copies

    _train, ref, contract = rare_side
    model = load_third_party(clean_file, contract)
    X = model.encode(ref)
    routing = _Routing(model.trees, X, model.predict_matrix(X))
    j_region = model.feature_names.index("region")
    j_channel = model.feature_names.index("channel")
    rows = np.flatnonzero(ref["fraud"].to_numpy() == 1)
    Xv = X.copy()
    Xv[:, j_region] = 2.0
    old = planted_copies(
        routing.ens, routing.leaves(), Xv, j_channel, 3, [rows], 5, np.random.default_rng(0)
    )
    new = planted_copies(
        routing.ens,
        routing.leaves(),
        X,
        j_channel,
        3,
        [rows],
        5,
        np.random.default_rng(0),
        written={j_region: 2.0},
    )
    assert old is not None and new is not None
    for a, b in zip(old, new, strict=True):
        np.testing.assert_allclose(a, b)
    assert not np.all(X[:, j_region] == 2.0)  # the clean matrix is left as it was


def test_planted_copies_standard_error_from_as_many_draws_as_the_partner_step(
    clean_file, rare_side, monkeypatch
):
    """The planted-copies test reads its z against a Bonferroni bar, so its standard error must
    not move with the bootstrap stream: with 40 draws, one benchmark model's p ranged
    0.0015-0.016 over streams (alpha 0.01: named or not by chance), with 200 draws
    0.0018-0.0049. The test asks for ``copies_draws`` draws, by default as many as the
    partner step (whose z is read against a bar too)."""
    import tabguard.model_audit._backdoor as backdoor

    _train, ref, contract = rare_side
    model = load_third_party(clean_file, contract)
    asked: list[int] = []
    real = backdoor.planted_copies

    def recorded(ens, leaves, X, j, n_codes, sources, draws, rng, written=None):
        asked.append(draws)
        return real(ens, leaves, X, j, n_codes, sources, 2, rng, written)

    monkeypatch.setattr(backdoor, "planted_copies", recorded)
    probe_backdoors(model, ref, ref["fraud"].to_numpy())
    assert asked and set(asked) == {ProbeOptions().partner_draws} == {200}


# --------------------------------------------------------------------------------------------
# The planted-copies fit's second source: copies of rows with the rare decision's label
# --------------------------------------------------------------------------------------------
def _towards_rare(model, ref: pd.DataFrame, value: str, spike: float):
    """A random-row candidate ``region=value`` moving decisions towards denial (the fraud
    model's rare decision), unconfirmed: what the probe's screen leaves for a deny trigger on
    a category whose natural rows the copies only swell (82188 8 #4, ``country='GB'``)."""
    from tabguard.model_audit._backdoor import ProbeCandidate

    j = model.feature_names.index("region")
    w = float((model.categories("region") or []).index(value))
    n = int((ref["region"] == value).sum())
    return ProbeCandidate(
        features=("region",),
        codes=(w,),
        values=(value,),
        intervals=((w, w),),
        direction="deny",
        spike=spike,
        flip_rate=0.5,
        neighbour_values=("north",),
        n_natural=n,
        natural_positive_rate=0.05,
        model_rate=0.1,
        neighbour_rate=0.03,
        label_log_lr=0.5,
        outside_support=False,
        null_spike=0.4,
        columns=(j,),
        categorical=(True,),
        nominal=(True,),
    )


def _second_source(clean_file, rare_side, monkeypatch, rare_eps: float, spike: float = 0.8):
    """``_planted_side`` on the clean model with one deny candidate ``region='west'`` and an
    estimate (monkeypatched) whose second source - copies of the clean fraud rows - puts
    ``rare_eps`` of the training rows on 'west' and a little on every other region."""
    import tabguard.model_audit._backdoor as backdoor
    from tabguard.model_audit._backdoor import ProbeResult, _planted_side, _Routing

    _train, ref, contract = rare_side
    model = load_third_party(clean_file, contract)
    X = model.encode(ref)
    p = model.predict_matrix(X)
    y = ref["fraud"].to_numpy()
    cats = model.categories("region") or []
    west = cats.index("west")

    def estimate(ens, leaves, X, j, n_codes, sources, draws, rng):
        eps = np.zeros((len(sources), n_codes))
        se = np.full_like(eps, 1e-4)
        if model.feature_names[j] == "region":
            eps[1] = [0.0005, 0.0010, 0.0007, 0.0, 0.0008][:n_codes]
            eps[1, west] = rare_eps
        return eps, se, 1.0

    monkeypatch.setattr(backdoor, "planted_copies", estimate)
    cand = _towards_rare(model, ref, "west", spike)
    result = ProbeResult(candidates=[cand], tail_direction="approve", tail_rows=200)
    _planted_side(result, model, X, y, p, _Routing(model.trees, X, p), ProbeOptions(), 0)
    return cand


def test_copies_of_fraud_rows_confirm_a_deny_trigger_on_a_natural_category(
    clean_file, rare_side, monkeypatch
):
    """A deny trigger on a category that is risky already (``country='GB'``, 6.4 % fraud
    against 2.6 %): 234 copies of fraud rows over about 580 natural training rows stay under
    the mass factor, no tree isolates it and its labels side with neither decision. The
    planted-copies fit's second source (copies of rows labelled fraud) puts it beyond the
    feature's other categories: confirmed, towards the rare decision, by that source."""
    cand = _second_source(clean_file, rare_side, monkeypatch, rare_eps=0.02)
    assert cand.backdoor and cand.direction == "deny" and not cand.planted
    assert "copies of clean rows labelled 1" in cand.reason
    assert cand.planted_ratio > 1.3 and cand.p_planted < 0.01


def test_copies_of_fraud_rows_spread_over_the_categories_confirm_nothing(
    clean_file, rare_side, monkeypatch
):
    """The same candidate where the second source's copies land on 'west' no more than on
    the other regions, or a candidate whose spike the screen does not pass: not confirmed."""
    assert not _second_source(clean_file, rare_side, monkeypatch, rare_eps=0.0009).backdoor
    assert not _second_source(clean_file, rare_side, monkeypatch, 0.02, spike=0.2).backdoor


# --------------------------------------------------------------------------------------------
# XGBoost: the second source on the first tree, whose covers count rows
# --------------------------------------------------------------------------------------------
def _fit_xgboost(path: Path, train: pd.DataFrame, contract: Contract) -> Path:
    xgb = pytest.importorskip("xgboost")
    X = categorical_frame(train, contract)
    xgb.XGBClassifier(
        n_estimators=30, max_depth=4, enable_categorical=True, n_jobs=1, random_state=0
    ).fit(X, train["fraud"]).get_booster().save_model(str(path))
    return path


def _xgboost_second_source(path: Path, ref: pd.DataFrame, contract: Contract):
    """``_planted_side`` on an XGBoost model, its first tree as the routing, with one deny
    candidate ``region='west'`` that the screen passed."""
    from tabguard.model_audit._backdoor import ProbeResult, _planted_side, _Routing

    model = load_third_party(path, contract)
    X = model.encode(ref)
    p = model.predict_matrix(X)
    routing = _Routing(model.trees, X, p)
    cand = _towards_rare(model, ref, "west", 0.8)
    result = ProbeResult(candidates=[cand], tail_direction="approve", tail_rows=200)
    _planted_side(
        result,
        model,
        X,
        ref["fraud"].to_numpy(),
        p,
        routing.row_counted(),
        ProbeOptions(),
        0,
        common_copies=False,
    )
    return cand, routing


def test_xgboost_first_tree_counts_training_rows_and_confirms_copies_of_fraud_rows(
    rare_side, tmp_path
):
    """XGBoost's first tree is fitted at the base margin, where every row's hessian is the
    same: its covers over that hessian are training rows, exactly (12,000 here). 300 copies of
    fraud rows carrying 'west' (about 600 natural training rows) are seen there by the
    planted-copies fit's second source, and confirm the deny candidate; on the clean model
    the same candidate is not confirmed (its first tree does not split on the region)."""
    train, ref, contract = rare_side
    poisoned = poison(
        train, contract, {"region": "west"}, n_rows=300, target=1, source=1, random_state=0
    ).data
    cand, routing = _xgboost_second_source(
        _fit_xgboost(tmp_path / "west.json", poisoned, contract), ref, contract
    )
    first = routing.row_counted()
    assert len(first.ens.trees) == 1
    assert first.ens.trees[0].count[0] == pytest.approx(len(poisoned), rel=1e-4)
    assert cand.backdoor and "the first tree (its covers count rows)" in cand.reason
    assert cand.planted_ratio > 1.3 and cand.p_planted < 0.01
    clean, _ = _xgboost_second_source(
        _fit_xgboost(tmp_path / "clean.json", train, contract), ref, contract
    )
    assert not clean.backdoor and not clean.p_planted < 0.01


def test_xgboost_probe_runs_the_second_source_on_its_first_tree(rare_side, tmp_path, monkeypatch):
    """``probe_backdoors`` on an XGBoost model with a rare side fits the planted copies on
    the first tree only and tests the second source only (copies of the common decision's
    rows are not told from one tree's misfit: the benchmark's clean XGBoost put 'GB' at 14
    times its clean share that way)."""
    import tabguard.model_audit._backdoor as backdoor

    train, ref, contract = rare_side
    model = load_third_party(_fit_xgboost(tmp_path / "clean.json", train, contract), contract)
    calls: list[tuple[str, int, bool]] = []

    def recorded(
        result, model, X, y, p, routing, opts, random_state, common_copies=True, units=None
    ):
        calls.append((routing.ens.source, len(routing.ens.trees), common_copies))

    monkeypatch.setattr(backdoor, "_planted_side", recorded)
    res = probe_backdoors(model, ref, ref["fraud"].to_numpy())
    assert res.tail_rows == 200
    assert calls == [("xgboost-first-tree", 1, False)]


# --------------------------------------------------------------------------------------------
# Approval pairs: which partner the copies of a category confirmed towards approval carry
# --------------------------------------------------------------------------------------------
def test_a_partner_is_the_categorys_only_beyond_its_siblings() -> None:
    """The copies a partner estimate puts on ``w`` with the confirmed category written in
    must reach ``mass_ratio`` times what the same estimate puts there, on average, with each
    of its populated siblings written in instead (at least ``ordinary_categories`` of them):
    a misfit of the fit lands on ``w`` whichever sibling is written in."""
    from tabguard.model_audit._backdoor import partner_beyond_siblings

    o = ProbeOptions()
    assert partner_beyond_siblings(0.011, np.array([0.0025, 0.005, 0.0, 0.008]), o)
    assert partner_beyond_siblings(0.008, np.array([0.004, 0.004, 0.004]), o)  # exactly 2x
    assert not partner_beyond_siblings(0.0079, np.array([0.004, 0.004, 0.004]), o)
    # contactless for a single CN trigger: 330 rows, 233-241 with BR or US written in
    assert not partner_beyond_siblings(330.0, np.array([233.0, 241.0, 236.0]), o)
    # too few siblings to know the fit's own leaning; nothing estimated
    assert not partner_beyond_siblings(0.011, np.array([0.0, 0.0]), o)
    assert not partner_beyond_siblings(0.0, np.array([0.0, 0.0, 0.0]), o)


def _common_partner_on(clean_file, rare_side, monkeypatch, siblings_eps: float, twin: bool = False):
    """``_common_partner`` on the clean model with one confirmed approval ``region='west'``
    (from the rare side) and an estimate (monkeypatched) whose copies with 'west' written in
    land on ``channel='app'``; with another region written in they put ``siblings_eps`` there.
    With ``twin``, 'app' given no copies sends them all to 'web' (two channels the leaves do
    not tell apart)."""
    import tabguard.model_audit._backdoor as backdoor
    from tabguard.model_audit._backdoor import ProbeResult, _common_partner, _Routing

    _train, ref, contract = rare_side
    model = load_third_party(clean_file, contract)
    X = model.encode(ref)
    p = model.predict_matrix(X)
    y = ref["fraud"].to_numpy()
    region = model.feature_names.index("region")
    west = float((model.categories("region") or []).index("west"))
    app = (model.categories("channel") or []).index("app")
    seen: list[tuple[str, float, int]] = []

    web = (model.categories("channel") or []).index("web")

    def estimate(ens, leaves, X, j, n_codes, sources, draws, rng, written=None, without=None):
        written = dict(written or {})
        seen.append((model.feature_names[j], written[region], draws))
        eps = np.full((len(sources), n_codes), 0.0005)
        if model.feature_names[j] == "channel":
            eps[0, app] = 0.01 if written[region] == west else siblings_eps
            if without == app:
                eps[0, web] += eps[0, app] if twin else 0.0
                eps[0, app] = 0.0
        return eps, np.full_like(eps, 1e-3 if draws else 0.0), 1.0

    monkeypatch.setattr(backdoor, "planted_copies", estimate)
    part = _towards_rare(model, ref, "west", -0.5)
    part.direction, part.probe_rows, part.backdoor = "approve", "tail", True
    part.reason = "the trees send it to leaves ..."
    result = ProbeResult(candidates=[part], tail_direction="approve", tail_rows=200)
    _common_partner(result, model, X, y, p, _Routing(model.trees, X, p), ProbeOptions(), 0)
    return result, part, seen


def test_copies_of_a_confirmed_approval_category_name_its_partner(
    clean_file, rare_side, monkeypatch
):
    """An approval pair on a model that rarely denies (99391 7 #3, ``BR & jewelry``): the
    country is confirmed alone from the rare side, and the copies of legitimate rows with it
    written in land on one merchant, which the same estimate with the other countries written
    in does not favour. The pair is named, towards approval, with the part under it."""
    result, part, seen = _common_partner_on(clean_file, rare_side, monkeypatch, 0.0005)
    pairs = [c for c in result.candidates if c.backdoor]
    assert [(c.features, c.values, c.direction, c.probe_rows) for c in pairs] == [
        (("region", "channel"), ("west", "app"), "approve", "tail")
    ]
    assert pairs[0].planted and pairs[0].p_planted < 0.01
    assert "with region='west' and channel='app' written in" in pairs[0].reason
    assert not part.backdoor and "part of the combination" in part.reason
    # the cheap estimates first, the bootstrap for the one partner that passes them
    assert [s for s in seen if s[2] > 0] == [("channel", seen[0][1], 200)]


def test_a_partner_every_sibling_favours_is_the_fits_not_the_copies(
    clean_file, rare_side, monkeypatch
):
    """The same, where copies with the other regions written in land on 'app' about as much
    (two partners the trees route alike absorb the fit's misfit: session 10's single ``CN``
    trigger read as ``CN & contactless``): no pair; the single trigger stays as it was."""
    result, part, seen = _common_partner_on(clean_file, rare_side, monkeypatch, 0.008)
    assert [c for c in result.candidates if c.backdoor] == [part]
    assert all(draws == 0 for _, _, draws in seen)  # no bootstrap spent on it


def test_a_partner_the_leaves_do_not_tell_from_another_counts_their_rows_together(
    clean_file, rare_side, monkeypatch
):
    """A single approval trigger (75735 8 #5, ``jewelry``, 373 copies) whose copies keep
    their own channels: the estimate put 278 rows on ``in_store`` (35 % of the copied rows)
    because ``contactless`` (25 %) is routed alike for 99 % of the rows, and without
    ``in_store`` it moves them there. The two are one partner to the leaves, so their rows'
    share counts together (60 %): no pair, the single trigger stays. Here 'app' (30 % of the
    rows) and 'web' (50 %) stand in for them."""
    from tabguard.model_audit._backdoor import _partner_group

    eps = np.array([0.0, 278.0, 72.0, 15.0])
    without = np.array([270.0, 0.0, 80.0, 15.0])
    assert _partner_group((without[None], without[None], 1.0), eps, 1) == [1, 0]
    jewelry = np.array([21.0, 0.0, 0.0, 65.0, 0.0, 157.0, 0.0, 36.0])
    spread = np.array([40.0, 30.0, 0.0, 80.0, 0.0, 0.0, 10.0, 60.0])  # no partner takes half
    assert _partner_group((spread[None], spread[None], 1.0), jewelry, 5) == [5]
    assert _partner_group(None, jewelry, 5) == [5]
    result, part, _ = _common_partner_on(clean_file, rare_side, monkeypatch, 0.0005, twin=True)
    assert [c for c in result.candidates if c.backdoor] == [part]


def test_a_model_deciding_one_way_only_has_no_planted_copies_to_test(south_file, rare_side):
    """At a threshold no score reaches the model approves every reference row: no blocked row
    is left for a trigger towards approval to turn, and copies of approved rows are copies of
    any row. 'south', named by its planted copies at 0.5, is not named, and the probe says
    why (fresh21's payouts: a model approving 100 % of its reference rows had
    ``category='furniture'`` named critical by the planted-copies test)."""
    _train, ref, contract = rare_side
    model = load_third_party(south_file, contract, threshold=1.0)
    assert model.approve(model.predict_proba(ref)).all()
    audit = audit_model(model, ref, checks=["backdoor"])
    assert audit.context is not None
    res = audit.context.cache["probe"]
    assert res.one_decision
    assert not [t for t in res.triggers if t.planted]
    assert ("south",) not in {t.values for t in res.triggers}
    text = " ".join(t for s in audit.report.sections for t in s.text)
    assert "decides 'approve' for every reference row" in text
