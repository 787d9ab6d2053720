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
            vec = det.encode({**base, "LIMIT_BAL": 1000.0 * (i + 1)})
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
