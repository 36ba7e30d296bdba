"""The training loop apart from engines and files: hook order, Ctrl-C, divergence, batches drawn, and
that training leaves torch's thread count as it found it."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from onnxprune.errors import Interrupted
from onnxprune.train.callbacks import OnMetrics, ResumeOnInterrupt
from onnxprune.train.loop import Callback, TrainingDiverged, train_loop


class _Engine:
    """Loss = the batch's first value; no real gradients."""

    def __init__(self):
        self.device, self.running, self.grads = "cpu", {}, {}

    def step(self, feeds):
        return float(feeds[0][0])


class _Optimizer:
    def __init__(self):
        self.zero = torch.tensor([True, False, False, False])
        self.rates = []

    def step(self, lr):
        self.rates.append(lr)


class _Recorder(Callback):
    def __init__(self, log, name, restore_to=None):
        self.log, self.name, self.restore_to = log, name, restore_to

    def restore(self, state):
        self.log.append((self.name, "restore", state.step))
        if self.restore_to is not None:
            state.step = self.restore_to

    def on_start(self, state):
        self.log.append((self.name, "start", state.step))

    def on_step(self, state):
        self.log.append((self.name, "step", state.step))

    def on_end(self, state):
        self.log.append((self.name, "end", state.outcome))


def _batches(losses, drawn):
    def batches(start):
        for loss in losses[start:]:
            drawn.append(loss)
            yield [np.array([loss], np.float32)]
    return batches


def test_hooks_run_in_order_and_rows_are_made_every_log_every_steps():
    log, drawn = [], []
    optimizer = _Optimizer()
    state = train_loop(_Engine(), optimizer, _batches([1.0] * 10, drawn), lambda step: 0.1 * (step + 1),
                       [_Recorder(log, "a", restore_to=2), _Recorder(log, "b")], total=7, batch_size=4, log_every=2)
    assert log[:4] == [("a", "restore", 0), ("b", "restore", 2), ("a", "start", 2), ("b", "start", 2)]
    assert [entry[2] for entry in log if entry[:2] == ("a", "step")] == [3, 4, 5, 6, 7]
    assert log[-2:] == [("a", "end", "finished"), ("b", "end", "finished")]
    assert [row["step"] for row in state.history] == [4, 6, 7]  # every 2 steps and the last
    assert state.history[0]["group_sparsity"] == 0.25 and state.step == 7
    assert optimizer.rates == pytest.approx([0.3, 0.4, 0.5, 0.6, 0.7])  # the schedule at steps 2..6
    assert len(drawn) == 5  # from the restored step on, and no batch past the last step


def test_ctrl_c_ends_every_callback_then_says_how_to_resume():
    log = []

    def stop(record):
        if record["step"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(Interrupted, match=r"^interrupted at step 2 \(no checkpoint\)$"):  # nothing to resume from
        train_loop(_Engine(), _Optimizer(), _batches([1.0] * 5, []), lambda step: 0.1,
                   [OnMetrics(stop), _Recorder(log, "a"), ResumeOnInterrupt()], total=5, batch_size=1, log_every=1)
    with pytest.raises(Interrupted, match="interrupted at step 2; resume with --resume"):
        train_loop(_Engine(), _Optimizer(), _batches([1.0] * 5, []), lambda step: 0.1,
                   [OnMetrics(stop), ResumeOnInterrupt(Path("ckpt"))], total=5, batch_size=1, log_every=1)
    assert log[-1] == ("a", "end", "interrupted")
    with pytest.raises(KeyboardInterrupt):  # nobody turns it into Interrupted: it is not swallowed
        train_loop(_Engine(), _Optimizer(), _batches([1.0] * 5, []), lambda step: 0.1, [OnMetrics(stop)],
                   total=5, batch_size=1, log_every=1)


def test_a_non_finite_loss_stops_before_the_optimizer_steps_on_it():
    log = []
    optimizer = _Optimizer()
    with pytest.raises(TrainingDiverged, match=r"the loss became nan at step 2; lower --lr"):
        train_loop(_Engine(), optimizer, _batches([1.0, 1.0, math.nan, 1.0], []), lambda step: 0.1,
                   [_Recorder(log, "a")], total=4, batch_size=1)
    assert len(optimizer.rates) == 2 and log[-1] == ("a", "end", "failed")


def test_training_leaves_torch_threads_as_it_found_them(tmp_path):
    from .test_train import FAST, train_digits

    before = torch.get_num_threads()
    wanted = 3 if before != 3 else 2
    torch.set_num_threads(wanted)
    try:
        train_digits(tmp_path, FAST)  # the onnxruntime engine runs the step with torch at 1 thread
        assert torch.get_num_threads() == wanted
    finally:
        torch.set_num_threads(before)
