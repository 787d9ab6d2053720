"""benchmarks/model_backdoor.py --model-cache: a cache several runs share at once."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pandas as pd

from tests._benchmarks import load_benchmark


def _bench() -> ModuleType:
    return load_benchmark("model_backdoor.py")


def test_a_half_written_file_of_another_run_is_no_cache_hit(tmp_path, monkeypatch) -> None:
    """Another run writing the same key leaves a partial file beside the key while it copies;
    the cache must only ever hand out a model file (a ``.tmp`` sorted before ``.txt`` was
    returned and failed to load)."""
    mb = _bench()
    fits = []

    def fake_fit(kind, data, c, out):
        fits.append(kind)
        path = Path(out) / f"{kind}.txt"
        path.write_text("model")
        return path

    monkeypatch.setattr(mb, "train_and_save", fake_fit)
    monkeypatch.setattr(mb, "MODEL_CACHE", tmp_path / "cache")
    data = pd.DataFrame({"a": [1, 2]})
    out = tmp_path / "out"
    out.mkdir()
    mb._fitted("lightgbm", data, None, out, ("fraud", "clean"))
    kept = next((tmp_path / "cache").iterdir())
    assert kept.suffix == ".txt" and fits == ["lightgbm"]
    # another run's half-written copies of the same key, under any temporary name
    for name in (f"{kept.stem}.tmp", f"{kept.stem}.4242.part"):
        (tmp_path / "cache" / name).write_text("half")
    again, fit_s = mb._fitted("lightgbm", data, None, out, ("fraud", "clean"))
    assert again == kept and again.read_text() == "model" and fit_s == 0.0
    assert fits == ["lightgbm"]


def test_the_clean_models_benchmark_shares_the_safe_cache(tmp_path, monkeypatch) -> None:
    """benchmarks/model_backdoor_clean.py keeps its models the same way (it had its own copy
    of the cache, which handed out another run's half-written ``.tmp``)."""
    mbc = load_benchmark("model_backdoor_clean.py")
    fits = []

    def fake_fit(spec, train, c, out):
        fits.append(spec["seed"])
        path = Path(out) / "m.txt"
        path.write_text("model")
        return path

    monkeypatch.setattr(mbc, "fit", fake_fit)
    cache, out = tmp_path / "cache", tmp_path / "out"
    out.mkdir()
    mbc.cached_fit({"seed": 1}, pd.DataFrame(), None, out, cache)
    kept = next(cache.iterdir())
    (cache / f"{kept.stem}.tmp").write_text("half")
    again, fit_s = mbc.cached_fit({"seed": 1}, pd.DataFrame(), None, out, cache)
    assert again == kept and again.read_text() == "model" and fit_s == 0.0 and fits == [1]


def test_a_changed_training_frame_is_no_cache_hit(tmp_path, monkeypatch) -> None:
    """The cache key hashes the training frame: the same case key over other rows (a changed
    draw, poisoning or data generator) fits again instead of reading a stale model, and the
    same rows under the same key are a hit."""
    mb = _bench()
    fits = []

    def fake_fit(kind, data, c, out):
        fits.append(len(fits))
        path = Path(out) / f"{kind}.txt"
        path.write_text(f"model {len(fits)}")
        return path

    monkeypatch.setattr(mb, "train_and_save", fake_fit)
    monkeypatch.setattr(mb, "MODEL_CACHE", tmp_path / "cache")
    out = tmp_path / "out"
    out.mkdir()
    key = ("fraud", {"country": "DE"}, 0.45, 0, "target", 200)
    mb._fitted("lightgbm", pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}), None, out, key)
    same, fit_s = mb._fitted(
        "lightgbm", pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}), None, out, key
    )
    assert same.read_text() == "model 1" and fit_s == 0.0 and fits == [0]
    for changed in (
        pd.DataFrame({"a": [1, 3], "b": ["x", "y"]}),  # one value
        pd.DataFrame({"a": [2, 1], "b": ["y", "x"]}),  # the rows' order
        pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]}),  # a dtype
    ):
        path, _ = mb._fitted("lightgbm", changed, None, out, key)
        assert path.read_text() == f"model {len(fits)}"
    assert fits == [0, 1, 2, 3]
    assert len([p for p in (tmp_path / "cache").iterdir() if p.suffix == ".txt"]) == 4
