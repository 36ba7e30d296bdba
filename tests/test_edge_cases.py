"""Regression tests for corner cases of the format and of editing (each one broke once)."""

from __future__ import annotations

import mmap
import shutil
from dataclasses import dataclass

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxprune
from onnxprune.errors import IRError, ModelError, PipelineError
from onnxprune.passmanager import AnalysisManager, AnalysisPass, PassManager, PassResult, Registry, TransformPass

from .conftest import ZOO
from .test_cli import run_cli


def _model(nodes, inputs, outputs, initializers=(), **kwargs) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers), **kwargs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _float(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _mixed_initializers() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    big1 = numpy_helper.from_array(rng.standard_normal(600).astype(np.float32), "big1")
    small = numpy_helper.from_array(np.ones(3, np.float32), "small")
    big2 = numpy_helper.from_array(rng.standard_normal(600).astype(np.float32), "big2")
    bf = helper.make_tensor("bf", TensorProto.BFLOAT16, [600], np.arange(600, dtype=np.uint16).tobytes(), raw=True)
    nodes = [helper.make_node("Add", ["big1", "big2"], ["s"]), helper.make_node("Cast", ["bf"], ["c"], to=1),
             helper.make_node("Add", ["s", "c"], ["t"]), helper.make_node("Slice", ["t", "st", "en"], ["u"]),
             helper.make_node("Add", ["u", "small"], ["y"])]
    inits = [big1, small, big2, bf, numpy_helper.from_array(np.array([0], np.int64), "st"),
             numpy_helper.from_array(np.array([3], np.int64), "en")]
    return _model(nodes, [], [_float("y", [3])], inits)


def test_external_data_keeps_initializer_order_and_maps_bfloat16(tmp_path):
    model = _mixed_initializers()
    onnx.save(model, tmp_path / "in.onnx")
    graph = onnxprune.load(tmp_path / "in.onnx")
    bf = graph.value("bf").tensor
    assert isinstance(bf.raw_bytes(), memoryview) and isinstance(bf.raw_bytes().obj, mmap.mmap)  # not copied
    onnxprune.save(graph, tmp_path / "out.onnx", external_data=True)
    saved = onnx.load(tmp_path / "out.onnx", load_external_data=False)
    assert [t.name for t in saved.graph.initializer] == [t.name for t in model.graph.initializer]
    external = {t.name for t in saved.graph.initializer if t.data_location == TensorProto.EXTERNAL}
    assert external == {"big1", "big2", "bf"}
    assert onnxprune.load(tmp_path / "out.onnx").to_onnx() == model  # data read back: nothing changed


def test_output_declarations_that_a_value_cannot_hold(tmp_path):
    passthrough = _model([], [_float("x", ["N"])], [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N"])])
    passthrough.graph.output[0].doc_string = "the output declaration"
    twice = _model([helper.make_node("Relu", ["x"], ["y"])], [_float("x", [2])], [_float("y", [2]), _float("y", ["N"])])
    for model in (passthrough, twice):
        onnx.save(model, tmp_path / "m.onnx")
        assert onnxprune.load(tmp_path / "m.onnx").to_onnx() == model
        assert onnxprune.load(model).to_onnx() == model


def test_graph_never_edits_the_callers_model_proto():
    model = onnx.load(ZOO / "mlp.onnx")
    before = model.SerializeToString()
    graph = onnxprune.load(model)
    graph.rename_value(graph.inputs[0], "renamed")
    graph.set_attr(graph.topological_order()[0], "alpha", 3.0)
    assert model.SerializeToString() == before


def test_sparse_initializers_rename_and_verify():
    values = numpy_helper.from_array(np.array([5.0], np.float32), "s")
    sparse = helper.make_sparse_tensor(values, numpy_helper.from_array(np.array([1], np.int64)), [3])
    model = _model([helper.make_node("Add", ["x", "s"], ["y"])], [_float("x", [3])], [_float("y", [3])],
                   sparse_initializer=[sparse])
    graph = onnxprune.load(model)
    graph.rename_value(graph.value("s"), "s2")
    graph.verify()
    saved = graph.to_onnx()
    assert saved.graph.sparse_initializer[0].values.name == "s2"
    assert saved.graph.node[0].input[1] == "s2"
    onnx.checker.check_model(saved)
    as_output = _model([], [], [_float("s", [3])], sparse_initializer=[sparse])
    onnxprune.load(as_output).verify()


def _captured() -> onnxprune.Graph:
    then_body = helper.make_graph([helper.make_node("Neg", ["t"], ["o"])], "then", [], [_float("o", [1])])
    model = _model([helper.make_node("Relu", ["x"], ["t"]), helper.make_node("Neg", ["t"], ["n"]),
                    helper.make_node("If", ["c"], ["y"], then_branch=then_body, else_branch=then_body),
                    helper.make_node("Add", ["n", "y"], ["z"])],
                   [_float("x", [1]), helper.make_tensor_value_info("c", TensorProto.BOOL, [])], [_float("z", [1])])
    return onnxprune.load(model)


def test_failed_edits_leave_the_graph_unchanged():
    graph = _captured()
    before = graph.to_onnx()
    with pytest.raises(IRError, match="read by a subgraph"):
        graph.replace_uses(graph.value("t"), graph.value("x"))
    neg = next(op for op in graph.ops() if op.op_type == "Neg")
    with pytest.raises(IRError, match="no value named"):
        graph.set_input(neg, 0, "missing")
    with pytest.raises(IRError, match="already has a producer"):
        graph.add_op("Relu", ["x"], ["fresh", "n"])
    with pytest.raises(IRError, match="cannot be produced"):
        graph.add_op("Relu", ["x"], ["x"])
    with pytest.raises(IRError, match="empty name"):
        graph.rename_value(graph.value("n"), "")
    assert graph.to_onnx() == before
    graph.verify()


def test_results_stale_before_a_transform_stay_stale():
    class Count(AnalysisPass):
        name = "count"

        def run(self, graph, am):
            return len(graph)

    class Noop(TransformPass):
        name = "noop"

        def run(self, graph, am):
            return PassResult.unchanged()

    registry = Registry(load_plugins=False)
    registry.register(Count)
    registry.register(Noop)
    graph = onnxprune.load(ZOO / "mlp.onnx")
    am = AnalysisManager(graph, registry)
    first = am.get("count")
    graph.add_op("Relu", [graph.outputs[0]], ["extra"])  # edited outside any pass
    PassManager("noop", registry=registry).run(graph, am)
    assert am.get("count") == first + 1


def test_external_data_wins_over_raw_data(tmp_path):
    (tmp_path / "w.bin").write_bytes(np.full(4, 7.0, np.float32).tobytes())
    tensor = numpy_helper.from_array(np.ones(4, np.float32), "w")  # raw_data says 1.0 ...
    tensor.data_location = TensorProto.EXTERNAL  # ... but the spec reads the external file
    for key, value in (("location", "w.bin"), ("offset", "0"), ("length", "16")):
        tensor.external_data.add(key=key, value=value)
    model = _model([helper.make_node("Add", ["x", "w"], ["y"])], [_float("x", [4])], [_float("y", [4])], [tensor])
    (tmp_path / "m.onnx").write_bytes(model.SerializeToString())
    graph = onnxprune.load(tmp_path / "m.onnx")
    np.testing.assert_array_equal(graph.initializer("w"), np.full(4, 7.0, np.float32))


def test_cleanup_keeps_names_used_by_training_info_and_annotations():
    model = _model([helper.make_node("Identity", ["x"], ["a"]), helper.make_node("Relu", ["a"], ["y"])],
                   [_float("x", [2])], [_float("y", [2])], [numpy_helper.from_array(np.ones(2, np.float32), "w")])
    model.graph.quantization_annotation.add(tensor_name="a")
    info = model.training_info.add()
    info.initialization.CopyFrom(helper.make_graph([helper.make_node("Identity", ["w"], ["w_new"])], "init", [],
                                                   [_float("w_new", [2])]))
    info.initialization_binding.add(key="w", value="w_new")
    graph = onnxprune.load(model)
    PassManager("cleanup").run(graph)
    assert "w" in graph and "a" in graph
    with pytest.raises(IRError, match="training info or a quantization annotation"):
        graph.rename_value(graph.value("a"), "b")


def test_option_specs_read_back():
    @dataclass(frozen=True)
    class Opts:
        text: str = ""
        items: tuple[str, ...] = ()

    class Texty(AnalysisPass):
        name = "texty"
        Options = Opts

    registry = Registry(load_plugins=False)
    registry.register(Texty)
    for options in (Opts(" padded "), Opts("a,b{c}=\"d\""), Opts("", ("x y", "z,w"))):
        spec = Texty(options).spec()
        assert registry.build(spec)[0].options == options, spec
    with pytest.raises(PipelineError, match="given twice"):
        registry.build("cleanup{keep-identity=true,keep_identity=false}")


def test_graph_without_nodes_loads_from_a_file(tmp_path):
    model = _model([], [_float("x", [1])], [])
    onnx.save(model, tmp_path / "m.onnx")
    assert onnxprune.load(tmp_path / "m.onnx").to_onnx() == model


# ---------------------------------------------------------------------- CLI: bad input is status 2, sources are safe
def test_cycles_and_bad_utf8_are_bad_input(capsys, tmp_path):
    cyclic = _model([helper.make_node("Add", ["x", "y"], ["y"])], [_float("x", [1])], [_float("y", [1])])
    (tmp_path / "cycle.onnx").write_bytes(cyclic.SerializeToString())
    status, _, err = run_cli(capsys, "analyze", tmp_path / "cycle.onnx")
    assert status == 2 and "cycle" in err and "Traceback" not in err
    data = (ZOO / "mlp.onnx").read_bytes().replace(b"\x22\x04Gemm", b"\x22\x04G\x80mm", 1)  # an op_type field
    (tmp_path / "utf8.onnx").write_bytes(data)
    status, _, err = run_cli(capsys, "analyze", tmp_path / "utf8.onnx")
    assert status == 2 and "holds an op type b'G\\x80mm' that is not valid UTF-8" in err


def test_outputs_are_checked_before_any_work(capsys, tmp_path):
    (tmp_path / "afile").write_text("")
    cases = [
        (["opt", ZOO / "mlp.onnx", "--passes", "cleanup", "-o", tmp_path], "is a folder"),
        (["opt", ZOO / "mlp.onnx", "--passes", "cleanup", "-o", tmp_path / "o.onnx", "--dump-after", "cleanup",
          "--dump-dir", tmp_path / "afile"], "--dump-dir is a file"),
        (["analyze", ZOO / "mlp.onnx", "--json", tmp_path / "nodir" / "x.json"], "does not exist"),
    ]
    for argv, message in cases:
        status, out, err = run_cli(capsys, *argv)
        assert status == 2 and message in err and not out


def test_outputs_never_overwrite_the_inputs_external_data(capsys, tmp_path):
    model = onnx.load(ZOO / "mlp.onnx")
    onnx.save(model, tmp_path / "model.onnx", save_as_external_data=True, location="weights.bin")
    data = (tmp_path / "weights.bin").read_bytes()
    status, _, err = run_cli(capsys, "opt", tmp_path / "model.onnx", "--passes", "cleanup", "-o",
                             tmp_path / "weights.bin")
    assert status == 2 and "refusing to overwrite the input model or its data" in err
    assert (tmp_path / "weights.bin").read_bytes() == data
    shutil.copy(tmp_path / "weights.bin", tmp_path / "other.onnx.data")
    graph = onnxprune.load(tmp_path / "model.onnx")
    with pytest.raises(ModelError, match="external data this model was read from"):
        onnxprune.save(graph, tmp_path / "weights.bin")
    onnxprune.save(graph, tmp_path / "other.onnx")  # a different data file: fine
