"""Small LightGBM models the data audit uses as statistical instruments.

* :func:`fit_context_model` learns P(label | raw features) on (a sample of) the audited rows; the
  trigger scan asks it what a row would score *without* a suspected trigger value.
* :func:`out_of_fold_proba` gives out-of-fold probabilities for label-noise and RONI checks;
  :func:`cross_fitted_proba` also scores rows outside the data (a trusted sample) the same way.

Both see raw values (``AuditMatrix.raw``) — never the clipped contract transform — so that a
poisoned value stays visible.
"""

from __future__ import annotations

import warnings
from typing import Any

import lightgbm as lgb
import numpy as np
from sklearn.model_selection import StratifiedKFold

from tabguard.data_audit._spare import NO_SPARE, Spare

_PARAMS: dict[str, Any] = {
    "objective": "binary",
    "learning_rate": 0.08,
    "num_leaves": 31,
    "min_child_samples": 40,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.9,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "verbose": -1,
}


def _threads(n_rows: int) -> int:
    # One thread: these models fit samples of at most ~150k rows, where threads gain little,
    # and OpenMP threads spin-waiting against other work on a busy machine made fits up to
    # 20x slower (measured on the project's 2-core box). It also makes audits reproducible.
    return 1


#: Widest data whose models are fitted with row-wise histograms (:func:`histogram_layout`).
ROW_WISE_COLUMNS = 100


def histogram_layout(n_columns: int) -> dict[str, Any]:
    """LightGBM parameters fixing how histograms are built: row by row for data up to
    :data:`ROW_WISE_COLUMNS` columns, else LightGBM's own choice.

    Left to itself, LightGBM times both layouts at the start of every fit and keeps the faster
    on that first test; on the audit's instruments (tens of columns, at most 150,000 rows) it
    mostly keeps the column-wise one, which takes 7-16 % longer over the whole fit, and the
    test itself is paid on each of a million-row audit's dozen fits. Both layouts add each
    row's gradients to its bins in row order, so the trees are the same: every fit of the
    audits of credit, fraud (60,000 rows; 8,000 poisoned) and audit_scale's million rows,
    fitted both ways, gave the same model text (docs/benchmarks.md, session 19, speed3).
    """
    return {"force_row_wise": True} if n_columns <= ROW_WISE_COLUMNS else {}


LARGE_ROWS = 200_000


