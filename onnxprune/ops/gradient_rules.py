"""Faster equivalents for gradient ops of onnxruntime-training whose CPU kernels are slow.

`generate_artifacts` writes a training graph whose backward half uses onnxruntime's own gradient ops
(`com.microsoft` domain). Some of their CPU kernels are slow: ReluGrad is a scalar select that neither
vectorises nor uses the thread pool; ConvGrad of a depthwise convolution runs one tiny GEMM per image
and channel. Each rule here replaces one such node, after generation, by standard ONNX ops that
compute the same values (up to floating-point rounding) with onnxruntime's vectorised, threaded
kernels; output names are kept, so the rest of the training graph is untouched, and a node a rule
does not fully understand is left as it is. Measured on this project's CPUs (onnxruntime 1.19.2, one
thread): ReluGrad 18.3 ms for 32x128x32x32 floats, Greater + Cast + Mul 4.9 ms; depthwise 3x3 ConvGrad
on 16x96x56x56 52.7 ms, its weight-only ConvGrad + a depthwise Conv for dX 28 ms.
`benchmarks/train_throughput.py` shows the effect on whole training steps ("ort kernels" column).

Tried and left out, because whole training steps got no faster: the same dX-as-Conv rewrite for
ungrouped convolutions (faster for large images, slower for small ones).
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
        # static shapes the graph declares (trained parameters are inputs of the training graph)
        self.shapes = {v.name: tuple(d.dim_value if d.HasField("dim_value") else None
                                     for d in v.type.tensor_type.shape.dim)
                       for v in (*graph.input, *graph.value_info) if v.type.tensor_type.HasField("shape")}
        self.shapes.update({t.name: tuple(t.dims) for t in graph.initializer})

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


def _attribute(node: onnx.NodeProto, name: str, default):
    for attribute in node.attribute:
        if attribute.name == name:
            value = helper.get_attribute_value(attribute)
            return value.decode() if isinstance(value, bytes) else value
    return default


def _depthwise_conv_grad(node: onnx.NodeProto, build: Builder) -> list[onnx.NodeProto]:
    """ConvGrad(dY, X, W) -> (dX, dW, dB) of a 2-D depthwise convolution (W of shape (C, 1, kh, kw),
    group C) with stride 1, no dilation and explicit pads p <= k - 1: dX is dY convolved, channel by
    channel, with the kernel flipped, padded by k - 1 - p; a depthwise Conv computes it. ConvGrad keeps
    dW and dB (it skips an output whose name is empty). Anything else is left alone."""
    group, kernel = _attribute(node, "group", 1), list(_attribute(node, "kernel_shape", []))
    pads = list(_attribute(node, "pads", [0] * 4))
    d_y, _, w = node.input
    depthwise = group > 1 and build.shapes.get(w) == (group, 1, *kernel)
    simple = (depthwise and len(kernel) == 2 and len(pads) == 4
              and list(_attribute(node, "strides", [1, 1])) == [1, 1]
              and list(_attribute(node, "dilations", [1, 1])) == [1, 1]
              and _attribute(node, "auto_pad", "NOTSET") == "NOTSET")
    flipped_pads = [kernel[i % 2] - 1 - p for i, p in enumerate(pads)] if simple else []  # [h0, w0, h1, w1]
    if not simple or min(flipped_pads) < 0 or not node.output[0]:
        return [node]
    base = node.name or "ConvGrad"
    weights_only = onnx.NodeProto()
    weights_only.CopyFrom(node)
    weights_only.output[0] = ""
    flipped = build.fresh(f"{base}/w_flipped")
    # a Slice from the last element backwards over both kernel axes flips them
    starts, make_starts = build.constant(f"{base}/starts", TensorProto.INT64, [-1, -1], [2])
    ends, make_ends = build.constant(f"{base}/ends", TensorProto.INT64, [-(2**62), -(2**62)], [2])
    axes, make_axes = build.constant(f"{base}/axes", TensorProto.INT64, [2, 3], [2])
    steps, make_steps = build.constant(f"{base}/steps", TensorProto.INT64, [-1, -1], [2])
    return [
        weights_only, make_starts, make_ends, make_axes, make_steps,
        build.node("Slice", [w, starts, ends, axes, steps], [flipped], base),
        build.node("Conv", [d_y, flipped], [node.output[0]], base, kernel_shape=kernel, pads=flipped_pads,
                   group=group),
    ]


RULES: dict[tuple[str, str], GradientRule] = {
    ("com.microsoft", "ReluGrad"): _relu_grad,
    ("com.microsoft", "ConvGrad"): _depthwise_conv_grad,
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
