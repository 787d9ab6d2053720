"""Probing detection: the reference profile, each signal, client flags, memory and Redis state."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tabguard.contract import Contract
from tabguard.datasets import (
    card_fraud_contract,
    credit_default_contract,
    load_credit_default,
    make_card_fraud,
)
from tabguard.errors import DataError
from tabguard.serving import (
    MemoryProbingStore,
    ProbingConfig,
    ProbingDetector,
    RedisProbingStore,
    ReferenceProfile,
    random_records,
)
from tabguard.serving._reference import raw_encoder

CREDIT = credit_default_contract()


def observe_all(
    detector: ProbingDetector,
    records: list[dict[str, Any]],
    *,
    client: str = "c",
    scores: list[float] | None = None,
    threshold: float = 0.5,
) -> list[Any]:
    async def go() -> list[Any]:
        out = []
        for i, r in enumerate(records):
            score = scores[i] if scores else 0.1
            out.append(
                await detector.observe(
                    client, f"s{i}", detector.encode(r), score, threshold, now=1000.0 + i
                )
            )
        return out

    return asyncio.run(go())


# ---- reference profile -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("contract", "data"),
    [
        (CREDIT, lambda: load_credit_default()),
        (card_fraud_contract(), lambda: make_card_fraud(20_000, random_state=0)),
    ],
    ids=["credit", "card_fraud"],
)
def test_profile_is_calibrated_on_the_reference_and_flags_synthetic_queries(
    contract: Contract, data: Any
) -> None:
    df: pd.DataFrame = data()
    train, held_out = df.iloc[: len(df) // 2], df.iloc[len(df) // 2 :]
    profile = ReferenceProfile.from_frame(train, contract, rate=0.001)
    assert 1 <= profile.min_out <= len(profile.features)
    enc = raw_encoder(contract)
    # false positives on unseen rows of the same distribution stay near the target rate
    fp = np.mean(profile.out_counts(enc.transform_frame(held_out)) >= profile.min_out)
    assert fp <= 0.005
    # queries drawn uniformly over the contract's valid ranges (extraction-style) are flagged
    synthetic = pd.DataFrame(random_records(contract, 300, seed=1))
    hit = np.mean(profile.out_counts(enc.transform_frame(synthetic)) >= profile.min_out)
    assert hit >= 0.9


def test_profile_round_trip_and_errors(tmp_path: Any) -> None:
    df = load_credit_default().head(3000)
    profile = ReferenceProfile.from_frame(df, CREDIT, source={"data": "x"})
    again = ReferenceProfile.load(profile.save(tmp_path / "p.json"))
    X = raw_encoder(CREDIT).transform_frame(df.head(200))
    np.testing.assert_array_equal(profile.out_counts(X), again.out_counts(X))
    assert again.matches(CREDIT) and not again.matches(card_fraud_contract())
    assert again.source["data"] == "x"
    with pytest.raises(DataError, match="at least 100"):
        ReferenceProfile.from_frame(df.head(50), CREDIT)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(DataError, match="not a tabguard reference profile"):
        ReferenceProfile.load(tmp_path / "bad.json")


def test_cdf_is_monotone_and_handles_ties() -> None:
    profile = ReferenceProfile.from_frame(load_credit_default().head(5000), CREDIT)
    j = profile.features.index("PAY_0")
    values = [profile.cdf(j, v) for v in range(-2, 10)]
    assert values == sorted(values) and values[0] >= 0 and values[-1] == 1.0


# ---- signals -----------------------------------------------------------------------------------


@pytest.fixture
def base() -> dict[str, Any]:
    return random_records(CREDIT, 1, seed=7)[0]


def test_feature_walk_flags_after_walk_min_steps(base: dict[str, Any]) -> None:
    detector = ProbingDetector(CREDIT, ProbingConfig(walk_min=4))
    walk = [{**base, "LIMIT_BAL": 10_000 * (i + 1)} for i in range(6)]
    results = observe_all(detector, walk)
    assert results[0].signals == ()
    assert all("feature_walk" in r.signals for r in results[1:])
    assert [r.flagged for r in results] == [False, False, False, False, True, True]
    assert results[4].reasons == ("feature_walk",)
    assert results[4].counts["feature_walk"] == 4


def test_unrelated_queries_raise_nothing() -> None:
    detector = ProbingDetector(CREDIT, ProbingConfig(walk_min=2, gameable_min=2))
    records = random_records(CREDIT, 50, seed=3)
    results = observe_all(detector, records)
    assert not any(r.signals for r in results)
    assert not any(r.flagged for r in results)


def test_gameable_variation_catches_multi_feature_changes(base: dict[str, Any]) -> None:
    detector = ProbingDetector(CREDIT, ProbingConfig(gameable_min=3))
    rng = np.random.default_rng(0)
    tries = []
    for _ in range(4):
        r = dict(base)
        for name in CREDIT.gameable_features():  # every gameable field changes at once
            spec = CREDIT.features[name]
            r[name] = int(rng.integers(spec.clip[0], spec.clip[1]))  # type: ignore[index]
        tries.append(r)
    results = observe_all(detector, tries)
    assert all("feature_walk" not in r.signals for r in results)
    assert [("gameable_variation" in r.signals) for r in results] == [False, True, True, True]
    assert results[3].flagged and results[3].reasons == ("gameable_variation",)


def test_boundary_needs_count_and_share() -> None:
    records = random_records(CREDIT, 20, seed=5)
    config = ProbingConfig(boundary_min=5, boundary_share=0.5, boundary_margin=0.02)
    near = observe_all(ProbingDetector(CREDIT, config), records, scores=[0.51] * 20)
    assert near[4].flagged and near[4].reasons == ("boundary",)
    # a busy client with some scores near the threshold is not flagged
    mixed = [0.51 if i % 4 == 0 else 0.1 for i in range(20)]
    busy = observe_all(ProbingDetector(CREDIT, config), records, scores=mixed)
    assert not any(r.flagged for r in busy)


def test_out_of_distribution_signal(reference: ReferenceProfile) -> None:
    detector = ProbingDetector(CREDIT, ProbingConfig(ood_min=3), reference=reference)
    synthetic = random_records(CREDIT, 5, seed=11)
    results = observe_all(detector, synthetic)
    assert sum("out_of_distribution" in r.signals for r in results) >= 4
    assert results[-1].flagged
    real = load_credit_default().sample(30, random_state=2)[list(CREDIT.features)]
    rows = [
        {k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()}
        for r in real.to_dict("records")
    ]
    calm = observe_all(ProbingDetector(CREDIT, ProbingConfig(), reference=reference), rows)
    assert sum("out_of_distribution" in r.signals for r in calm) <= 1


def test_the_flag_lasts_cooldown_then_expires(base: dict[str, Any]) -> None:
    detector = ProbingDetector(CREDIT, ProbingConfig(walk_min=1, cooldown=30, window=10))

    async def go() -> list[bool]:
        v1 = detector.encode(base)
        v2 = detector.encode({**base, "LIMIT_BAL": 1.0})
        other = detector.encode(random_records(CREDIT, 1, seed=99)[0])
        out = []
        for vec, t in ((v1, 0.0), (v2, 1.0), (other, 20.0), (other, 40.0)):
            out.append((await detector.observe("c", "s", vec, 0.1, 0.5, now=t)).flagged)
        return out

    # flagged by the walk at t=1; still flagged at t=20 (cooldown 30); expired at t=40
    assert asyncio.run(go()) == [False, True, True, False]


def test_clients_are_kept_apart_and_memory_is_bounded(base: dict[str, Any]) -> None:
    store = MemoryProbingStore(window=600, history=5, max_clients=3)
    detector = ProbingDetector(CREDIT, ProbingConfig(walk_min=1), store=store)
    walk = [{**base, "LIMIT_BAL": 1000.0 * (i + 1)} for i in range(2)]
    a = observe_all(detector, walk[:1], client="a")
    b = observe_all(detector, walk[1:], client="b")
    assert not a[0].signals and not b[0].signals  # b's query is not compared with a's
    for i in range(10):
        observe_all(detector, walk[:1], client=f"x{i}")
    assert len(store._clients) == 3


@pytest.mark.redis
def test_redis_state_is_shared_between_detectors(
    redis_server_url: str, redis_prefix: str, base: dict[str, Any]
) -> None:
    config = ProbingConfig(walk_min=2, storage=redis_server_url, key_prefix=redis_prefix)

    async def go() -> list[Any]:
        one = ProbingDetector(CREDIT, config)  # two workers, one Redis
        two = ProbingDetector(CREDIT, config)
        out = []
        for i, det in enumerate((one, two, one, two)):
            vec = det.encode({**base, "LIMIT_BAL": 100_000.0 * (i + 1)})
            out.append(await det.observe("bank-a", f"s{i}", vec, 0.2, 0.5, now=1e9 + i))
        await one.aclose()
        await two.aclose()
        return out

    results = asyncio.run(go())
    assert [("feature_walk" in r.signals) for r in results] == [False, True, True, True]
    assert [r.flagged for r in results] == [False, False, True, True]


def test_redis_down_skips_detection_without_failing() -> None:
    from tests.serving._tcp_proxy import closed_port

    store = RedisProbingStore(
        f"redis://127.0.0.1:{closed_port()}/0", window=60, history=10, prefix="t", timeout=0.2
    )
    detector = ProbingDetector(CREDIT, ProbingConfig(), store=store)

    async def go() -> Any:
        result = await detector.observe(
            "c", "s", np.zeros(len(detector.encoder.feature_names)), 0.1, 0.5
        )
        await store.aclose()
        return result

    result = asyncio.run(go())
    assert not result.available and not result.flagged
    assert detector.unavailable == 1


def test_config_rules() -> None:
    with pytest.raises(ValueError, match="memory:// or redis://"):
        ProbingConfig(storage="sqlite:///x.db")
    with pytest.raises(ValueError, match="N/unit"):
        ProbingConfig(throttle="fast")
    with pytest.raises(ValueError, match="action"):
        ProbingConfig(action="ban")  # type: ignore[arg-type]


@pytest.mark.parametrize("contract", [CREDIT, card_fraud_contract()], ids=["credit", "card_fraud"])
def test_fast_raw_encoder_equals_the_contract_transform(contract: Contract) -> None:
    from tabguard.serving._reference import RawEncoder

    nullable = contract.with_updates(
        **{n: {"nullable": True} for n in list(contract.model_features())[:3]}
    )
    for c in (contract, nullable):
        records = random_records(c, 100, seed=8)
        for r in records[::3]:
            r[next(iter(c.model_features()))] = (
                None if c is nullable else r[next(iter(c.model_features()))]
            )
        fast = np.vstack([RawEncoder(c).encode(r) for r in records])
        slow = raw_encoder(c).transform_frame(pd.DataFrame(records))
        np.testing.assert_array_equal(fast, slow)


# ---- disguised probing (issue 15.2): compared in the model's space, with a tolerance ---------


def walk_of(base: dict[str, Any], name: str, values: list[Any]) -> list[dict[str, Any]]:
    return [{**base, name: v} for v in values]


def disguised(records: list[dict[str, Any]], how: str, seed: int = 0) -> list[dict[str, Any]]:
    """The queries as an attacker hiding the walk would send them."""
    rng = np.random.default_rng(seed)
    out = []
    for i, r in enumerate(records):
        r = dict(r)
        if how == "nudge":  # a non-gameable amount moved by one unit per query
            r["BILL_AMT6"] = r["BILL_AMT6"] + i + 1
        elif how == "jitter":  # every bill amount, a little, at random
            for k in range(1, 7):
                r[f"BILL_AMT{k}"] = r[f"BILL_AMT{k}"] + int(rng.integers(-100, 101))
        elif how == "swap":  # a category the model never reads (protected)
            r["SEX"] = 1 + (i % 2)
        elif how == "rounding":  # the credit limit rounded differently each time
            r["LIMIT_BAL"] = float(r["LIMIT_BAL"] + (i % 3) * 10)
        out.append(r)
    return out


@pytest.fixture
def real_base(sample_records: list[dict[str, Any]]) -> dict[str, Any]:
    return dict(sample_records[3])


WALK = [0, 1000, 3000, 8000, 20_000, 60_000, 150_000, 400_000]
#: A bisection of PAY_AMT1: both ends, then halving towards a boundary near 12,000.
BISECT = [1_000_000, 0, 500_000, 250_000, 125_000, 62_500, 31_250, 15_625, 7_812, 11_718]


@pytest.mark.parametrize("how", ["nudge", "jitter", "swap", "rounding"])
@pytest.mark.parametrize("values", [WALK, BISECT], ids=["walk", "bisection"])
def test_disguised_probing_is_flagged_at_the_same_query_as_plain(
    real_base: dict[str, Any], reference: ReferenceProfile, how: str, values: list[int]
) -> None:
    plain = walk_of(real_base, "PAY_AMT1", values)
    runs = {}
    for name, queries in (("plain", plain), (how, disguised(plain, how))):
        detector = ProbingDetector(CREDIT, ProbingConfig(), reference=reference)
        runs[name] = observe_all(detector, queries)
    flags = {name: [r.flagged for r in results] for name, results in runs.items()}
    assert any(flags["plain"])
    assert flags[how] == flags["plain"]
    assert [r.signals for r in runs[how]] == [r.signals for r in runs["plain"]]


def test_a_change_beyond_the_tolerance_is_still_a_change(
    real_base: dict[str, Any], reference: ReferenceProfile
) -> None:
    # Moving a non-gameable amount by 5% of its spread each query is another application
    # each time: neither a one-feature walk nor a variation of self-declared values.
    j = reference.features.index("BILL_AMT6")
    step = 0.05 * float(reference.high[j] - reference.low[j])
    queries = [
        {**q, "BILL_AMT6": round(real_base["BILL_AMT6"] + step * (i + 1))}
        for i, q in enumerate(walk_of(real_base, "PAY_AMT1", WALK))
    ]
    detector = ProbingDetector(CREDIT, ProbingConfig(), reference=reference)
    results = observe_all(detector, queries)
    assert not any({"feature_walk", "gameable_variation"} & set(r.signals) for r in results)


def test_the_space_follows_the_model_transform(reference: ReferenceProfile) -> None:
    from tabguard.contract import FeatureTransform, TransformOptions
    from tabguard.serving._probing import ProbingSpace

    transform = FeatureTransform(
        CREDIT, TransformOptions(bins=("AGE",), drop=("PAY_AMT6",), neutralize=("PAY_AMT5",))
    )
    space = ProbingSpace(CREDIT, transform, reference, share=0.005)
    names = space.feature_names
    tol = dict(zip(names, space.tolerance, strict=True))
    assert tol["PAY_AMT6"] == np.inf and tol["PAY_AMT5"] == np.inf  # never read by the model
    assert tol["EDUCATION"] == 0 and tol["PAY_0"] < 1  # codes and small integers: exact
    j = reference.features.index("BILL_AMT1")
    assert tol["BILL_AMT1"] == pytest.approx(0.005 * (reference.high[j] - reference.low[j]))
    age = names.index("AGE")
    x = np.zeros(len(names))

    def binned(v: float) -> float:
        x[age] = v
        return float(space.project(x)[age])

    assert binned(31) == binned(39) != binned(41)  # inside a bin is no change; across is one
    flagged = space.tolerance_for(["BILL_AMT1", "not-a-feature"])
    assert flagged[names.index("BILL_AMT1")] == np.inf
    assert space.tolerance_for([]) is space.tolerance


def test_a_neutralised_feature_does_not_hide_a_walk(
    real_base: dict[str, Any], reference: ReferenceProfile
) -> None:
    # With the neutralize flag on BILL_AMT6 the model does not read it: changing it is no change.
    queries = [
        {**q, "BILL_AMT6": 50_000 * i} for i, q in enumerate(walk_of(real_base, "PAY_AMT1", WALK))
    ]
    config = ProbingConfig(walk_min=3, gameable_min=99)
    detector = ProbingDetector(CREDIT, config, reference=reference)

    async def go() -> list[Any]:
        return [
            await detector.observe(
                "c", "s", detector.encode(q), 0.1, 0.5, now=1000.0 + i, ignore=["BILL_AMT6"]
            )
            for i, q in enumerate(queries)
        ]

    results = asyncio.run(go())
    assert all("feature_walk" in r.signals for r in results[1:])
    assert results[3].flagged


def test_memory_counts_follow_the_window_without_rescanning(base: dict[str, Any]) -> None:
    store = MemoryProbingStore(window=10, history=4)
    detector = ProbingDetector(CREDIT, ProbingConfig(walk_min=99), store=store)
    walk = [{**base, "LIMIT_BAL": 100_000.0 * (i + 1)} for i in range(6)]

    async def go() -> list[Any]:
        out = []
        for i, r in enumerate(walk):  # one query every 4 s; history of 4, window of 10 s
            out.append(await detector.observe("c", "s", detector.encode(r), 0.1, 0.5, now=4.0 * i))
        return out

    results = asyncio.run(go())
    # at t=20 the queries of t=8..16 are in the window (3 walks) plus this one
    assert [r.counts["feature_walk"] for r in results] == [0, 1, 2, 3, 3, 3]
    ring = store._clients["c"]
    assert ring.count == 3 and ring.counts[0] == 3


# ---- the memory store's one-call path (ring_observe) equals the general path ---------------


class _GeneralStore(MemoryProbingStore):
    """The same memory store through the store protocol (load, signals, save)."""


def _walks(seed: int, n: int, sample: list[dict[str, Any]]) -> list[tuple[dict[str, Any], float]]:
    """Queries mixing walks, gameable variations, repeats and fresh records, with gaps."""
    rng = np.random.default_rng(seed)
    gameable = CREDIT.gameable_features()
    out: list[tuple[dict[str, Any], float]] = []
    current = dict(sample[int(rng.integers(len(sample)))])
    t = 0.0
    for _ in range(n):
        move = int(rng.integers(5))
        if move == 0:
            current = dict(sample[int(rng.integers(len(sample)))])
        elif move == 1:
            current = {**current, "LIMIT_BAL": float(rng.integers(1, 100) * 10_000)}
        elif move == 2:
            name = gameable[int(rng.integers(len(gameable)))]
            current = {**current, name: int(rng.integers(0, 1_000_000))}
        elif move == 3:
            current = {**current, "BILL_AMT1": float(rng.integers(-1000, 1000)), "SEX": 2}
        t += float(rng.choice([0.5, 3.0, 40.0]))  # some gaps beyond the window
        out.append((current, t))
    return out


@pytest.mark.parametrize("with_reference", [True, False])
def test_the_one_call_memory_path_equals_the_store_protocol(
    sample_records: list[dict[str, Any]], reference: ReferenceProfile, with_reference: bool
) -> None:
    config = ProbingConfig(
        walk_min=3, gameable_min=2, boundary_min=2, boundary_share=0.3, ood_min=2, window=30,
        history=6, cooldown=20,
    )  # fmt: skip
    ref = reference if with_reference else None
    memory, protocol = MemoryProbingStore(30, 6, max_clients=2), _GeneralStore(30, 6, max_clients=2)
    fast = ProbingDetector(CREDIT, config, store=memory, reference=ref)
    general = ProbingDetector(CREDIT, config, store=protocol, reference=ref)
    queries = _walks(1, 300, sample_records)
    rng = np.random.default_rng(2)
    scores = rng.choice([0.1, 0.49, 0.51, 0.9], size=len(queries))
    clients = rng.choice(["a", "b", "c"], size=len(queries))
    ignores = [(), ("LIMIT_BAL",)]

    async def go(detector: ProbingDetector) -> list[Any]:
        return [
            await detector.observe(
                str(clients[i]), "s", detector.encode(r), float(scores[i]), 0.5, now=t,
                ignore=ignores[i % 7 == 0],
            )
            for i, (r, t) in enumerate(queries)
        ]  # fmt: skip

    a, b = asyncio.run(go(fast)), asyncio.run(go(general))
    assert a == b
    assert sum(bool(r.signals) for r in a) > 30 and sum(r.flagged for r in a) > 10
    for name, ring in fast.store._clients.items():  # type: ignore[attr-defined]
        other = general.store._clients[name]  # type: ignore[attr-defined]
        assert (ring.count, ring.counts, ring.flagged_until) == (
            other.count, other.counts, other.flagged_until,
        )  # fmt: skip
        live = [(ring.start + k) % len(ring.times) for k in range(ring.count)]
        same = [(other.start + k) % len(other.times) for k in range(other.count)]
        assert np.array_equal(ring.vectors[live], other.vectors[same])
        assert np.array_equal(ring.bits[live], other.bits[same])
