"""`check`: the model passes onnx.checker (full check) and loads in onnxruntime."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from onnxprune.errors import CheckFailed, ModelError
from onnxprune.ir import MAX_ORT_IR_VERSION, Graph, save, validate
from onnxprune.passmanager import CheckPass

#: Above this many bytes of weights the model is handed to onnxruntime as files, not one protobuf.
_IN_MEMORY_LIMIT = 1 << 30


@dataclass(frozen=True)
class CheckOptions:
    """Options of `check`."""

    ort: bool = True  # also load the model in an onnxruntime CPU session


@dataclass(frozen=True)
class CheckReport:
    """What `check` verified."""

    record: ClassVar[bool] = True  # a fact that no later transform invalidates

    checker: bool
    onnxruntime: bool


class Check(CheckPass):
    """Check the model: onnx.checker with strict shape inference, then an onnxruntime session.

    Fails the pipeline (CheckFailed) with the first problem found.
    """

    name = "check"
    Options = CheckOptions
    provides = (CheckReport,)

    def run(self, graph: Graph, am) -> CheckReport:
        if self.options.ort and graph.ir_version > MAX_ORT_IR_VERSION:
            raise CheckFailed(f"check failed: IR version {graph.ir_version} is newer than onnxruntime 1.19 loads "
                              f"({MAX_ORT_IR_VERSION})")
        try:
            validate(graph, "the model", allow_custom_domains=True, full=True)
        except ModelError as exc:
            raise CheckFailed(f"check failed: {exc.problem}") from None
        if not self.options.ort:
            return CheckReport(True, False)
        load_in_onnxruntime(graph)
        return CheckReport(True, True)


def load_in_onnxruntime(graph: Graph):
    """Create an onnxruntime CPU session for the graph (through a temporary file for big models)."""
    from onnxprune.runtime import onnxruntime

    try:
        ort = onnxruntime()
    except ImportError:
        raise CheckFailed("check failed: onnxruntime is not installed "
                          "(install onnxprune with its [cpu] or [cuda] extra)") from None
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        if sum(v.tensor.nbytes for v in graph.initializers) < _IN_MEMORY_LIMIT:
            return ort.InferenceSession(graph.to_onnx().SerializeToString(), options,
                                        providers=["CPUExecutionProvider"])
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "model.onnx"
            save(graph, path, external_data=True)
            return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types from C++
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckFailed(f"check failed: onnxruntime cannot load the model: {first}") from None


__all__ = ["Check", "CheckReport", "load_in_onnxruntime"]
