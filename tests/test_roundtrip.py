"""Round trips are lossless: load -> to_onnx/save gives the same model, and the same outputs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxprune
from onnxprune.errors import ModelError
from onnxprune.ir import MAX_ORT_IR_VERSION

from .conftest import assert_same_outputs, file_digest, random_feeds, run_ort

BACKEND_DATA = Path(onnx.__file__).parent / "backend" / "test" / "data"


def test_zoo_round_trip_is_exact(zoo_path, tmp_path):
    original = onnx.load(zoo_path)
    digest = file_digest(zoo_path)
    graph = onnxprune.load(zoo_path)
    assert graph.to_onnx() == original
    out = tmp_path / "copy.onnx"
    onnxprune.save(graph, out)
    saved = onnx.load(out)
    assert saved == original
    onnx.checker.check_model(saved, full_check=True)
    feeds = random_feeds(original)
    assert_same_outputs(run_ort(zoo_path, feeds), run_ort(out, feeds))
    assert file_digest(zoo_path) == digest  # the input file is never modified


def test_zoo_models_load_in_onnxruntime_1_19(zoo_path):
    graph = onnxprune.load(zoo_path)
    assert graph.ir_version <= MAX_ORT_IR_VERSION


def test_model_proto_round_trip(zoo_path):
    original = onnx.load(zoo_path)
    assert onnxprune.load(original).to_onnx() == original


def test_backend_corpus_round_trips_exactly():
    """Every model file the onnx package ships (node tests, real nets, pytorch-converted) survives a
    file load and to_onnx() unchanged, message for message."""
    files = sorted(BACKEND_DATA.rglob("*.onnx"))
    assert len(files) > 1000
    failures = []
    for path in files:
        original = onnx.load(path)
        try:
            rebuilt = onnxprune.load(path).to_onnx()
        except ModelError as exc:
            failures.append(f"{path}: {exc}")
            continue
        if rebuilt != original:
            failures.append(str(path))
    assert not failures, failures[:10]


def _rich_model() -> onnx.ModelProto:
    """A model using the less common parts of the format: metadata, doc strings, value_info, a
    local function, an If with a subgraph reading an outer value, typed-field and raw tensors,
    trailing empty optional inputs, node metadata."""
    then_body = helper.make_graph([helper.make_node("Add", ["h", "b"], ["t_out"])], "then", [],
                                  [helper.make_tensor_value_info("t_out", TensorProto.FLOAT, [2, 3])])
    else_body = helper.make_graph([helper.make_node("Sub", ["h", "b"], ["e_out"])], "else", [],
                                  [helper.make_tensor_value_info("e_out", TensorProto.FLOAT, [2, 3])])
    func = helper.make_function("custom.fn", "Double", ["x"], ["y"], [helper.make_node("Add", ["x", "x"], ["y"])],
                                [helper.make_opsetid("", 17)])
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["h"], name="mm", doc_string="matmul doc"),
        helper.make_node("ReduceSum", ["h"], ["s"], keepdims=0, name="sum"),
        helper.make_node("Greater", ["s", "zero"], ["cond"]),
        helper.make_node("If", ["cond"], ["branch"], then_branch=then_body, else_branch=else_body),
        helper.make_node("Clip", ["branch", "lo", ""], ["clipped"]),
        helper.make_node("Double", ["clipped"], ["y"], domain="custom.fn"),
    ]
    nodes[0].metadata_props.add(key="origin", value="layer1")
    W = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(4, 3) / 7, "W")
    b = helper.make_tensor("b", TensorProto.FLOAT, [3], [0.5, -1.0, 2.0])  # typed float_data field
    graph = helper.make_graph(
        nodes, "rich", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        [W, b, numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
         numpy_helper.from_array(np.array(-1.0, np.float32), "lo")],
        doc_string="graph doc", value_info=[helper.make_tensor_value_info("h", TensorProto.FLOAT, [2, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("custom.fn", 1)],
                              functions=[func], doc_string="model doc", producer_name="test")
    helper.set_model_props(model, {"author": "onnxprune tests"})
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def test_rich_model_round_trip(tmp_path):
    model = _rich_model()
    path = tmp_path / "rich.onnx"
    onnx.save(model, path)
    graph = onnxprune.load(path)
    assert graph.to_onnx() == model
    out = tmp_path / "out.onnx"
    onnxprune.save(graph, out)
    assert onnx.load(out) == model
    feeds = {"x": np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)}
    assert_same_outputs(run_ort(path, feeds), run_ort(out, feeds))


def test_subgraph_captures_are_edges():
    graph = onnxprune.load(_rich_model())
    if_op = next(op for op in graph.ops() if op.op_type == "If")
    assert {v.name for v in graph.captures_of(if_op)} == {"h", "b"}
    assert if_op in graph.consumers(graph.value("h"))


def test_external_data_round_trip(zoo_path, tmp_path):
    graph = onnxprune.load(zoo_path)
    out = tmp_path / "ext.onnx"
    onnxprune.save(graph, out, external_data=True)
    data = tmp_path / "ext.onnx.data"
    assert data.exists() and data.stat().st_size > 0
    assert out.stat().st_size < zoo_path.stat().st_size  # the weights moved out
    reloaded = onnxprune.load(out)
    assert reloaded.external_data
    for value in graph.initializers:
        np.testing.assert_array_equal(reloaded.initializer(value.name), value.tensor.array)
    feeds = random_feeds(onnx.load(zoo_path))
    assert_same_outputs(run_ort(zoo_path, feeds), run_ort(out, feeds))
    # Saving an externally stored model again keeps external data by default, beside the new file.
    sub = tmp_path / "sub"
    sub.mkdir()
    onnxprune.save(reloaded, sub / "again.onnx")
    assert (sub / "again.onnx.data").exists()
    assert_same_outputs(run_ort(zoo_path, feeds), run_ort(sub / "again.onnx", feeds))


def _external_model(tmp_path: Path, location: str) -> Path:
    model = onnx.load(Path(__file__).parent.parent / "models" / "mlp.onnx")
    onnx.external_data_helper.convert_model_to_external_data(model, location="weights.bin", size_threshold=0)
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    model = onnx.load(path, load_external_data=False)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
    onnx.save(model, path)
    return path


def test_external_data_outside_model_folder_is_refused(tmp_path):
    inner = tmp_path / "inner"
    inner.mkdir()
    (tmp_path / "secret.bin").write_bytes(b"\0" * 1024)
    path = _external_model(inner, "../secret.bin")
    with pytest.raises(ModelError, match="outside the model's folder"):
        onnxprune.load(path)
    path = _external_model(inner, str(tmp_path / "secret.bin"))
    with pytest.raises(ModelError, match="outside the model's folder"):
        onnxprune.load(path)


def test_missing_external_data_file(tmp_path):
    path = _external_model(tmp_path, "weights.bin")
    os.remove(tmp_path / "weights.bin")
    with pytest.raises(ModelError, match="external data file 'weights.bin' .* is missing"):
        onnxprune.load(path)


def test_new_models_get_an_ir_version_onnxruntime_loads(tmp_path):
    graph = onnxprune.Graph()
    graph.model.opset_import.add(domain="", version=17)
    x = graph.add_value("x")
    graph.set_type(x, TensorProto.FLOAT, [2])
    graph.inputs.append(x)
    op = graph.add_op("Relu", [x], ["y"])
    y = graph.outputs_of(op)[0]
    graph.outputs.append(y)
    graph.set_type(y, TensorProto.FLOAT, [2])
    onnxprune.save(graph, tmp_path / "new.onnx")
    saved = onnx.load(tmp_path / "new.onnx")
    assert saved.ir_version == MAX_ORT_IR_VERSION
    out = run_ort(tmp_path / "new.onnx", {"x": np.array([-1.0, 2.0], np.float32)})
    np.testing.assert_array_equal(out[0], [0.0, 2.0])


def test_weights_are_memory_mapped_not_copied(tmp_path):
    path = Path(__file__).parent.parent / "models" / "vgg.onnx"
    graph = onnxprune.load(path)
    array = graph.initializers[0].tensor.array
    assert not array.flags.writeable
    assert not array.flags.owndata  # a view of the mapped file

