"""Input sizes and sample values: bound by the user, a sample file or the model's metadata, said when
symbolic; values drawn by what an input is."""

from __future__ import annotations

import re

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxprune
from onnxprune.errors import UserError
from onnxprune.inputs import draw, read_samples, resolve_bindings
from onnxprune.runtime import random_inputs

from .conftest import ZOO
from .test_cli import run_cli
from .test_train import dynamic_cnn


def _with_metadata(model: onnx.ModelProto, **props: str) -> onnx.ModelProto:
    onnx.helper.set_model_props(model, props)
    return model


def test_metadata_sizes_bind_an_image_input_and_are_said(tmp_path, capsys):
    path = tmp_path / "m.onnx"
    onnx.save(_with_metadata(dynamic_cnn(), imgsz="[20, 20]", stride="32"), path)
    bindings = resolve_bindings(onnxprune.load(path))
    assert bindings.shapes == ("x=1x3x20x20",) and "metadata 'imgsz'" in bindings.notes[0]
    code, out, err = run_cli(capsys, "prune", path, "--ratio", "0.5", "-o", tmp_path / "out.onnx")
    assert code == 0 and "verify" in out  # before, sample inputs of 2x2 made onnxruntime fail
    assert "x' sized 1x3x20x20 from the model's metadata 'imgsz'" in err
    code, _, err = run_cli(capsys, "prune", path, "--ratio", "0.5", "-o", tmp_path / "out.onnx",
                           "--input-shape", "x=1x3x16x16")
    assert code == 0 and "metadata" not in err  # the user's size wins


def test_symbolic_sizes_are_said_up_front(tmp_path, capsys):
    path = tmp_path / "m.onnx"
    onnx.save(dynamic_cnn(), path)
    code, _, err = run_cli(capsys, "analyze", path)
    assert code == 0
    assert err.strip().splitlines() == [
        "onnxprune: note: input 'x' has symbolic dims H, W that costs count as 1 and sample inputs fill in "
        "arbitrarily: give --input-shape x=DIMS (or --sample-inputs FILE.npz) for figures at real sizes"]
    code, _, err = run_cli(capsys, "analyze", path, "--input-shape", "x=1x3x32x32")
    assert code == 0 and err == ""


def test_ids_stay_below_the_vocabulary_and_masks_are_ones():
    graph = onnxprune.load(ZOO / "bert.onnx")
    feeds = random_inputs(graph, np.random.default_rng(0), 4)
    vocab = 100  # the zoo's BERT
    assert feeds["input_ids"].max() < vocab and feeds["input_ids"].max() >= 4  # before: always below 4
    assert np.all(feeds["attention_mask"] == 1)


