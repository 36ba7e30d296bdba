"""Large models: no stage holds the whole model serialised in memory, onnxruntime reads every model from a
file path with its external data beside it, and fp16/bf16 weights keep their type through prune, compact
and verify."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxprune
from onnxprune import runtime
from onnxprune.cli import main
from onnxprune.facts import Compaction, VerifyReport
from onnxprune.ir import serde
from onnxprune.ir.tensor import Tensor
from onnxprune.passmanager import AnalysisManager, PassManager

HIDDEN, FFN = 64, 256


def _mlp(dtype: int, *, storage_only: bool = False, seed: int = 0) -> onnx.ModelProto:
    """Two residual MLP blocks (MatMul, Add bias, Relu, MatMul, Add): prunable hidden channels.

    `storage_only`: weights stored as `dtype` and Cast to float before use (mixed precision storage, the
    way bf16 checkpoints are exported for CPUs); otherwise the whole model computes in `dtype`."""
    rng = np.random.default_rng(seed)
    compute = TensorProto.FLOAT if storage_only else dtype
    nodes, inits = [], []

    def weight(name: str, shape) -> str:
        data = (rng.standard_normal(shape) * 0.2).astype(np.float32)
        if dtype == TensorProto.BFLOAT16:
            inits.append(helper.make_tensor(name, dtype, shape, _bf16_bits(data).tobytes(), raw=True))
        else:
            inits.append(numpy_helper.from_array(data.astype(helper.tensor_dtype_to_np_dtype(dtype)), name))
        if not storage_only:
            return name
        nodes.append(helper.make_node("Cast", [name], [f"{name}_f"], to=TensorProto.FLOAT))
        return f"{name}_f"

    x = "x"
    for block in range(2):
        w1, b1 = weight(f"up{block}", [HIDDEN, FFN]), weight(f"up_bias{block}", [FFN])
        w2, b2 = weight(f"down{block}", [FFN, HIDDEN]), weight(f"down_bias{block}", [HIDDEN])
        names = [f"{k}{block}" for k in ("h", "hb", "r", "o", "ob", "res")]
        steps = [("MatMul", [x, w1]), ("Add", [names[0], b1]), ("Relu", [names[1]]), ("MatMul", [names[2], w2]),
                 ("Add", [names[3], b2]), ("Add", [x, names[4]])]
        nodes += [helper.make_node(op, inputs, [output]) for (op, inputs), output in zip(steps, names)]
        x = names[5]
    nodes.append(helper.make_node("Identity", [x], ["y"]))
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", compute, ["N", HIDDEN])],
                              [helper.make_tensor_value_info("y", compute, ["N", HIDDEN])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _bf16_bits(array: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns (round to nearest even)."""
    bits = np.ascontiguousarray(array, np.float32).view(np.uint32)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def _external(model: onnx.ModelProto, folder) -> str:
    """Write `model` with every weight in `model.onnx.data` beside it (as a large export is)."""
    path = folder / "model.onnx"
    onnx.save(model, path, save_as_external_data=True, all_tensors_to_one_file=True, location="model.onnx.data",
              size_threshold=0)
    return str(path)


