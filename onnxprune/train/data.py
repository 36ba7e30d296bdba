"""Training data: `.npz` files, folders of memory-mapped `.npy` shards, or a Python factory.

Arrays are named after the model's inputs, plus `labels` (int64 class indices) for cross-entropy.
A folder holds `<name>.npy`, or a sub-folder `<name>/` of `.npy` shards concatenated in name order;
shards are memory-mapped, so data larger than memory streams. `module:function` returns an iterable
of batches (dicts of arrays) and is used as it comes. Every array is checked against the model's
declared inputs before training starts: a wrong name, dtype, shape or an empty set is one clear line.
"""

from __future__ import annotations

import importlib
import stat
import sys
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..files import path_problem

LABELS = "labels"
TARGET = "target"


@dataclass(frozen=True)
class InputSpec:
    """A model input as the data must match it: name, numpy dtype, dims (ints, or None where free)."""

    name: str
    dtype: np.dtype
    shape: tuple[int | None, ...]


class _Shards:
    """Row-indexable view over memory-mapped `.npy` shards (concatenated along axis 0)."""

    def __init__(self, paths: list[Path]):
        self.parts = [_load_npy(p) for p in paths]
        shapes = {part.shape[1:] for part in self.parts}
        dtypes = {part.dtype for part in self.parts}
        if len(shapes) > 1 or len(dtypes) > 1:
            raise UserError(f"{paths[0].parent}: shards disagree on shape or dtype ({shapes}, {dtypes})")
        self.ends = np.cumsum([len(part) for part in self.parts])
        self.shape = (int(self.ends[-1]) if len(self.ends) else 0, *next(iter(shapes)))
        self.dtype = next(iter(dtypes))

    def __len__(self) -> int:
        return self.shape[0]

    def take(self, rows: np.ndarray) -> np.ndarray:
        """The rows, in the given order."""
        shard = np.searchsorted(self.ends, rows, side="right")
        starts = np.concatenate([[0], self.ends[:-1]])
        out = np.empty((len(rows), *self.shape[1:]), dtype=self.dtype)
        for s in np.unique(shard):
            where = np.flatnonzero(shard == s)
            out[where] = self.parts[s][rows[where] - starts[s]]
        return out


def _take(array, rows: np.ndarray) -> np.ndarray:
    return array.take(rows) if isinstance(array, _Shards) else np.asarray(array[rows])


class ArrayData:
    """Named arrays of equal length, batched with a seeded shuffle."""

    def __init__(self, arrays: dict[str, object], source: str):
        self.arrays, self.source = arrays, source
        for name, array in arrays.items():
            if not getattr(array, "shape", ()):  # len() of a 0-d array is a TypeError
                raise UserError(f"{source}: array {name!r} is a single value; each array needs one row per sample")
        lengths = {name: len(a) for name, a in arrays.items()}
        if len(set(lengths.values())) > 1:
            raise UserError(f"{source}: arrays have different lengths ({', '.join(f'{k}={v}' for k, v in lengths.items())})")
        self.length = next(iter(lengths.values())) if lengths else 0

    def __len__(self) -> int:
        return self.length

    def split(self, fraction: float, seed: int) -> tuple[ArrayData, ArrayData]:
        """(train, held-out) with `fraction` of the rows held out, chosen with `seed`."""
        order = np.random.default_rng(seed).permutation(self.length)
        held = max(1, int(round(fraction * self.length))) if fraction > 0 else 0
        if held >= self.length:
            raise UserError(f"{self.source}: {self.length} samples are too few to hold out {fraction:.0%}")
        return self.subset(np.sort(order[held:])), self.subset(np.sort(order[:held]))

    def subset(self, rows: np.ndarray) -> ArrayData:
        """The given rows (materialised)."""
        return ArrayData({name: _take(a, rows) for name, a in self.arrays.items()}, self.source)

    def batches(self, batch_size: int, seed: int | None, drop_last: bool = True) -> Iterator[dict[str, np.ndarray]]:
        """One pass in batches; shuffled with `seed` (None: in order)."""
        order = np.arange(self.length) if seed is None else np.random.default_rng(seed).permutation(self.length)
        stop = self.length - (self.length % batch_size if drop_last else 0)
        for start in range(0, stop, batch_size):
            rows = np.sort(order[start:start + batch_size]) if seed is not None else order[start:start + batch_size]
            yield {name: _take(a, rows) for name, a in self.arrays.items()}


