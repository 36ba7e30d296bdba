"""The torch engine: the training graph executed with torch ops and autograd (DESIGN §8).

It trains the same graph the onnxruntime engine trains (`artifacts.training_graph`: BatchNorms in
training mode with their updated running statistics as outputs) and offers the same surface:
`params` and `grads` are torch tensors under the initializers' names, `step(feeds)` runs forward and
backward on one batch and writes the running statistics back, `weights()`/`load_weights()` serve
checkpoints and the write-back into the model. So GroupLayout, the optimizers, checkpoints, compact
and verify do not know which engine ran.

What it adds: any device torch supports (current CUDA included), ops onnxruntime-training cannot
differentiate (ReduceMax, LSTM, GRU, ...), bf16 autocast on CUDA, and `torch.compile` of the forward.
Gradients land in buffers allocated once (`.grad`, zeroed before each step and accumulated into by
autograd in place), so an optimizer holding `grads` always sees the current step's.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UserError
from ..ir import Graph
from .artifacts import Loss, training_graph
from .torch_program import TorchProgram


class TorchEngine:
    """Trains `graph` (prepared, untied; not modified) with torch on `device`."""

    def __init__(self, graph: Graph, loss: Loss, device: str = "cpu", output: str | None = None,
                 exclude: set[str] = frozenset(), bf16: bool = False, compile: bool = False):
        work, trainable, _, exposed, output = training_graph(graph, loss, device, output, exclude, "torch")
        self.device = device
        self.trainable = tuple(trainable)
        self.running_stats = exposed  # output -> initializer
        self.loss_output = output
        self.loss = loss
        self.data_inputs = tuple(v.name for v in graph.inputs if not v.is_initializer)
        self.target = "labels" if loss == "cross-entropy" else "target"
        self.program = TorchProgram(work, trainable, device, outputs=[output, *exposed])
        leaves = self.program.parameters()
        for leaf in leaves.values():
            leaf.grad = torch.zeros_like(leaf)
        self.params = {name: leaves[name].detach() for name in self.trainable}  # what the optimizer moves
        self.grads = {name: leaves[name].grad for name in self.trainable}
        self._stats = [(out, self.program.tensors[name]) for out, name in exposed.items()]
        self.running = {name: self.program.tensors[name] for name in exposed.values()}  # BatchNorm statistics
        self.autocast = bf16 and torch.device(device).type == "cuda"
        # static shapes: a recompile per batch size, where dynamic shapes made inductor emit code naming an
        # undefined size symbol on a torchvision MobileNetV3 (NameError 's56', torch 2.13)
        self._forward = torch.compile(self.program, dynamic=False) if compile else self.program

    def _run(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The forward: compiled (--compile) or as it is. Where torch.compile fails (its own bugs, no C++
        compiler) the program runs eager from then on, said once: the forward is functional (running
        statistics are outputs, written by the caller), so nothing was changed by the failed call."""
        if self._forward is self.program:
            return self.program(inputs)
        try:
            return self._forward(inputs)
        except UserError:
            raise
        except Exception as error:  # noqa: BLE001 - torch.compile's own exception types
            text = str(error).strip()
            warnings.warn(f"--compile: torch.compile failed ({type(error).__name__}: "
                          f"{text.splitlines()[0] if text else 'no message'}); the forward runs eager", stacklevel=2)
            self._forward = self.program
            return self.program(inputs)

    def _loss(self, feeds: list[np.ndarray]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        inputs = {name: self._tensor(array) for name, array in zip(self.data_inputs, feeds)}
        target = self._tensor(feeds[len(self.data_inputs)])
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.autocast):
            outputs = self._run(inputs)
        predicted = outputs[self.loss_output].float()
        if self.loss == "cross-entropy":
            value = F.cross_entropy(predicted, target.long())
        else:
            value = F.mse_loss(predicted, target.to(predicted.dtype))
        return value, outputs

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array)).to(self.device, non_blocking=True)

    def step(self, feeds: list[np.ndarray]) -> float:
        """Forward and backward on one batch (model inputs, then labels/target); returns the loss.
        Gradients land in `grads`; parameters do not change (the optimizer moves them)."""
        for grad in self.grads.values():
            grad.zero_()
        value, outputs = self._loss(feeds)
        value.backward()
        with torch.no_grad():
            for out, buffer in self._stats:
                buffer.copy_(outputs[out])
        return float(value.detach())

    def evaluate_loss(self, feeds: list[np.ndarray]) -> float:
        """The loss on one batch as `step` computes it (BatchNorm on the batch's statistics), without
        gradients, without updating running statistics: nothing changes."""
        with torch.no_grad():
            return float(self._loss(feeds)[0])

    def buffers(self) -> dict[str, np.ndarray]:
        """Current running statistics (name -> a copy on the CPU)."""
        return {name: self.program.tensors[name].detach().cpu().numpy().copy() for name in self.running_stats.values()}

    def weights(self) -> dict[str, np.ndarray]:
        """Every trained tensor and buffer, as copies (for writing the model out)."""
        out = {name: t.cpu().numpy().copy() for name, t in self.params.items()}
        out.update(self.buffers())
        return out

    def load_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Overwrite trained tensors and buffers in place (resume from a checkpoint)."""
        with torch.no_grad():
            for name, array in weights.items():
                self.program.tensors[name].copy_(torch.from_numpy(np.asarray(array)))
