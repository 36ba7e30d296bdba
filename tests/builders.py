"""Small hand-built ONNX graphs for known-answer tests."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class Builder:
    """Accumulates nodes and seeded random initializers; `model()` makes an opset-17 ModelProto."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list = []
        self.inits: list = []
        self.count = 0

    def name(self, base: str) -> str:
        self.count += 1
        return f"{base}{self.count}"

    def weight(self, shape, base: str = "w", positive: bool = False) -> str:
        name = self.name(base)
        data = self.rng.uniform(0.5, 1.5, shape) if positive else self.rng.standard_normal(shape) * 0.5
        self.inits.append(numpy_helper.from_array(data.astype(np.float32), name))
        return name

    def const(self, array, base: str = "c") -> str:
        name = self.name(base)
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def op(self, op_type: str, inputs: list[str], domain: str = "", **attrs) -> str:
        out = self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], domain=domain, **attrs))
        return out

    def conv(self, x: str, cin: int, cout: int, k: int = 1, group: int = 1, bias: bool = True) -> str:
        inputs = [x, self.weight((cout, cin // group, k, k))] + ([self.weight((cout,))] if bias else [])
        return self.op("Conv", inputs, kernel_shape=[k, k], pads=[k // 2] * 4, group=group)

    def bn(self, x: str, c: int) -> str:
        return self.op("BatchNormalization", [x, self.weight((c,)), self.weight((c,)), self.weight((c,)),
                                              self.weight((c,), positive=True)])

    def model(self, inputs: dict[str, list], outputs: list[str], opset: int = 17, domains=()) -> onnx.ModelProto:
        graph = helper.make_graph(
            self.nodes, "test",
            [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
            [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs], self.inits)
        imports = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, 1) for d in domains]
        model = helper.make_model(graph, opset_imports=imports)
        model.ir_version = 8
        inferred = onnx.shape_inference.infer_shapes(model)  # declare the outputs' shapes, as exporters do
        known = {vi.name: vi for vi in (*inferred.graph.value_info, *inferred.graph.output)}
        for output in model.graph.output:
            if output.name in known and known[output.name].type.tensor_type.HasField("shape"):
                output.type.CopyFrom(known[output.name].type)
        return model