@pytest.fixture
def no_whole_model_in_memory(monkeypatch, request):
    """Fail if anything turns the whole model into one protobuf or hands onnxruntime anything but a path
    whose external data lie beside it or are handed over as arrays (`add_initializer`); returns the
    paths sessions were built from and how many external tensors each had."""
    monkeypatch.setattr(runtime, "GIVEN_MIN_BYTES", getattr(request, "param", runtime.GIVEN_MIN_BYTES))
    real_to_onnx = serde.to_onnx

    def to_onnx(graph, *, weights=True):
        if weights and any(v.tensor.nbytes >= serde.EXTERNAL_MIN_BYTES for v in graph.initializers):
            raise AssertionError("the whole model (weights included) was built as one ModelProto")
        return real_to_onnx(graph, weights=weights)

    monkeypatch.setattr(serde, "to_onnx", to_onnx)
    ort = runtime.onnxruntime()
    real_session = ort.InferenceSession
    paths = []

    def session(source, *args, **kwargs):
        assert isinstance(source, str), "an onnxruntime session was built from bytes, not from a path"
        model = onnx.load(source, load_external_data=False)
        external = [t for t in model.graph.initializer if t.data_location == TensorProto.EXTERNAL]
        for tensor in external:
            location = next(e.value for e in tensor.external_data if e.key == "location")
            assert location == serde.PLACEHOLDER_LOCATION or (Path(source).parent / location).is_file()
        inline = [t.name for t in model.graph.initializer if len(t.raw_data) >= (1 << 16)]
        assert not inline, f"large weights were written inside the model file: {inline}"
        paths.append((source, len(external)))
        return real_session(source, *args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", session)
    return paths


@pytest.mark.parametrize("no_whole_model_in_memory", [runtime.GIVEN_MIN_BYTES, 0], indirect=True,
                         ids=["weights-in-files", "weights-given-as-arrays"])
def test_prune_never_serialises_the_whole_model(tmp_path, capsys, no_whole_model_in_memory):
    """prune with verify, latency and the report on a model with external data: every session comes from
    a file, its weights beside it or handed over as arrays; the written model keeps its external data."""
    source = _external(_mlp(TensorProto.FLOAT), tmp_path)
    out = tmp_path / "small.onnx"
    status = main(["prune", source, "-o", str(out), "--ratio", "0.3", "--round-to", "1", "--latency-threads", "1"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "verify     compact vs masked" in captured.out
    assert len(no_whole_model_in_memory) >= 3  # verify's two models, latency, the load check
    assert all(external > 0 for _, external in no_whole_model_in_memory)
    assert (tmp_path / "small.onnx.data").stat().st_size > 0


@pytest.mark.parametrize("dtype", [TensorProto.FLOAT16, TensorProto.BFLOAT16])
def test_half_precision_weights_keep_their_type(tmp_path, capsys, dtype):
    """fp16 (computing in fp16) and bf16 (stored, cast to float) weights stay fp16/bf16 in the compact
    model, and verify passes."""
    model = _mlp(dtype, storage_only=dtype == TensorProto.BFLOAT16)
    source = tmp_path / "model.onnx"
    onnx.save(model, source)
    out = tmp_path / "small.onnx"
    status = main(["prune", str(source), "-o", str(out), "--ratio", "0.3", "--round-to", "1", "--no-latency",
                   "--no-report"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "FAILED" not in captured.out and "verify     compact vs masked" in captured.out
    written = onnx.load(out)
    types = {t.name: t.data_type for t in written.graph.initializer}
    assert set(types.values()) == {dtype}, types
    shapes = {t.name: tuple(t.dims) for t in written.graph.initializer}
    assert shapes["up0"][1] < FFN  # something was removed
    before = {t.name: _bits(t) for t in model.graph.initializer}
    after = {t.name: _bits(t) for t in written.graph.initializer}
    kept = _kept_columns(before["up0"], after["up0"])
    np.testing.assert_array_equal(after["down0"], before["down0"][kept])  # slices are exact copies of the bits


def _bits(tensor: onnx.TensorProto) -> np.ndarray:
    """A 2-byte tensor's bit patterns (onnx 1.17's to_array returns bfloat16 as a view of freed bytes)."""
    return np.frombuffer(bytes(tensor.raw_data), dtype=np.uint16).reshape(tuple(tensor.dims))


def _kept_columns(full: np.ndarray, cut: np.ndarray) -> list[int]:
    columns = [next(j for j in range(full.shape[1]) if np.array_equal(full[:, j], cut[:, i]))
               for i in range(cut.shape[1])]
    assert columns == sorted(columns)
    return columns


def test_compact_equals_masked_in_fp16(tmp_path):
    """The compact fp16 model computes what the masked fp16 model computes, within the fp16 tolerance
    verify states, and both are fp16 models."""
    graph = onnxprune.load(_mlp(TensorProto.FLOAT16, seed=3))
    am = AnalysisManager(graph)
    PassManager("select{ratio=0.4,round-to=1},compact,verify").run(graph, am)
    report = am.fact(VerifyReport)
    assert report.ok and report.tolerance >= 1e-3  # fp16 outputs: the stated fp16 tolerance
    masked = am.fact(Compaction).reference
    assert all(v.tensor.data_type == TensorProto.FLOAT16 for v in (*graph.initializers, *masked.initializers))
    feeds = {"x": np.random.default_rng(1).standard_normal((3, HIDDEN)).astype(np.float16)}
    a = runtime.inference_session(masked).run(None, feeds)[0]
    b = runtime.inference_session(graph).run(None, feeds)[0]
    assert a.dtype == b.dtype == np.float16
    scale = float(np.abs(a.astype(np.float32)).max())
    assert float(np.abs(a.astype(np.float32) - b.astype(np.float32)).max()) <= 1e-2 * scale


def test_deferred_tensors_are_computed_when_written(tmp_path):
    """A compact weight is a slice taken when it is written, not a copy held from compact to save."""
    source = _external(_mlp(TensorProto.FLOAT), tmp_path)
    graph = onnxprune.load(source)
    am = AnalysisManager(graph)
    PassManager("select{ratio=0.3,round-to=1},compact").run(graph, am)
    sliced = graph.value("up0").tensor
    assert sliced.is_deferred
    onnxprune.save(graph, tmp_path / "out.onnx")
    again = onnxprune.load(tmp_path / "out.onnx")
    np.testing.assert_array_equal(again.initializer("up0"), sliced.array)
    assert again.value("up0").tensor.data_type == Tensor.from_array(sliced.array).data_type


def test_bfloat16_weights_read_as_their_values():
    """A bf16 initializer reads as the float32 values its bits hold (onnx 1.17's to_array returned a view of
    freed bytes: importance was computed from garbage), and its storage array is the bits themselves."""
    values = np.array([[1.0, -2.5, 0.15625], [3.0e-3, 65504.0, -0.0]], np.float32)
    bits = _bf16_bits(values)
    graph = helper.make_graph([helper.make_node("Cast", ["w"], ["y"], to=TensorProto.FLOAT)], "g", [],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor("w", TensorProto.BFLOAT16, [2, 3], bits.tobytes(), raw=True)])
    loaded = onnxprune.load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    tensor = loaded.value("w").tensor
    np.testing.assert_array_equal(tensor.storage, bits)
    expected = (bits.astype(np.uint32) << 16).view(np.float32)
    for _ in range(3):  # a dangling view changes as memory is reused
        np.testing.assert_array_equal(tensor.array, expected)
        [np.ones(1 << 16) for _ in range(8)]


def test_a_session_with_every_optimisation_builds_from_a_graph_with_large_weights():
    """At level "all" onnxruntime's layout transform (NCHWc) reads Conv weights from the file before the
    arrays handed over apply: it failed ("cannot get file size" of the placeholder), so every latency
    that `prune` and `run` measured for a model with weights of 1 MiB or more fell back to the basic level,
    and `prune` warned that its (loadable) output could not be loaded with all optimisations."""
    rng = np.random.default_rng(0)
    weights = [rng.standard_normal(shape).astype(np.float32) for shape in ((64, 16, 3, 3), (512, 64, 3, 3))]
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w0"], ["a"], pads=[1, 1, 1, 1]),
                               helper.make_node("Conv", ["a", "w1"], ["y"], pads=[1, 1, 1, 1])], "convs",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 512, 8, 8])],
                              [numpy_helper.from_array(w, f"w{i}") for i, w in enumerate(weights)])
    model = onnxprune.load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8))
    assert weights[1].nbytes >= runtime.GIVEN_MIN_BYTES  # handed over at the other levels
    x = rng.standard_normal((1, 16, 8, 8)).astype(np.float32)
    outputs = {level: runtime.inference_session(model, level=level).run(None, {"x": x})[0] for level in ("basic", "all")}
    np.testing.assert_allclose(outputs["all"], outputs["basic"], rtol=1e-4, atol=1e-3)
    assert runtime._timed_session(model, 1)[1] == "all"


def test_timing_a_model_past_the_copy_limit_falls_back_to_the_basic_level(monkeypatch):
    """Past ALL_LEVEL_COPY_LIMIT the weights are not copied to disk for a session at every optimisation:
    the timing runs at the basic level (with the weights handed over) instead."""
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((512, 64, 3, 3)).astype(np.float32)
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])], "conv",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 64, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 512, 8, 8])],
                              [numpy_helper.from_array(weight, "w")])
    model = onnxprune.load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8))
    monkeypatch.setattr(runtime, "ALL_LEVEL_COPY_LIMIT", weight.nbytes - 1)
    assert runtime._timed_session(model, 1)[1] == "basic"
