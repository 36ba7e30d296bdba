"""Training artifacts for onnxruntime-training: which tensors train, BatchNorm statistics, loss heads.

Facts this relies on (ORT_TRAINING_NOTES.md): `generate_artifacts` needs explicit trainable and
frozen lists; BatchNorm trains with batch statistics and its running statistics are only updated if
we expose the node's outputs 1 and 2 and write them back; the cross-entropy head wants int64 labels
named `labels` and opset >= 12, BatchNormalization's training mode opset >= 14 (older models are
converted for training, see `with_opset`);
generation logs hundreds of lines; ORT 1.19 loads IR <= 10.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import onnx

from ..errors import UserError
from ..ir import Graph
from ..ops.gradient_rules import speed_up_gradients
from ..ops.sharing import shared_roles
from ..ops.training_rules import differentiable_slot, gradient_reachable

Loss = Literal["cross-entropy", "mse", "distill"]
LOSSES = ("cross-entropy", "mse", "distill")
_FLOAT = onnx.TensorProto.FLOAT


@dataclass(frozen=True)
class TrainingArtifacts:
    """What `build_artifacts` wrote and what the engine needs to drive it."""

    training_model: Path
    checkpoint: Path
    trainable: tuple[str, ...]
    running_stats: dict[str, str]  # training-model output -> the running-statistics initializer it updates
    data_inputs: tuple[str, ...]  # model inputs, in order
    target: str | None  # "labels" (cross-entropy) or "target" (mse, distill)
    loss_output: str  # the model output the loss reads


def trainable_parameters(graph: Graph, device: str = "cpu", exclude: set[str] = frozenset(),
                         loss_output: str | None = None, engine: str = "ort") -> tuple[list[str], list[str]]:
    """(trainable, frozen) initializer names: float32 tensors of rank >= 1 whose every use is a
    differentiable input slot train, except `exclude` (constants legalization added); BatchNorm
    running statistics are frozen (written back each step). Only tensors from which a gradient reaches
    `loss_output` (default: any output) train. `engine` says whose gradients count: onnxruntime-training's
    ("ort") or torch's ("torch", which differentiates ops onnxruntime cannot, ReduceMax or LSTM)."""
    if engine == "torch":
        from ..ops.torch_kernels import torch_differentiable_slot as slot_rule  # imports torch

        def differentiable(op, slot):
            return slot_rule(op, slot)
    else:
        def differentiable(op, slot):
            return differentiable_slot(op, slot, device)
    frozen = sorted(running_statistics(graph))
    target = [v for v in graph.outputs if loss_output is None or v.name == loss_output]
    reachable = gradient_reachable(graph, device, target, differentiable)
    trainable = []
    for value in graph.initializers:
        tensor = value.tensor
        if value.name in frozen or value.name in exclude or tensor.data_type != _FLOAT or len(tensor.shape) == 0 or graph.is_input(value):
            continue
        uses = graph.uses(value)
        if uses and value in reachable and not graph.captures_of_value(value) and \
                all(differentiable(op, slot) for op, slot in uses):
            trainable.append(value.name)
    return trainable, frozen


def running_statistics(graph: Graph) -> set[str]:
    """Names of the initializers that are BatchNorm running means and variances."""
    names = set()
    for op in graph.ops():
        if op.op_type == "BatchNormalization" and op.domain in ("", "ai.onnx"):
            for value in graph.inputs_of(op)[3:5]:
                if value is not None and value.tensor is not None:
                    names.add(value.name)
    return names


