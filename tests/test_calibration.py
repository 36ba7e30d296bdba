"""Calibration: block influence ranks erasable regions by what they do to the stream on real inputs,
and a causal LM's loss on held-out rows is measured before and after."""

from __future__ import annotations

import json
import math

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxprune
from onnxprune.calibration import block_influence, causal_lm_loss, read_calibration
from onnxprune.errors import UserError
from onnxprune.passmanager import AnalysisManager

from .test_cli import run_cli

WIDTH = 8


def _two_blocks(tmp_path):
    """x + W2 relu(W1 x), twice. Block 0: small weights that turn the stream. Block 1: large weights
    whose ReLU never fires on non-negative inputs (W1 < 0), so it changes nothing: weight size ranks
    block 0 lower, block influence ranks block 1 lower."""
    rng = np.random.default_rng(0)
    inits = {
        "a1": rng.uniform(0.05, 0.15, (WIDTH, WIDTH)), "a2": rng.uniform(0.05, 0.15, (WIDTH, WIDTH)),
        "b1": -rng.uniform(1.0, 2.0, (WIDTH, WIDTH)), "b2": rng.uniform(1.0, 2.0, (WIDTH, WIDTH)),
    }
    nodes = [
        helper.make_node("MatMul", ["x", "a1"], ["h0"]), helper.make_node("Relu", ["h0"], ["r0"]),
        helper.make_node("MatMul", ["r0", "a2"], ["d0"]), helper.make_node("Add", ["x", "d0"], ["s0"]),
        helper.make_node("MatMul", ["s0", "b1"], ["h1"]), helper.make_node("Relu", ["h1"], ["r1"]),
        helper.make_node("MatMul", ["r1", "b2"], ["d1"]), helper.make_node("Add", ["s0", "d1"], ["s1"]),
        helper.make_node("Relu", ["s1"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "two_blocks", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", WIDTH])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", WIDTH])],
                              [numpy_helper.from_array(v.astype(np.float32), k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "two_blocks.onnx"
    onnx.save(model, path)
    data = tmp_path / "calib.npz"
    np.savez(data, x=rng.uniform(0, 1, (32, WIDTH)).astype(np.float32))
    return path, data


def test_block_influence_is_one_minus_the_mean_cosine(tmp_path):
    path, data = _two_blocks(tmp_path)
    graph = onnxprune.load(path)
    am = AnalysisManager(graph)
    erasing = am.get("erase-space")
    assert len(erasing.regions) == 2
    x = np.load(data)["x"][:24].astype(np.float64)
    w = {v.name: graph.initializer(v.name).astype(np.float64) for v in graph.initializers}
    s0 = x + np.maximum(x @ w["a1"], 0) @ w["a2"]
    s1 = s0 + np.maximum(s0 @ w["b1"], 0) @ w["b2"]

    def influence(a, b):
        return 1 - np.mean(np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1))

    found = block_influence(graph, am.get("prune-space"), erasing, read_calibration(data, graph).scoring)
    expected = {}
    for region in erasing.regions:
        expected[region.id] = influence(x, s0) if region.entry == "x" else influence(s0, s1)
    assert found == pytest.approx([expected[i] for i in range(2)], rel=1e-5, abs=1e-7)
    assert expected[1 if erasing.regions[1].entry == "s0" else 0] == pytest.approx(0, abs=1e-7)


def test_prune_erases_by_influence_with_calibration_and_by_weight_size_without(tmp_path, capsys):
    path, data = _two_blocks(tmp_path)
    erasing = AnalysisManager(onnxprune.load(path)).get("erase-space")
    block1 = next(r.exit for r in erasing.regions if r.entry == "s0")  # the block that changes nothing
    erased = {}
    for name, extra in (("weights", ()), ("calibrated", ("--calibration", data))):
        out = tmp_path / f"{name}.onnx"
        code, stdout, err = run_cli(capsys, "prune", path, "-o", out, "--ratio", "0", "--erase", "1", "--no-latency",
                                    "--selection-out", tmp_path / f"{name}.json", *extra)
        assert code == 0, err
        erased[name] = [r["exit"] for r in json.loads((tmp_path / f"{name}.json").read_text())["regions"]]
        if extra:
            assert "erase by   block influence" in stdout
            report = json.loads((tmp_path / f"{name}.report.json").read_text())
            assert report["calibration"]["rows"] == 24 and report["calibration"]["held_out_rows"] == 8
    assert erased["calibrated"] == [block1] and erased["weights"] != [block1]


def _tiny_lm(tmp_path, vocab=11, hidden=6, seq=5):
    rng = np.random.default_rng(1)
    emb = rng.standard_normal((vocab, hidden)).astype(np.float32)
    out = rng.standard_normal((hidden, vocab)).astype(np.float32)
    nodes = [helper.make_node("Gather", ["emb", "ids"], ["h"]), helper.make_node("MatMul", ["h", "out"], ["logits"])]
    graph = helper.make_graph(nodes, "lm", [helper.make_tensor_value_info("ids", TensorProto.INT64, ["B", "T"])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["B", "T", vocab])],
                              [numpy_helper.from_array(emb, "emb"), numpy_helper.from_array(out, "out")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "lm.onnx"
    onnx.save(model, path)
    ids = rng.integers(0, vocab, (12, seq))
    return path, ids, emb @ out


def test_causal_lm_loss_is_the_next_token_cross_entropy(tmp_path):
    path, ids, table = _tiny_lm(tmp_path)
    graph = onnxprune.load(path)
    logits = table[ids].astype(np.float64)[:, :-1]
    log_softmax = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) \
        - logits.max(-1, keepdims=True)
    expected = -np.take_along_axis(log_softmax, ids[:, 1:, None], -1).mean()
    assert causal_lm_loss(graph, {"ids": ids}) == pytest.approx(expected, rel=1e-5)
    assert causal_lm_loss(onnxprune.load(_two_blocks(tmp_path)[0]), {"x": np.zeros((2, WIDTH), np.float32)}) is None


def test_prune_reports_the_lm_loss_on_held_out_rows(tmp_path, capsys):
    path, ids, _ = _tiny_lm(tmp_path)
    np.save(tmp_path / "ids.npy", ids)
    code, out, err = run_cli(capsys, "prune", path, "-o", tmp_path / "small.onnx", "--ratio", "0.3", "--no-latency",
                             "--calibration", tmp_path / "ids.npy")
    assert code == 0, err
    report = json.loads((tmp_path / "small.report.json").read_text())
    loss = report["calibration"]["lm_loss"]
    assert report["calibration"]["held_out_rows"] == 3 and math.isfinite(loss["dense"]) and math.isfinite(loss["compact"])
    assert f"LM loss    {loss['dense']:.4f} -> {loss['compact']:.4f}" in out
    page = (tmp_path / "small.report.html").read_text()
    assert "Language-model loss on the held-out rows" in page and f"{loss['compact']:.4f}" in page


@pytest.mark.parametrize("make, problem", [
    (lambda d: np.savez(d / "c.npz", y=np.zeros((4, WIDTH), np.float32)), "no array for input(s) x"),
    (lambda d: (d / "c.npz").write_bytes(b"garbage"), "not a .npy/.npz"),
    (lambda d: np.savez(d / "c.npz", x=np.full((4, WIDTH), np.nan, np.float32)), "NaN"),
])
def test_bad_calibration_data_is_one_line(tmp_path, capsys, make, problem):
    path, _ = _two_blocks(tmp_path)
    make(tmp_path)
    with pytest.raises(UserError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        read_calibration(tmp_path / "c.npz", onnxprune.load(path))
    code, _, err = run_cli(capsys, "prune", path, "-o", tmp_path / "o.onnx", "--ratio", "0", "--erase", "1",
                           "--calibration", tmp_path / "c.npz", "--no-latency")
    assert code == 2 and len(err.strip().splitlines()) == 1 and problem.split("(")[0] in err


def _mlp_with_silent_channels(tmp_path):
    """y = W2 relu(W1 x + b1), hidden 16: channels 0-3 have the largest weights but a bias of -100, so
    on any reasonable input they never fire; the others are small and always active."""
    rng = np.random.default_rng(1)
    w1 = rng.uniform(0.1, 0.2, (WIDTH, 16))
    w2 = rng.uniform(0.1, 0.2, (16, 4))
    b1 = np.full(16, 1.0)
    w1[:, :4] *= 10
    w2[:4] *= 10
    b1[:4] = -100.0
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Add", ["h", "b1"], ["hb"]),
             helper.make_node("Relu", ["hb"], ["r"]), helper.make_node("MatMul", ["r", "w2"], ["y"])]
    graph = helper.make_graph(nodes, "silent", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", WIDTH])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
                              [numpy_helper.from_array(a.astype(np.float32), n) for n, a in
                               (("w1", w1), ("b1", b1), ("w2", w2))])
    path = tmp_path / "silent.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)
    np.save(tmp_path / "calib.npy", rng.standard_normal((64, WIDTH)).astype(np.float32))
    return path


def test_activation_importance_is_the_consumer_output_energy(tmp_path):
    """Each hidden channel's score is ||W2 row|| x RMS of its activation: silent channels score 0,
    and the others match a direct computation."""
    from onnxprune.calibration import activation_importance

    path = _mlp_with_silent_channels(tmp_path)
    graph = onnxprune.load(path)
    space = AnalysisManager(graph).get("prune-space")
    x = np.load(tmp_path / "calib.npy")
    scores = activation_importance(graph, space, {"x": x})
    (family,) = [f for f in space.prunable if f.size == 16]
    assert set(scores) == {family.id}
    inits = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in onnx.load(path).graph.initializer}
    r = np.maximum(x.astype(np.float64) @ inits["w1"] + inits["b1"], 0)
    want = np.sqrt((r ** 2).mean(axis=0) * (inits["w2"] ** 2).sum(axis=1))
    np.testing.assert_allclose(scores[family.id], want, rtol=1e-6)
    assert (scores[family.id][:4] == 0).all() and (scores[family.id][4:] > 0).all()


