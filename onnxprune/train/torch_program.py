"""An ONNX graph executed with torch ops: the forward half of the torch engine (DESIGN §8).

`TorchProgram` walks the graph in topological order and calls each op's torch kernel (the records in
`ops/torch_kernels.py`), so autograd differentiates the whole model, ops onnxruntime-training has no
gradient for included. The graph's initializers become torch tensors under their own names; the
ones named trainable are leaf tensors that require gradients, so optimizers, checkpoints and the
write-back into the model address them exactly as they address onnxruntime's buffers.

Why not a converter: onnx2torch 1.5.15, the maintained ONNX-to-torch converter, was tried on the
model zoo (README, "Training engines"): it renames every parameter after its module path (none of
the initializer names survive) and fails on 7 of the 28 zoo models (LSTM, GRU, Trilu, ReduceMean-18,
Reshape allowzero).

Integer initializers (shape constants, indices) stay on the CPU whatever the device, like the shape
arithmetic that reads them; float initializers live on `device`. Intermediate values are dropped after
their last use, so memory is what autograd keeps, as in a torch model.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from ..errors import UserError
from ..ir import Graph
from ..ops.torch_kernels import KernelNode, torch_kernel, why_not_executable


class TorchProgram:
    """`graph` as a callable on torch tensors: feeds by input name -> the requested outputs by name."""

    def __init__(self, graph: Graph, trainable: Iterable[str] = (), device: str | torch.device = "cpu",
                 outputs: Iterable[str] | None = None):
        order = graph.topological_order()
        self.outputs = list(outputs) if outputs is not None else [v.name for v in graph.outputs]
        used = {v.name for op in order for v in graph.inputs_of(op) if v is not None} | set(self.outputs)
        wanted = {id(op): tuple(v is not None and v.name in used for v in graph.outputs_of(op)) for op in order}
        refused = [(op, why) for op in order if (why := why_not_executable(op, graph.opset, wanted[id(op)]))]
        if refused:
            listed = "; ".join(f"{op.label} ({why})" for op, why in refused[:3])
            more = f" and {len(refused) - 3} more" if len(refused) > 3 else ""
            raise UserError(f"the torch engine cannot run {listed}{more}; train with --engine ort")
        self.device = torch.device(device)
        trainable = set(trainable)
        self.tensors: dict[str, torch.Tensor] = {}
        for value in graph.initializers:
            self.tensors[value.name] = _as_tensor(graph.initializer(value.name), self.device, value.name in trainable)
        missing = trainable - set(self.tensors)
        if missing:
            raise UserError(f"no initializer named {min(missing)!r} to train")
        self.inputs = [v.name for v in graph.inputs if not v.is_initializer]
        self.steps = []
        for op in order:
            outs = graph.outputs_of(op)
            node = KernelNode.of(op, graph.opset, wanted[id(op)])
            self.steps.append((torch_kernel(op.op_type, op.domain).run, node,
                               [v.name if v is not None else None for v in graph.inputs_of(op)],
                               [v.name if v is not None else None for v in outs]))
        self._drop = _last_uses(self.steps, set(self.outputs) | set(self.tensors))

    def parameters(self) -> dict[str, torch.Tensor]:
        """The trainable leaf tensors by initializer name."""
        return {name: t for name, t in self.tensors.items() if t.requires_grad}

    def __call__(self, feeds: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Run the graph on `feeds` (every graph input by name); the requested outputs by name."""
        env = dict(self.tensors)
        env.update(feeds)
        for (run, node, inputs, outputs), drop in zip(self.steps, self._drop):
            args = [env[name] if name is not None else None for name in inputs]
            try:
                result = run(node, args)
            except ValueError as error:  # a kernel refusing what it finds at run time names the op
                raise UserError(f"the torch engine failed on {node.name or node.op_type} ({node.op_type}): "
                                f"{str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__}"
                                ) from error
            if isinstance(result, torch.Tensor):
                result = (result,)
            for name, tensor in zip(outputs, result):
                if name is not None:
                    env[name] = tensor
            for name in drop:
                env.pop(name, None)
        return {name: env[name] for name in self.outputs}


def _as_tensor(array: np.ndarray, device: torch.device, trainable: bool) -> torch.Tensor:
    """An initializer as a tensor of its own (the graph's array is read-only and maybe memory-mapped)."""
    tensor = torch.from_numpy(np.array(array, copy=True))
    if tensor.is_floating_point():
        tensor = tensor.to(device)
    if trainable:
        tensor.requires_grad_(True)
    return tensor


def _last_uses(steps: list, keep: set[str]) -> list[list[str]]:
    """For each step, the values no later step reads (and that are neither outputs nor initializers)."""
    last: dict[str, int] = {}
    for index, (_, _, inputs, outputs) in enumerate(steps):
        for name in [*inputs, *outputs]:
            if name is not None:
                last[name] = index
    drop: list[list[str]] = [[] for _ in steps]
    for name, index in last.items():
        if name not in keep:
            drop[index].append(name)
    return drop
