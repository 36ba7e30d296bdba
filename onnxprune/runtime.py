"""onnxruntime inference sessions for graphs (verification, evaluation, latency)."""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import UserError
from .ir import Graph
from .ir.shapes import parse_input_shape

#: Graphs with more initializer bytes than this reach onnxruntime with their weights in an external data
#: file beside the temporary model file (aligned, so onnxruntime can memory-map them), not inside it.
IN_MEMORY_LIMIT = 64 * 1024 * 1024
#: Weights of at least this many bytes reach a session built from a Graph as arrays onnxruntime reads
#: in place (`SessionOptions.add_initializer`), not through a file.
GIVEN_MIN_BYTES = 1 << 20
#: At level "all" those weights are written to the session's temporary folder instead (see
#: `inference_session`), up to this many bytes; past it, a copy on disk per timed model costs more than
#: the measurement is worth, and the caller's basic-level fallback (`_timed_session`) times the model.
ALL_LEVEL_COPY_LIMIT = 1 << 30
#: onnxruntime's graph optimisation levels by name.
LEVELS = ("disable", "basic", "extended", "all")


def onnxruntime():
    """The onnxruntime module for inference, imported without its training half.

    With an onnxruntime-training wheel installed, `import onnxruntime` checks its build by importing
    `onnxruntime.training.ortmodule`, which imports torch and sympy: 3-5 s at every start of a command
    that only runs inference sessions (verify, latency, evaluate). A None entry in sys.modules makes an
    import raise ImportError, which that check reads as "no ORTModule" and passes over; the entry is
    removed at once, so `onnxruntime.training` imports as usual later, when training needs it."""
    if "onnxruntime" in sys.modules:
        return sys.modules["onnxruntime"]
    blocked = "onnxruntime.training" not in sys.modules
    if blocked:
        sys.modules["onnxruntime.training"] = None
    try:
        import onnxruntime as ort
    finally:
        if blocked and sys.modules.get("onnxruntime.training", 0) is None:
            del sys.modules["onnxruntime.training"]
    return ort


def inference_session(model: Graph | str | os.PathLike, *, optimize: bool = False, threads: int | None = None,
                      level: str | None = None, inter_threads: int | None = None, lean: bool = False,
                      optimized_path: str | os.PathLike | None = None, log_level: int = 4):
    """The one place onnxprune builds onnxruntime inference sessions (CPU), always from a file path.

    `model` is a path (external data beside it is read by onnxruntime itself) or a Graph, which is first
    written by `save` into a temporary folder that lives as long as the session, without its large
    weights: those onnxruntime is handed as arrays it uses in place (views of the memory-mapped source
    file; the slices compact and verify make, computed here), so no stage writes a copy of the weights
    to disk or makes one serialised protobuf (which held the weights twice more, cannot exceed 2 GiB,
    and took minutes of disk I/O for a 13 GB model). Weights numpy cannot hand over as their type
    (bfloat16, float8) are written as external data beside the file, and so is every weight at level
    "all" (up to ALL_LEVEL_COPY_LIMIT), whose layout transforms read them from the file before
    handed-over arrays apply.

    `level` ("disable", "basic", "extended", "all") is the graph optimisation level; by default "basic":
    comparisons want numbers, and onnxruntime 1.19's NCHWc layout transform (all optimisations) rejects
    some valid models with odd channel counts after a Concat. `optimize=True` means "all" (latency).
    `lean=True` (verify, load checks: numbers, not speed) trades speed for memory: no prepacking (kernels
    keep a re-laid-out copy of every constant weight, a second copy of the model), no CPU arena (it
    keeps what it once held: an fp16 model on a CPU without fp16 kernels casts every weight to fp32 as
    it runs, and the arena grew by the model's fp32 size), and the priority-based execution order
    (the default order ran those casts early: a 2 GB fp16 decoder peaked at 4.3 GB, 2.4 GB with it,
    and ran twice as fast). `optimized_path` writes the optimised graph."""
    ort = onnxruntime()
    level = level or ("all" if optimize else "basic")
    if level not in LEVELS:
        raise ValueError(f"unknown graph optimisation level {level!r}; one of {', '.join(LEVELS)}")
    options = ort.SessionOptions()
    options.log_severity_level = log_level  # failures come back as exceptions; its own log would repeat them
    options.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL, "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED, "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[level]
    if threads:
        options.intra_op_num_threads = threads
    if inter_threads:
        options.inter_op_num_threads = inter_threads
    if lean:
        options.add_session_config_entry("session.disable_prepacking", "1")
        options.enable_cpu_mem_arena = False
        options.execution_order = ort.ExecutionOrder.PRIORITY_BASED
    if optimized_path is not None:
        options.optimized_model_filepath = str(optimized_path)
    providers = ["CPUExecutionProvider"]
    if not isinstance(model, Graph):
        return ort.InferenceSession(str(model), options, providers=providers)
    from .ir.serde import RELEASE_EVERY, release_pages, save
    from .ir.tensor import RAW_NUMPY_DTYPES

    # large weights of a type numpy and onnxruntime share reach the session as arrays (views of the
    # memory-mapped source, or slices computed now), which onnxruntime uses in place; the file holds the
    # graph and the rest (bfloat16, float8: numpy has no such type for onnxruntime) as external data
    given = {value.name: value.tensor for value in model.initializers
             if value.tensor.data_type in RAW_NUMPY_DTYPES and value.tensor.nbytes >= GIVEN_MIN_BYTES}
    if level == "all" and sum(t.nbytes for t in given.values()) <= ALL_LEVEL_COPY_LIMIT:
        # onnxruntime's layout transforms (NCHWc) read the weights from the file before the arrays handed
        # over replace them ("cannot get file size" of the placeholder): at "all" (timing) they are
        # written beside the file, a copy on disk bounded by ALL_LEVEL_COPY_LIMIT
        given = {}
    folder = tempfile.TemporaryDirectory(prefix="onnxprune-session-")
    path = Path(folder.name) / "model.onnx"
    try:  # our own file (and .data beside it): nothing outside the folder is read
        big = sum(v.tensor.nbytes for v in model.initializers) > IN_MEMORY_LIMIT
        save(model, path, external_data=True if big else None, placeholders=frozenset(given))
        values, read = [], 0
        for name, tensor in given.items():
            values.append(ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(tensor.storage)))  # keeps the array
            options.add_initializer(name, values[-1])
            read += tensor.nbytes if tensor.is_deferred else 0
            if read >= RELEASE_EVERY:  # computing slices read the source: its pages need not stay resident
                release_pages(model)
                read = 0
        release_pages(model)
        session = ort.InferenceSession(str(path), options, providers=providers)
    except BaseException:
        folder.cleanup()
        raise
    session._onnxprune_files = (folder, values)  # live as long as the session: it reads the arrays in place
    return session


