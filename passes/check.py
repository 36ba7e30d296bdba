"""`check`: the model passes onnx.checker (full check) and loads in onnxruntime."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from onnxprune.errors import CheckFailed, ModelError
from onnxprune.ir import MAX_ORT_IR_VERSION, Graph, validate
from onnxprune.passmanager import CheckPass


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


def load_in_onnxruntime(graph: Graph) -> None:
    """Fail unless onnxruntime builds a CPU session for the graph at all optimisations
    (`runtime.load_failure`: from a file `save` streams, never a serialised copy of the model)."""
    from onnxprune.runtime import load_failure

    try:
        failure = load_failure(graph, log_level=3)
    except ImportError:
        raise CheckFailed("check failed: onnxruntime is not installed "
                          "(install onnxprune with its [cpu] or [cuda] extra)") from None
    if failure is not None:
        raise CheckFailed(f"check failed: onnxruntime cannot load the model: {failure}")


__all__ = ["Check", "CheckReport", "load_in_onnxruntime"]
