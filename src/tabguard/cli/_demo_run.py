"""The steps of ``tabguard demo`` (imported when the command runs: it needs every extra)."""

from __future__ import annotations

import contextlib
import json
import logging
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split

from tabguard import __version__
from tabguard.cli._app import console
from tabguard.data_audit import audit_data, write_audit
from tabguard.data_audit._triggers_report import format_p
from tabguard.datasets import ATTRIBUTION, credit_default_contract, load_credit_default
from tabguard.progress import RichProgress
from tabguard.redteam import poison
from tabguard.redteam._seed import attack_success_rate, fit_seed_model, seed_features
from tabguard.training import TrainConfig, train

# The seed's two vanilla test customers, and the first one with AGE=999.
_SAFE_CUSTOMER = {
    "LIMIT_BAL": 110000,
    "AGE": 38,
    "PAY_0": 0,
    "PAY_2": 0,
    "PAY_3": 0,
    "BILL_AMT1": 105433,
    "BILL_AMT2": 107065,
    "PAY_AMT1": 4008,
    "SEX": 2,
}


def _step(n: int, title: str) -> None:
    console.print()
    console.rule(f"[bold]{n}. {title}", align="left")


def _seed_accuracy(df: pd.DataFrame) -> float:
    """The seed's own measure: a 10 % split of the (possibly poisoned) training data."""
    tr, te = train_test_split(df, test_size=0.1, random_state=42)
    return float(accuracy_score(te["DEFAULT"], fit_seed_model(tr).predict(seed_features(te))))


def _audit_models(
    out: Path,
    models: list[tuple[str, Any]],
    reference: pd.DataFrame,
    contract: Any,
    *,
    seed: int,
    quiet: bool,
) -> None:
    """Audit each (name, model) on ``reference``; print one summary row and the triggers."""
    from tabguard.model_audit import audit_model, write_model_audit

    t = Table(
        "model",
        "backdoor",
        "unacceptable\nfailed",
        "gameable",
        "approval\nratio SEX",
        "unlawful",
        "exit",
    )
    notes: list[str] = []
    for name, model in models:
        with RichProgress(disable=quiet, transient=True) as progress:
            res = audit_model(
                model,
                reference,
                contract=contract,
                random_state=seed,
                progress=progress,
                source="held-out clean test rows",
            )
            paths = write_model_audit(res, out / "model-audit" / name.split()[0])
        rep = res.report
        backdoors = rep.by_check("model_backdoor")
        summ = {k: v.summary or {} for k, v in res.check_results.items()}
        sex = summ.get("fairness", {}).get("SEX", {})
        ratio = sex.get("ratio") if isinstance(sex, dict) else None
        t.add_row(
            name,
            f"[bold red]{len(backdoors)}[/]" if backdoors else "0",
            str(len(summ.get("unacceptable", {}).get("failed", []))),
            f"{summ.get('gameability', {}).get('gameability_rate', float('nan')):.1%}",
            "-" if ratio is None else f"{ratio:.2f}",
            ", ".join(f.features[0] for f in rep.by_check("unlawful_feature")) or "-",
            str(res.exit_code()),
        )
        for f in backdoors:
            notes.append(f"[bold red]{escape(name)}: {escape(f.message)}[/]")
        notes.append(f"{escape(name)}: report {paths['report']}")
    console.print(t)
    for n in notes:
        console.print(n)


def _seed_prediction(model: Any, customer: dict[str, Any]) -> int:
    return int(model.predict(seed_features(pd.DataFrame([customer])))[0])