def _first_line(error: BaseException) -> str:
    """The first line of onnxruntime's error text (its C++ messages run over many lines), or its type."""
    text = str(error).strip()
    return text.splitlines()[0][:240] if text else type(error).__name__


def load_failure(model: Graph | str | os.PathLike, *, lean: bool = False, log_level: int = 4) -> str | None:
    """Why onnxruntime cannot build a CPU session for `model` (a Graph or a path) at all graph
    optimisations, as the first line of its error; None when it can. The one such check (the `check`
    pass, the load check after `prune` writes). ImportError (no onnxruntime) is the caller's to judge."""
    try:
        inference_session(model, level="all", lean=lean, log_level=log_level)
    except ImportError:
        raise
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types from C++
        return _first_line(exc)
    return None


def user_session(model: Graph | str | os.PathLike, what: str, **options):
    """`inference_session` for a model the user gave, or one that computes what it computes (the masked
    reference, the distillation teacher): onnxruntime refusing to load it is bad input, said in one line.
    (onnxruntime refusing a model onnxprune wrote is onnxprune's bug: use `inference_session` for those.)"""
    try:
        return inference_session(model, **options)
    except (ImportError, MemoryError, UserError):
        raise
    except Exception as error:  # onnxruntime raises its own exception types from C++
        raise UserError(f"{what}: onnxruntime cannot load the model ({_first_line(error)}); onnxprune works on "
                        "models that onnxruntime runs") from error


def bound_shapes(input_shapes: tuple[str, ...] | list[str]) -> dict[str, tuple[int, ...]]:
    """"name=1x3x224x224" bindings as {name: dims}."""
    return dict(parse_input_shape(text) for text in input_shapes)


def random_inputs(graph: Graph, rng: np.random.Generator, batch: int,
                  input_shapes: tuple[str, ...] | list[str] = ()) -> dict[str, np.ndarray]:
    """Seeded random inputs for every graph input, drawn by what each input is (`inputs.draw`): of the
    bound shape where `input_shapes` binds the input ("name=1x3x224x224"), else of the declared one with
    symbolic dimensions as `batch`."""
    from .inputs import data_inputs, draw

    bound = bound_shapes(input_shapes)
    feeds = {}
    for value in data_inputs(graph):
        shape = bound[value.name] if value.name in bound else \
            tuple(d if isinstance(d, int) and d > 0 else batch for d in (value.shape or ()))
        feeds[value.name] = draw(graph, value, shape, rng)
    return feeds


