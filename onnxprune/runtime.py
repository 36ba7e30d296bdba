"""onnxruntime inference sessions for graphs (verification, evaluation, latency)."""

from __future__ import annotations

import re

import numpy as np

from .errors import UserError
from .ir import Graph
from .ir.shapes import parse_input_shape


def inference_session(graph: Graph, *, optimize: bool = False, threads: int | None = None):
    """A CPU session for `graph`. By default at basic graph optimisations: comparisons want numbers,
    and onnxruntime 1.19's NCHWc layout transform (all optimisations) rejects some valid models with odd
    channel counts after a Concat. `optimize=True` (all optimisations) is for latency measurements."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4  # failures come back as exceptions; onnxruntime's own log would repeat them
    options.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize
                                        else ort.GraphOptimizationLevel.ORT_ENABLE_BASIC)
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(graph.to_onnx().SerializeToString(), options, providers=["CPUExecutionProvider"])


def bound_shapes(input_shapes: tuple[str, ...] | list[str]) -> dict[str, tuple[int, ...]]:
    """"name=1x3x224x224" bindings as {name: dims}."""
    return dict(parse_input_shape(text) for text in input_shapes)


def random_inputs(graph: Graph, rng: np.random.Generator, batch: int,
                  input_shapes: tuple[str, ...] | list[str] = ()) -> dict[str, np.ndarray]:
    """Seeded random inputs for every graph input, drawn by what each input is (`inputs.draw`): of the
    bound shape where `input_shapes` binds the input ("name=1x3x224x224"), else of the declared one with
    symbolic dimensions as `batch`."""
    from .inputs import data_inputs, draw

    bound = bound_shapes(input_shapes)
    feeds = {}
    for value in data_inputs(graph):
        shape = bound[value.name] if value.name in bound else \
            tuple(d if isinstance(d, int) and d > 0 else batch for d in (value.shape or ()))
        feeds[value.name] = draw(graph, value, shape, rng)
    return feeds


def run_reference(session, feeds: dict[str, np.ndarray], what: str) -> list[np.ndarray]:
    """`session.run` on sample inputs of a model the user gave: if onnxruntime fails, the usual cause is
    inputs of a size the model cannot take (dynamic dims filled in arbitrarily), so say that in one
    line. (A failure of a model onnxprune wrote is onnxprune's bug: do not use this for those.)"""
    try:
        return session.run(None, feeds)
    except Exception as error:  # onnxruntime raises its own exception types
        sizes = ", ".join(f"{name}={'x'.join(map(str, array.shape))}" for name, array in feeds.items())
        failed = re.search(r"running (\S+) node\. Name:'([^']*)'", str(error))
        reason = (f"its {failed[1]} node" + (f" '{failed[2]}'" if failed[2] else "") + " failed" if failed
                  else str(error).strip().splitlines()[0][:160])
        raise UserError(f"{what}: onnxruntime could not run the model on sample inputs {sizes} ({reason}); "
                        "give --input-shape NAME=DIMS with sizes the model takes") from error
