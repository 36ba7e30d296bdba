"""The torch engine: zoo forwards equal onnxruntime's, gradients equal onnxruntime-training's, the
engine trains what onnxruntime cannot differentiate, and `run --engine` chooses and says which."""

from __future__ import annotations

import json
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import onnxprune
from onnxprune.app.run import run_model
from onnxprune.app.training import sparse_train
from onnxprune.errors import UserError
from onnxprune.ops.training_rules import constant_weights, legalize
from onnxprune.passmanager import AnalysisManager
from onnxprune.prepare import prepare
from onnxprune.runtime import inference_session, random_inputs
from onnxprune.train.artifacts import build_artifacts
from onnxprune.train.config import TrainConfig, resolve_engine
from onnxprune.train.data import open_data
from onnxprune.train.engine import TrainingEngine
from onnxprune.train.torch_engine import TorchEngine
from onnxprune.train.torch_program import TorchProgram

from .conftest import ZOO, ZOO_MODELS
from .test_cli import run_cli
from .test_train import FAST, digits_subset

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.mark.parametrize("name", ZOO_MODELS)
def test_zoo_forward_equals_onnxruntime(name):
    graph = onnxprune.load(ZOO / name)
    feeds = random_inputs(graph, np.random.default_rng(0), 2)
    expected = inference_session(graph).run(None, feeds)
    with torch.no_grad():
        found = TorchProgram(graph)({k: torch.from_numpy(v) for k, v in feeds.items()})
    assert list(found) == [v.name for v in graph.outputs]
    for want, got in zip(expected, found.values()):
        got = got.numpy()
        assert got.shape == want.shape
        scale = float(np.abs(want).max())
        assert float(np.abs(got - want).max()) <= 1e-5 * scale, name


def _both_engines(name: str, loss: str = "mse"):
    """The onnxruntime-training and torch engines of one prepared zoo model, and a batch for them."""
    graph = onnxprune.load(ZOO / name)
    constant_weights(graph)
    prepare(graph)
    legal = graph.copy()
    added = legalize(legal, AnalysisManager(graph).get("shapes"), "cpu")
    artifacts = build_artifacts(legal, Path(tempfile.mkdtemp(prefix="onnxprune-test-")), loss, exclude=added)
    feeds = random_inputs(graph, np.random.default_rng(1), 4)
    inputs = [feeds[n] for n in artifacts.data_inputs]
    out = inference_session(graph).run(None, feeds)[0]
    target = np.random.default_rng(2).standard_normal(out.shape).astype(np.float32)
    return TrainingEngine(artifacts, threads=1), TorchEngine(graph, loss), inputs + [target]


def _assert_same_step(ort_engine, torch_engine, feeds):
    assert ort_engine.step(feeds) == pytest.approx(torch_engine.step(feeds), rel=1e-5)
    assert set(ort_engine.grads) == set(torch_engine.grads)
    # a gradient that is zero in exact arithmetic (a bias before a training-mode BatchNorm) is float noise
    # in both: compare each tensor to its own size, or to 1e-3 of the model's largest gradient
    top = max(float(g.abs().max()) for g in ort_engine.grads.values())
    for name, want in ort_engine.grads.items():
        got = torch_engine.grads[name]
        scale = max(float(want.abs().max()), 1e-3 * top)
        assert float((got - want).abs().max()) <= 1e-4 * scale, name
    for name, want in ort_engine.buffers().items():
        np.testing.assert_allclose(torch_engine.buffers()[name], want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["mlp.onnx", "fashion_cnn.onnx"])
def test_gradients_equal_onnxruntime_training(name):
    _assert_same_step(*_both_engines(name))


# Not densenet: on this batch one pre-ReLU activation lies within float32 rounding of zero, and the two
# engines' forwards (both within 3e-7 of a float64 run) put it on different sides of the kink, so one
# gradient element differs by its whole size (7.9e-3 of the largest); every op's gradient agrees otherwise.
@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet.onnx", "mobilenetv2.onnx", "mobilenetv3ish.onnx", "transformer.onnx",
                                  "bert.onnx", "vit.onnx", "efficientnetish.onnx", "gpt.onnx", "yoloish.onnx"])
