"""Copy groups counted over rows that are not held (the Spark engine's copy rules): batch by
batch, then summed, they equal the groups read from every row at once."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tabguard._copy_groups import copy_entries, copy_groups, hash_cells, keys_without


def test_groups_from_batches_of_every_row_match_the_groups_of_all_rows() -> None:
    rng = np.random.default_rng(3)
    codes = rng.integers(0, 3, size=(400, 4)).astype(np.int32)
    # copies of rows 0-19 that differ in feature 1 only, some with the other label
    codes[300:320] = codes[:20]
    codes[300:320, 1] = 7
    y = rng.integers(0, 2, 400)
    held = np.sort(rng.choice(400, 60, replace=False))  # the driver's rows
    cols = (1,)
    cells, total = hash_cells(codes[held])
    keys = keys_without(cells, total, cols)
    wanted = [np.unique(keys)]
    # what the workers emit per batch, summed per group, label and value as Spark does
    parts = [copy_entries(codes[a : a + 150], y[a : a + 150], [cols], wanted) for a in (0, 150)]
    parts.append(copy_entries(codes[300:], y[300:], [cols], wanted))
    summed = pd.concat(parts).groupby(["s", "key", "label", "cells"], as_index=False)["n"].sum()
    sizes = summed.groupby("key")["n"].transform("sum")
    g = copy_groups(cols, keys, codes[held][:, list(cols)], y[held], summed[sizes >= 2])

    all_cells, all_total = hash_cells(codes)
    all_keys = keys_without(all_cells, all_total, cols)
    expect_size = np.array([(all_keys == k).sum() for k in all_keys[held]])
    np.testing.assert_array_equal(g.size[g.group], expect_size)
    # every row of a group, held or not, alone or not, has its value and label in it
    np.testing.assert_array_equal(g.rows_where({1: np.arange(8)})[g.group], expect_size)
    # rows of each held row's group with value 7 of feature 1 and label 1, over every row
    hit = (codes[:, 1] == 7) & (y == 1)
    expect_hit = np.array([(hit & (all_keys == k)).sum() for k in all_keys[held]])
    got = g.rows_where({1: np.array([7])}, label=1)[g.group]
    np.testing.assert_array_equal(got, expect_hit)
    # a held copy whose original is not held still has a group of two
    lone = [i for i, r in enumerate(held) if 300 <= r < 320 and r - 300 not in held]
    assert lone and (g.size[g.group[lone]] >= 2).all()
