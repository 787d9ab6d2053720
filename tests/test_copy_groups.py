"""Copy groups counted over rows that are not held (the Spark engine's copy rules): batch by
batch, then summed, they equal the groups read from every row at once."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tabguard._copy_groups import (
    GroupEntries,
    copy_entries,
    copy_groups,
    hash_cells,
    keys_without,
    sample_entries,
)


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
    big = summed[sizes >= 2]
    entries = GroupEntries(
        big["key"].to_numpy(dtype=np.int64).view(np.uint64),
        big["label"].to_numpy(dtype=np.int64),
        np.frombuffer(b"".join(big["cells"]), dtype="<i4").reshape(-1, len(cols)),
        big["n"].to_numpy(dtype=np.int64),
    )
    g = copy_groups(cols, keys, codes[held], y[held], entries)

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
    # nothing is stored for a held row without a copy: only the groups of two or more
    assert g.stored == len(entries) + int((expect_size >= 2).sum())
    np.testing.assert_array_equal(g.members, np.flatnonzero(expect_size >= 2))


def test_the_held_rows_own_groups_are_the_groups_of_the_held_rows_alone() -> None:
    rng = np.random.default_rng(5)
    codes = rng.integers(0, 4, size=(300, 6)).astype(np.int32)
    y = rng.integers(0, 2, 300)
    cols = (0, 3)
    cells, total = hash_cells(codes)
    keys = keys_without(cells, total, cols)
    g = copy_groups(cols, keys, codes, y, sample_entries(keys, codes, y, cols))
    expect = np.array([(keys == k).sum() for k in keys])
    np.testing.assert_array_equal(g.size[g.group], expect)
    hit = (codes[:, 0] == 1) & (codes[:, 3] == 0) & (y == 0)
    expect_hit = np.array([(hit & (keys == k)).sum() for k in keys])
    got = g.rows_where({0: np.array([1]), 3: np.array([0])}, label=0)[g.group]
    np.testing.assert_array_equal(got, expect_hit)
    # rows alone in their group cost nothing
    assert 0 < len(g.members) == int((expect >= 2).sum()) < len(keys)


def test_cell_hashes_do_not_depend_on_the_layout_of_the_codes() -> None:
    # the Spark engine hashes the sample's codes once (column-major) for its copy groups and
    # hands the same hashes to the matrix: they must equal those of the codes in any layout
    rng = np.random.default_rng(5)
    codes = rng.integers(-1, 40, size=(500, 7)).astype(np.int32)
    c_cells, c_total = hash_cells(np.ascontiguousarray(codes))
    f_cells, f_total = hash_cells(np.asfortranarray(codes))
    assert np.array_equal(c_cells, f_cells)
    assert np.array_equal(c_total, f_total)
    assert len(np.unique(c_total)) > 490  # distinct rows hash apart