def test_gradients_equal_onnxruntime_training_on_more_of_the_zoo(name):
    _assert_same_step(*_both_engines(name))


def test_evaluate_loss_is_the_step_loss_and_changes_nothing():
    ort_engine, torch_engine, feeds = _both_engines("fashion_cnn.onnx", "mse")
    for engine in (ort_engine, torch_engine):
        engine.step(feeds)
        grads = {k: v.clone() for k, v in engine.grads.items()}
        params = {k: v.clone() for k, v in engine.params.items()}
        stats = engine.buffers()
        stats = {k: np.array(v, copy=True) for k, v in stats.items()}
        other = [f[::-1].copy() for f in feeds]
        loss = engine.evaluate_loss(other)
        assert all(torch.equal(grads[k], engine.grads[k]) for k in grads)
        assert all(torch.equal(params[k], engine.params[k]) for k in params)
        assert all(np.array_equal(stats[k], v) for k, v in engine.buffers().items())
        assert loss == pytest.approx(engine.step(other), rel=1e-6)
    assert ort_engine.evaluate_loss(feeds) == pytest.approx(torch_engine.evaluate_loss(feeds), rel=1e-5)


def test_both_engines_train_the_digits_model_alike(tmp_path):
    """Same data order, same start, same optimizer: the two engines follow the same trajectory."""
    histories = {}
    for engine in ("ort", "torch"):
        graph = onnxprune.load(ZOO / "digits_cnn.onnx")
        am = AnalysisManager(graph)
        config = replace(FAST, steps=20, engine=engine, log_every=1)
        result = sparse_train(graph, am.get("prune-space"), am.get("shapes"),
                              open_data(str(digits_subset(tmp_path))), config)
        assert result.engine == engine
        histories[engine] = ([h["loss"] for h in result.history], result.selection.pruned)
    np.testing.assert_allclose(histories["torch"][0], histories["ort"][0], rtol=1e-3)
    assert histories["torch"][1] == histories["ort"][1]


# ------------------------------------------------------------- models onnxruntime cannot differentiate
def _reduce_max_model() -> onnx.ModelProto:
    """x [N, 6, 8] -> MatMul+Add (16 channels) -> Relu -> ReduceMax over the 6 steps -> Gemm -> 3 classes."""
    rng = np.random.default_rng(0)
    init = [numpy_helper.from_array((rng.standard_normal(s) * 0.4).astype(np.float32), n)
            for n, s in (("w1", (8, 16)), ("b1", (16,)), ("w2", (3, 16)), ("b2", (3,)))]
    init.append(numpy_helper.from_array(np.array([1], np.int64), "axes"))
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h0"]), helper.make_node("Add", ["h0", "b1"], ["h1"]),
             helper.make_node("Relu", ["h1"], ["h2"]), helper.make_node("ReduceMax", ["h2", "axes"], ["p"], keepdims=0),
             helper.make_node("Gemm", ["p", "w2", "b2"], ["logits"], transB=1)]
    graph = helper.make_graph(nodes, "reduce_max", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6, 8])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])], init)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8)