def run_reference(session, feeds: dict[str, np.ndarray], what: str) -> list[np.ndarray]:
    """`session.run` on sample inputs of a model the user gave: if onnxruntime fails, the usual cause is
    inputs of a size the model cannot take (dynamic dims filled in arbitrarily), so say that in one
    line. (A failure of a model onnxprune wrote is onnxprune's bug: do not use this for those.)"""
    try:
        return session.run(None, feeds)
    except Exception as error:  # onnxruntime raises its own exception types
        sizes = ", ".join(f"{name}={'x'.join(map(str, array.shape))}" for name, array in feeds.items())
        failed = re.search(r"running (\S+) node\. Name:'([^']*)'", str(error))
        reason = (f"its {failed[1]} node" + (f" '{failed[2]}'" if failed[2] else "") + " failed" if failed
                  else str(error).strip().splitlines()[0][:160])
        raise UserError(f"{what}: onnxruntime could not run the model on sample inputs {sizes} ({reason}); "
                        "give --input-shape NAME=DIMS with sizes the model takes") from error


# ---------------------------------------------------------------------- latency
@dataclass(frozen=True)
class Timing:
    """One model's time per run at one batch size, in milliseconds."""

    median_ms: float
    min_ms: float


@dataclass(frozen=True)
class Latency:
    """CPU latency of several models measured together: `timings[batch][name]`, `runs[batch]` interleaved
    runs of each model, onnxruntime on `threads` intra-op threads at graph optimisation `levels[name]`."""

    threads: int
    timings: dict[int, dict[str, Timing]]
    runs: dict[int, int]
    levels: dict[str, str]
    notes: tuple[str, ...] = ()

    def not_faster(self, name: str, baseline: str) -> list[int]:
        """The batch sizes at which `name` is not faster than `baseline`: neither its median nor its
        min is below the baseline's (the min is the run least disturbed by the rest of the machine)."""
        return [batch for batch, found in self.timings.items()
                if found[name].median_ms >= found[baseline].median_ms and found[name].min_ms >= found[baseline].min_ms]

    def to_json(self) -> dict:
        """Plain data for reports: per batch, each model's median and min (ms), and how it was measured."""
        return {"threads": self.threads, "levels": dict(self.levels), "notes": list(self.notes),
                "batches": [{"batch": batch, "runs": self.runs[batch],
                             **{name: {"median_ms": round(t.median_ms, 4), "min_ms": round(t.min_ms, 4)}
                                for name, t in found.items()}} for batch, found in self.timings.items()]}

    def describe(self, baseline: str, other: str) -> str:
        """'batch 1: 3.10 -> 1.52 ms (-51%; min ...), batch 8: ...; N interleaved runs, T thread(s)'."""
        parts = []
        for batch, found in self.timings.items():
            a, b = found[baseline], found[other]
            change = f"{100 * (b.median_ms - a.median_ms) / a.median_ms:+.0f}%" if a.median_ms else "?"
            parts.append(f"batch {batch}: {a.median_ms:.3f} -> {b.median_ms:.3f} ms ({change}; min {a.min_ms:.3f} -> "
                         f"{b.min_ms:.3f}, median of {self.runs[batch]} interleaved runs)")
        levels = sorted(set(self.levels.values()))
        return (", ".join(parts) + f"; onnxruntime CPU, {self.threads} thread{'s' if self.threads != 1 else ''}, "
                f"{'/'.join(levels)} optimisations")


def _timed_session(graph: Graph, threads: int) -> tuple[object, str]:
    """A session with every graph optimisation, as a deployment would use; onnxruntime 1.19's NCHWc
    layout transform rejects some channel counts, and then the basic level is what can be measured."""
    try:
        return inference_session(graph, optimize=True, threads=threads), "all"
    except Exception:  # onnxruntime raises its own exception types
        return inference_session(graph, threads=threads), "basic"


def _batched(graph: Graph, feeds: dict[str, np.ndarray], batch: int) -> dict[str, np.ndarray] | None:
    """`feeds` with `batch` rows (copies of the first) on every input whose declared first dimension is
    symbolic (also where --input-shape bound its size: the binding gives the sizes of one sample);
    None if no input has such an axis."""
    grown, any_grown = dict(feeds), False
    for value in graph.inputs:
        if value.is_initializer or not value.shape or value.name not in feeds:
            continue
        first = value.shape[0]
        if not (isinstance(first, int) and first > 0) and feeds[value.name].ndim:
            grown[value.name] = np.repeat(feeds[value.name][:1], batch, axis=0)
            any_grown = True
    return grown if any_grown else None