def expose_running_statistics(graph: Graph) -> dict[str, str]:
    """Put every BatchNorm in training mode with its updated running mean and variance as graph outputs;
    return output name -> initializer name."""
    exposed = {}
    for op in [op for op in graph.topological_order() if op.op_type == "BatchNormalization"]:
        inputs, outputs = graph.inputs_of(op), graph.outputs_of(op)
        stats = inputs[3:5]
        if any(v is None or v.tensor is None for v in stats):
            continue
        graph.remove_op(op, remove_outputs=False)
        names = [graph.fresh_name(f"{v.name}/updated") for v in stats]
        attributes = dict(op.attributes)
        attributes.pop("training_mode", None)
        new = graph.add_op("BatchNormalization", inputs, [outputs[0], *names], name=op.name,
                           attributes={**attributes, "training_mode": 1})
        for value, stat in zip(graph.outputs_of(new)[1:], stats):
            graph.outputs.append(value)
            graph.set_type(value, stat.tensor.data_type, stat.tensor.shape)
            exposed[value.name] = stat.name
    return exposed


def fix_sample_sizes(graph: Graph, sizes: dict[str, tuple[int, ...]]) -> bool:
    """Declare the sizes the training data has (`sizes`: input name -> dims after the batch) on the
    graph inputs whose declared dims are not all known; the batch stays as declared. onnxruntime-training
    1.19 crashes (segfault) in a MaxPool step when the pooled tensor's spatial dims are symbolic; with
    them declared it trains. Returns whether anything changed."""
    changed = False
    for value in graph.inputs:
        dims = sizes.get(value.name)
        declared = value.shape
        if value.is_initializer or dims is None or declared is None or len(declared) != len(dims) + 1:
            continue
        if all(isinstance(d, int) and d > 0 for d in declared[1:]):
            continue
        graph.set_type(value, value.dtype, (declared[0], *dims))
        changed = True
    return changed


def with_opset(graph: Graph, minimum: int, why: str, input_shapes: tuple[str, ...] = ()) -> Graph:
    """`graph` converted to default-domain opset `minimum` by onnx's version converter (a new graph;
    the input is not modified), checked to keep every initializer (trained values map back by name)
    and to compute the same outputs on random inputs (sized by `input_shapes`); a UserError saying `why`
    it was needed if not."""
    from onnx import version_converter

    from ..ir import load
    from ..runtime import inference_session, random_inputs, run_reference, user_session

    advice = f"re-export the model with opset >= {minimum}"
    try:
        converted = load(version_converter.convert_version(graph.to_onnx(), minimum))
    except Exception as error:  # the converter raises bare RuntimeErrors naming the op without an adapter
        raise UserError(f"{why} needs opset >= {minimum}; converting the model's opset {graph.opset} failed "
                        f"({str(error).strip().splitlines()[-1]}): {advice}") from error
    before = {v.name: v.tensor.shape for v in graph.initializers}
    after = {v.name: v.tensor.shape for v in converted.initializers}
    if any(after.get(name) != dims for name, dims in before.items()):
        raise UserError(f"{why} needs opset >= {minimum}; converting from opset {graph.opset} changed the "
                        f"model's weights: {advice}")
    feeds = random_inputs(graph, np.random.default_rng(0), 2, input_shapes)
    checking = f"checking the opset {minimum} copy for training"
    expected = run_reference(user_session(graph, checking), feeds, checking)
    for old, new in zip(expected, inference_session(converted).run(None, feeds)):
        if old.shape != new.shape or not np.allclose(old, new, rtol=1e-5, atol=1e-6):
            raise UserError(f"{why} needs opset >= {minimum}; the model converted from opset {graph.opset} "
                            f"computes something else: {advice}")
    return converted


