"""Shape inference as an analysis (`shapes`) and as a transform that records it (`infer-shapes`)."""

from __future__ import annotations

from onnxprune.ir import Graph, TensorType, infer_shapes
from onnxprune.passmanager import ALL, AnalysisPass, PassResult, TransformPass


class ShapesAnalysis(AnalysisPass):
    """Infer the element type and shape of every value (ONNX shape inference with data propagation).

    Result: a dict from value name to TensorType. Weights are not copied to run it.
    """

    name = "shapes"

    def run(self, graph: Graph, am) -> dict[str, TensorType]:
        return infer_shapes(graph)


class InferShapes(TransformPass):
    """Write inferred types and shapes into the model's value_info, so other tools see them."""

    name = "infer-shapes"

    def run(self, graph: Graph, am) -> PassResult:
        types = am.get(ShapesAnalysis)
        modified = False
        for value in graph.values():
            found = types.get(value.name)
            if found is None or value.tensor is not None or value.info is not None:
                continue
            if graph.is_input(value) or graph.is_output(value) or not graph.nx.degree(value):
                continue
            graph.set_type(value, found.elem_type, found.shape)
            modified = True
        # Annotations do not change what the model computes, so every analysis stays valid.
        return PassResult(modified, ALL)
