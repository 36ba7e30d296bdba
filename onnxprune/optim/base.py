"""The base update direction d of sgd, adam and adamw (ALGORITHMS.md, "Notation").

Every group-sparse optimizer first forms d for every parameter, then moves x by -lr·d and treats its
groups on top. The arithmetic follows torch.optim (SGD with momentum/dampening/nesterov, Adam, AdamW)
so a run without groups matches torch's optimizers; buffers are allocated once, updates are in place.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

Variant = Literal["sgd", "adam", "adamw"]


@dataclass(frozen=True)
class BaseSettings:
    """Settings of the base optimizer."""

    variant: Variant = "sgd"
    momentum: float = 0.9  # sgd
    dampening: float = 0.0  # sgd
    nesterov: bool = False  # sgd
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)  # adam, adamw
    eps: float = 1e-8  # adam, adamw

    def __post_init__(self) -> None:
        if self.variant not in ("sgd", "adam", "adamw"):
            raise ValueError(f"unknown optimizer variant {self.variant!r} (sgd, adam, adamw)")


class BaseDirection:
    """Computes d for every parameter in place (adamw also applies its decoupled weight decay to x here,
    as torch does before the step).

    The step is bound by memory traffic, so d is not copied where it already lies somewhere: plain SGD
    with momentum returns its momentum buffers, SGD without momentum or weight decay the gradients
    themselves (callers only read d). A buffer of its own is allocated only where d is a new value."""

    def __init__(self, settings: BaseSettings, params: dict[str, torch.Tensor]):
        self.settings = settings
        self.steps = 0
        s = settings
        own = s.variant != "sgd" or bool(s.weight_decay) or (bool(s.momentum) and s.nesterov)
        self.direction = {name: torch.zeros_like(x) for name, x in params.items()} if own else {}
        if settings.variant == "sgd":
            self.state = {name: torch.zeros_like(x) for name, x in params.items()} if settings.momentum else {}
        else:
            self.state = {name: torch.zeros_like(x) for name, x in params.items()}
            self.second = {name: torch.zeros_like(x) for name, x in params.items()}

    def compute(self, params: dict[str, torch.Tensor], grads: dict[str, torch.Tensor], lr: float) -> dict[str, torch.Tensor]:
        """The direction of every parameter for this step (read-only for the caller: it may be the
        gradient or the momentum buffer itself)."""
        s = self.settings
        self.steps += 1
        if s.variant == "sgd":
            return {name: self._sgd(name, x, grads[name]) for name, x in params.items()}
        for name, x in params.items():
            self._adam(name, x, grads[name], self.direction[name], lr)
        return self.direction

    def _sgd(self, name: str, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        s = self.settings
        d = torch.add(g, x, alpha=s.weight_decay, out=self.direction[name]) if s.weight_decay else g
        if not s.momentum:
            return d
        buf = self.state[name]
        if self.steps == 1:
            buf.copy_(d)
        elif s.dampening:
            buf.mul_(s.momentum).add_(d, alpha=1 - s.dampening)
        else:
            torch.add(d, buf, alpha=s.momentum, out=buf)  # buf·momentum + d in one pass (torch.optim takes two)
        if s.nesterov:
            return torch.add(d, buf, alpha=s.momentum, out=self.direction[name])
        return buf

    def _adam(self, name: str, x: torch.Tensor, g: torch.Tensor, d: torch.Tensor, lr: float) -> None:
        s = self.settings
        b1, b2 = s.betas
        if s.variant == "adamw" and s.weight_decay:
            x.mul_(1 - lr * s.weight_decay)
            grad = g
        elif s.weight_decay:
            grad = torch.add(g, x, alpha=s.weight_decay, out=d)  # d is free until the end of this step
        else:
            grad = g
        m, v = self.state[name], self.second[name]
        m.lerp_(grad, 1 - b1)
        v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
        bias1, bias2 = 1 - b1 ** self.steps, 1 - b2 ** self.steps
        torch.sqrt(v, out=d).div_(math.sqrt(bias2)).add_(s.eps)  # d = sqrt(v̂) + eps
        torch.div(m, d, out=d).div_(bias1)  # d = m̂ / (sqrt(v̂) + eps)

    def state_dict(self) -> dict:
        """Buffers and step count, for checkpoints."""
        out = {"steps": self.steps, "first": {k: v.cpu() for k, v in self.state.items()}}
        if self.settings.variant != "sgd":
            out["second"] = {k: v.cpu() for k, v in self.second.items()}
        return out

    def load_state_dict(self, data: dict) -> None:
        """Restore what `state_dict` returned."""
        self.steps = int(data["steps"])
        for k, v in data["first"].items():
            self.state[k].copy_(v)
        for k, v in data.get("second", {}).items():
            self.second[k].copy_(v)
