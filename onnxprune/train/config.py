"""What decides a sparse-training run and what it returns: TrainConfig, TrainResult, the device and engine.

`TrainConfig` is also the `sparse-train` pass's options; `TrainResult` is a fact (`onnxprune/facts.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from ..errors import UserError
from ..space import Selection


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a sparse-training run (also the `sparse-train` pass's options)."""

    optimizer: Literal["hesso", "hesso-cric", "dhspg"] = "hesso"
    variant: Literal["sgd", "adam", "adamw"] = "sgd"
    target_sparsity: float = 0.5
    target_erase: float = 0.0  # share of the erasable regions (whole blocks) to erase (HESSO, or DHSPG = H2SPG)
    loss: Literal["cross-entropy", "mse", "distill"] = "cross-entropy"
    epochs: int = 3
    steps: int = 0  # if set, overrides epochs
    lr: float = 0.05
    schedule: Literal["constant", "step", "cosine"] = "cosine"
    warmup: int = 0
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 64
    device: Literal["auto", "cpu", "cuda"] = "auto"
    engine: Literal["auto", "ort", "torch"] = "auto"  # auto: torch where the device is CUDA, else onnxruntime
    bf16: bool = False  # torch engine on CUDA: forward and backward under bf16 autocast
    compile: bool = False  # torch.compile the forward (torch engine) and DHSPG's penalty steps (optim/fused.py)
    seed: int = 0
    pruning_periods: int = 5
    group_divisible: int = 1  # kept groups per family: multiples of this (the same as prune's --round-to)
    threads: int = 0  # intra-op threads of the engine (0: all cores)
    checkpoint_every: int = 0  # steps between checkpoints (0: only at the end and on Ctrl-C)
    log_every: int = 10
    # HESSO-CRIC (optim/hesso_cric.py): cycles at most (with choice "fixed"), trial levels per family
    # (1/(n+1) .. n/(n+1)), stop when a cycle adds at most this share of K new groups, the loss penalty's
    # weight against saliency, the loss rise (in units of the dead trial's: every prunable group zeroed)
    # past which a family's cut is a collapse, loss evaluations at most (0: auto), held-in batches per
    # evaluation, steps per cycle (0: auto)
    cric_cycles: int = 0
    cric_levels: int = 3
    cric_tolerance: float = 0.05
    cric_loss_weight: float = 1.0
    cric_collapse: float = 2.0
    cric_budget: int = 0
    cric_batches: int = 2
    cric_cycle_steps: int = 0
    cric_choice: Literal["fixed", "progressive"] = "progressive"  # choose per period, or zero one final set


@dataclass
class TrainResult:
    """What training produced."""

    record: ClassVar[bool] = True  # a fact that no later transform invalidates

    selection: Selection
    steps: int
    final_loss: float
    history: list[dict] = field(default_factory=list)
    group_sparsity: float = 0.0
    skipped_families: tuple[str, ...] = ()
    engine: str = "ort"  # the engine that trained: "ort" or "torch"
    cric: dict | None = None  # what HESSO-CRIC measured and rescued (optimizer hesso-cric)


def resolve_device(device: str) -> str:
    """auto → cuda when torch sees a GPU, else cpu."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: torch sees no CUDA device here; use --device cpu or auto")
    return device


def resolve_engine(config: TrainConfig, device: str) -> tuple[str, str]:
    """(engine, why): `auto` trains with torch where the device is CUDA (onnxruntime-training's GPU wheel
    needs CUDA 11.8) and with onnxruntime-training on the CPU; options only the torch engine has are
    refused with the onnxruntime one."""
    if config.engine not in ("auto", "ort", "torch"):
        raise UserError(f"unknown engine {config.engine!r} (auto, ort, torch)")
    engine = config.engine
    why = ""
    if engine == "auto":
        engine = "torch" if device == "cuda" else "ort"
        why = ("--engine auto: a CUDA device is present" if engine == "torch" else
               "--engine auto: no CUDA device; --engine torch trains with torch on the CPU")
    if engine == "ort" and config.bf16:
        raise UserError("--bf16 needs the torch engine (--engine torch)")
    if engine == "ort" and config.compile and config.optimizer != "dhspg":
        # onnxruntime runs the forward; what --compile compiles besides it is DHSPG's penalty step
        raise UserError(f"--compile with the onnxruntime engine compiles DHSPG's step only, and this run uses "
                        f"{config.optimizer}: use --engine torch to compile the forward, or drop --compile")
    if config.bf16 and device != "cuda":
        raise UserError("--bf16 autocasts on CUDA only; this run's device is the CPU")
    return engine, why