def _lstm_model() -> onnx.ModelProto:
    """x [N, T=5, 8] -> MatMul+Add (16) -> Relu -> MatMul (12) -> sequence-major -> LSTM (hidden 10) -> last
    state -> Gemm -> 3 classes."""
    rng = np.random.default_rng(0)
    shapes = (("w1", (8, 16)), ("b1", (16,)), ("w2", (16, 12)), ("W", (1, 40, 12)), ("R", (1, 40, 10)),
              ("B", (1, 80)), ("w3", (3, 10)), ("b3", (3,)))
    init = [numpy_helper.from_array((rng.standard_normal(s) * 0.3).astype(np.float32), n) for n, s in shapes]
    init.append(numpy_helper.from_array(np.array([0], np.int64), "axis0"))
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h0"]), helper.make_node("Add", ["h0", "b1"], ["h1"]),
             helper.make_node("Relu", ["h1"], ["h2"]), helper.make_node("MatMul", ["h2", "w2"], ["h3"]),
             helper.make_node("Transpose", ["h3"], ["h4"], perm=[1, 0, 2]),
             helper.make_node("LSTM", ["h4", "W", "R", "B"], ["y", "y_h"], hidden_size=10),
             helper.make_node("Squeeze", ["y_h", "axis0"], ["last"]),
             helper.make_node("Gemm", ["last", "w3", "b3"], ["logits"], transB=1)]
    graph = helper.make_graph(nodes, "lstm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 5, 8])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])], init)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _labelled(tmp_path: Path, steps: int, count: int = 256) -> Path:
    """Inputs [count, steps, 8] labelled by which of the first 3 features is largest on average: the
    architectures above can learn it."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((count, steps, 8)).astype(np.float32)
    labels = x[:, :, :3].mean(axis=1).argmax(axis=1).astype(np.int64)
    path = tmp_path / "data.npz"
    np.savez(path, x=x, labels=labels)
    return path


@pytest.mark.parametrize("builder,op", [(_reduce_max_model, "ReduceMax"), (_lstm_model, "LSTM")])
def test_torch_engine_trains_what_onnxruntime_cannot_differentiate(tmp_path, builder, op):
    model = builder()
    path = tmp_path / "model.onnx"
    onnx.save(model, path)
    data = _labelled(tmp_path, model.graph.input[0].type.tensor_type.shape.dim[1].dim_value)
    config = TrainConfig(steps=60, batch_size=32, lr=0.05, threads=1, target_sparsity=0.5, log_every=10)
    with pytest.raises(UserError, match=f"cannot differentiate .*{op}"):
        run_model(str(path), str(tmp_path / "ort.onnx"), str(data), replace(config, engine="ort"), progress=False,
                  latency=False, log=lambda line: None)
    report = run_model(str(path), str(tmp_path / "small.onnx"), str(data), replace(config, engine="torch"),
                       progress=False, latency=False, log=lambda line: None)
    assert report["engine"] == "torch"
    assert report["verify"]["ok"] and report["groups_removed"] > 0
    assert report["eval"]["compact"]["loss"] < report["eval"]["original"]["loss"]


# ------------------------------------------------------------- choosing the engine
def test_run_engine_torch_from_the_cli(tmp_path, capsys):
    out = tmp_path / "small.onnx"
    status, stdout, stderr = run_cli(capsys, "run", ZOO / "digits_cnn.onnx", "--data", digits_subset(tmp_path), "-o", out,
                                     "--steps", "10", "--batch-size", "32", "--engine", "torch", "--threads", "1",
                                     "--no-progress", "--no-latency", "--no-report")
    assert status == 0, stderr
    report = json.loads((tmp_path / "small.report.json").read_text())
    assert report["engine"] == "torch" and report["verify"]["ok"]
    assert "--engine auto" not in stdout  # chosen by the user: nothing to explain


@pytest.mark.skipif(torch.cuda.is_available(), reason="auto picks torch where CUDA is present")
def test_auto_engine_without_cuda_is_onnxruntime_and_says_so(tmp_path, capsys):
    status, stdout, stderr = run_cli(capsys, "run", ZOO / "digits_cnn.onnx", "--data", digits_subset(tmp_path),
                                     "-o", tmp_path / "small.onnx", "--steps", "5", "--batch-size", "32",
                                     "--no-progress", "--no-latency", "--no-report")
    assert status == 0, stderr
    assert "training with onnxruntime-training on CPU (--engine auto: no CUDA device" in stdout
    assert json.loads((tmp_path / "small.report.json").read_text())["engine"] == "ort"


@pytest.mark.parametrize("options,message", [
    (["--engine", "ort", "--compile"], "compiles DHSPG's step only, and this run uses hesso"),
    (["--engine", "ort", "--bf16"], "--bf16 needs the torch engine"),
    (["--engine", "torch", "--bf16", "--device", "cpu"], "autocasts on CUDA only"),
])
def test_torch_only_options_are_refused_in_one_line(tmp_path, capsys, options, message):
    status, _, stderr = run_cli(capsys, "run", ZOO / "digits_cnn.onnx", "--data", digits_subset(tmp_path),
                                "-o", tmp_path / "small.onnx", "--steps", "5", "--no-progress", *options)
    assert status == 2 and message in stderr and len(stderr.strip().splitlines()) == 1
    assert not (tmp_path / "small.onnx").exists()


def test_resolve_engine():
    assert resolve_engine(TrainConfig(), "cpu")[0] == "ort"
    assert resolve_engine(TrainConfig(), "cuda")[0] == "torch"
    assert resolve_engine(TrainConfig(engine="torch"), "cpu") == ("torch", "")
    assert resolve_engine(TrainConfig(engine="ort"), "cuda") == ("ort", "")
    # with onnxruntime running the forward, --compile compiles DHSPG's step (optim/fused.py)
    assert resolve_engine(TrainConfig(engine="ort", optimizer="dhspg", compile=True), "cpu") == ("ort", "")


@CUDA
@pytest.mark.parametrize("bf16", [False, True])
def test_torch_engine_trains_on_cuda(tmp_path, bf16):
    graph = onnxprune.load(ZOO / "digits_cnn.onnx")
    am = AnalysisManager(graph)
    config = replace(FAST, steps=20, engine="torch", device="cuda", bf16=bf16)
    result = sparse_train(graph, am.get("prune-space"), am.get("shapes"), open_data(str(digits_subset(tmp_path))), config)
    assert result.engine == "torch" and result.selection.group_count > 0
    assert np.isfinite(result.final_loss)


@pytest.mark.slow
def test_compiled_forward_computes_what_the_eager_one_does(monkeypatch):
    """--compile: dynamo captures the program (graph breaks at shape reads are allowed); the compiler
    backend is torch's "eager" here, since inductor takes minutes on this CPU (it gave the same
    gradients within 3e-7 and 1.5x the speed on fashion_cnn, measured by hand)."""
    import functools

    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    graph = onnxprune.load(ZOO / "fashion_cnn.onnx")
    rng = np.random.default_rng(0)
    feeds = [rng.standard_normal((8, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, 8).astype(np.int64)]
    eager, compiled = TorchEngine(graph, "cross-entropy"), TorchEngine(graph, "cross-entropy", compile=True)
    assert compiled.step(feeds) == pytest.approx(eager.step(feeds), rel=1e-6)
    for name, grad in eager.grads.items():
        torch.testing.assert_close(compiled.grads[name], grad, rtol=1e-5, atol=1e-7)


def test_a_forward_torch_compile_cannot_build_runs_eager(monkeypatch):
    """torch.compile's own failures (an inductor bug, no C++ compiler) cost the speed, not the run: one
    warning, then the eager program, with the same loss and gradients."""
    def broken_compile(program, **options):
        def call(inputs):
            raise NameError("name 's56' is not defined")
        return call

    graph = onnxprune.load(ZOO / "fashion_cnn.onnx")
    rng = np.random.default_rng(0)
    feeds = [rng.standard_normal((8, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, 8).astype(np.int64)]
    eager = TorchEngine(graph, "cross-entropy")
    monkeypatch.setattr(torch, "compile", broken_compile)
    compiled = TorchEngine(graph, "cross-entropy", compile=True)
    with pytest.warns(UserWarning, match="torch.compile failed .NameError: name 's56' is not defined.; the forward runs eager"):
        loss = compiled.step(feeds)
    assert loss == pytest.approx(eager.step(feeds), rel=1e-6)
    for name, grad in eager.grads.items():
        torch.testing.assert_close(compiled.grads[name], grad)
