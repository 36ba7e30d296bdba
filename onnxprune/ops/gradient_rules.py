"""Faster equivalents for gradient ops of onnxruntime-training whose CPU kernels are slow.

`generate_artifacts` writes a training graph whose backward half uses onnxruntime's own gradient ops
(`com.microsoft` domain). Some of their CPU kernels are slow: ReluGrad is a scalar select that neither
vectorises nor uses the thread pool. Each rule here replaces one such node, after generation, by
standard ONNX ops that compute the same values with onnxruntime's vectorised, threaded kernels; output
names are kept, so the rest of the training graph is untouched. Measured on this project's CPUs
(onnxruntime 1.19.2, one thread, 32x128x32x32 floats): ReluGrad 18.3 ms, Greater + Cast + Mul 4.9 ms.
`benchmarks/train_throughput.py` shows the effect on whole training steps ("ort kernels" column).

Tried and left out, because whole training steps got no faster: ConvGrad's input gradient as a forward
Conv of dY with the flipped, channel-swapped kernel (faster for large images, slower for small ones).
"""

from __future__ import annotations

from collections.abc import Callable

import onnx
from onnx import TensorProto, helper


class Builder:
    """Makes replacement nodes with names unused in the graph."""

    def __init__(self, graph: onnx.GraphProto):
        self.used = {name for node in graph.node for name in (node.name, *node.input, *node.output)}
        self.used |= {v.name for v in (*graph.input, *graph.output, *graph.initializer)}

    def fresh(self, base: str) -> str:
        """`base`, or `base_N` if taken; reserved from now on."""
        name, count = base, 0
        while name in self.used:
            count += 1
            name = f"{base}_{count}"
        self.used.add(name)
        return name

    def node(self, op_type: str, inputs: list[str], outputs: list[str], base: str, **attributes) -> onnx.NodeProto:
        """A standard-domain node named `base/op_type`."""
        return helper.make_node(op_type, inputs, outputs, name=self.fresh(f"{base}/{op_type}"), **attributes)

    def constant(self, base: str, data_type: int, values: list, shape: list[int]) -> tuple[str, onnx.NodeProto]:
        """A Constant node (not an initializer: the training checkpoint must not gain tensors)."""
        name = self.fresh(base)
        return name, self.node("Constant", [], [name], base, value=helper.make_tensor("", data_type, shape, values))


GradientRule = Callable[[onnx.NodeProto, Builder], list[onnx.NodeProto]]


def _relu_grad(node: onnx.NodeProto, build: Builder) -> list[onnx.NodeProto]:
    """ReluGrad(dY, X) = dY where X > 0, else 0; as dY * float(X > 0). Same values except the sign of
    zeros (which no later sum or product distinguishes) and where dY is not finite at an inactive
    position (inf * 0 is NaN where the kernel writes 0; a non-finite gradient ruins the step anyway)."""
    d_y, x = node.input
    base = node.name or "ReluGrad"
    zero, make_zero = build.constant(f"{base}/zero", TensorProto.FLOAT, [0.0], [])
    active, mask = build.fresh(f"{base}/active"), build.fresh(f"{base}/mask")
    return [
        make_zero,
        build.node("Greater", [x, zero], [active], base),
        build.node("Cast", [active], [mask], base, to=TensorProto.FLOAT),
        build.node("Mul", [d_y, mask], list(node.output), base),
    ]


RULES: dict[tuple[str, str], GradientRule] = {
    ("com.microsoft", "ReluGrad"): _relu_grad,
}


def speed_up_gradients(model: onnx.ModelProto) -> int:
    """Rewrite, in place, every node of `model`'s main graph that a rule replaces; returns how many.
    Node order stays topological: a replacement takes the place of the node it replaces."""
    graph = model.graph
    build = Builder(graph)
    nodes, replaced = [], 0
    for node in graph.node:
        rule = RULES.get((node.domain, node.op_type))
        replacement = rule(node, build) if rule else [node]
        nodes.extend(replacement)
        replaced += replacement != [node]
    if replaced:
        graph.ClearField("node")
        graph.node.extend(nodes)
    return replaced
