"""Shared test helpers: the model zoo, random inputs, and onnxruntime runs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnxprune.passes.verify import random_inputs

import onnxprune

ROOT = Path(__file__).resolve().parent.parent
ZOO = ROOT / "models"
ZOO_MODELS = sorted(p.name for p in ZOO.glob("*.onnx"))


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes (to prove an input was not modified)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def random_feeds(model: onnx.ModelProto, seed: int = 0, batch: int = 2) -> dict[str, np.ndarray]:
    """Seeded random inputs for every real graph input; symbolic dims become `batch`."""
    return random_inputs(onnxprune.load(model), np.random.default_rng(seed), batch)


def run_ort(model: onnx.ModelProto | str | Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Run a model on the CPU with onnxruntime."""
    # a session of its own, not runtime.inference_session: the tests' reference must not share the code it checks
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def assert_same_outputs(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    """Bit-for-bit equal outputs."""
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.dtype == y.dtype and x.shape == y.shape
        assert x.tobytes() == y.tobytes()


@pytest.fixture(params=ZOO_MODELS)
def zoo_path(request) -> Path:
    """Each committed zoo model in turn."""
    return ZOO / request.param


def fake_probe_ms(probe, threads: int) -> float:
    """A made-up timing table: an op's multiply-adds, three times dearer where its channel counts are not
    multiples of 8 (the shape of what onnxruntime does on AVX machines, without timing anything)."""
    macs = float(np.prod(probe.w)) * float(np.prod(probe.x[2:] or (1,)))
    widths = (probe.w[0], probe.x[1]) if probe.op_type == "Conv" else probe.w
    return macs * 1e-6 * (1 if all(w % 8 == 0 for w in widths) else 3)


@pytest.fixture(autouse=True)
def widths_cache(tmp_path_factory, monkeypatch):
    """`prune --round-to auto` (the default) keeps its timing table in a folder of the test session, never
    the user's cache, and reads the fake table above: tests check the mechanics, not this machine's speed
    (tests/test_widths.py times real probes where it means to)."""
    folder = tmp_path_factory.getbasetemp() / "widths-cache"
    monkeypatch.setenv("ONNXPRUNE_CACHE", str(folder))
    monkeypatch.setattr("onnxprune.widths.measure_probe", fake_probe_ms)
    return folder
