"""Which groups to remove: the one greedy choice that `select` (one shot) and the group-sparse optimizers
(HESSO, DHSPG, HESSO-CRIC) share. Scores in, chosen groups out; numpy and plain Python only.

A `GroupTable` is what a choice needs to know of a PruningSpace, compiled once: the candidate groups
numbered globally (each family's groups in order, then the erasable regions), each family's size,
the indices every group holds on every member axis (so no axis is emptied: one output of a Split
that only some groups feed, say), and which sets of regions may not all be erased. The optimizers
hold one inside their `GroupLayout` and never see the PruningSpace; `select` compiles one per run.

The choice itself, lowest score first:
- `greedy_order`: walk the groups by (score, global index), take each while its family stays under its
  cap and every axis keeps an index. What it skips never depends on where it stops, so a greedy
  stopped at any count takes a prefix of the full walk (`select` bisects over that prefix).
- `round_kept`: make every family's kept count a multiple of its step, by giving back its most
  important picks or taking its next least important groups (`nearest`, what `select` does), or only
  by giving back (`fewer`, what an optimizer does: it must not exceed its quota).
- `fill_blocks`: after `fewer`, whole blocks of a step, cheapest block first, while that brings the
  total closer to the count.
- `choose_groups`: the three in a row, for a count of groups (the optimizers' quota).
- `pick_admissible`: regions in order, skipping any whose erasure would leave a merge without input.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .space import Family, PruningSpace


@dataclass(frozen=True, eq=False)
class GroupTable:
    """Candidate groups and their constraints (see module docstring). Group g belongs to family
    `family_of[g]` (a region group has -1 - region id there) as its `local[g]`-th group."""

    family_of: np.ndarray
    local: np.ndarray
    family_size: dict[int, int]
    rows: tuple[tuple[tuple[int, int], ...], ...]  # per group: (axis, indices it holds there), nonzero only
    capacity: tuple[int, ...]  # per axis: the indices that groups of any family of the space hold there
    exclusive: tuple[tuple[int, ...], ...] = ()  # sets of region groups that may not all be erased

    @property
    def n_groups(self) -> int:
        """Number of candidate groups."""
        return len(self.family_of)

    def groups_of(self, family_id: int) -> np.ndarray:
        """Global indices of the groups of one family, in local order."""
        return np.flatnonzero(self.family_of == family_id)


def group_table(space: PruningSpace, families: Sequence[Family], regions: Sequence[int] = (),
                exclusive: Iterable[Iterable[int]] = ()) -> GroupTable:
    """Compile the table of `families` (groups numbered in this order) followed by one group per
    region id in `regions`. Axis capacities count every family of `space` (a frozen family's indices
    stay whatever is chosen). `exclusive` holds sets of region ids that may not all go; a set with a
    region outside `regions` can never be wholly erased here and is dropped."""
    axis_ids: dict[tuple[str, int], int] = {}
    capacity: list[int] = []
    per_family: dict[int, list[tuple[int, list[int]]]] = {}
    for family in space.families:
        entries = []
        for member in family.members:
            key = (member.value, member.axis)
            if key not in axis_ids:
                axis_ids[key] = len(capacity)
                capacity.append(0)
            counts = (member.table >= 0).sum(axis=1)
            capacity[axis_ids[key]] += int(counts.sum())
            entries.append((axis_ids[key], counts.tolist()))
        per_family[family.id] = entries
    family_of: list[int] = []
    local: list[int] = []
    rows: list[tuple[tuple[int, int], ...]] = []
    for family in families:
        entries = per_family[family.id]
        family_of.extend([family.id] * family.size)
        local.extend(range(family.size))
        rows.extend(tuple((axis, counts[g]) for axis, counts in entries if counts[g]) for g in range(family.size))
    group_of_region = {}
    for region in regions:
        group_of_region[region] = len(family_of)
        family_of.append(-1 - region)
        local.append(0)
        rows.append(())
    sets = tuple(tuple(group_of_region[r] for r in s) for s in exclusive if all(r in group_of_region for r in s))
    return GroupTable(np.asarray(family_of, dtype=np.int64), np.asarray(local, dtype=np.int64),
                      {f.id: f.size for f in families}, tuple(rows), tuple(capacity), sets)


class Budget:
    """How many indices each axis has left as groups are taken (the table's `capacity` at first)."""

    def __init__(self, table: GroupTable) -> None:
        self.rows = table.rows
        self.left = list(table.capacity)

    def copy(self) -> Budget:
        """An independent budget in the same state."""
        other = object.__new__(Budget)
        other.rows, other.left = self.rows, list(self.left)
        return other

    def take(self, group: int) -> bool:
        """Reserve the group's indices if every axis keeps at least one; say whether it did."""
        rows, left = self.rows[group], self.left
        if any(left[axis] - count < 1 for axis, count in rows):
            return False
        for axis, count in rows:
            left[axis] -= count
        return True

    def give_back(self, group: int) -> None:
        """Undo `take`."""
        for axis, count in self.rows[group]:
            self.left[axis] += count


class AxisBudget:
    """A `Budget` over every family of a space, addressed by (family, group inside it): for callers that
    walk families themselves (the narrowest model, tests drawing random selections)."""

    def __init__(self, space: PruningSpace) -> None:
        table = group_table(space, space.families)
        self._budget = Budget(table)
        self._first = {int(f): int(table.groups_of(int(f))[0]) for f in np.unique(table.family_of)}

    def copy(self) -> AxisBudget:
        """An independent budget in the same state."""
        other = object.__new__(AxisBudget)
        other._budget, other._first = self._budget.copy(), self._first
        return other

    def take(self, family: Family, group: int) -> bool:
        """Reserve the group's indices if every axis keeps at least one; say whether it did."""
        if not 0 <= group < family.size:  # the flat numbering would reach the next family's groups
            raise IndexError(f"group {group} of family {family.id}, which has {family.size}")
        return self._budget.take(self._first[family.id] + group)

    def give_back(self, family: Family, group: int) -> None:
        """Undo `take`."""
        self._budget.give_back(self._first[family.id] + group)


def ranked(scores: np.ndarray, candidates: np.ndarray | None = None) -> list[int]:
    """Candidate groups by ascending score, ties by global index."""
    order = np.lexsort((np.arange(len(scores)), scores))
    return [int(g) for g in (order if candidates is None else order[candidates[order]])]


def greedy_order(table: GroupTable, scores: np.ndarray, caps: dict[int, int], budget: Budget,
                 candidates: np.ndarray | None = None, limit: int | None = None) -> list[int]:
    """Channel groups (of `candidates`, default all) lowest score first that fit: their family has
    fewer than `caps[family]` picks and `budget` can take them (it is charged). Stops after `limit`."""
    mask = table.family_of >= 0 if candidates is None else candidates & (table.family_of >= 0)
    family_of = table.family_of
    taken = dict.fromkeys(caps, 0)
    picked = []
    for g in ranked(scores, mask):
        if limit is not None and len(picked) >= limit:
            break
        family = int(family_of[g])
        if taken[family] >= caps[family] or not budget.take(g):
            continue
        taken[family] += 1
        picked.append(g)
    return picked


def nearest_removal(size: int, removed: int, step: int, cap: int) -> int:
    """A removal count whose kept count is the multiple of `step` nearest to `size - removed`: at least
    one step kept, at most `cap` removed, a family no wider than a step left whole."""
    if step <= 1:
        return removed
    if size <= step:
        return 0
    kept = max(step, round((size - removed) / step) * step)
    while size - kept > cap:
        kept += step
    return max(0, size - kept)


def round_kept(table: GroupTable, picked: dict[int, list[int]], scores: np.ndarray, steps: dict[int, int],
               caps: dict[int, int], budget: Budget, how: Literal["nearest", "fewer"],
               removed: dict[int, int] | None = None) -> dict[int, list[int]]:
    """Per family, its picks (global groups, in the order taken) changed so that its kept count, with
    `removed[family]` groups gone before, is a multiple of `steps[family]`: `nearest` (within the cap,
    taking the family's next least important groups the budget allows, or giving back), or `fewer`
    (only giving back). The most important picks go back first (ties: the later pick). `budget` holds
    the picks and is kept in step."""
    removed = removed or {}
    out = {}
    for family, groups in picked.items():
        step, size = steps.get(family, 1), table.family_size[family]
        groups = list(groups)
        if step > 1:
            gone = removed.get(family, 0)
            if how == "nearest":
                count = nearest_removal(size, len(groups), step, caps[family])
            else:
                count = max(0, len(groups) - (-(size - gone - len(groups))) % step)
            if count > len(groups):
                already = set(groups)
                mine = table.groups_of(family)
                for g in mine[np.lexsort((mine, scores[mine]))]:
                    if len(groups) >= count:
                        break
                    if int(g) not in already and budget.take(int(g)):
                        groups.append(int(g))
            elif count < len(groups):
                back = set(give_back_order(groups, scores)[:len(groups) - count])
                for g in back:
                    budget.give_back(g)
                groups = [g for g in groups if g not in back]
        out[family] = groups
    return out


def give_back_order(groups: list[int], scores: np.ndarray) -> list[int]:
    """Picks most important first (ties: the later pick): the order in which they are given back."""
    position = np.arange(len(groups))
    return [groups[i] for i in np.lexsort((-position, -scores[np.asarray(groups, dtype=np.int64)]))] \
        if groups else []


def fill_blocks(table: GroupTable, picked: dict[int, list[int]], order: list[int], scores: np.ndarray,
                count: int, step: int, budget: Budget, removed: dict[int, int]) -> None:
    """Add blocks of `step` groups to `picked`, the block of lowest mean score first (a family's next
    `step` candidates of `order`), while that brings the total closer to `count` and the family keeps
    at least one step. A family whose block would empty an axis takes no more blocks."""
    candidates: dict[int, list[int]] = {}
    for g in order:  # per family, its groups not picked yet, lowest score first
        family = int(table.family_of[g])
        if g not in picked.get(family, ()):
            candidates.setdefault(family, []).append(g)
    taken = sum(len(groups) for groups in picked.values())
    while count - taken >= (step + 1) // 2:
        best, best_score = None, None
        for family, left in candidates.items():
            kept = table.family_size[family] - removed.get(family, 0) - len(picked.get(family, ()))
            if len(left) < step or kept - step < step:
                continue
            score = float(np.mean(scores[left[:step]]))
            if best_score is None or score < best_score:
                best, best_score = family, score
        if best is None:
            return
        block, candidates[best] = candidates[best][:step], candidates[best][step:]
        done = []
        for g in block:
            if not budget.take(g):
                break
            done.append(g)
        if len(done) < len(block):  # an axis would empty: this family takes no more blocks
            for g in done:
                budget.give_back(g)
            candidates[best] = []
            continue
        picked.setdefault(best, []).extend(block)
        taken += step


def choose_groups(table: GroupTable, scores: np.ndarray, count: int, excluded: np.ndarray,
                  step: int = 1) -> np.ndarray:
    """Boolean mask of about `count` lowest-scored channel groups outside `excluded`, such that with the
    excluded ones gone no family and no axis is emptied. With `step` > 1 every family keeps a multiple
    of `step` groups (at least one step): picks that break a block are given back, and whole blocks
    fill the shortfall while that brings the total closer to `count`."""
    chosen = np.zeros(table.n_groups, dtype=bool)
    if count <= 0:
        return chosen
    budget = Budget(table)
    removed: dict[int, int] = {}
    for g in np.flatnonzero(excluded & (table.family_of >= 0)):
        budget.take(int(g))
        removed[int(table.family_of[g])] = removed.get(int(table.family_of[g]), 0) + 1
    keep_at_least = max(1, step)
    caps = {f: size - keep_at_least - removed.get(f, 0) for f, size in table.family_size.items()}
    candidates = ~excluded & (table.family_of >= 0)
    picks = greedy_order(table, scores, caps, budget, candidates, limit=count)
    picked: dict[int, list[int]] = {}
    for g in picks:
        picked.setdefault(int(table.family_of[g]), []).append(g)
    if step > 1:
        picked = round_kept(table, picked, scores, dict.fromkeys(table.family_size, step), caps, budget, "fewer",
                            removed)
        fill_blocks(table, picked, ranked(scores, candidates), scores, count, step, budget, removed)
    for groups in picked.values():
        chosen[groups] = True
    return chosen


def pick_admissible(order: Iterable[int], count: int, exclusive: Sequence[Iterable[int]],
                    erased: Iterable[int] = ()) -> list[int]:
    """Up to `count` items of `order`, in order, such that with `erased` no set of `exclusive` is taken
    whole (erasing every input of a merge)."""
    sets = [set(s) for s in exclusive]
    taken = list(erased)
    picked: list[int] = []
    for item in order:
        if len(picked) >= count:
            break
        trial = set(taken) | {item}
        if not any(s <= trial for s in sets):
            taken.append(item)
            picked.append(item)
    return picked