def test_prune_by_activation_removes_the_channels_the_data_never_excites(tmp_path, capsys):
    """--criterion activation prunes the 4 silent channels (largest weights); l2 keeps them. Without
    calibration inputs the criterion is one line and exit 2."""
    path = _mlp_with_silent_channels(tmp_path)
    pruned = {}
    for criterion in ("l2", "activation"):
        code, stdout, err = run_cli(capsys, "prune", path, "-o", tmp_path / f"{criterion}.onnx", "--ratio", "0.25",
                                    "--round-to", "1", "--no-latency", "--criterion", criterion, "--calibration",
                                    tmp_path / "calib.npy", "--selection-out", tmp_path / f"{criterion}.json")
        assert code == 0, err
        (family,) = json.loads((tmp_path / f"{criterion}.json").read_text())["families"]
        pruned[criterion] = sorted(family["groups"])
        assert ("rank by    activation energy" in stdout) == (criterion == "activation")
    assert pruned["activation"] == [0, 1, 2, 3]
    assert not set(pruned["l2"]) & {0, 1, 2, 3}
    report = json.loads((tmp_path / "activation.report.json").read_text())
    assert "Wanda" in report["calibration"]["group_criterion"]
    code, _, err = run_cli(capsys, "prune", path, "-o", tmp_path / "x.onnx", "--ratio", "0.25", "--criterion", "activation",
                           "--no-latency")
    assert code == 2 and "calibration" in err and len(err.strip().splitlines()) == 1