def measure_latency(graphs: dict[str, Graph], *, batches: tuple[int, ...] | None = None, threads: int = 1,
                    input_shapes: tuple[str, ...] | list[str] = (), budget_s: float = 1.0, min_runs: int = 5,
                    max_runs: int = 200, seed: int = 0) -> Latency:
    """Median and min CPU latency of `graphs` (which share one interface) on the same random inputs,
    round robin: each round runs every model once, in alternating order, so a busy moment of the
    machine hits all of them alike. The first graph is the reference that must run on the inputs
    (a failure is the user's input sizes: a one-line error).

    `batches`: the batch sizes; by default 1 and a larger one (32 when the first model runs in under a
    millisecond at batch 1, else 8) where an input has a symbolic first axis. Each batch size gets about
    `budget_s` seconds of runs (at least `min_runs`, at most `max_runs` rounds)."""
    names = list(graphs)
    rng = np.random.default_rng(seed)
    reference = next(iter(graphs.values()))
    base = random_inputs(reference, rng, 1, input_shapes)
    sessions, levels = {}, {}
    for name, graph in graphs.items():
        sessions[name], levels[name] = _timed_session(graph, threads)
    run_reference(sessions[names[0]], base, "latency")  # the user's sizes: a failure is a one-line error
    notes: list[str] = []
    bound = bound_shapes(input_shapes)
    filled = [value.name for value in reference.inputs if not value.is_initializer and value.name not in bound
              and any(not (isinstance(d, int) and d > 0) for d in (value.shape or ())[1:])]
    if filled:  # a sequence length or an image size of 1 is rarely what the model is used at
        notes.append(f"dynamic sizes other than the batch of {', '.join(filled)} were 1; give --input-shape "
                     "NAME=DIMS for the sizes the model is used at")
    timings: dict[int, dict[str, Timing]] = {}
    runs: dict[int, int] = {}

    def measure(batch: int, feeds: dict[str, np.ndarray]) -> None:
        for name in names:  # warm up (first runs allocate and tune), and estimate one round's time
            sessions[name].run(None, feeds)
        start = time.perf_counter()
        for name in names:
            sessions[name].run(None, feeds)
        one_round = max(time.perf_counter() - start, 1e-6)
        rounds = int(min(max(budget_s / one_round, min_runs), max_runs))
        times: dict[str, list[float]] = {name: [] for name in names}
        for index in range(rounds):
            for name in (names if index % 2 == 0 else names[::-1]):
                start = time.perf_counter()
                sessions[name].run(None, feeds)
                times[name].append(time.perf_counter() - start)
        timings[batch] = {name: Timing(1000 * float(np.median(t)), 1000 * float(np.min(t))) for name, t in times.items()}
        runs[batch] = rounds

    first = _batched(reference, base, 1)
    if first is not None:
        try:
            measure(1, first)
        except Exception as error:  # onnxruntime: the bound batch size is the only one the model takes
            notes.append(f"not measured at batch 1: {str(error).strip().splitlines()[0][:120]}")
            first = None
    if first is None:  # the sizes are fixed: one measurement, labelled with the first input's leading size
        fixed = next((a.shape[0] for a in base.values() if a.ndim), 1)
        measure(int(fixed), base)
        notes.append("no input has a free batch axis: measured at the model's fixed sizes only")
        return Latency(threads, timings, runs, levels, tuple(notes))
    if batches is None:
        large = 32 if timings[1][names[0]].median_ms < 1.0 else 8
        batches = (1, large)
    for batch in batches:
        if batch in timings:
            continue
        try:
            measure(batch, _batched(reference, base, batch))
        except Exception as error:  # onnxruntime: a model whose batch is fixed inside (a Reshape to 1, say)
            notes.append(f"not measured at batch {batch}: {str(error).strip().splitlines()[0][:120]}")
    if 1 not in batches:
        del timings[1], runs[1]
    return Latency(threads, timings, runs, levels, tuple(notes))


def compare_latency(original: Graph, compact: Graph, **options) -> Latency:
    """`measure_latency` of {"original": original, "compact": compact} (see there for `options`)."""
    return measure_latency({"original": original, "compact": compact}, **options)


SLOWER_HINT = ("try --round-to 8 or --round-to 16 (channel counts that fill the CPU kernels' vector lanes), or "
               "remove more")
