"""The errors onnxprune raises, split by whose fault they are.

`UserError` and its subclasses are problems with what the user gave us (a file, a pipeline string, an
option): the CLI prints their message as one line and exits with status 2. Anything else escaping to
the CLI is a bug in onnxprune (status 1).
"""

from __future__ import annotations


class OnnxpruneError(Exception):
    """Base class of every error onnxprune raises on purpose."""


class UserError(OnnxpruneError):
    """Bad input from the user; the message says what is wrong and what to do."""


class ModelError(UserError):
    """A model file or ModelProto that cannot be read or does not meet the ONNX spec."""

    def __init__(self, source: object, problem: str, hint: str = "") -> None:
        self.source = str(source)
        self.problem = problem
        self.hint = hint
        message = f"{self.source}: {problem}"
        if hint:
            message += f" ({hint})"
        super().__init__(message)


class PipelineError(UserError):
    """A pipeline string, pass name or pass option that does not parse or does not exist."""


class CheckFailed(UserError):
    """The `check` pass found the model wrong (the ONNX checker, onnxruntime's loader); the pipeline stops."""


class VerifyFailed(OnnxpruneError):
    """The compact model does not compute what the masked original computes: a bug in onnxprune (not
    bad input), reported with the evidence and exit status 1."""


class Interrupted(UserError):
    """The user stopped the run (Ctrl-C); exit status 130 wherever it happens."""


class IRError(OnnxpruneError):
    """An edit that would break the IR's invariants: a bug in the pass that asked for it."""
