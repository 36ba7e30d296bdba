"""The Graph API: walking, editing, verification and copying keep the IR's invariants."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto

import onnxprune
from onnxprune.errors import IRError

from .conftest import ZOO, random_feeds, run_ort


@pytest.fixture
def mlp():
    return onnxprune.load(ZOO / "mlp.onnx")


def test_producers_consumers_and_slots(mlp):
    order = mlp.topological_order()
    gemm = order[0]
    assert gemm.op_type == "Gemm"
    x, w, b = mlp.inputs_of(gemm)
    assert x is mlp.inputs[0] and w.is_initializer and b.is_initializer
    (h,) = mlp.outputs_of(gemm)
    assert mlp.producer(h) is gemm
    assert mlp.producer(x) is None
    (relu,) = mlp.consumers(h)
    assert relu.op_type == "Relu" and mlp.uses(h) == [(relu, 0)]
    assert mlp.initializer(w.name).shape == w.tensor.shape


def test_value_used_twice_by_one_op_is_two_edges():
    graph = onnxprune.Graph()
    x = graph.add_value("x")
    graph.inputs.append(x)
    op = graph.add_op("Mul", [x, x], ["y"])
    assert sorted(slot for _, slot in graph.uses(x)) == [0, 1]
    assert graph.consumers(x) == [op]


def test_insert_op_keeps_topological_order_and_outputs(mlp):
    feeds = random_feeds(mlp.to_onnx())
    before = run_ort(mlp.to_onnx(), feeds)
    first = mlp.topological_order()[0]
    (h,) = mlp.outputs_of(first)
    # Insert h2 = Identity(h) and make every reader of h read h2.
    readers = mlp.uses(h)
    ident = mlp.add_op("Identity", [h], [mlp.fresh_name(h.name + "_copy")])
    (h2,) = mlp.outputs_of(ident)
    for op, slot in readers:
        mlp.set_input(op, slot, h2)
    order = mlp.topological_order()
    assert order.index(ident) == 1
    mlp.verify()
    np.testing.assert_array_equal(run_ort(mlp.to_onnx(), feeds)[0], before[0])


def test_replace_uses_moves_graph_outputs(mlp):
    out = mlp.outputs[0]
    producer = mlp.producer(out)
    new = mlp.add_op("Relu", [out], ["relu_out"])
    mlp.replace_uses(out, mlp.outputs_of(new)[0])
    assert mlp.outputs[0].name == "relu_out"
    # replace_uses also rewired the new op's own input: restore it and check the graph is sound
    mlp.set_input(new, 0, out)
    mlp.verify()
    assert mlp.producer(out) is producer


def test_remove_op_refuses_while_outputs_are_used(mlp):
    first = mlp.topological_order()[0]
    with pytest.raises(IRError, match="still used"):
        mlp.remove_op(first)


def test_rename_value_updates_everything(mlp):
    out = mlp.outputs[0]
    mlp.rename_value(out, "logits")
    model = mlp.to_onnx()
    assert model.graph.output[0].name == "logits"
    assert model.graph.node[-1].output[0] == "logits"
    onnx.checker.check_model(model, full_check=True)
    with pytest.raises(IRError, match="already exists"):
        mlp.rename_value(out, mlp.inputs[0].name)


def test_set_initializer_replaces_data(mlp):
    w = next(v for v in mlp.initializers if len(v.tensor.shape) == 2)
    mlp.set_initializer(w, np.zeros(w.tensor.shape, np.float32))
    assert not mlp.initializer(w.name).any()
    saved = mlp.to_onnx()
    stored = next(t for t in saved.graph.initializer if t.name == w.name)
    assert not onnx.numpy_helper.to_array(stored).any()


def test_duplicate_names_and_second_producers_are_refused(mlp):
    with pytest.raises(IRError, match="already exists"):
        mlp.add_value(mlp.inputs[0].name)
    h = mlp.outputs_of(mlp.topological_order()[0])[0]
    with pytest.raises(IRError, match="already has a producer"):
        mlp.add_op("Relu", [mlp.inputs[0]], [h])


def test_verify_catches_cycles_and_undefined_reads(mlp):
    ops = mlp.topological_order()
    last_out = mlp.outputs_of(ops[-1])[0]
    mlp.set_input(ops[0], 0, last_out)  # feed the output back into the first op
    with pytest.raises(IRError, match="cycle"):
        mlp.verify()
    graph = onnxprune.load(ZOO / "mlp.onnx")
    orphan = graph.add_value("orphan")
    graph.set_input(graph.topological_order()[0], 0, orphan)
    with pytest.raises(IRError, match="nothing defines"):
        graph.verify()


def test_copy_is_independent(mlp):
    clone = mlp.copy()
    first = clone.topological_order()[0]
    clone.set_attr(first, "alpha", 2.0)
    clone.rename_value(clone.outputs[0], "other")
    assert mlp.outputs[0].name != "other"
    assert mlp.topological_order()[0].attr("alpha") == 1.0 and first.attr("alpha") == 2.0
    assert clone.to_onnx() != mlp.to_onnx()
    assert mlp.copy().to_onnx() == mlp.to_onnx()


def test_version_moves_on_every_edit(mlp):
    version = mlp.version
    mlp.set_attr(mlp.topological_order()[0], "alpha", 1.0)
    assert mlp.version > version


def test_shapes_analysis_types_every_value():
    graph = onnxprune.load(ZOO / "transformer.onnx")
    types = onnxprune.ir.infer_shapes(graph)
    for op in graph.ops():
        for value in graph.outputs_of(op):
            assert value.name in types, value.name
    assert types[graph.outputs[0].name].shape[1] == 10
    assert types[graph.outputs[0].name].elem_type == TensorProto.FLOAT
