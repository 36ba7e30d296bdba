"""The training loop's callbacks: checkpoints, the progress bar, metric rows, what Ctrl-C says.

Each is small and does one thing; the caller (the `run` command, `sparse_train`, the `sparse-train`
pass) chooses which to hand `train_loop`. Order matters in one place: `Checkpointing` restores the
step in `restore`, which runs before any `on_start`, so the progress bar opens at the resumed step.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import IO

from ..errors import Interrupted
from .checkpoint import Checkpoint, refuse_existing_checkpoint
from .loop import Callback, LoopState, TrainingDiverged


class Checkpointing(Callback):
    """Save a checkpoint every `every` steps (0: never in between), when the loop finishes and when it
    is interrupted; with `resume`, restore the run from it first, refusing one written with other
    `settings` (see `checkpoint.run_settings`). A fresh run refuses a folder that already exists.
    Every rank restores; rank 0 alone saves. A diverged run names the last good checkpoint."""

    def __init__(self, directory: Path, settings: dict, *, every: int = 0, resume: bool = False):
        if not resume:
            refuse_existing_checkpoint(directory)
        self.checkpoint = Checkpoint(Path(directory))
        self.settings, self.every, self.resume = settings, every, resume

    @property
    def directory(self) -> Path:
        """The checkpoint folder."""
        return self.checkpoint.directory

    def restore(self, state: LoopState) -> None:
        if self.resume:  # the optimizer's own copies (a step on CUDA) follow the engine's weights
            state.step = int(self.checkpoint.load(state.engine, state.optimizer, self.settings)["step"])

    def on_step(self, state: LoopState) -> None:
        if state.main and self.every and state.step % self.every == 0:
            self._save(state)

    def on_end(self, state: LoopState) -> None:
        if state.outcome in ("finished", "interrupted"):
            if state.main:
                self._save(state)
        elif isinstance(state.error, TrainingDiverged):
            raise TrainingDiverged(f"{state.error} (the last good checkpoint is in {self.directory})") from None

    def _save(self, state: LoopState) -> None:
        self.checkpoint.save(state.step, state.engine, state.optimizer, {"loss": state.loss}, self.settings)


class ProgressBar(Callback):
    """A tqdm bar over the steps, with the loss, sparsity and learning rate of the last metrics row."""

    def __init__(self):
        self.bar = None

    def on_start(self, state: LoopState) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=state.total, initial=state.step, unit="step", dynamic_ncols=True, leave=True)

    def on_step(self, state: LoopState) -> None:
        if state.record is not None:
            self.bar.set_postfix(loss=f"{state.loss:.4f}", sparsity=f"{state.record['group_sparsity']:.2f}",
                                 lr=f"{state.lr:.3g}", refresh=False)
        self.bar.update(1)

    def on_end(self, state: LoopState) -> None:
        if self.bar is not None:
            self.bar.close()


class OnMetrics(Callback):
    """Hand every metrics row to a function."""

    def __init__(self, handle: Callable[[dict], None]):
        self.handle = handle

    def on_step(self, state: LoopState) -> None:
        if state.record is not None:
            self.handle(state.record)


class MetricsLog(OnMetrics):
    """Write every metrics row as one JSON line to an open text file, flushed at once (a killed run keeps
    its rows; a resumed one trims those past its checkpoint first: `checkpoint.trim_metrics`)."""

    def __init__(self, file: IO[str]):
        def write(record: dict) -> None:
            file.write(json.dumps(record) + "\n")
            file.flush()
        super().__init__(write)


class ResumeOnInterrupt(Callback):
    """Turn Ctrl-C into Interrupted, which says the step and how to continue (after `Checkpointing` has
    saved, when it comes earlier in the list)."""

    def __init__(self, checkpoint: Path | None = None):
        self.checkpoint = checkpoint

    def on_end(self, state: LoopState) -> None:
        if state.outcome == "interrupted":
            if self.checkpoint is None:  # nothing was saved: there is nothing to resume from
                raise Interrupted(f"interrupted at step {state.step} (no checkpoint)")
            raise Interrupted(f"interrupted at step {state.step}; resume with --resume (checkpoint: {self.checkpoint})")


__all__ = ["Checkpointing", "MetricsLog", "OnMetrics", "ProgressBar", "ResumeOnInterrupt"]
