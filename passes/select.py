"""`select`: choose groups to prune in one shot, by importance (DESIGN §7).

Scores come from the groups' producer parameters (L1 or L2 over every slice, computed for all groups
of a family at once), optionally normalised per family so families of different scales compare; the
least important groups go first until the target share of groups, parameters or FLOPs is reached.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from onnxprune.ir import Graph
from onnxprune.ops.rule import constant_value
from onnxprune.passmanager import PassResult, TransformPass
from onnxprune.space import AxisBudget, ErasingSpace, Family, PruningSpace, Selection

from .cost import CostAnalysis
from .erase_space import EraseSpaceAnalysis
from .prune_space import PruneSpaceAnalysis


@dataclass(frozen=True)
class SelectOptions:
    """Options of `select`."""

    ratio: float = 0.5  # share of the target quantity to remove
    criterion: Literal["l1", "l2", "random"] = "l2"
    by: Literal["groups", "params", "flops"] = "groups"  # groups of prunable families, or model params/FLOPs
    scope: Literal["global", "local"] = "global"  # rank all groups together, or each family on its own
    normalize: Literal["none", "mean", "max", "l2"] = "mean"  # per-family score normalisation
    round_to: int = 1  # kept groups per family are a multiple of this
    max_family_ratio: float = 0.9  # never remove more than this share of one family
    seed: int = 0  # for criterion=random
    erase: int = 0  # also erase this many whole regions (blocks), the least important first


def _per_index(array: np.ndarray, axis: int, criterion: str) -> np.ndarray:
    flat = np.moveaxis(np.asarray(array, dtype=np.float64), axis, 0).reshape(array.shape[axis], -1)
    return np.abs(flat).sum(axis=1) if criterion == "l1" else (flat * flat).sum(axis=1)


def _row_sums(table: np.ndarray, per_index: np.ndarray) -> np.ndarray:
    valid = table >= 0
    return np.where(valid, per_index[np.where(valid, table, 0)], 0.0).sum(axis=1)


def group_scores(graph: Graph, family: Family, criterion: str, rng: np.random.Generator) -> np.ndarray:
    """Importance of every group of `family` (higher = keep)."""
    if criterion == "random":
        return rng.random(family.size)
    total = np.zeros(family.size)
    for member in family.producers:
        total += _row_sums(member.table, _per_index(_parameter(graph, member.value), member.axis, criterion))
    return total if criterion == "l1" else np.sqrt(total)


def _parameter(graph: Graph, name: str) -> np.ndarray:
    return np.asarray(constant_value(graph, graph.value(name)))


def _normalize(scores: np.ndarray, how: str) -> np.ndarray:
    if how == "none" or not len(scores):
        return scores
    scale = {"mean": np.mean, "max": np.max, "l2": np.linalg.norm}[how](scores)
    return scores / scale if scale > 0 else scores


def _round_kept(size: int, removed: int, round_to: int, cap: int) -> int:
    """Adjust a removal count so the kept count is a multiple of round_to (nearest, within the cap)."""
    if round_to <= 1:
        return removed
    if size <= round_to:
        return 0
    kept = max(round_to, int(round((size - removed) / round_to)) * round_to)
    while size - kept > cap:
        kept += round_to
    return max(0, size - kept)


def select_groups(graph: Graph, space: PruningSpace, cost, options: SelectOptions) -> Selection:
    """Choose the groups to prune (see module docstring)."""
    rng = np.random.default_rng(options.seed)
    families = [f for f in space.prunable if f.size > 1]
    scores = {f.id: group_scores(graph, f, options.criterion, rng) for f in families}
    caps = {f.id: min(f.size - 1, int(np.floor(options.max_family_ratio * f.size))) for f in families}
    if options.by == "groups":
        weights = {f.id: np.ones(f.size) for f in families}
        total = sum(f.size for f in families)
    elif options.by == "params":
        weights = {f.id: f.params for f in families}
        total = cost.parameters
    else:
        weights = {f.id: f.flops for f in families}
        total = cost.flops
    target = options.ratio * total
    budget = AxisBudget(space)
    chosen: dict[int, list[int]] = {f.id: [] for f in families}
    if options.scope == "local":
        for f in families:
            want = _round_kept(f.size, min(caps[f.id], int(np.floor(options.ratio * f.size))), options.round_to,
                               caps[f.id])
            for group in np.lexsort((np.arange(f.size), scores[f.id]))[:want]:
                if budget.take(f, int(group)):
                    chosen[f.id].append(int(group))
    else:
        ranked = sorted(((_normalize(scores[f.id], options.normalize)[g], f.id, g) for f in families
                         for g in range(f.size)), key=lambda item: (item[0], item[1], item[2]))
        removed_cost = 0.0
        by_id = {f.id: f for f in families}
        for _, family_id, group in ranked:
            if removed_cost >= target:
                break
            if len(chosen[family_id]) >= caps[family_id] or not budget.take(by_id[family_id], group):
                continue
            chosen[family_id].append(group)
            removed_cost += weights[family_id][group]
        for f in families:  # round kept counts; only ever drop choices, so no axis can empty
            count = _round_kept(f.size, len(chosen[f.id]), options.round_to, caps[f.id])
            order = np.lexsort((np.arange(f.size), scores[f.id]))
            extra = [int(g) for g in order if int(g) not in chosen[f.id]]
            while len(chosen[f.id]) < count and extra:
                group = extra.pop(0)
                if budget.take(f, group):
                    chosen[f.id].append(group)
            if len(chosen[f.id]) > count:
                kept_back = sorted(chosen[f.id], key=lambda g: -scores[f.id][g])[:len(chosen[f.id]) - count]
                for group in kept_back:
                    chosen[f.id].remove(group)
                    budget.give_back(f, group)
    return Selection({fid: tuple(sorted(groups)) for fid, groups in chosen.items() if groups})


class Select(TransformPass):
    """Pick the least important channel/head groups to prune (L1/L2/random, by groups/params/FLOPs).

    The selection goes to a later `compact` in the same pipeline; the graph itself is not changed."""

    name = "select"
    Options = SelectOptions

    def run(self, graph: Graph, am) -> PassResult:
        if not 0.0 <= self.options.ratio <= 1.0:
            from onnxprune.errors import UserError
            raise UserError(f"select: ratio must be between 0 and 1, got {self.options.ratio}")
        space = am.get(PruneSpaceAnalysis)
        selection = select_groups(graph, space, am.get(CostAnalysis), self.options)
        if self.options.erase:
            erasing = am.get(EraseSpaceAnalysis)
            selection = with_regions(graph, space, erasing, selection, self.options.erase)
        am.state["selection"] = selection
        return PassResult.unchanged()


def region_scores(graph: Graph, erasing: ErasingSpace) -> np.ndarray:
    """Importance of each region: the root mean square of its group's parameters (what erasing it zeroes)."""
    scores = []
    for region in erasing.regions:
        arrays = [np.asarray(_parameter(graph, name), dtype=np.float64).ravel() for name in region.group]
        values = np.concatenate(arrays) if arrays else np.zeros(1)
        scores.append(float(np.sqrt(np.mean(values * values))))
    return np.asarray(scores)


def with_regions(graph: Graph, space: PruningSpace, erasing: ErasingSpace, selection: Selection, count: int
                 ) -> Selection:
    """`selection` plus the `count` least important regions that may be erased together; pruned groups of
    families reaching into an erased region are dropped (a region goes whole or not at all)."""
    erased: list[int] = []
    for region in np.argsort(region_scores(graph, erasing), kind="stable"):
        if len(erased) >= count:
            break
        if erasing.admissible(erased + [int(region)]):
            erased.append(int(region))
    return Selection(selection.pruned, tuple(sorted(erased))).without_clashes(space, erasing)
