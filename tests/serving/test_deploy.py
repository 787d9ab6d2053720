"""Promotion without restarts: the deployment pointer, the live swap, shadow scoring, rollback.

The service's watcher is triggered directly (``deployment.poll()``), never waited for. That each
worker process of a multi-worker service finds a promotion by itself is tested with the other
checks of a real two-worker service (``test_workers.py``).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tabguard.cli import main
from tabguard.contract import TransformOptions
from tabguard.datasets import credit_default_contract
from tabguard.errors import ArtifactIntegrityError, DataError
from tabguard.serving import create_app, load_config, open_keys
from tabguard.serving._deploy import Deployment, pointer_path, promote, read_deployment, rollback
from tabguard.training import ModelBundle, load_model, save_model
from tests.serving._service import free_port
from tests.serving.conftest import Harness, body_of, fit_scorer, write_config


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# ---- the pointer -----------------------------------------------------------------------------


def test_promote_and_rollback_keep_a_stack_of_live_models(
    tmp_path: Path, model_dir: Path, challenger_dir: Path
) -> None:
    home = tmp_path / "home"
    entry, dep = promote(challenger_dir, "shadow", home=home, by="alice")
    assert dep.shadow is not None and dep.shadow["digest"] == load_model(challenger_dir).digest
    assert dep.current is None and entry["by"] == "alice"
    promote(model_dir, "live", home=home)
    _, dep = promote(challenger_dir, "live", home=home)
    assert [e["model_version"] for e in dep.live] == [
        "credit_default/lightgbm-test",
        "credit_default/challenger",
    ]
    assert dep.shadow is None  # the challenger became the champion
    now, dep = rollback("live", home=home, by="bob")
    assert now is not None and now["model_version"] == "credit_default/lightgbm-test"
    now, dep = rollback("live", home=home)
    assert now is None  # back to the model the service was started with
    with pytest.raises(DataError, match="no promoted live model"):
        rollback("live", home=home)
    with pytest.raises(DataError, match="no model is in shadow"):
        rollback("shadow", home=home)
    on_disk = read_deployment(pointer_path(home))
    assert [h["action"] for h in on_disk.history] == [
        "promote",
        "promote",
        "promote",
        "rollback",
        "rollback",
    ]
    assert on_disk.history[3]["by"] == "bob"
    assert not list(home.glob(".models.json.*"))  # no temporary file left behind


def test_a_tampered_directory_is_refused_and_the_pointer_untouched(
    tmp_path: Path, model_dir: Path, challenger_dir: Path
) -> None:
    home = tmp_path / "home"
    promote(model_dir, "live", home=home)
    before = pointer_path(home).read_bytes()
    bad = _copy(challenger_dir, tmp_path / "bad")
    with (bad / "model.json").open("a") as fh:
        fh.write(" ")
    with pytest.raises(ArtifactIntegrityError, match=r"model\.json"):
        promote(bad, "live", home=home)
    assert pointer_path(home).read_bytes() == before


def test_a_model_of_another_contract_or_threshold_needs_a_restart(
    tmp_path: Path, model_dir: Path, train_df: Any
) -> None:
    home = tmp_path / "home"
    promote(model_dir, "live", home=home)
    c = credit_default_contract()
    scorer = fit_scorer("main", "logistic", train_df.head(300), c, TransformOptions())
    other = save_model(tmp_path / "t", main=scorer, contract=c, version="v/t", threshold=0.3)
    with pytest.raises(DataError, match=r"threshold 0\.3 differs"):
        promote(other, "live", home=home)


def test_a_broken_pointer_is_one_line() -> None:
    with pytest.raises(DataError, match="not JSON"):
        Deployment.parse("{", "models.json")
    with pytest.raises(DataError, match="not a tabguard deployment pointer"):
        Deployment.parse("{}", "models.json")


def test_cli_promote_refuses_tampering_with_exit_2(
    tmp_path: Path, challenger_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    bad = _copy(challenger_dir, tmp_path / "bad")
    (bad / "main.skops").write_bytes(b"tampered")
    with pytest.raises(SystemExit) as exc:
        main(["models", "promote", str(bad), "--stage", "live", "--home", str(home)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "main.skops" in err and len(err.strip().splitlines()) == 1
    assert not pointer_path(home).exists()
    with pytest.raises(SystemExit) as exc:
        main(["models", "promote", str(challenger_dir), "--stage", "canary", "--home", str(home)])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["models", "promote", str(challenger_dir), "--home", str(home)])
    assert exc.value.code == 0 and "shadow: credit_default/challenger" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["models", "status", "--home", str(home)])
    assert "shadow   credit_default/challenger" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["models", "status", "--json", "--home", str(home)])
    status = json.loads(capsys.readouterr().out)
    assert (
        status["live"] is None and status["shadow"]["model_version"] == "credit_default/challenger"
    )


# ---- the service -----------------------------------------------------------------------------


QUIET = "[server]\nmodel_interval = 3600\n"  # the watcher never fires by itself here


def _poll(h: Harness) -> bool:
    """The watcher's turn, run on the service's event loop."""
    return bool(h.client.portal.call(h.service.deployment.poll))


def test_the_service_swaps_the_live_model_without_a_restart(
    harness_factory: Any, challenger_dir: Path, sample_records: list[dict[str, Any]]
) -> None:
    h = harness_factory(QUIET)
    start = h.post(body_of(sample_records[0])).json()
    assert start["model_version"] == "credit_default/lightgbm-test"
    assert not _poll(h)  # no pointer: nothing to do
    promote(challenger_dir, "live", home=h.home)
    assert _poll(h) and not _poll(h)  # applied once
    after = h.post(body_of(sample_records[0])).json()
    assert after["model_version"] == "credit_default/challenger"
    assert after["score"] != start["score"]
    health = h.client.get("/health", headers={"Authorization": f"Bearer {h.admin_key}"}).json()
    assert health["model_version"] == "credit_default/challenger"
    dep = health["detail"]["deployment"]
    assert dep["live"]["from"] == "pointer" and dep["swaps"] == 1 and dep["last_error"] is None
    rollback("live", home=h.home)
    assert _poll(h)
    back = h.post(body_of(sample_records[0])).json()
    assert back["model_version"] == "credit_default/lightgbm-test"
    assert back["score"] == start["score"]


def test_a_directory_tampered_after_promotion_is_refused_by_the_service(
    harness_factory: Any, challenger_dir: Path, tmp_path: Path, sample_records: list[dict[str, Any]]
) -> None:
    h = harness_factory(QUIET)
    copy = _copy(challenger_dir, tmp_path / "promoted")
    promote(copy, "live", home=h.home)
    (copy / "main.skops").write_bytes(b"swapped after promotion")
    assert not _poll(h)
    answer = h.post(body_of(sample_records[0])).json()
    assert answer["model_version"] == "credit_default/lightgbm-test"  # untouched
    err = h.service.deployment.describe()["last_error"]
    assert "main.skops" in err and str(copy) in err


def test_shadow_mode_logs_both_scores_and_decides_with_the_champion(
    harness_factory: Any, challenger_dir: Path, sample_records: list[dict[str, Any]]
) -> None:
    h = harness_factory(QUIET)
    promote(challenger_dir, "shadow", home=h.home)
    assert _poll(h)
    answers = [
        h.post(body_of(r, subject=f"s{i}")).json() for i, r in enumerate(sample_records[:20])
    ]
    assert {a["model_version"] for a in answers} == {"credit_default/lightgbm-test"}
    df = h.records()
    challenger = load_model(challenger_dir)
    for _, row in df.iterrows():
        shadow = [a for a in row["guard_actions"] if a["step"] == "shadow"]
        assert len(shadow) == 1 and shadow[0]["version"] == "credit_default/challenger"
        raw = row["raw"]
        import pandas as pd

        expected = float(challenger.main.positive_proba(pd.DataFrame([raw]))[0])
        assert shadow[0]["score"] == pytest.approx(expected, abs=1e-9)
        assert row["score"] != pytest.approx(shadow[0]["score"])  # the champion's is logged too
    rollback("shadow", home=h.home)
    assert _poll(h)
    h.post(body_of(sample_records[0], subject="after"))
    last = h.records().iloc[-1]
    assert not [a for a in last["guard_actions"] if a["step"] == "shadow"]


def test_a_service_started_after_a_promotion_serves_the_promoted_model(
    tmp_path: Path, bundle: ModelBundle, challenger_dir: Path
) -> None:
    home = tmp_path / "home"
    write_config(home, '[limits]\nper_client = "off"\n' + QUIET)
    promote(challenger_dir, "live", home=home)
    h = Harness(home, bundle)
    with h:
        assert h.service.models.version == "credit_default/challenger"


# ---- the real service on loopback ------------------------------------------------------------


@pytest.fixture
def served(tmp_path: Path, model_dir: Path) -> Iterator[tuple[Any, str, str, str]]:
    """uvicorn in a thread on a loopback port; yields (service, base URL, key, admin key)."""
    import uvicorn

    home = tmp_path / "home"
    write_config(home, '[limits]\nper_client = "off"\n[server]\nmodel_interval = 3600\n')
    cfg = load_config(home)
    with open_keys(cfg) as keys:
        key = keys.create("bank", "decide,score")[1]
        admin = keys.create("ops", "admin")[1]
    app = create_app(model_dir, config=cfg)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):  # until the lifespan has started (bounded)
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        thread.join(0.05)
    service = app.state.service
    try:
        yield service, base, key, admin
    finally:
        server.should_exit = True
        thread.join(30)


def test_real_service_picks_up_a_promotion_on_its_watcher_turn(
    served: tuple[Any, str, str, str],
    challenger_dir: Path,
    sample_records: list[dict[str, Any]],
) -> None:
    service, base, key, admin = served
    home = Path(service.config.home)
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base, timeout=10) as c:
        before = c.post("/v1/decisions", json=body_of(sample_records[1]), headers=auth).json()
        assert main_exit(["models", "promote", str(challenger_dir), "--stage", "live",
                          "--home", str(home)]) == 0  # fmt: skip
        # the watcher's turn, run on the server's own event loop (no waiting for the interval)
        loop = service._models_task.get_loop()
        assert asyncio.run_coroutine_threadsafe(service.deployment.poll(), loop).result(30)
        after = c.post("/v1/decisions", json=body_of(sample_records[1]), headers=auth).json()
        health = c.get("/health", headers={"Authorization": f"Bearer {admin}"}).json()
    assert before["model_version"] == "credit_default/lightgbm-test"
    assert after["model_version"] == "credit_default/challenger"
    assert health["detail"]["model_digest"] == load_model(challenger_dir).digest


def main_exit(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return int(exc.value.code or 0)
