"""onnxruntime inference sessions for graphs (verification, evaluation, latency)."""

from __future__ import annotations

import numpy as np
import onnx

from .ir import Graph


def inference_session(graph: Graph, *, optimize: bool = False, threads: int | None = None):
    """A CPU session for `graph`. By default at basic graph optimisations: comparisons want numbers,
    and onnxruntime 1.19's NCHWc layout transform (all optimisations) rejects some valid models with odd
    channel counts after a Concat. `optimize=True` (all optimisations) is for latency measurements."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize
                                        else ort.GraphOptimizationLevel.ORT_ENABLE_BASIC)
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(graph.to_onnx().SerializeToString(), options, providers=["CPUExecutionProvider"])


def random_inputs(graph: Graph, rng: np.random.Generator, batch: int) -> dict[str, np.ndarray]:
    """Seeded random inputs for every graph input; symbolic dimensions take `batch`."""
    feeds = {}
    for value in graph.inputs:
        if value.is_initializer:
            continue
        shape = [d if isinstance(d, int) and d > 0 else batch for d in (value.shape or ())]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(value.dtype)
        if np.issubdtype(dtype, np.floating):
            feeds[value.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype == np.bool_:
            feeds[value.name] = rng.integers(0, 2, shape).astype(bool)
        else:
            feeds[value.name] = rng.integers(0, 4, shape).astype(dtype)
    return feeds