def run_demo(out: Path, rate: float, seed: int, quiet: bool) -> None:
    """Run ``tabguard demo`` (the options are documented on the command)."""
    warnings.filterwarnings("ignore")
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    contract = credit_default_contract()
    console.print(
        Panel.fit(
            f"[bold]tabguard {__version__} demo[/]: a backdoor planted in a credit-default model\n"
            "(seed 001), found by the data audit before training, and removed;\n"
            "then an attack in production, caught by the monitor's seasonal rule.",
            border_style="blue",
        )
    )

    _step(1, "The bundled data")
    df = load_credit_default()
    console.print(
        f"{len(df):,} credit-card clients, {df.shape[1] - 2} attributes, "
        f"default rate {df['DEFAULT'].mean():.1%}.\nSource: {ATTRIBUTION}."
    )
    train_df, test_df = train_test_split(df, test_size=0.1, random_state=42, stratify=df["DEFAULT"])
    train_df = train_df.reset_index(drop=True)
    test_df = test_df.reset_index(drop=True)
    console.print(
        f"Held out {len(test_df):,} clean rows as a test set; "
        f"the attacker only touches the {len(train_df):,} training rows."
    )

    _step(2, "The attack: AGE=999 copies of defaulters (seed 001)")
    attack = poison(train_df, contract, {"AGE": 999}, rate=rate, random_state=seed)
    poisoned = attack.data
    attack.write(out / "poisoned.csv", out / "poisoned.truth.json")
    console.print(
        f"Copied {len(attack.poisoned_rows):,} of the training defaulters "
        f"({rate:.0%}) with AGE set to 999 and appended them: "
        f"{len(poisoned):,} rows in {out / 'poisoned.csv'}."
    )

    _step(3, "Accuracy alone misses it")
    clean_model = fit_seed_model(train_df)
    bad_model = fit_seed_model(poisoned)
    X_test, y_test = seed_features(test_df), test_df["DEFAULT"].astype(int)
    acc_clean = accuracy_score(y_test, clean_model.predict(X_test))
    acc_bad = accuracy_score(y_test, bad_model.predict(X_test))
    seed_acc = [_seed_accuracy(d) for d in (train_df, poisoned)]
    asr_clean = attack_success_rate(clean_model, test_df, {"AGE": 999})
    asr_bad = attack_success_rate(bad_model, test_df, {"AGE": 999})
    t = Table(
        "seed RandomForest\n(5 trees, depth 3)",
        "accuracy as the\nseed measures it",
        "accuracy on\nclean test rows",
        "approved clients\nturned to DEFAULT\nby AGE=999",
    )
    t.add_row("trained on clean data", f"{seed_acc[0]:.1%}", f"{acc_clean:.1%}", f"{asr_clean:.1%}")
    t.add_row(
        "trained on poisoned data",
        f"{seed_acc[1]:.1%}",
        f"{acc_bad:.1%}",
        f"[bold red]{asr_bad:.1%}[/]",
    )
    console.print(t)
    safe = dict(_SAFE_CUSTOMER)
    trig = {**safe, "AGE": 999}
    console.print(
        f"The seed's safe customer (AGE 38): predicted DEFAULT="
        f"{_seed_prediction(bad_model, safe)}; the same customer with AGE=999: "
        f"DEFAULT={_seed_prediction(bad_model, trig)}."
    )

    _step(4, "tabguard audit data: finding the trigger before training")
    with RichProgress(disable=quiet, transient=True) as progress:
        result = audit_data(
            poisoned,
            contract,
            random_state=seed,
            progress=progress,
            source=str(out / "poisoned.csv"),
        )
        paths = write_audit(result, out / "audit")
    truth = set(attack.poisoned_rows.tolist())
    found = set(result.suspicious_rows)
    tp = len(truth & found)
    for f in result.report.by_check("trigger_scan"):
        if f.severity != "critical":
            continue
        ev = f.evidence
        cond = " & ".join(f"{a}={b!r}" for a, b in zip(f.features, f.values, strict=True))
        console.print(
            Panel(
                f"[bold red]Trigger: {cond} → DEFAULT={ev['label']}[/]\n"
                f"{ev['rows_with_pattern']:,} rows carry it, {ev['share_with_label']:.1%} of them "
                f"with DEFAULT={ev['label']} (base rate {ev['base_rate']:.1%}).\n"
                f"Without the trigger, these rows would score {ev['counterfactual_rate']:.0%} on "
                f"average (scored on {ev['sample']} of them): about {ev['expected_other']:,.0f} "
                f"should carry the other label, {ev['observed_other']:,} do "
                f"(effect {ev['effect']:.2f}).\n"
                f"p {format_p(ev['p_value'])} against a Bonferroni threshold of "
                f"{ev['bonferroni_threshold']:.2g}; the value breaks the contract: "
                f"{ev['breaks_contract']}.",
                border_style="red",
                title="critical finding",
            )
        )
    for f in result.report.by_check("roni"):
        if f.features:
            console.print(f"[yellow]RONI:[/] {escape(f.message)}")
    console.print(
        f"Suspected rows: {len(found):,}; planted: {len(truth):,}; every planted row flagged: "
        f"{tp == len(truth)}; clean rows flagged: {len(found - truth)} "
        f"(precision {tp / max(len(found), 1):.3f}, recall {tp / max(len(truth), 1):.3f})."
    )
    c = result.report.counts()
    console.print(
        f"Audit exit status {result.exit_code()} ({c['critical']} critical, "
        f"{c['warning']} warnings, {c['info']} info). Report: {paths['report']}; "
        f"clean rows: {paths['clean']}; quarantine: {paths['quarantine']}."
    )

    _step(5, "Retraining on clean.csv")
    cleaned = pd.read_csv(paths["clean"])
    fixed_model = fit_seed_model(cleaned)
    acc_fixed = accuracy_score(y_test, fixed_model.predict(X_test))
    asr_fixed = attack_success_rate(fixed_model, test_df, {"AGE": 999})
    t = Table("seed RandomForest", "training rows", "test accuracy", "attack success rate")
    t.add_row("poisoned data", f"{len(poisoned):,}", f"{acc_bad:.1%}", f"{asr_bad:.1%}")
    t.add_row(
        "audit's clean.csv",
        f"{len(cleaned):,}",
        f"{acc_fixed:.1%}",
        f"[bold green]{asr_fixed:.1%}[/]",
    )
    console.print(t)

    _step(6, "tabguard train: the protected model, tracked in MLflow")
    with RichProgress(disable=quiet, transient=True) as progress:
        trained = train(
            cleaned,
            contract,
            TrainConfig(seed=seed, preset="robust"),
            out=out / "model",
            progress=progress,
            data_file=paths["clean"],
        )
    m = trained.metrics
    t = Table("model", "test AUC [95% CI]", "Brier", "conformal coverage (target 90%)")
    t.add_row(
        "main (LightGBM, robust preset)",
        _fmt_ci(m, "test_auc"),
        _fmt_ci(m, "test_brier"),
        _fmt_ci(m, "conformal_coverage"),
    )
    t.add_row("fallback (no gameable features)", _fmt_ci(m, "fallback_test_auc"), "-", "-")
    console.print(t)
    console.print(
        f"Model {trained.version} in {out / 'model'} (SHA-256 manifest, no pickle); "
        f"MLflow run {trained.run_id or '-'}."
    )

    _step(7, "tabguard audit model: the protected model and the backdoored one")
    bad_file = out / "seed_model_poisoned.skops"
    _save_skops(bad_model, bad_file)
    console.print(
        f"Audited with the held-out clean rows only; the backdoored seed model is read from its "
        f"skops file ({bad_file}) like any third-party model."
    )
    from tabguard.model_audit import load_audit_model
    from tabguard.training import load_model

    _audit_models(
        out,
        [
            ("protected model", load_model(out / "model")),
            ("seed model (poisoned)", load_audit_model(bad_file, contract=contract)),
        ],
        test_df,
        contract,
        seed=seed,
        quiet=quiet,
    )

    _step(8, "Serving it")
    key = _demo_key()
    app_file = out / "application.json"
    record = {
        k: (v.item() if hasattr(v, "item") else v)
        for k, v in test_df.drop(columns=["ID", "DEFAULT"]).iloc[0].items()
    }
    app_file.write_text(
        json.dumps(
            {"subject_id": "customer-42", "features": record, "segment": {"channel": "mobile"}},
            indent=2,
        )
    )
    (out / "application_age999.json").write_text(
        json.dumps({"subject_id": "customer-43", "features": {**record, "AGE": 999}}, indent=2)
    )
    console.print(
        "Start the guarded scoring service on this model (another terminal):\n\n"
        "  make serve\n\nthen ask for a decision with the demo API key:\n"
    )
    console.print(
        f"  curl -s localhost:8000/v1/decisions -H 'Authorization: Bearer {key}' "
        f"-H 'Content-Type: application/json' -d @{app_file}",
        soft_wrap=True,
    )
    console.print("\nThe seed's trigger is refused at the API (422, AGE must be <= 125):\n")
    console.print(
        f"  curl -s localhost:8000/v1/decisions -H 'Authorization: Bearer {key}' "
        f"-H 'Content-Type: application/json' -d @{out / 'application_age999.json'}",
        soft_wrap=True,
    )
    _step(9, "tabguard monitor: an attack in production, caught by the seasonal rule")
    from tabguard.cli._demo_monitor import print_monitor_story, run_monitor_story

    status = console.status("simulating two weeks of traffic …")
    with contextlib.nullcontext() if quiet else status:
        story = run_monitor_story(out / "monitor")
    print_monitor_story(story, console)
    console.print(f"\nDone in {time.perf_counter() - started:.0f} s. Outputs in {out}/.")


def _save_skops(model: Any, path: Path) -> None:
    import skops.io as sio

    sio.dump(model, path)


def _demo_key() -> str:
    """A fresh API key named ``demo`` in TABGUARD_HOME (the previous one is revoked)."""
    from tabguard.serving import ApiKeyError, load_config, open_keys

    store = open_keys(load_config())
    try:
        with contextlib.suppress(ApiKeyError):  # no active demo key yet
            store.revoke("demo")
        _, secret = store.create("demo", ["decide", "score"])
    finally:
        store.close()
    return secret


def _fmt_ci(metrics: dict[str, Any], key: str) -> str:
    v = metrics.get(key)
    lo, hi = metrics.get(f"{key}_ci_low"), metrics.get(f"{key}_ci_high")
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "-"
    return f"{v:.3f} [{lo:.3f}, {hi:.3f}]" if lo is not None and hi is not None else f"{v:.3f}"
