"""Shared test helpers: the model zoo, random inputs, and onnxruntime runs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
import pytest

ROOT = Path(__file__).resolve().parent.parent
ZOO = ROOT / "models"
ZOO_MODELS = sorted(p.name for p in ZOO.glob("*.onnx"))


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes (to prove an input was not modified)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def random_feeds(model: onnx.ModelProto, seed: int = 0, batch: int = 2) -> dict[str, np.ndarray]:
    """Seeded random inputs for every real graph input; symbolic dims become `batch`."""
    rng = np.random.default_rng(seed)
    initializers = {t.name for t in model.graph.initializer}
    feeds = {}
    for info in model.graph.input:
        if info.name in initializers:
            continue
        tensor_type = info.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else batch for d in tensor_type.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)
        if np.issubdtype(dtype, np.floating):
            feeds[info.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype == np.bool_:
            feeds[info.name] = rng.integers(0, 2, shape).astype(bool)
        else:
            feeds[info.name] = rng.integers(0, 3, shape).astype(dtype)
    return feeds


def run_ort(model: onnx.ModelProto | str | Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Run a model on the CPU with onnxruntime."""
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
