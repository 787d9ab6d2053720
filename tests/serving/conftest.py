"""Fixtures of the scoring-service tests: tiny models (fast), a configured home, a running app."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from tabguard.contract import Contract, FeatureTransform, TransformOptions
from tabguard.datasets import credit_default_contract, load_credit_default
from tabguard.flags import MemoryFlagStore
from tabguard.io import check_labels
from tabguard.serving import (
    MemoryKeyStore,
    PredictionLog,
    ReferenceProfile,
    ScoringService,
    create_app,
    load_config,
)
from tabguard.training import ModelBundle, Scorer, load_model, save_model


def fit_scorer(
    name: str, kind: str, df: pd.DataFrame, contract: Contract, options: TransformOptions
) -> Scorer:
    """A small model of ``kind`` behind the contract transform (a few trees: fast)."""
    tr = FeatureTransform(contract, options)
    X = tr.transform_frame(df)
    y = check_labels(df, contract).to_numpy()
    if kind == "lightgbm":
        ds = lgb.Dataset(
            X, y, feature_name=tr.feature_names, categorical_feature=tr.categorical_features
        )
        params = {"objective": "binary", "num_leaves": 15, "verbose": -1, "num_threads": 1}
        native: Any = lgb.train(params, ds, 30)
    elif kind == "random_forest":
        from sklearn.ensemble import RandomForestClassifier

        native = RandomForestClassifier(n_estimators=8, max_depth=6, random_state=0).fit(X, y)
    else:
        from sklearn.compose import ColumnTransformer
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        cat = [tr.feature_names.index(n) for n in tr.categorical_features]
        num = [i for i in range(len(tr.feature_names)) if i not in cat]
        pre = ColumnTransformer(
            [
                ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), cat),
                ("num", Pipeline([("imp", SimpleImputer()), ("sc", StandardScaler())]), num),
            ]
        )
        native = Pipeline([("features", pre), ("clf", LogisticRegression(max_iter=300))]).fit(X, y)
    return Scorer(name, kind, native, tr)


@pytest.fixture(scope="session")
def train_df() -> pd.DataFrame:
    """2,000 rows of the bundled credit data."""
    return load_credit_default().sample(2000, random_state=0).reset_index(drop=True)


_DIRS: dict[str, Path] = {}


def model_dir_of(
    kind: str, factory: pytest.TempPathFactory, df: pd.DataFrame, options: TransformOptions
) -> Path:
    """A model directory (main + fallback without gameable features), built once per kind,
    options and training rows (a test that trains on other rows gets its own model)."""
    rows = int(pd.util.hash_pandas_object(df, index=False).sum())
    key = f"{kind}-{options.to_dict()}-{len(df)}-{rows}"
    if key not in _DIRS:
        c = credit_default_contract()
        main = fit_scorer("main", kind, df, c, options)
        fallback = fit_scorer(
            "fallback",
            kind,
            df,
            c,
            TransformOptions(bins=options.bins, drop=tuple(c.gameable_features())),
        )
        out = factory.mktemp(f"model_{kind}") / "model"
        _DIRS[key] = save_model(
            out, main=main, fallback=fallback, contract=c, version=f"credit_default/{kind}-test"
        )
    return _DIRS[key]


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory, train_df: pd.DataFrame) -> Path:
    """A small LightGBM model directory of the credit contract."""
    return model_dir_of("lightgbm", tmp_path_factory, train_df, TransformOptions())


@pytest.fixture(scope="session")
def bundle(model_dir: Path) -> ModelBundle:
    """The loaded small LightGBM model."""
    return load_model(model_dir)


@pytest.fixture(scope="session")
def challenger_dir(tmp_path_factory: pytest.TempPathFactory, train_df: pd.DataFrame) -> Path:
    """Another model under the same contract (logistic: its scores differ from the champion's),
    for the promotion tests of ``test_deploy.py`` and the multi-worker service."""
    c = credit_default_contract()
    main_scorer = fit_scorer("main", "logistic", train_df.head(800), c, TransformOptions())
    out = tmp_path_factory.mktemp("challenger") / "model"
    return save_model(out, main=main_scorer, contract=c, version="credit_default/challenger")


@pytest.fixture(scope="session")
def reference(train_df: pd.DataFrame) -> ReferenceProfile:
    """The reference profile of the training rows."""
    return ReferenceProfile.from_frame(train_df, credit_default_contract())


@pytest.fixture(scope="session")
def sample_records(train_df: pd.DataFrame) -> list[dict[str, Any]]:
    """Real records (feature columns only) as JSON-ready dicts."""
    c = credit_default_contract()
    rows = train_df[list(c.features)].head(200).to_dict(orient="records")
    return [{k: v.item() if isinstance(v, np.generic) else v for k, v in r.items()} for r in rows]


def write_config(home: Path, text: str = "") -> None:
    """Write ``tabguard.toml`` (memory stores unless the text overrides them)."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "tabguard.toml").write_text(text, encoding="utf-8")


class Harness:
    """A service with in-memory keys/flags, a SQLite log, and a started TestClient."""

    def __init__(self, home: Path, bundle: ModelBundle, **kw: Any) -> None:
        self.home = home
        self.keys = MemoryKeyStore()
        self.flags = MemoryFlagStore()
        self.key = self.keys.create("bank-a", "decide,score")[1]
        self.decide_key = self.keys.create("web-app", "decide")[1]
        self.score_only_key = self.keys.create("reader", "score")[1]
        self.admin_key = self.keys.create("ops", "admin")[1]
        cfg = load_config(home)
        stores = {"key_store": self.keys, "flag_store": self.flags, **kw}
        self.service = ScoringService(bundle, cfg, **stores)
        self.app = create_app(service=self.service)
        self.client = TestClient(self.app, raise_server_exceptions=False)

    def __enter__(self) -> Harness:
        self.client.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.__exit__(*exc)

    @property
    def log(self) -> PredictionLog:
        return self.service.log

    def post(self, body: Any, key: str | None = "default", **kw: Any) -> Any:
        headers = dict(kw.pop("headers", {}))
        if key == "default":
            key = self.key
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        if isinstance(body, bytes | str):
            return self.client.post("/v1/decisions", content=body, headers=headers, **kw)
        return self.client.post("/v1/decisions", json=body, headers=headers, **kw)

    def set_flag(self, name: str, value: Any) -> None:
        """Set a flag and make the running service see it now (the watcher polls anyway)."""
        self.flags.set(name, value, actor="test")
        self.service.watcher.refresh()

    def records(self) -> pd.DataFrame:
        self.service.refusals.flush(everything=True)  # unauthenticated refusals' summaries
        assert self.log.flush(10)
        return self.log.query()


@pytest.fixture
def harness_factory(tmp_path: Path, bundle: ModelBundle) -> Iterator[Callable[..., Harness]]:
    """Build started harnesses: ``harness_factory(toml_text, **stores)``."""
    made: list[Harness] = []

    def make(toml: str = "", model: ModelBundle | None = None, **kw: Any) -> Harness:
        home = tmp_path / f"home{len(made)}"
        text = toml
        if "[log]" not in text:
            text += "\n[log]\nflush_interval = 0.05\nretry_interval = 0.1\n"
        if "[limits]" not in text:
            text += '\n[limits]\nper_client = "off"\n'
        write_config(home, text)
        h = Harness(home, model or bundle, **kw).__enter__()
        made.append(h)
        return h

    yield make
    for h in made:
        h.__exit__(None, None, None)


def body_of(record: dict[str, Any], subject: str = "cust-1", **extra: Any) -> dict[str, Any]:
    """A decision request body."""
    return {"subject_id": subject, "features": dict(record), **extra}
