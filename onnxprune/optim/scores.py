"""Group importance scores (ALGORITHMS.md, "Importance scores"): higher means keep.

All scores come from four per-group sums computed in one pass over the parameters: ‖x_g‖²,
⟨x_g, grad_g⟩, ‖grad_g‖² and the element count.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

CRITERIA = ("magnitude", "avg_magnitude", "cosine_similarity", "taylor_first_order", "taylor_second_order")
#: HESSO's default: every criterion with weight 0.2, each normalised by its L2 norm over all groups.
DEFAULT_MIX = {name: 0.2 for name in CRITERIA}


@dataclass(frozen=True)
class GroupStats:
    """Per-group sums (float64 tensors of one entry per group)."""

    xx: torch.Tensor
    xg: torch.Tensor
    gg: torch.Tensor
    count: torch.Tensor


def criterion(stats: GroupStats, name: str) -> torch.Tensor:
    """One importance criterion for every group."""
    norm_x = stats.xx.sqrt()
    if name == "magnitude":
        return norm_x
    if name == "avg_magnitude":
        return norm_x / stats.count.clamp(min=1)
    if name == "cosine_similarity":
        denominator = norm_x * stats.gg.sqrt()
        return 1 + torch.where(denominator > 0, stats.xg / denominator.clamp(min=1e-300), torch.zeros_like(denominator))
    if name == "taylor_first_order":
        return stats.xg.abs()
    if name == "taylor_second_order":
        return 0.5 * stats.xg * stats.xg
    raise ValueError(f"unknown importance criterion {name!r} (one of {', '.join(CRITERIA)})")


def normalized(scores: torch.Tensor) -> torch.Tensor:
    """Scores divided by their L2 norm over all groups (unchanged when that norm is zero)."""
    norm = scores.norm()
    return scores / norm if norm > 0 else scores


def importance(stats: GroupStats, weights: dict[str, float]) -> torch.Tensor:
    """Weighted sum of the normalised criteria in `weights` (name -> weight)."""
    total = torch.zeros_like(stats.xx)
    for name, weight in weights.items():
        if weight:
            total += weight * normalized(criterion(stats, name))
    return total
