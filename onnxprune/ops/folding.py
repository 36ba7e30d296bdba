"""Weights computed from constants: fold them into initializers before the analysis.

Exporters often write a weight as a small constant computation (a ConstantOfShape bias, a Concat of
constant pieces, a scale computed by Mul or Div, an embedding slice by Gather). Seen as ops, the weight
is not a parameter: its family has no producing parameter and freezes; a flat weight Reshaped to
[out, in, k, k] hides its input-channel axis. (A Transpose or Cast of a weight, such as fp16 storage,
is left as it is: the analysis follows it to the weight. Integer shape arithmetic is left too: the
rules evaluate it where they need it.) Folding
evaluates such ops once, with onnx's reference evaluator (pure numpy, exact for the data movement and
casts folded here, no session per op; onnx-graphsurgeon's fold_constants would need a round trip
through its own graph and onnxruntime), and stores the result as an initializer of the same name.

DequantizeLinear is left alone: a quantized weight keeps its int8 storage (the Q/DQ rules prune it
with its scales), and folding would quadruple its size.
"""

from __future__ import annotations

import numpy as np
import onnx

from ..ir import FLOAT_TYPES, Graph, Op
from ..ir.tensor import Tensor
from .registry import record_of
from .rule import constant_value

#: A Transpose or Cast of a weight the analysis follows to its consumer axis for axis: folding one only
#: copies the weight and renames the parameter (a ViT's Transpose(W) of every Linear: 1.7 s and a second
#: copy of its weights), so they stay. Reshapes do get folded: a flat weight reshaped to [out, in, k, k]
#: hides its input-channel axis inside a split the rules cannot follow.
_FOLLOWED = frozenset({"Transpose", "Cast"})
#: A fold may grow what it reads by this factor (Cast fp16 -> fp32 doubles); larger results (Expand
#: or ConstantOfShape of big shapes) stay computed.
_GROWTH = 2
_SMALL = 64 * 1024  # bytes a result may always have (a bias from ConstantOfShape)


def fold_constant_weights(graph: Graph) -> list[str]:
    """Replace every foldable op whose inputs are all constant by initializers holding its outputs (in
    place, in topological order, so chains fold); return the names of the values folded."""
    folded: list[str] = []
    for op in graph.topological_order():
        if not _foldable(graph, op):
            continue
        inputs = [constant_value(graph, v) if v is not None and not graph.is_input(v) else None
                  for v in graph.inputs_of(op)]  # an initializer that is also an input can be overridden
        if any(array is None for array, v in zip(inputs, graph.inputs_of(op)) if v is not None):
            continue
        if not _makes_float(op, inputs):
            continue  # integer shape arithmetic: the rules evaluate it where they need it
        if op.op_type in _FOLLOWED:
            continue  # a weight transposed or cast: the analysis follows it to its consumer as it is
        results = _evaluate(graph, op, inputs)
        read = sum(np.asarray(a).nbytes for a in inputs if a is not None)
        if results is None or sum(r.nbytes for r in results) > max(_GROWTH * read, _SMALL):
            continue
        outputs = [v for v in graph.outputs_of(op) if v is not None]
        if any(graph.is_output(v) for v in outputs) or len(outputs) != len(results):
            continue  # the interface names a computed output: keep the op
        sources = [v for v in graph.inputs_of(op) if v is not None]
        graph.remove_op(op, remove_outputs=False)
        for value, array in zip(outputs, results):
            graph.make_initializer(value, array)
            folded.append(value.name)
        _drop_unused(graph, sources)
    return folded


def _makes_float(op: Op, inputs: list) -> bool:
    """True when the op's output is floating point: a weight, not shape arithmetic."""
    if op.op_type == "Cast":
        return op.attr("to") in FLOAT_TYPES
    if op.op_type == "ConstantOfShape":
        value = op.attr("value")
        return value is None or np.asarray(value).dtype.kind == "f"  # float32 zeros by default
    return inputs[0] is not None and np.asarray(inputs[0]).dtype.kind == "f"


def _foldable(graph: Graph, op: Op) -> bool:
    record = record_of(op)  # pure ops whose output, from constant inputs, is a constant worth storing
    return record is not None and record.fold and not op.subgraphs and \
        not graph.captures_of(op) and any(v is not None for v in graph.inputs_of(op))


def _evaluate(graph: Graph, op: Op, inputs: list) -> list[Tensor] | None:
    """Run one op on constant inputs with onnx's reference evaluator; None if it cannot."""
    from onnx.reference import ReferenceEvaluator

    from ..ir.serde import _node_proto

    node = _node_proto(graph, op)
    names = [f"in{i}" if name else "" for i, name in enumerate(node.input)]
    node.ClearField("input")
    node.input.extend(names)
    outputs = [f"out{i}" if name else "" for i, name in enumerate(node.output)]
    node.ClearField("output")
    node.output.extend(outputs)
    tensors = [onnx.numpy_helper.from_array(np.asarray(a), n) for a, n in zip(inputs, names) if n]
    body = onnx.helper.make_graph([node], "fold", [], [onnx.helper.make_empty_tensor_value_info(n)
                                                       for n in outputs if n], tensors)
    model = onnx.helper.make_model(body, opset_imports=[onnx.helper.make_opsetid(d, v)
                                                        for d, v in graph.opset_imports.items()])
    try:
        results = ReferenceEvaluator(model).run(None, {})
        return [Tensor.from_array(np.ascontiguousarray(r)) for r in results]
    except Exception:  # an op, attribute or element type the reference cannot run: leave it computed
        return None


def _drop_unused(graph: Graph, values) -> None:
    """Remove initializers and Constant ops that only the folded op read."""
    keep = graph.names_used_outside()
    for value in values:
        if graph.get_value(value.name) is None or graph.nx.out_degree(value) or graph.is_output(value) or \
                value.name in keep:
            continue  # still read: by an op, or by name inside an If/Loop body (a capture edge)
        producer = graph.producer(value)
        if producer is None and value.tensor is not None:
            graph.remove_value(value)
        elif producer is not None and producer.op_type == "Constant":
            graph.remove_op(producer)