def test_calibrated_scores_are_analyses_computed_once_per_graph(tmp_path):
    """Select tried several times on one graph (round-to auto, both rankings) runs the data once."""
    from onnxprune.passmanager import REGISTRY, PassManager

    path = _mlp_with_silent_channels(tmp_path)
    graph = onnxprune.load(path)
    am = AnalysisManager(graph)
    select = REGISTRY.get("select")
    for round_to in (1, 2, 4):
        PassManager([select(ratio=0.25, criterion="activation", calibration=str(tmp_path / "calib.npy"),
                            round_to=round_to)]).run(graph, am)
    assert am.computed.count("activation-importance") == 1


def test_activation_importance_weighs_only_what_a_contracting_op_reads(tmp_path):
    """A Div's denominator is a consumer of the channel axis too, but not a weight the activation is
    multiplied by: channels divided by 10 feed little downstream and must score lowest (they scored
    highest when the denominator counted as a weight)."""
    from onnxprune.calibration import activation_importance

    rng = np.random.default_rng(3)
    w1 = rng.uniform(0.5, 1.0, (WIDTH, 16)).astype(np.float32)
    w2 = rng.uniform(0.5, 1.0, (16, 4)).astype(np.float32)
    d = np.ones(16, np.float32)
    d[:4] = 10.0
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Div", ["h", "d"], ["r"]),
             helper.make_node("MatMul", ["r", "w2"], ["y"])]
    graph = helper.make_graph(nodes, "div", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", WIDTH])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
                              [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(d, "d"),
                               numpy_helper.from_array(w2, "w2")])
    model = onnxprune.load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8))
    space = AnalysisManager(model).get("prune-space")
    (family,) = [f for f in space.prunable if f.size == 16]
    scores = activation_importance(model, space, {"x": rng.standard_normal((32, WIDTH)).astype(np.float32)})[family.id]
    assert set(np.argsort(scores)[:4]) == {0, 1, 2, 3}