class FactoryData:
    """Batches from a user's `module:function` (it owns batching and shuffling)."""

    def __init__(self, make, source: str):
        self.make, self.source = make, source

    def batches(self, batch_size: int, seed: int | None, drop_last: bool = True) -> Iterator[dict[str, np.ndarray]]:
        found = self._call(self.make)
        if not isinstance(found, Iterable):
            raise UserError(f"{self.source} returned {type(found).__name__}, not an iterable of batches")
        iterator = iter(found)
        while True:
            batch = self._call(lambda: next(iterator, None))
            if batch is None:
                return
            if not isinstance(batch, dict):
                raise UserError(f"{self.source} yielded {type(batch).__name__}; each batch must be a dict of arrays "
                                "named after the model inputs")
            yield {k: np.asarray(v) for k, v in batch.items()}

    def _call(self, step):
        """Run the user's code; its own error becomes one line naming the function (not our bug)."""
        try:
            return step()
        except (KeyboardInterrupt, UserError):
            raise
        except Exception as error:  # whatever the user's code raises
            raise UserError(f"--data {self.source}: the function raised {type(error).__name__}: "
                            f"{str(error).splitlines()[0][:200] if str(error) else ''}") from error


def _load_npy(path: Path) -> np.ndarray:
    """A memory-mapped .npy file, or one line saying it is not one."""
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise UserError(f"{path}: not a readable .npy file ({str(error).splitlines()[0][:160]})") from None


