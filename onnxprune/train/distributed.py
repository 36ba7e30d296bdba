"""Data-parallel training over torch.distributed, as launched by torchrun (DESIGN §8).

Every rank holds the whole model and reads the same global batches (the same shuffle); each computes
the gradient of its contiguous share of a batch, the shares' gradients (and losses) are averaged by
one all-reduce, and every rank then takes the same optimizer step, so parameters and group choices
stay identical without sending weights. That they do is checked, not assumed: a hash of the chosen
groups is compared across ranks. BatchNorm normalises each share with its own statistics (no
synchronised BatchNorm); the running statistics are averaged across ranks after each step. Rank 0
alone writes checkpoints, metrics, reports and the model. A checkpoint holds no rank count, so
`--resume` continues with any number of ranks.

Backends: gloo for CPU tensors (onnxruntime-training's buffers, the torch engine on the CPU), NCCL for
the torch engine on CUDA. Multi-node is torchrun's own rendezvous (README).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import UserError


@dataclass(frozen=True)
class Ranks:
    """This process's place among the data-parallel ranks (rank 0 of 1 when not launched by torchrun)."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        """True on the rank that writes (rank 0)."""
        return self.rank == 0


def launched_ranks() -> Ranks:
    """The ranks torchrun's environment describes, without joining them (rank 0 of 1 if none)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return Ranks(int(os.environ.get("RANK", "0")), world) if world > 1 else Ranks()


def join(backend: str) -> Ranks:
    """Join the process group torchrun set up (once); rank 0 of 1 when not launched by torchrun."""
    ranks = launched_ranks()
    if ranks.world == 1:
        return ranks
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend)
    return Ranks(dist.get_rank(), dist.get_world_size())


def shard(feeds: list[np.ndarray], ranks: Ranks) -> list[np.ndarray]:
    """This rank's contiguous share of every array of a global batch."""
    if ranks.world == 1:
        return feeds
    rows = len(feeds[0])
    if rows % ranks.world:
        raise UserError(f"a batch of {rows} does not split evenly over {ranks.world} ranks: give a --batch-size "
                        f"divisible by {ranks.world}")
    share = rows // ranks.world
    return [f[ranks.rank * share:(ranks.rank + 1) * share] for f in feeds]


def average(tensors: Iterable[torch.Tensor], ranks: Ranks) -> None:
    """Replace each tensor by its mean over the ranks, in place, with one all-reduce per device and dtype
    (the tensors are packed into one flat buffer and unpacked after)."""
    if ranks.world == 1:
        return
    import torch.distributed as dist
    from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

    groups: dict[tuple, list[torch.Tensor]] = {}
    for t in tensors:
        groups.setdefault((t.device, t.dtype), []).append(t)
    for members in groups.values():
        flat = _flatten_dense_tensors(members)
        dist.all_reduce(flat)
        flat.div_(ranks.world)
        for t, mean in zip(members, _unflatten_dense_tensors(flat, members)):
            t.copy_(mean)


def check_same_groups(zero: torch.Tensor, ranks: Ranks, step: int) -> None:
    """Refuse to go on when the ranks' chosen (zero) groups differ: a hash of the choice, all-reduced as
    its maximum and minimum, must be the same number on every rank."""
    if ranks.world == 1:
        return
    import torch.distributed as dist

    digest = hashlib.sha256(zero.detach().cpu().numpy().astype(np.uint8).tobytes()).digest()
    value = int.from_bytes(digest[:7], "little")  # fits int64
    high = torch.tensor([value], dtype=torch.int64, device=_device(zero))
    low = high.clone()
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    if int(high) != int(low):
        raise RuntimeError(f"data-parallel ranks chose different groups by step {step} (rank {ranks.rank})")


def _device(t: torch.Tensor) -> torch.device:
    import torch.distributed as dist

    return t.device if dist.get_backend() == "nccl" else torch.device("cpu")
