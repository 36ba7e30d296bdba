"""The one group chooser (onnxprune/choose.py) that select and the optimizers share: greedy order under
family caps and axis budgets, rounding of kept counts, admissible regions, and the table both compile."""

from __future__ import annotations

import numpy as np

from onnxprune.choose import Budget, choose_groups, greedy_order, group_table, pick_admissible, round_kept
from onnxprune.optim.groups import group_layout
from onnxprune.space import PRODUCER, ErasingSpace, Family, Member, PruningSpace, Region


def _space() -> PruningSpace:
    """Family 0: 4 groups on w0; family 1: 3 groups on w1, whose groups 0 and 1 alone also feed the
    two indices of `split` (taking both would empty that axis)."""
    rows = np.arange(4).reshape(4, 1)
    split = np.array([[0], [1], [-1]])
    return PruningSpace((
        Family(0, "a", 4, "channel", (Member("w0", 0, rows, PRODUCER),)),
        Family(1, "b", 3, "head", (Member("w1", 0, rows[:3], PRODUCER), Member("split", 0, split, PRODUCER))),
    ))


def test_greedy_order_takes_the_lowest_first_within_caps_and_axes():
    space = _space()
    table = group_table(space, space.prunable)
    scores = np.array([0.5, 0.1, 0.9, 0.2, 0.0, 0.05, 0.3])  # family b's groups are 4, 5, 6
    order = greedy_order(table, scores, {0: 2, 1: 2}, Budget(table))
    # 4 (b0), 5 (b1: would empty `split` with b0, skipped), 1, 3 (a: cap 2 reached), 6 (b2), then a's rest is capped
    assert order == [4, 1, 3, 6]
    assert greedy_order(table, scores, {0: 2, 1: 2}, Budget(table), limit=2) == order[:2]


def test_round_kept_nearest_takes_more_and_fewer_only_gives_back():
    space = _space()
    table = group_table(space, space.prunable)
    scores = np.array([0.5, 0.1, 0.9, 0.2, 0.0, 0.05, 0.3])
    # family a keeps 4 of 4; the nearest multiple of 3 is 3: its least important group goes
    assert round_kept(table, {0: []}, scores, {0: 3}, {0: 3}, Budget(table), "nearest") == {0: [1]}
    assert round_kept(table, {0: []}, scores, {0: 3}, {0: 3}, Budget(table), "fewer") == {0: []}
    budget = Budget(table)
    budget.take(1), budget.take(3)
    # picks 1 and 3 keep 2: the nearest multiple and the next one up are both 3: the more important pick goes back
    assert round_kept(table, {0: [1, 3]}, scores, {0: 3}, {0: 3}, budget.copy(), "nearest") == {0: [1]}
    assert round_kept(table, {0: [1, 3]}, scores, {0: 3}, {0: 3}, budget.copy(), "fewer") == {0: [1]}


def test_choose_groups_keeps_multiples_and_fills_with_whole_blocks():
    space = _space()
    table = group_table(space, space.prunable)
    scores = np.array([0.1, 0.2, 0.3, 0.9, 0.8, 0.85, 0.95])
    chosen = choose_groups(table, scores, 3, np.zeros(7, dtype=bool), step=2)
    # greedy: a0, a1 (family a may lose 4 - 2 = 2: it keeps one step), then b's lowest, 4 (b may lose 1);
    # every family keeps a multiple of 2 (a: 2, b: 2)
    assert np.flatnonzero(chosen).tolist() == [0, 1, 4]
    # one more wanted: a further pick would break a block, and no whole block fits, so the count is missed
    assert np.flatnonzero(choose_groups(table, scores, 4, np.zeros(7, dtype=bool), step=2)).tolist() == [0, 1, 4]


def test_pick_admissible_never_takes_a_set_whole():
    assert pick_admissible([3, 1, 2, 0], 3, [(1, 3)]) == [3, 2, 0]
    assert pick_admissible([3, 2, 0], 3, [(1, 3)], erased=[1]) == [2, 0]


def test_the_layout_carries_what_choosing_needs():
    """The optimizers get sizes, axis budgets and region exclusivity from their layout: the same table
    select compiles from the space, regions numbered after the channel groups."""
    space = _space()
    regions = tuple(Region(i, f"e{i}", f"x{i}", f"add{i}", 1, (f"op{i}",), (f"r{i}",), group=(f"r{i}",))
                    for i in range(3))
    erasing = ErasingSpace(regions, exclusive=((0, 1), (1, 2)))
    shapes = {"w0": (4, 2), "w1": (3, 2), "split": (2,), "r0": (2,), "r1": (2,)}  # r2 is not trainable
    layout = group_layout(space, shapes, erasing=erasing)
    table = layout.table
    compiled = group_table(space, space.prunable)
    assert table.family_size == {0: 4, 1: 3} == compiled.family_size
    assert table.rows[:7] == compiled.rows and table.capacity == compiled.capacity
    assert table.family_of.tolist() == [0, 0, 0, 0, 1, 1, 1, -1, -2]
    assert table.exclusive == ((7, 8),)  # (1, 2) holds region 2, which the layout left out: it can never go whole
    assert any("region 2" in reason for reason in layout.skipped)
