"""The training loop: engine steps, optimizer steps, a schedule and callbacks (DESIGN §8).

`train_loop` knows engines, group-sparse optimizers and data-parallel ranks, and nothing of files,
terminals or passes: checkpoints, the progress bar, metric rows and what Ctrl-C says are callbacks
(`train/callbacks.py`), which the caller chooses. A callback sees one `LoopState` through four hooks,
called in list order:

- `restore(state)` before anything else (a checkpoint brings back the step, weights and optimizer);
- `on_start(state)` once every callback has restored;
- `on_step(state)` after each optimizer step (`state.record` holds the metrics row when one was made);
- `on_end(state)` once the loop stops (`state.outcome`: "finished", "interrupted" by Ctrl-C, or
  "failed"). Every callback's `on_end` runs; one may raise to end the run with its own error (how to
  resume, where the last checkpoint is), and the first such error is raised after all have run.

An interrupted loop whose callbacks raise nothing re-raises KeyboardInterrupt; a failed one re-raises
its error. The loop never steps the optimizer on a non-finite loss: it stops with TrainingDiverged.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..errors import UserError

if TYPE_CHECKING:  # torch (which distributed.py imports) loads only when a loop runs: the passes import this
    from .distributed import Ranks


class TrainingDiverged(UserError):
    """The loss became NaN or infinite."""


@dataclass
class LoopState:
    """What callbacks see: where the loop stands and what it drives."""

    engine: Any
    optimizer: Any  # steps with `step(lr)`; `zero` flags the groups that are exactly zero
    total: int  # the step the loop stops at
    ranks: Ranks  # this process's place among data-parallel ranks
    step: int = 0  # steps taken (a restored run starts past 0)
    loss: float = math.nan  # the last step's loss
    lr: float = 0.0
    record: dict | None = None  # the metrics row made at this step (every log_every steps and the last)
    history: list[dict] = field(default_factory=list)  # every row made
    outcome: Literal["running", "finished", "interrupted", "failed"] = "running"
    error: BaseException | None = None  # what ended a failed loop

    @property
    def main(self) -> bool:
        """True on the rank that writes (rank 0; the only one without torchrun)."""
        return self.ranks.main


class Callback:
    """A training-loop callback: override the hooks you need (see the module's doc for their order)."""

    def restore(self, state: LoopState) -> None:
        """Bring back an earlier run's state (step, weights, optimizer) before the loop starts."""

    def on_start(self, state: LoopState) -> None:
        """The loop is about to take its first step (at `state.step`)."""

    def on_step(self, state: LoopState) -> None:
        """A step was taken."""

    def on_end(self, state: LoopState) -> None:
        """The loop stopped (`state.outcome`); raise to end the run with an error of your own."""


def share(flags: np.ndarray) -> float:
    """Share of True entries (0 for none)."""
    return float(flags.mean()) if len(flags) else 0.0


def train_loop(engine, optimizer, batches: Callable[[int], Iterable[list[np.ndarray]]],
               schedule: Callable[[int], float], callbacks: Sequence[Callback] = (), *, total: int, batch_size: int,
               log_every: int = 10, ranks: Ranks | None = None) -> LoopState:
    """Train until `total` steps or the end of the data; return the final state.

    `batches(start)` yields each step's feeds (this rank's share, targets included) from step `start`
    on; `schedule(step)` is the learning rate. With several ranks, gradients, losses and running
    statistics are averaged across them after each engine step, and the zero groups are checked to
    agree at every metrics row."""
    from .distributed import Ranks

    state = LoopState(engine, optimizer, total, ranks or Ranks())
    for callback in callbacks:  # outside the try: an interrupted restore must not be saved as the run's state
        callback.restore(state)
    started, first = time.perf_counter(), state.step
    try:
        for callback in callbacks:  # inside: one that fails still gets every bar opened so far closed
            callback.on_start(state)
        feeds_from = iter(batches(state.step))
        while state.step < total:  # checked before a batch is drawn: no batch past the last step is read
            feeds = next(feeds_from, None)
            if feeds is None:
                break
            _step(state, feeds, schedule, log_every, batch_size, started, first)
            for callback in callbacks:
                callback.on_step(state)
        state.outcome = "finished"
    except KeyboardInterrupt:
        state.outcome = "interrupted"
    except BaseException as error:  # noqa: BLE001 - kept, and re-raised once every on_end has run
        state.outcome, state.error = "failed", error
    raised = _end(state, callbacks)
    if raised is not None:
        raise raised
    if state.outcome == "interrupted":
        raise KeyboardInterrupt
    if state.error is not None:
        raise state.error
    return state


def _step(state: LoopState, feeds: list[np.ndarray], schedule, log_every: int, batch_size: int,
          started: float, first: int) -> None:
    """One engine step and one optimizer step; a metrics row every `log_every` steps and at the last
    (its throughput over the steps this call took: a resumed run's restored steps took no time here)."""
    import torch

    from .distributed import average, check_same_groups

    engine, optimizer, ranks = state.engine, state.optimizer, state.ranks
    loss = engine.step(feeds)
    if ranks.world > 1:  # the mean gradient (and loss) of the global batch, in one all-reduce
        mean_loss = torch.tensor([loss], dtype=torch.float32, device=engine.device)
        average([*engine.grads.values(), mean_loss], ranks)
        loss = float(mean_loss)
    if not math.isfinite(loss):
        raise TrainingDiverged(f"the loss became {loss} at step {state.step}; lower --lr")
    state.lr = schedule(state.step)
    optimizer.step(state.lr)
    state.step += 1
    state.loss = loss
    state.record = None
    if state.step % log_every == 0 or state.step == state.total:
        check_same_groups(optimizer.zero, ranks, state.step)
        state.record = {"step": state.step, "loss": loss, "lr": state.lr,
                        "group_sparsity": share(optimizer.zero.cpu().numpy()),
                        "samples_per_s": (state.step - first) * batch_size / max(time.perf_counter() - started, 1e-9)}
        state.history.append(state.record)
    if ranks.world > 1 and engine.running:
        average(engine.running.values(), ranks)  # each share's statistics: keep one mean


def _end(state: LoopState, callbacks: Sequence[Callback]) -> BaseException | None:
    """Every callback's `on_end`; the first error one raised (a later one does not hide it)."""
    raised = None
    for callback in callbacks:
        try:
            callback.on_end(state)
        except BaseException as error:  # noqa: BLE001 - every on_end runs; the first error is raised after
            raised = raised or error
    return raised


__all__ = ["Callback", "LoopState", "TrainingDiverged", "share", "train_loop"]
