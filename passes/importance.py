"""How important a group or a block is, and the one scale on which `select` compares them.

A channel or head group's importance is the L1 or L2 norm of its producer slices (`group_scores`); a
block's (an erasable region's) is the same norm over the parameters whose zeroing makes its exit zero
(`region_importance`), or its influence on calibration inputs. Raw norms do not compare across sets:
a head of 3x16x64 weights outweighs any FFN channel, a block any channel. `on_one_scale` puts every
candidate on one scale, importance share per cost share:

    score = (importance / mean importance of its set) / (cost saved / mean cost saved in its set)

where a set is one family's groups, or all the blocks. A score of 1 means "as important as its cost
would suggest, within its set"; below 1, cheaper to lose than what it saves. For a family the cost
factor is 1 (every group removes one slice of each member: the same cost), so a group's score is the
per-family normalisation HESSO uses (`normalize`, "mean"), and one-shot and trained choices agree.
Blocks differ in cost (an attention block against an FFN block), so dividing by the cost share is
what lets a block trade against channels: a block that saves twice the FLOPs of the average block at
the same importance share ranks like a channel half as important as its family's mean. Cost is what
`select` measures (parameters or FLOPs). We chose the cost-share form over HALP's importance per
millisecond (`per_latency`) for blocks because the width table times Conv/Gemm/MatMul widths, not
whole blocks, so it has no figure for a block.
"""

from __future__ import annotations

import numpy as np

from onnxprune.ir import Graph
from onnxprune.norms import per_index, row_sums
from onnxprune.ops.rule import constant_value
from onnxprune.space import ErasingSpace, Family


def group_scores(graph: Graph, family: Family, criterion: str, rng: np.random.Generator) -> np.ndarray:
    """Importance of every group of `family` (higher = keep)."""
    if criterion == "random":
        return rng.random(family.size)
    total = np.zeros(family.size)
    for member in family.producers:
        total += row_sums(member.table, per_index(_parameter(graph, member.value), member.axis, criterion))
    return total if criterion == "l1" else np.sqrt(total)


def _parameter(graph: Graph, name: str) -> np.ndarray:
    return np.asarray(constant_value(graph, graph.value(name)))


def normalize(scores: np.ndarray, how: str) -> np.ndarray:
    """`scores` divided by their mean, maximum or L2 norm (`how`; "none" leaves them)."""
    if how == "none" or not len(scores):
        return scores
    scale = {"mean": np.mean, "max": np.max, "l2": np.linalg.norm}[how](scores)
    return scores / scale if scale > 0 else scores


def per_latency(normalized: dict[int, np.ndarray], saved: dict[int, float]) -> dict[int, np.ndarray]:
    """HALP's trade: each group's (normalised) importance per unit of the latency its removal saves
    (`saved[family]`, ms per group, from the width table, relative to the mean over families), so a
    latency target is met by the groups that cost the least importance per millisecond. A family
    whose groups save nothing measurable goes last."""
    positive = [v for v in saved.values() if v > 0]
    scale = float(np.mean(positive)) if positive else 1.0
    return {f: scores / (saved[f] / scale) if saved.get(f, 0.0) > 0 else scores + 1e9
            for f, scores in normalized.items()}


def region_scores(graph: Graph, erasing: ErasingSpace) -> np.ndarray:
    """Importance of each region: the root mean square of its group's parameters (what erasing it zeroes)."""
    scores = []
    for region in erasing.regions:
        arrays = [np.asarray(_parameter(graph, name), dtype=np.float64).ravel() for name in region.group]
        values = np.concatenate(arrays) if arrays else np.zeros(1)
        scores.append(float(np.sqrt(np.mean(values * values))))
    return np.asarray(scores)


def region_importance(graph: Graph, erasing: ErasingSpace, criterion: str, rng: np.random.Generator) -> np.ndarray:
    """Importance of each region, additive over its erasing group's parameters: the sum of |w| (l1) or
    of w² (l2; random: uniform draws). Additive, so on the cost-share scale a block of weights as large
    as the average block's scores 1 whatever its size (a norm grows as the square root of the size and
    would make large blocks look cheap)."""
    if criterion == "random":
        return rng.random(len(erasing.regions))
    out = []
    for region in erasing.regions:
        total = 0.0
        for name in region.group:
            values = np.asarray(_parameter(graph, name)).ravel()
            total += float(np.abs(values).sum(dtype=np.float64)) if criterion == "l1" else \
                float(np.dot(values.astype(np.float64), values.astype(np.float64)))
        out.append(total)
    return np.asarray(out, dtype=np.float64)


def on_one_scale(importance: np.ndarray, cost: np.ndarray, how: str = "mean") -> np.ndarray:
    """Importance share per cost share of one set of candidates (see module docstring): `importance`
    normalised (`how`) over the set, divided by each candidate's cost relative to the set's mean. A
    candidate that saves nothing ranks last (infinity)."""
    importance = normalize(np.asarray(importance, dtype=np.float64), how)
    cost = np.asarray(cost, dtype=np.float64)
    if not len(cost):
        return importance
    mean = float(cost.mean())
    relative = cost / mean if mean > 0 else np.zeros_like(cost)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(relative > 0, importance / np.where(relative > 0, relative, 1.0), np.inf)
