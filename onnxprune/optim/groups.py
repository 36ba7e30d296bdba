"""Where the groups of a PruningSpace live inside the parameter tensors, as flat segment tables.

A group (one channel or head of a prunable family) is every producer parameter slice that vanishes
with it (DESIGN §5): output channels of the conv, its bias, the BatchNorm scale and shift, ... The
optimizers never loop over groups: for each (tensor, axis) that carries groups they reduce the
tensor along every other axis once, then scatter the per-index sums into per-group sums, and scale
or zero groups by multiplying the tensor with a per-index factor. `GroupLayout` is the table that
makes that possible: for every such (tensor, axis), the group of each index. It also carries the
compiled `choose.GroupTable` (family sizes, axis budgets, which regions may not all be erased), so the
optimizers choose groups from the layout alone, with the function `select` uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..choose import GroupTable, group_table
from ..space import ErasingSpace, PruningSpace, Selection


@dataclass(frozen=True)
class AxisGroups:
    """Axis `axis` of parameter `tensor`: `group_of_index[i]` is the global group of index i (-1: none).
    `axis` None means the whole tensor belongs to the one group in `group_of_index` (an erasable
    region's group, which may overlap the tensor's channel groups)."""

    tensor: str
    axis: int | None
    group_of_index: np.ndarray


@dataclass(frozen=True)
class GroupLayout:
    """The groups of every prunable family, numbered globally, and where their elements lie; `table`
    holds what choosing them needs (family sizes, axis budgets, which regions may not all be erased),
    so an optimizer needs the layout alone, not the PruningSpace."""

    table: GroupTable
    axes: tuple[AxisGroups, ...]
    skipped: tuple[str, ...] = ()  # families left out, with the reason

    @property
    def family_of_group(self) -> np.ndarray:
        """Global group -> family id (-1 - region id for an erasable region's group)."""
        return self.table.family_of

    @property
    def local_group(self) -> np.ndarray:
        """Global group -> its index inside the family."""
        return self.table.local

    @property
    def n_groups(self) -> int:
        """Number of groups the optimizer may drive to zero."""
        return self.table.n_groups

    @property
    def families(self) -> np.ndarray:
        """Family ids that have groups here, ascending."""
        return np.unique(self.family_of_group)

    @property
    def is_region(self) -> np.ndarray:
        """Per group: True for erasable-region groups (their family id is -1 - region id)."""
        return self.family_of_group < 0

    def selection(self, zero: np.ndarray) -> Selection:
        """The Selection that prunes (or erases) the global groups flagged in `zero` (one bool per group)."""
        pruned: dict[int, list[int]] = {}
        erased = []
        for g in np.flatnonzero(np.asarray(zero, dtype=bool)):
            family = int(self.family_of_group[g])
            if family < 0:
                erased.append(-1 - family)
            else:
                pruned.setdefault(family, []).append(int(self.local_group[g]))
        return Selection({f: tuple(groups) for f, groups in pruned.items()}, tuple(sorted(erased)))

    def element_counts(self, shapes: dict[str, tuple[int, ...]]) -> np.ndarray:
        """Parameter elements of each group (over all its slices)."""
        counts = np.zeros(self.n_groups, dtype=np.int64)
        for entry in self.axes:
            shape = shapes[entry.tensor]
            per_index = int(np.prod(shape)) // (shape[entry.axis] if entry.axis is not None else 1)
            owned = entry.group_of_index[entry.group_of_index >= 0]
            np.add.at(counts, owned, per_index)
        return counts


def group_layout(space: PruningSpace, shapes: dict[str, tuple[int, ...]], buffers: frozenset[str] = frozenset(),
                 erasing: ErasingSpace | None = None) -> GroupLayout:
    """Lay out the groups of every prunable family over the trainable tensors in `shapes` (name ->
    shape). `buffers` are producers that need not be zero for the group to vanish (BatchNorm running
    statistics: with scale and shift at zero the channel is zero whatever they hold); they are left
    alone. A family with any other producer that is not trainable is left out with the reason: its
    groups could never reach zero."""
    laid_out, regions = [], []  # families and regions with groups here, in the order they are numbered
    n_groups = 0
    by_axis: dict[tuple[str, int], np.ndarray] = {}
    skipped = []
    for family in space.prunable:
        producers = [m for m in family.producers if m.value not in buffers]
        missing = [m.value for m in producers if m.value not in shapes]
        if missing or not producers:
            skipped.append(f"{family.name}: producer {missing[0] if missing else '(none)'} is not a trainable tensor")
            continue
        first = n_groups
        laid_out.append(family)
        n_groups += family.size
        for member in producers:
            key = (member.value, member.axis)
            size = shapes[member.value][member.axis]
            owner = by_axis.setdefault(key, np.full(size, -1, dtype=np.int64))
            valid = member.table >= 0
            indices = member.table[valid]
            if (owner[indices] >= 0).any() or len(np.unique(indices)) != len(indices):
                raise ValueError(f"{member.value} axis {member.axis}: an index belongs to two groups")
            owner[indices] = first + np.nonzero(valid)[0]
    axes = [AxisGroups(name, axis, owner) for (name, axis), owner in by_axis.items()]
    for region in erasing.regions if erasing is not None else ():
        missing = [name for name in region.group if name not in shapes]
        if missing:
            skipped.append(f"region {region.id} ({region.merge}): {missing[0]} is not a trainable tensor")
            continue
        regions.append(region.id)
        n_groups += 1
        axes += [AxisGroups(name, None, np.array([n_groups - 1])) for name in region.group]
    table = group_table(space, laid_out, regions, erasing.exclusive if erasing is not None else ())
    return GroupLayout(table, tuple(axes), tuple(skipped))
