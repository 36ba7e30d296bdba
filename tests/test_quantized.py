"""QDQ models (QuantizeLinear/DequantizeLinear around weights and activations) prune with their scales
and zero points, exactly; where a zero point is not 0, the channels freeze and the reason says so."""

from __future__ import annotations

import logging

import numpy as np
import onnx
import pytest

import onnxprune
from onnxprune.passmanager import AnalysisManager

from .conftest import ZOO
from .test_cli import run_cli


class _Calibration:
    """A few seeded batches for onnxruntime's static quantizer."""

    def __init__(self) -> None:
        self.batches = iter([{"input": np.random.default_rng(i).standard_normal((1, 3, 32, 32)).astype(np.float32)}
                             for i in range(4)])

    def get_next(self):
        return next(self.batches, None)


@pytest.fixture(scope="module")
def quantized(tmp_path_factory):
    """The zoo's VGG quantized by onnxruntime (QDQ, per-channel int8 weights), with symmetric
    activations (zero points 0) and with asymmetric ones."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    reader = type("Reader", (_Calibration, CalibrationDataReader), {})
    folder = tmp_path_factory.mktemp("qdq")
    paths = {}
    logging.getLogger().setLevel(logging.ERROR)  # the quantizer logs advice at WARNING
    for symmetric in (True, False):
        path = folder / f"vgg_{'sym' if symmetric else 'asym'}.onnx"
        quantize_static(str(ZOO / "vgg.onnx"), str(path), reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        extra_options={"ActivationSymmetric": symmetric})
        paths[symmetric] = path
    return paths


def _prunable(path) -> list[int]:
    return sorted(f.size for f in AnalysisManager(onnxprune.load(path)).get("prune-space").prunable)


def test_symmetric_qdq_model_has_the_float_models_families(quantized):
    assert _prunable(quantized[True]) == _prunable(ZOO / "vgg.onnx")


def test_qdq_prune_is_exact_and_stays_quantized(quantized, tmp_path, capsys):
    out = tmp_path / "small.onnx"
    code, stdout, _ = run_cli(capsys, "prune", quantized[True], "--ratio", "0.5", "-o", out)
    assert code == 0, stdout
    assert "max abs diff 0," in stdout  # kept channels compute bit for bit what they did
    model = onnx.load(out)
    assert sum(n.op_type == "DequantizeLinear" for n in model.graph.node) == \
        sum(n.op_type == "DequantizeLinear" for n in onnx.load(quantized[True]).graph.node)
    int8 = [t for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 4]
    assert int8 and all(t.dims[0] < 64 for t in int8 if t.dims[0] != 10)  # weights pruned, still int8
    parameters = [line for line in stdout.splitlines() if line.startswith("parameters")][0]
    assert int(parameters.split()[1].replace(",", "")) > 80_000  # int8 weights count as parameters


def test_nonzero_zero_points_freeze_with_their_reason(quantized):
    space = AnalysisManager(onnxprune.load(quantized[False])).get("prune-space")
    reasons = [f.reasons[0] for f in space.families if not f.prunable and "zero-invariant" in f.reasons[0]]
    assert reasons and all("QuantizeLinear" in r and "does not keep zeros" in r for r in reasons)