def open_data(spec: str) -> ArrayData | FactoryData:
    """Open `--data`: a `.npz` file, a folder of `.npy` files/shards, or `module:function`."""
    path = Path(spec)
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        mode = None
    except (OSError, ValueError) as error:  # a name too long, a loop of symbolic links, a NUL byte
        if ":" not in spec:
            raise UserError(f"--data {spec}: cannot be read: {path_problem(error)}") from None
        mode = None
    if mode is not None and not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
        raise UserError(f"--data {spec}: is not a regular file or folder (a FIFO, socket or device)")
    if mode is not None and stat.S_ISREG(mode):
        if path.suffix != ".npz":
            raise UserError(f"{spec}: expected a .npz file, a folder of .npy files, or module:function")
        try:
            with np.load(path, allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in archive.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
            raise UserError(f"{spec}: not a readable .npz file ({str(error).splitlines()[0][:160]})") from None
        if not arrays:
            raise UserError(f"{spec}: the .npz file holds no arrays")
        return ArrayData(arrays, spec)
    if mode is not None:  # a folder
        arrays: dict[str, object] = {}
        for item in sorted(path.iterdir()):
            if item.suffix == ".npy" and item.is_file():
                arrays[item.stem] = _load_npy(item)
            elif item.is_dir() and sorted(item.glob("*.npy")):
                arrays[item.name] = _Shards(sorted(item.glob("*.npy")))
        if not arrays:
            raise UserError(f"{spec}: the folder holds no .npy files (expected <input>.npy or <input>/*.npy shards)")
        return ArrayData(arrays, spec)
    if ":" in spec:
        module_name, _, function = spec.partition(":")
        sys.path.insert(0, str(Path.cwd()))
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            raise UserError(f"--data {spec}: cannot import module {module_name!r} ({error})") from None
        finally:
            sys.path.pop(0)
        make = getattr(module, function, None)
        if not callable(make):
            raise UserError(f"--data {spec}: module {module_name!r} has no function {function!r}")
        return FactoryData(make, spec)
    raise UserError(f"--data {spec}: no such file or folder")


def check_batch(batch: dict[str, np.ndarray], inputs: list[InputSpec], target: str | None, source: str,
                classes: int | None = None) -> list[np.ndarray]:
    """The feeds for one batch in training order (inputs, then `labels` or `target` as the loss needs:
    pass target=None when the caller supplies it, as distillation does), or a clear error naming
    the input, the expected and the given shape or dtype. With `classes` (the model's output width),
    labels outside [0, classes) are an error: onnxruntime's loss reads out of bounds (a label of 2**40
    killed the process)."""
    feeds = []
    for spec in inputs:
        if spec.name not in batch:
            raise UserError(f"{source}: no array named {spec.name!r} (the model's input); found "
                            f"{', '.join(sorted(batch)) or 'nothing'}")
        array = batch[spec.name]
        if array.dtype != spec.dtype:
            if array.dtype.kind == spec.dtype.kind == "f" or (array.dtype.kind in "ui" and spec.dtype.kind in "ui"):
                array = array.astype(spec.dtype)
            else:
                raise UserError(f"{source}: input {spec.name!r} has dtype {array.dtype}, the model expects {spec.dtype}")
        if len(array.shape) != len(spec.shape) or any(d is not None and d != a for d, a in zip(spec.shape[1:], array.shape[1:])):
            expected = "x".join("?" if d is None else str(d) for d in spec.shape)
            raise UserError(f"{source}: input {spec.name!r} has shape {'x'.join(map(str, array.shape))}, the model "
                            f"expects {expected}")
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise UserError(f"{source}: input {spec.name!r} holds NaN or infinite values; clean the data first")
        feeds.append(np.ascontiguousarray(array))
    if target == LABELS:
        if LABELS not in batch:
            raise UserError(f"{source}: no array named 'labels' (int class indices), which --loss cross-entropy needs; "
                            "use --loss distill for data without labels")
        labels = batch[LABELS]
        check_labels(labels, classes, source)
        feeds.append(labels.astype(np.int64))
    elif target == TARGET:
        if TARGET not in batch:
            raise UserError(f"{source}: no array named 'target' (what the output should be), which --loss mse needs; "
                            "use --loss distill to train against the original model's outputs")
        values = batch[TARGET]
        if values.dtype.kind != "f":
            raise UserError(f"{source}: 'target' must be a float array, got {values.dtype}")
        feeds.append(np.ascontiguousarray(values, dtype=np.float32))
    return feeds


def check_labels(labels: np.ndarray, classes: int | None, source: str) -> None:
    """Labels must be a 1-D integer array, of class indices in [0, classes) when the number of classes
    is known."""
    if labels.dtype.kind not in "ui" or labels.ndim != 1:
        raise UserError(f"{source}: 'labels' must be a 1-D integer array, got {labels.dtype} with shape "
                        f"{'x'.join(map(str, labels.shape))}")
    if classes is None or not labels.size:
        return
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= classes:
        raise UserError(f"{source}: 'labels' must be class indices in [0, {classes}) (the model's output has "
                        f"{classes} classes); found values from {low} to {high}")


def input_specs(graph) -> list[InputSpec]:
    """The model's data inputs as `check_batch` wants them."""
    import onnx

    specs = []
    for value in graph.inputs:
        if value.is_initializer:
            continue
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(value.dtype)) if value.dtype else np.dtype(np.float32)
        shape = tuple(d if isinstance(d, int) and d > 0 else None for d in (value.shape or ()))
        specs.append(InputSpec(value.name, dtype, shape))
    return specs


def synthetic_data(graph, count: int, seed: int, free_dim: int = 8, input_shapes: tuple[str, ...] = ()) -> ArrayData:
    """Random inputs of the model's declared shapes (free dims but the batch as `free_dim`, or as
    `input_shapes` bind them: "name=1x3x224x224", batch ignored), for distillation without data, drawn
    by what each input is (`inputs.draw`: floats standard-normal, ids below the vocabulary of the
    embedding they index, masks of ones)."""
    from ..inputs import data_inputs, draw
    from ..runtime import bound_shapes

    bound = bound_shapes(input_shapes)
    rng = np.random.default_rng(seed)
    arrays = {}
    for spec, value in zip(input_specs(graph), data_inputs(graph)):
        dims = list(bound[spec.name][1:]) if spec.name in bound else \
            [d if d is not None else free_dim for d in spec.shape[1:]]
        if spec.dtype.kind not in "fiub":
            raise UserError(f"--synthetic cannot make {spec.dtype} inputs (input {spec.name!r}); give --data")
        arrays[spec.name] = draw(graph, value, (count, *dims), rng)
    return ArrayData(arrays, "synthetic data")


