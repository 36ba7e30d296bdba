"""Build a ResNet-50-shaped ONNX model (25.6M parameters, ~100 MB) with onnx.helper and random weights.

Used by the benchmarks; nothing here is committed as a model file.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def resnet50(seed: int = 0, num_classes: int = 1000) -> onnx.ModelProto:
    """ResNet-50: stem, bottleneck stages [3, 4, 6, 3], Conv-BN-Relu, projection shortcuts, Gemm head."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    counter = iter(range(10**6))

    def tensor(shape, scale=0.05):
        name = f"w{next(counter)}"
        inits.append(numpy_helper.from_array((rng.standard_normal(shape, dtype=np.float32) * scale), name))
        return name

    def conv_bn(x, cin, cout, k, stride=1, relu=True):
        y = f"t{next(counter)}"
        nodes.append(helper.make_node("Conv", [x, tensor((cout, cin, k, k))], [y], kernel_shape=[k, k],
                                      strides=[stride, stride], pads=[k // 2] * 4))
        z = f"t{next(counter)}"
        nodes.append(helper.make_node("BatchNormalization", [y, tensor((cout,), 1.0), tensor((cout,)),
                                                             tensor((cout,)), _positive(cout, inits, counter, rng)],
                                      [z]))
        if not relu:
            return z
        r = f"t{next(counter)}"
        nodes.append(helper.make_node("Relu", [z], [r]))
        return r

    x = conv_bn("input", 3, 64, 7, 2)
    pooled = f"t{next(counter)}"
    nodes.append(helper.make_node("MaxPool", [x], [pooled], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]))
    x, cin = pooled, 64
    for stage, (blocks, width) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512))):
        for block in range(blocks):
            stride = 2 if block == 0 and stage > 0 else 1
            cout = width * 4
            h = conv_bn(x, cin, width, 1)
            h = conv_bn(h, width, width, 3, stride)
            h = conv_bn(h, width, cout, 1, relu=False)
            shortcut = conv_bn(x, cin, cout, 1, stride, relu=False) if (stride != 1 or cin != cout) else x
            s, r = f"t{next(counter)}", f"t{next(counter)}"
            nodes += [helper.make_node("Add", [h, shortcut], [s]), helper.make_node("Relu", [s], [r])]
            x, cin = r, cout
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["gap"]))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"]))
    nodes.append(helper.make_node("Gemm", ["flat", tensor((num_classes, 2048)), tensor((num_classes,))], ["output"],
                                  transB=1))
    graph = helper.make_graph(nodes, "resnet50", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                                  ["N", 3, 224, 224])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", num_classes])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _positive(n, inits, counter, rng):
    name = f"w{next(counter)}"
    inits.append(numpy_helper.from_array(rng.uniform(0.5, 1.5, n).astype(np.float32), name))
    return name
