"""The probing attacker: strategies on a scripted target, and against the real service."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tabguard.contract import TransformOptions
from tabguard.datasets import credit_default_contract, load_credit_default
from tabguard.flags import MemoryFlagStore
from tabguard.redteam import Answer, AttackConfig, HttpTarget, ProbingAttacker
from tabguard.serving import MemoryKeyStore, ScoringService, create_app, load_config
from tabguard.training import load_model
from tests.serving.conftest import model_dir_of

CONTRACT = credit_default_contract()


class Scripted:
    """A target whose approval rule is known: approve when PAY_AMT3 >= 40,000."""

    def __init__(
        self, show_score: bool = True, refuse: Callable[[int], Answer | None] | None = None
    ):
        self.show_score = show_score
        self.refuse = refuse
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def decide(self, subject_id: str, features: Mapping[str, Any]) -> Answer:
        self.calls.append((subject_id, dict(features)))
        if self.refuse is not None:
            refusal = self.refuse(len(self.calls))
            if refusal is not None:
                return refusal
        score = 0.9 - min(float(features["PAY_AMT3"]), 100_000) / 100_000
        decision = "approve" if features["PAY_AMT3"] >= 40_000 else "deny"
        return Answer(200, decision, score if self.show_score else None)


@pytest.fixture
def application() -> dict[str, Any]:
    return {**CONTRACT.neutral_record(), "PAY_AMT3": 0}


def test_greedy_uses_scores_and_walk_does_without(application: dict[str, Any]) -> None:
    with_score = ProbingAttacker(Scripted(), CONTRACT, AttackConfig(seed=1)).attack(application)
    assert with_score.success and with_score.strategy == "greedy"
    assert with_score.final is not None and with_score.final["PAY_AMT3"] >= 40_000
    blind = ProbingAttacker(Scripted(show_score=False), CONTRACT, AttackConfig(seed=1))
    result = blind.attack(application)
    assert result.success and result.strategy == "walk"
    # only gameable fields were ever changed
    target = blind.target
    assert isinstance(target, Scripted)
    for _, sent in target.calls:
        changed = {k for k in sent if sent[k] != application[k]}
        assert changed <= set(CONTRACT.gameable_features())


def test_budget_is_respected(application: dict[str, Any]) -> None:
    class Never(Scripted):
        def decide(self, subject_id: str, features: Mapping[str, Any]) -> Answer:
            return Answer(200, "deny", None)

    result = ProbingAttacker(Never(), CONTRACT, AttackConfig(max_queries=37)).attack(application)
    assert (result.success, result.queries, result.stopped) == (False, 37, "max_queries")


def test_subject_limits_make_it_farm_accounts(application: dict[str, Any]) -> None:
    target = Scripted(
        refuse=lambda n: (
            Answer(429, reason="subject_limit", retry_after=86400) if n % 2 == 0 else None
        )
    )
    config = AttackConfig(max_subjects=3, strategy="random", seed=2)
    result = ProbingAttacker(target, CONTRACT, config).attack(application, subject_prefix="m")
    assert result.subjects <= 3
    subjects = [s for s, _ in target.calls]
    assert subjects[0] == "m-0" and "m-1" in subjects
    if not result.success:
        assert result.stopped == "max_subjects" and result.wait_needed == 86400


def test_waits_stop_it_unless_it_may_sleep(application: dict[str, Any]) -> None:
    def throttle_once(n: int) -> Answer | None:
        return Answer(429, reason="probing_throttle", retry_after=0.01) if n == 2 else None

    stopped = ProbingAttacker(Scripted(refuse=throttle_once), CONTRACT).attack(application)
    assert (stopped.success, stopped.stopped, stopped.wait_needed) == (False, "max_wait", 0.01)
    patient = ProbingAttacker(
        Scripted(refuse=throttle_once), CONTRACT, AttackConfig(sleep=True, max_wait=1.0)
    ).attack(application)
    assert patient.success and patient.waited >= 0.01


def test_unknown_features_are_refused() -> None:
    with pytest.raises(ValueError, match="NOPE"):
        ProbingAttacker(Scripted(), CONTRACT, AttackConfig(features=("NOPE",)))


# ---- against the service -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Any]]:
    df = load_credit_default().sample(2000, random_state=0).reset_index(drop=True)
    bundle = load_model(model_dir_of("lightgbm", tmp_path_factory, df, TransformOptions()))
    clients: list[TestClient] = []

    def serve(toml: str = "", delay: float = 0.0) -> tuple[TestClient, MemoryKeyStore]:
        home: Path = tmp_path_factory.mktemp("attack-home")
        (home / "tabguard.toml").write_text(
            '[limits]\nper_client = "off"\n' + toml if "[limits]" not in toml else toml
        )
        keys, flags = MemoryKeyStore(), MemoryFlagStore()
        if delay:
            flags.set("delay", delay, actor="test")
        service = ScoringService(bundle, load_config(home), key_store=keys, flag_store=flags)
        client = TestClient(create_app(service=service)).__enter__()
        clients.append(client)
        return client, keys

    yield serve
    for c in clients:
        c.__exit__(None, None, None)


def denied(client: TestClient, key: str) -> dict[str, Any]:
    """A held-out application the service denies by a small margin."""
    df = load_credit_default().tail(3000)
    for record in df[list(CONTRACT.features)].to_dict("records"):
        record = {k: (v.item() if hasattr(v, "item") else v) for k, v in record.items()}
        r = client.post(
            "/v1/decisions",
            json={"subject_id": "probe", "features": record},
            headers={"Authorization": f"Bearer {key}"},
        ).json()
        if r["decision"] == "deny" and r["score"] < 0.65:
            return record
    raise AssertionError("no near-miss denied application found")


def test_against_the_service_scores_help_and_detection_stops_it(served: Any) -> None:
    open_client, keys = served("[probing]\nenabled = false\n")
    scout = keys.create("scout", "decide,score")[1]
    app = denied(open_client, scout)
    seer = keys.create("seer", "decide,score")[1]
    with_scores = ProbingAttacker(HttpTarget(open_client, seer), CONTRACT).attack(app)
    assert with_scores.success and with_scores.strategy == "greedy"
    assert with_scores.queries == with_scores.answered
    guarded, keys2 = served('[probing]\naction = "throttle"\nthrottle = "1/hour"\n')
    key = keys2.create("mallory", "decide")[1]
    throttled = ProbingAttacker(HttpTarget(guarded, key), CONTRACT).attack(app)
    assert throttled.strategy == "walk"
    if not throttled.success:  # flagged (gameable variation / walk) and throttled
        assert throttled.stopped == "max_wait" and (throttled.wait_needed or 0) > 60


def test_delayed_decisions_are_followed(served: Any) -> None:
    # 0.3 s: longer than a loaded machine takes to answer the 202 (20 ms was not, at load 20)
    client, keys = served(delay=0.3)
    key = keys.create("patient", "decide")[1]
    answer = HttpTarget(client, key).decide("s", CONTRACT.neutral_record())
    assert answer.status == 200 and answer.decision in ("approve", "deny", "review")
    assert answer.waited > 0  # it slept until available_at before reading the decision