def instrument_rounds(n_rows: int, rounds: int) -> tuple[int, float]:
    """Boosting rounds and learning rate of an instrument model for data of ``n_rows``.

    Beyond :data:`LARGE_ROWS` rows, half the rounds at twice the learning rate: predictions
    cost in proportion to the trees (a million rows for label noise, hundreds of thousands of
    counterfactual rows for the trigger scan), and the models are fitted on samples of at most
    100,000 rows, where 60 rounds at 0.16 fit about as well as 120 at 0.08.
    """
    lr = float(_PARAMS["learning_rate"])
    return (max(rounds // 2, 20), 2 * lr) if n_rows > LARGE_ROWS else (rounds, lr)


def fit_context_model(
    X: np.ndarray,
    y: np.ndarray,
    categorical: list[int],
    *,
    max_rows: int = 100_000,
    rounds: int = 120,
    random_state: int = 0,
    learning_rate: float | None = None,
    params: dict[str, Any] | None = None,
    rows: np.ndarray | None = None,
    weight: np.ndarray | None = None,
    valid_rows: np.ndarray | None = None,
    stop_after: int = 20,
) -> lgb.Booster:
    """Fit a gradient-boosted model of the label on (a sample of) ``X``.

    Parameters
    ----------
    X : ndarray (n, d)
        Raw feature matrix (categories as integer ids, NaN for missing).
    y : ndarray (n,)
        0/1 labels.
    categorical : list of int
        Columns holding category ids.
    max_rows : int
        Rows sampled for fitting (the model is an instrument; 100k rows are plenty).
    rounds : int
    random_state : int
    learning_rate : float, optional
        Default 0.08.
    params : dict, optional
        LightGBM parameters replacing the defaults (e.g. shallower trees for a small sample).
    rows : ndarray of int, optional
        The rows of ``X`` and ``y`` to fit on (default all); the same sample as fitting on
        ``X[rows]``, without copying the rows that are not sampled.
    weight : ndarray (n,), optional
        Per-row weights (of every row of ``X``): repeated records weighted down so that each
        record counts once (upsampled data would otherwise shift the model's odds).
    valid_rows : ndarray of int, optional
        Rows of ``X`` (not fitted on) whose weighted log-loss stops the fit: at most
        ``rounds`` rounds, and the booster predicts with the round where that loss was
        lowest, once ``stop_after`` rounds have not lowered it.
    stop_after : int
        Rounds without a lower held-out loss after which the fit stops (with ``valid_rows``
        only; default 20).

    Returns
    -------
    lightgbm.Booster
    """
    rng = np.random.default_rng(random_state)
    rows = np.arange(len(X)) if rows is None else np.asarray(rows)
    idx = rows if len(rows) <= max_rows else rows[rng.choice(len(rows), max_rows, replace=False)]
    params = {
        **_PARAMS,
        **(params or {}),
        "seed": random_state,
        "num_threads": _threads(len(idx)),
        **histogram_layout(X.shape[1]),
    }
    if learning_rate is not None:
        params["learning_rate"] = learning_rate

    def dataset(at: np.ndarray, reference: lgb.Dataset | None = None) -> lgb.Dataset:
        return lgb.Dataset(
            X[at],
            label=y[at],
            weight=None if weight is None else weight[at],
            categorical_feature=categorical or "auto",
            reference=reference,
        )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = dataset(idx)
        if valid_rows is None:
            return lgb.train(params, ds, num_boost_round=rounds)
        return lgb.train(
            params,
            ds,
            num_boost_round=rounds,
            valid_sets=[dataset(valid_rows, ds)],
            callbacks=[lgb.early_stopping(stop_after, verbose=False)],
        )


#: rows of a block of predictions an idle lane may take (:func:`predict` with ``spare``)
PREDICT_BLOCK = 16_384


def predict(model: lgb.Booster, X: np.ndarray, spare: Spare = NO_SPARE) -> np.ndarray:
    """P(label = 1) for the rows of ``X``.

    With ``spare`` (``AuditContext.spare``) and an idle lane, blocks of at least
    :data:`PREDICT_BLOCK` rows (at most 8) are predicted by this thread and that lane: the
    same predictions, each row's being its own.
    """
    parts = min(len(X) // PREDICT_BLOCK, 8) if spare.lending else 1
    if parts <= 1:
        return np.asarray(model.predict(X, num_threads=_threads(len(X))), dtype=float)
    ends = np.linspace(0, len(X), parts + 1).astype(np.int64)
    blocks = spare.map(lambda i: predict(model, X[ends[i] : ends[i + 1]]), parts)
    return np.concatenate(blocks)


def out_of_fold_proba(
    X: np.ndarray,
    y: np.ndarray,
    categorical: list[int],
    *,
    folds: int = 3,
    max_train_rows: int = 150_000,
    rounds: int = 150,
    random_state: int = 0,
    learning_rate: float | None = None,
) -> np.ndarray:
    """Out-of-fold P(label = 1) for every row.

    Each fold's model is fitted on at most ``max_train_rows`` rows of the other folds, so the
    cost stays bounded on millions of rows while every row gets an honest prediction.
    """
    oof, _ = cross_fitted_proba(
        X,
        y,
        categorical,
        X[:0],
        folds=folds,
        max_train_rows=max_train_rows,
        rounds=rounds,
        random_state=random_state,
        learning_rate=learning_rate,
    )
    return oof


def cross_fitted_proba(
    X: np.ndarray,
    y: np.ndarray,
    categorical: list[int],
    X_new: np.ndarray,
    *,
    folds: int = 3,
    max_train_rows: int = 150_000,
    rounds: int = 150,
    random_state: int = 0,
    learning_rate: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold P(label = 1) for the rows of ``X``, and for the rows of ``X_new``.

    Each row of ``X_new`` is given a random fold and scored by that fold's model, so it is
    treated like one more held-out member of the fold: where ``X_new`` and ``X`` come from one
    population, the two sets of predictions are exchangeable.

    Returns
    -------
    (oof, new) : tuple of ndarray
    """
    out = np.empty(len(X), dtype=float)
    new = np.empty(len(X_new), dtype=float)
    assign = np.random.default_rng(random_state).integers(folds, size=len(X_new))
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=random_state)
    for i, (train, test) in enumerate(skf.split(np.zeros(len(y)), y)):
        model = fit_context_model(
            X,
            y,
            categorical,
            rows=train,
            max_rows=max_train_rows,
            rounds=rounds,
            random_state=random_state + i,
            learning_rate=learning_rate,
        )
        out[test] = predict(model, X[test])
        mine = assign == i
        if mine.any():
            new[mine] = predict(model, X_new[mine])
    return out, new
