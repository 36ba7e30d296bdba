"""Shape inference as an analysis (`shapes`) and as a transform that records it (`infer-shapes`)."""

from __future__ import annotations

from dataclasses import dataclass

from onnxprune.facts import FUNCTION_FACTS
from onnxprune.ir import Graph, TensorType, infer_shapes
from onnxprune.ir.shapes import parse_input_shape
from onnxprune.passmanager import ALL, AnalysisPass, PassResult, TransformPass


@dataclass(frozen=True)
class ShapesOptions:
    """Options of `shapes`."""

    input_shapes: tuple[str, ...] = ()  # bind inputs first, e.g. "input=1x3x224x224;mask=1x128"


class ShapesAnalysis(AnalysisPass):
    """Infer the element type and shape of every value (ONNX shape inference with data propagation).

    Result: a dict from value name to TensorType. Weights are not copied to run it.
    """

    name = "shapes"
    Options = ShapesOptions

    def run(self, graph: Graph, am) -> dict[str, TensorType]:
        return infer_shapes(graph, dict(parse_input_shape(text) for text in self.options.input_shapes))


class InferShapes(TransformPass):
    """Write inferred types and shapes into the model's value_info, so other tools see them."""

    name = "infer-shapes"
    keeps = FUNCTION_FACTS  # computes the same function

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