def _control_scalar_model() -> onnx.ModelProto:
    """y = x * (sr == 16000 ? 1 : 0) with the ids reaching a Gather through a Cast, as exports write."""
    nodes = [helper.make_node("Equal", ["sr", "rate"], ["is16k"]),
             helper.make_node("Cast", ["is16k"], ["gate"], to=TensorProto.FLOAT),
             helper.make_node("Cast", ["ids"], ["ids64"], to=TensorProto.INT64),
             helper.make_node("Gather", ["table", "ids64"], ["emb"]),
             helper.make_node("Mul", ["emb", "gate"], ["y"])]
    graph = helper.make_graph(
        nodes, "control",
        [helper.make_tensor_value_info("sr", TensorProto.INT64, []),
         helper.make_tensor_value_info("ids", TensorProto.INT32, ["N", 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5, 3])],
        [numpy_helper.from_array(np.array(16000, np.int64), "rate"),
         numpy_helper.from_array(np.ones((37, 3), np.float32), "table")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_control_scalars_take_the_value_the_model_compares_them_with():
    graph = onnxprune.load(_control_scalar_model())
    rng = np.random.default_rng(0)
    assert draw(graph, graph.value("sr"), (), rng) == 16000
    ids = draw(graph, graph.value("ids"), (64, 5), rng)
    assert ids.dtype == np.int32 and ids.max() < 37 and ids.max() >= 30  # the table, through the Cast


def test_sample_inputs_file_feeds_verify_and_binds_sizes(tmp_path, capsys, monkeypatch):
    from onnxprune.passes import verify

    path = tmp_path / "m.onnx"
    onnx.save(dynamic_cnn(), path)
    samples = tmp_path / "s.npz"
    x = np.random.default_rng(0).standard_normal((2, 3, 18, 18)).astype(np.float32)
    np.savez(samples, x=x)
    fed = []
    real_compare = verify.compare
    monkeypatch.setattr(verify, "compare", lambda ref, cand, feeds, *a, **k: fed.append(feeds) or
                        real_compare(ref, cand, feeds, *a, **k))
    code, out, err = run_cli(capsys, "prune", path, "--ratio", "0.5", "-o", tmp_path / "out.onnx",
                             "--sample-inputs", samples)
    assert code == 0 and "verify" in out and "symbolic" not in err
    assert np.array_equal(fed[0][0]["x"], x)  # verify's first feed is the user's sample itself


@pytest.mark.parametrize("arrays, message", [
    ({"y": np.zeros((1, 3, 8, 8), np.float32)}, "array 'y' names no model input"),
    ({"x": np.zeros((3, 8, 8), np.float32)}, "has rank 3, the input has rank 4"),
    ({"x": np.zeros((1, 4, 8, 8), np.float32)}, "has shape .* declared"),
    ({"x": np.zeros((1, 3, 8, 8), np.complex64)}, "is complex64, the input is float32"),
])
def test_bad_sample_files_are_one_line(tmp_path, capsys, arrays, message):
    path = tmp_path / "m.onnx"
    onnx.save(dynamic_cnn(), path)
    np.savez(tmp_path / "s.npz", **arrays)
    with pytest.raises(UserError, match=message):
        read_samples(tmp_path / "s.npz", onnxprune.load(path))
    code, _, err = run_cli(capsys, "prune", path, "--ratio", "0.5", "-o", tmp_path / "o.onnx",
                           "--sample-inputs", tmp_path / "s.npz")
    assert code == 2 and len(err.strip().splitlines()) == 1
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(UserError, match="not a readable .npz"):
        read_samples(tmp_path / "bad.npz", onnxprune.load(path))


def _cache_step(tmp_path):
    """A KV-cache step: past keys [batch, 2, past, 4] and values of the same sizes, concatenated with this
    step's along the sequence; the exporter names each size once."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 4)).astype(np.float32), "w")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["k"]), helper.make_node("MatMul", ["x", "w"], ["v"]),
             helper.make_node("Concat", ["past_key", "k"], ["present_key"], axis=2),
             helper.make_node("Concat", ["past_value", "v"], ["present_value"], axis=2)]
    dims = ["batch", 2, "past", 4]
    graph = helper.make_graph(nodes, "step", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2, "seq", 4]),
                                              helper.make_tensor_value_info("past_key", TensorProto.FLOAT, dims),
                                              helper.make_tensor_value_info("past_value", TensorProto.FLOAT, dims)],
                              [helper.make_tensor_value_info("present_key", TensorProto.FLOAT, None),
                               helper.make_tensor_value_info("present_value", TensorProto.FLOAT, None)], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "step.onnx")
    return tmp_path / "step.onnx"


def test_a_size_given_for_one_input_binds_the_inputs_that_share_its_name(tmp_path):
    graph = onnxprune.load(_cache_step(tmp_path))
    bindings = resolve_bindings(graph, ("x=3x2x1x4", "past_key=3x2x5x4"))
    assert dict(b.split("=") for b in bindings.shapes)["past_value"] == "3x2x5x4"
    assert any("past_value" in note and "batch, past" in note for note in bindings.notes)
    alone = resolve_bindings(graph, ("past_key=3x2x5x4",))  # x's 'seq' is not given; past_value's dims all are
    assert dict(b.split("=") for b in alone.shapes)["past_value"] == "3x2x5x4"
    unbound = resolve_bindings(graph, ("x=3x2x1x4",))  # 'past' is known nowhere: nothing guessed
    assert "past_value" not in dict(b.split("=") for b in unbound.shapes)


def test_verify_on_integer_inputs_states_its_tolerance(tmp_path, capsys):
    """verify on a model fed token ids draws them below the vocabulary (above: `draw`), and the line it
    prints says the tolerance it held the compact model to."""
    code, out, err = run_cli(capsys, "prune", ZOO / "bert.onnx", "--ratio", "0.3", "--round-to", "1", "--no-latency",
                             "--no-report", "-o", tmp_path / "o.onnx")
    assert code == 0, err
    assert re.search(r"verify +compact vs masked: max abs diff \S+, max rel diff \S+ \(tolerance 0\.0001\)", out), out
