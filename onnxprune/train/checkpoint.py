"""Checkpoints of a training run: the folder's contents, the settings a resume must share, metric rows.

A checkpoint folder holds `weights.npz`, `optimizer.pt` and `progress.json` (step, loss, settings). It
is replaced whole (written beside, then renamed), so a crash or a full disk leaves the last good one.
onnxprune never deletes or replaces a checkpoint folder it did not write in this run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..files import atomic_write
from ..ir import Graph
from .config import TrainConfig
from .data import ArrayData


def refuse_existing_checkpoint(directory: Path) -> None:
    """Stop before a fresh run could replace `directory` (or its `.old` twin): whatever is there was not
    made by this run, so it is the user's to keep, to resume, or to remove."""
    for path in (directory, directory.with_name(directory.name + ".old")):
        if path.exists() or path.is_symlink():
            raise UserError(f"{path} already exists (a checkpoint of an earlier run?): continue that run with "
                            "--resume, or move or remove it yourself; onnxprune never deletes what it did not write")


@dataclass
class Checkpoint:
    """A checkpoint folder: `save` replaces it whole, `progress` reads where it stood, `load` restores."""

    directory: Path

    def save(self, step: int, engine, optimizer, extra: dict, settings: dict) -> None:
        import torch

        tmp = Path(tempfile.mkdtemp(dir=self.directory.parent, prefix=".ckpt-"))
        try:
            np.savez(tmp / "weights.npz", **engine.weights())
            torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
            (tmp / "progress.json").write_text(json.dumps({"step": step, **extra, "settings": settings}))
        except BaseException as error:
            shutil.rmtree(tmp, ignore_errors=True)  # never a half-written checkpoint folder on a full disk
            if isinstance(error, OSError) or "enforce fail" in str(error):  # torch reports a full disk so
                raise UserError(f"cannot write the checkpoint in {self.directory.parent}: "
                                f"{getattr(error, 'strerror', None) or str(error).splitlines()[0][:120]}") from error
            raise
        old = self.directory.with_name(self.directory.name + ".old")
        if self.directory.exists():
            shutil.rmtree(old, ignore_errors=True)
            self.directory.rename(old)
        tmp.rename(self.directory)  # the last good checkpoint is replaced only once the new one is whole
        shutil.rmtree(old, ignore_errors=True)

    def progress(self) -> dict:
        """What progress.json says (step, loss, the settings of the run that wrote it)."""
        path = self.directory / "progress.json"
        if not path.exists():
            raise UserError(f"--resume: no checkpoint in {self.directory}")
        try:
            found = json.loads(path.read_text())
            int(found["step"])
            return found
        except (ValueError, KeyError, TypeError, OSError):
            raise UserError(f"--resume: {path} is damaged; start afresh after removing {self.directory}") from None

    def load(self, engine, optimizer, settings: dict) -> dict:
        """Restore weights and optimizer state; refuse a checkpoint written with other settings."""
        import torch

        progress = self.progress()
        saved = progress.get("settings", {})
        for key, value in settings.items():
            if key in OPTIONAL_SETTINGS and key not in saved:
                continue  # a checkpoint written before the setting was recorded
            if saved.get(key) != value:
                raise UserError(f"--resume: the checkpoint in {self.directory} was written with {key}={saved.get(key)!r}, "
                                f"this run has {key}={value!r}; resume with the same settings, or start afresh after "
                                f"removing {self.directory}")
        try:
            with np.load(self.directory / "weights.npz") as archive:
                engine.load_weights({k: archive[k] for k in archive.files})
            optimizer.load_state_dict(torch.load(self.directory / "optimizer.pt"))
        except Exception as error:  # noqa: BLE001 - numpy, zipfile, pickle and torch each raise their own kinds
            raise UserError(f"--resume: the checkpoint in {self.directory} cannot be read "
                            f"({type(error).__name__}); start afresh after removing it") from None
        return progress


#: settings a checkpoint may lack (written before they were recorded): they are checked where present
OPTIONAL_SETTINGS = frozenset({"weights"})


def weights_fingerprint(graph: Graph) -> str:
    """A hash of the parameters' stored bytes, name by name (a model of the same architecture with other
    weights is another model: resumed, it would train on from this run's weights silently). Types with
    no byte array (strings, packed 4-bit) hash their serialised tensor."""
    digest = hashlib.sha256()
    for value in graph.initializers:
        digest.update(f"{value.name};".encode())
        storage = value.tensor.storage
        if storage is not None:
            digest.update(np.ascontiguousarray(storage).reshape(-1).view(np.uint8))
        else:
            digest.update(value.tensor.to_proto(value.name).SerializeToString())
    return digest.hexdigest()[:16]


def run_settings(config: TrainConfig, graph: Graph, data) -> dict:
    """What a resumed run must share with the run that wrote the checkpoint: every setting that shapes
    the trajectory, the model (its parameters' names and shapes, and their values: `weights_fingerprint`)
    and the data (source and size)."""
    kept = {k: v for k, v in asdict(config).items()
            if k not in ("checkpoint_every", "log_every", "threads", "device", "engine", "bf16", "compile")
            and (config.optimizer == "hesso-cric" or not k.startswith("cric_"))}  # older checkpoints still resume
    layout = ";".join(f"{v.name}:{'x'.join(map(str, v.tensor.shape))}" for v in graph.initializers)
    size = len(data) if isinstance(data, ArrayData) else None
    source = str(getattr(data, "source", "data"))
    source = os.path.realpath(source) if os.path.exists(source) else source  # the same file by another path
    return {**kept, "model": hashlib.sha256(layout.encode()).hexdigest()[:16], "weights": weights_fingerprint(graph),
            "data": source + (f" ({size} samples)" if size is not None else "")}


def trim_metrics(path: Path, step: int) -> None:
    """Drop metric rows past `step` (written after the checkpoint a resumed run restarts from), so a run
    killed and resumed never lists a step twice."""
    if not path.exists():
        return
    rows = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                rows.append(line)
        except (ValueError, AttributeError):
            continue  # a line cut short by the kill
    with atomic_write(path, "w") as handle:
        handle.write("".join(row + "\n" for row in rows))

