"""benchmarks/clean_data.py: the clean variants are drawn, reproducible, and audited."""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pytest

from tests._benchmarks import load_benchmark


def _bench() -> ModuleType:
    return load_benchmark("clean_data.py")


@pytest.mark.parametrize("dataset", ["credit", "fraud"])
def test_every_kind_draws_clean_rows_reproducibly(dataset: str) -> None:
    cd = _bench()
    for kind in cd.KINDS:
        v = cd.make_variant(dataset, kind, 11, 600)
        again = cd.make_variant(dataset, kind, 11, 600)
        assert len(v.data) == v.params["rows"] > 0, kind
        assert v.data.equals(again.data), kind  # a printed line can be re-run
        label = v.contract.label.column
        assert set(v.data[label].unique()) <= {v.contract.label.positive, v.contract.label.negative}
        if v.contract.id:
            assert v.data[v.contract.id].is_unique, kind
        if kind == "panel":
            assert v.contract.entity == "ACCOUNT"
            # one account: its label and static attributes do not change
            static = [
                c for c in v.contract.model_features() if c not in cd.amounts(v.data, v.contract)
            ]
            per = v.data.groupby("ACCOUNT")[[label, *static]].nunique()
            assert (per.to_numpy() == 1).all()


def test_a_tiny_run_prints_its_seed_and_each_line(capsys) -> None:
    cd = _bench()
    assert (
        cd.main(
            ["--random", "2", "--seed", "3", "--rows", "800", "--checks", "integrity,trigger_scan"]
        )
        == 0
    )
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("# clean_data: --random 2 --seed 3")
    lines = [x for x in out if x.startswith("#1 ") or x.startswith("#2 ")]
    assert len(lines) == 2 and all("--variant " in x and "suspected " in x for x in lines)
    assert out[-1].startswith("# clean variants with a false alarm: ")
    assert np.all(
        [
            cd.draw(2, 3, ["credit", "fraud"], list(cd.KINDS))
            == cd.draw(2, 3, ["credit", "fraud"], list(cd.KINDS))
        ]
    )