@contextlib.contextmanager
def _quiet_stderr():
    """onnxruntime's gradient builder logs hundreds of INFO lines from C++ to fd 2: keep them, and show
    them only if generation fails."""
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield sink
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def training_graph(graph: Graph, loss: Loss, device: str = "cpu", output: str | None = None,
                   exclude: set[str] = frozenset(), engine: str = "ort", input_shapes: tuple[str, ...] = ()
                   ) -> tuple[Graph, list[str], list[str], dict[str, str], str]:
    """What every engine trains: a copy of `graph` (not modified) with each BatchNorm in training mode and
    its updated running statistics as extra outputs; returns (that graph, trainable names, frozen names,
    statistics output -> initializer, the output the loss reads). For onnxruntime-training ("ort") a
    model older than the loss or BatchNorm's training mode needs is converted to that opset first."""
    if loss not in LOSSES:
        raise UserError(f"unknown loss {loss!r} (one of {', '.join(LOSSES)})")
    work = graph.copy()
    outputs = [v.name for v in work.outputs]
    output = output or outputs[0]
    if output not in outputs:
        raise UserError(f"the model has no output named {output!r} (outputs: {', '.join(outputs)})")
    needs = [(12, "the cross-entropy loss")] if loss == "cross-entropy" else []
    if running_statistics(work):
        needs.append((14, "training BatchNormalization (its training mode)"))
    minimum, why = max(needs, default=(0, ""))
    if engine == "ort" and work.opset < minimum:
        work = with_opset(work, minimum, why, input_shapes)
    trainable, frozen = trainable_parameters(work, device, exclude, output, engine)
    aliased = {name: roles for name, roles in shared_roles(work).items() if name in trainable}
    if aliased:  # one tensor trained for several roles (and overwritten by the statistics write-back)
        name, roles = next(iter(aliased.items()))
        raise UserError(f"trained tensor {name!r} has several roles ({', '.join(roles)}), shared by the exporter: "
                        "run the untie pass first (onnxprune's commands and sparse_train do)")
    if not trainable:
        raise UserError("the model has no trainable float32 weights (initializers of rank >= 1 used only where "
                        "gradients flow)")
    exposed = expose_running_statistics(work)
    return work, trainable, frozen, exposed, output


def build_artifacts(graph: Graph, directory: Path, loss: Loss, device: str = "cpu",
                    output: str | None = None, exclude: set[str] = frozenset(),
                    gradient_rules: bool = True, input_shapes: tuple[str, ...] = ()) -> TrainingArtifacts:
    """Write the training model and checkpoint for `graph` (already legalized; it is not modified) into
    `directory`. The loss reads `output` (default: the first graph output); `exclude` names constants
    that must not train. On CPU, gradient ops with slow kernels are replaced by equivalents
    (`ops/gradient_rules.py`) unless `gradient_rules` is false (for comparisons). `input_shapes` size the
    sample inputs of the check after an opset conversion."""
    from onnxruntime.training import artifacts  # imports torch: keep it off the CLI's start-up path

    work, trainable, frozen, exposed, output = training_graph(graph, loss, device, output, exclude, "ort",
                                                              input_shapes)
    model = work.to_onnx()
    model.ir_version = min(model.ir_version, 10)  # onnxruntime 1.19 loads IR <= 10
    head = artifacts.LossType.CrossEntropyLoss if loss == "cross-entropy" else artifacts.LossType.MSELoss
    directory.mkdir(parents=True, exist_ok=True)
    with _quiet_stderr() as log:
        try:
            artifacts.generate_artifacts(model, requires_grad=trainable, frozen_params=frozen, loss=head,
                                         artifact_directory=str(directory), additional_output_names=list(exposed),
                                         loss_input_names=[output])
        except Exception as error:  # onnxruntime raises plain RuntimeErrors with C++ context
            log.seek(0)
            tail = log.read().decode(errors="replace").strip().splitlines()[-3:]
            raise UserError(f"onnxruntime-training could not build the training graph: "
                            f"{str(error).strip().splitlines()[-1]}" + (f" ({tail[-1]})" if tail else "")) from error
    training_model = directory / "training_model.onnx"
    saved = onnx.load(training_model, load_external_data=False)
    rewritten = speed_up_gradients(saved) if device == "cpu" and gradient_rules else 0
    if saved.ir_version > 10 or rewritten:  # newer onnx writes newer IR than onnxruntime 1.19 loads
        saved.ir_version = min(saved.ir_version, 10)
        onnx.save(saved, training_model)
    data_inputs = tuple(v.name for v in graph.inputs if not v.is_initializer)
    return TrainingArtifacts(training_model, directory / "checkpoint", tuple(trainable), exposed, data_inputs,
                             "labels" if loss == "cross-entropy" else "target", output)
