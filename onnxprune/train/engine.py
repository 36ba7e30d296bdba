"""The onnxruntime-training engine: one forward/backward per step, parameters and gradients exposed
as zero-copy torch tensors for our optimizer, BatchNorm running statistics written back.

`state.parameters[name].data` and `.grad` are live numpy views of onnxruntime's buffers on CPU
(ORT_TRAINING_NOTES.md); `torch.from_numpy` wraps them without a copy, so the optimizer's in-place
updates are what the next step computes with. Gradients are reset lazily before every step.
"""

from __future__ import annotations

import numpy as np
import torch

from .artifacts import TrainingArtifacts


def session_options(threads: int | None):
    """onnxruntime options that keep it from fighting torch for cores: no spinning, fixed threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    return options


class TrainingEngine:
    """Drives one set of training artifacts on CPU."""

    device = "cpu"  # where `params` and `grads` live

    def __init__(self, artifacts: TrainingArtifacts, threads: int | None = None):
        from onnxruntime.training.api import CheckpointState, Module

        self.artifacts = artifacts
        self.loss_output, self.target = artifacts.loss_output, artifacts.target
        self.state = CheckpointState.load_checkpoint(str(artifacts.checkpoint))
        self.module = Module(str(artifacts.training_model), self.state, None, device="cpu",
                             session_options=session_options(threads))
        self.module.train()
        self.params = {name: torch.from_numpy(self.state.parameters[name].data) for name in artifacts.trainable}
        self.grads = {name: torch.from_numpy(self.state.parameters[name].grad) for name in artifacts.trainable}
        outputs = self.module.output_names()
        self._stat_slots = [(outputs.index(out), self.state.parameters[name].data)
                            for out, name in artifacts.running_stats.items()]
        self.running = {name: torch.from_numpy(buffer) for (_, buffer), name in
                        zip(self._stat_slots, artifacts.running_stats.values())}  # live views

    def step(self, feeds: list[np.ndarray]) -> float:
        """Forward and backward on one batch (model inputs, then labels/target); returns the loss.
        Gradients land in `grads`; parameters do not change (the optimizer moves them)."""
        self.module.lazy_reset_grad()
        results = self.module(*feeds)
        if isinstance(results, np.ndarray):  # a training model with one output returns it bare
            results = [results]
        for index, buffer in self._stat_slots:
            buffer[...] = results[index]
        return float(results[0])

    def evaluate_loss(self, feeds: list[np.ndarray]) -> float:
        """The loss on one batch as `step` computes it (BatchNorm on the batch's statistics), leaving
        gradients, parameters and running statistics as they were. onnxruntime's eval model would put
        BatchNorm in inference mode, so this runs the training graph and puts the gradients back: it
        costs a step plus a copy of the gradients."""
        saved = {name: grad.clone() for name, grad in self.grads.items()}
        self.module.lazy_reset_grad()
        results = self.module(*feeds)
        for name, grad in self.grads.items():
            grad.copy_(saved[name])
        return float(results if isinstance(results, np.ndarray) else results[0])

    def buffers(self) -> dict[str, np.ndarray]:
        """Current running statistics (name -> live array)."""
        return {name: self.state.parameters[name].data for name in self.artifacts.running_stats.values()}

    def weights(self) -> dict[str, np.ndarray]:
        """Every trained tensor and buffer, as copies (for writing the model out)."""
        out = {name: t.numpy().copy() for name, t in self.params.items()}
        out.update({name: a.copy() for name, a in self.buffers().items()})
        return out

    def load_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Overwrite trained tensors and buffers in place (resume from a checkpoint)."""
        for name, array in weights.items():
            self.state.parameters[name].data[...] = array
