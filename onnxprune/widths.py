"""Widths that run fast: a measured latency table of a model's own Conv/Gemm/MatMul shapes.

Pruning to arbitrary channel counts (53, 15, 79) can make a CNN slower on the CPU: onnxruntime's
fast kernels (the NCHWc layout and its depthwise/pointwise paths, the vectorised GEMM panels) want
channel counts that are multiples of the vector width, and fall back to slower paths otherwise. How
much that matters depends on the machine, the onnxruntime build, the thread count and the model's
shapes, so it is measured, not assumed: each distinct heavy op of the model (a Conv, Gemm or MatMul
with constant weights) is timed alone at the widths a selection that rounds kept counts to each
candidate multiple (1, 4, 8, 16) would give it, and the multiple whose widths make the model's ops
fastest in sum is the model's `round-to`.

The times go to a table on disk keyed by the CPU model, the onnxruntime version and the thread
count (`~/.cache/onnxprune/`, or the folder in $ONNXPRUNE_CACHE), so a model's shapes are timed once
per machine and the choice does not change between runs; an op timed for one model is reused by
any other model with the same op shape. `WidthTable(measure=...)` takes another timer (tests give
it a fake one).

Just over 500 lines: measuring widths and choosing from them share the probe and table types, and
callers import both halves from here.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .choose import AxisBudget
from .ir import Graph
from .space import Selection

#: The multiples a selection may round kept counts to, smallest first (1 = no rounding).
CANDIDATES = (1, 4, 8, 16)
#: A larger multiple must beat the best smaller one by more than this share to be chosen: a finer
#: multiple reaches the pruning target more exactly, and timing noise must not flip the choice.
TOLERANCE = 0.05
CACHE_ENV = "ONNXPRUNE_CACHE"
#: `prune --round-to auto` tries the next multiple where the chosen one misses the target by more than
#: this share of the total (rounded counts move in steps; a small family may only stay whole).
PRECISION = 0.01


@dataclass(frozen=True)
class Probe:
    """One op as timed alone: `op_type` (Conv, Gemm or MatMul) on an input of shape `x` with a weight
    of shape `w` and the attributes that change its kernel (`attrs`, sorted name/value pairs)."""

    op_type: str
    x: tuple[int, ...]
    w: tuple[int, ...]
    attrs: tuple[tuple[str, object], ...] = ()

    @property
    def key(self) -> str:
        """The table's key for this op: every figure that changes which kernel runs and how long."""
        attrs = ",".join(f"{k}={v}" for k, v in self.attrs)
        return f"{self.op_type}|x={'x'.join(map(str, self.x))}|w={'x'.join(map(str, self.w))}|{attrs}"


@dataclass(frozen=True)
class HeavyOp:
    """An op of the model whose time depends on the kept widths: its shapes at full width and which of
    its channel axes a selection may shrink. `kind` is depthwise, pointwise, conv (k x k), grouped
    (a grouped conv: it loses whole groups), gemm or matmul."""

    kind: str
    op_type: str
    x: tuple[int, ...]  # input at batch 1
    w: tuple[int, ...]
    attrs: tuple[tuple[str, object], ...]
    in_prunable: bool
    out_prunable: bool
    weight: str = ""  # the weight initializer's name

    def probe(self, keep: float, multiple: int, round_small: bool = False) -> Probe:
        """This op at the widths that keeping `keep` of each prunable axis, rounded as select rounds
        kept counts to `multiple` (narrow families finer with `round_small`), gives it."""
        def width(size: int, prunable: bool) -> int:
            return kept_width(size, keep, multiple, round_small) if prunable else size

        if self.kind == "depthwise":  # one width: channels in = channels out = groups
            return self.at(None, width(self.w[0], self.out_prunable))
        if self.kind == "grouped":  # whole groups go (`couple_conv`): the count of groups shrinks
            groups = int(dict(self.attrs)["group"])
            per_out = self.w[0] // groups
            kept = groups if not self.out_prunable else \
                max(1, min(groups, kept_width(groups, keep, max(1, multiple // per_out), round_small)))
            return self.at(None, kept * per_out)
        c_in, c_out = self.channels
        return self.at(width(c_in, self.in_prunable), width(c_out, self.out_prunable))

    @property
    def weight_axes(self) -> tuple[int, int]:
        """(input axis, output axis) of the weight: a Conv's [out, in/group, ...] and a transposed
        Gemm's [N, K] read their input on axis 1; MatMul's and a plain Gemm's [K, N] on axis 0."""
        transposed = self.op_type == "Conv" or (self.op_type == "Gemm" and dict(self.attrs).get("transB"))
        return (1, 0) if transposed else (0, 1)

    @property
    def channels(self) -> tuple[int, int]:
        """(input channels, output channels) at full width (a Conv's input channels are its input's,
        the weight holding a group's share of them)."""
        in_axis, out_axis = self.weight_axes
        return (self.x[1] if self.op_type == "Conv" else self.w[in_axis]), self.w[out_axis]

    def at(self, c_in: int | None, c_out: int | None) -> Probe:
        """This op with `c_in` input and `c_out` output channels (None: as it is). A depthwise Conv has
        one width (`c_out`); a grouped one keeps whole groups, as many as `c_out` holds."""
        full_in, full_out = self.channels
        c_in, c_out = c_in or full_in, c_out or full_out
        x, w = list(self.x), list(self.w)
        if self.kind == "depthwise":
            x[1], w[0] = c_out, c_out
            return Probe(self.op_type, tuple(x), tuple(w), tuple((k, c_out if k == "group" else v) for k, v in self.attrs))
        if self.kind == "grouped":
            groups = int(dict(self.attrs)["group"])
            per_in, per_out = w[1], w[0] // groups
            kept = max(1, min(groups, c_out // per_out))
            x[1], w[0] = kept * per_in, kept * per_out
            return Probe(self.op_type, tuple(x), tuple(w), tuple((k, kept if k == "group" else v) for k, v in self.attrs))
        if self.op_type == "Conv":
            x[1], w[0], w[1] = c_in, c_out, c_in
        elif self.op_type == "Gemm" and dict(self.attrs).get("transB"):
            x[-1] = w[1] = c_in
            w[0] = c_out
        else:
            x[-1] = w[0] = c_in
            w[1] = c_out
        return Probe(self.op_type, tuple(x), tuple(w), self.attrs)


def family_multiple(size: int, round_to: int, round_small: bool) -> int:
    """The multiple a family of `size` groups rounds its kept count to in `select`: `round_to`, or with
    `round_small` (prune --round-to auto), for a family narrower than two of them, the largest power of
    two it holds twice (16 would keep a 24-channel family whole, which a pruning target cannot afford
    everywhere; 8 lets it keep 8 or 16)."""
    if not round_small or size >= 2 * round_to:
        return round_to
    multiple = round_to
    while multiple > 1 and size < 2 * multiple:
        multiple //= 2
    return max(multiple, 1)


def group_step(size: int, channels: int, round_to: int, round_small: bool) -> int:
    """The step, in groups, of a family of `size` groups that are `channels` channels wide each (a
    grouped convolution's group, say): `family_multiple` counted in channels, so a kept count of 16
    channels is 2 groups of 8, not 16 groups."""
    channels = max(1, int(channels))
    return max(1, family_multiple(size * channels, round_to, round_small) // channels)


def channels_per_group(family) -> int:
    """How many channels one group of `family` removes from the tensors its producers write: 1, or a
    grouped convolution's group width (rounding to a multiple of 16 channels is 2 groups of 8)."""
    return max((m.table.shape[1] for m in family.producers), default=1)


def narrowest(space, max_family_ratio: float, round_to: int = 1):
    """A `Selection` that cuts every prunable family as far as `select` may: at most `max_family_ratio`
    of its groups, the kept count a multiple of its step (`round_to` channels, narrow families finer)
    and no axis emptied. What the model it leaves still takes, no selection removes: it bounds what
    pruning can do for latency."""
    budget = AxisBudget(space)
    pruned = {}
    for f in (f for f in space.prunable if f.size > 1):
        step = group_step(f.size, channels_per_group(f), round_to, True)
        cap = min(f.size - 1, int(math.floor(max_family_ratio * f.size)))
        kept = min(f.size, max(step, -(-(f.size - cap) // step) * step))
        pruned[f.id] = tuple(g for g in range(f.size - kept) if budget.take(f, g))
    return Selection({fid: groups for fid, groups in pruned.items() if groups})


def kept_width(size: int, keep: float, multiple: int, round_small: bool = False) -> int:
    """The kept count of a family of `size` groups keeping about `keep` of them, rounded as
    `select` rounds (`choose.nearest_removal`, at `family_multiple`): to the nearest multiple, at
    least one multiple, and a family no larger than the multiple is left whole."""
    multiple = family_multiple(size, multiple, round_small)
    if multiple <= 1:
        return max(1, round(size * keep))
    if size <= multiple:
        return size
    return max(multiple, round(size * keep / multiple) * multiple)


def keep_share(ratio: float, by: str) -> float:
    """The share of each family's groups a selection keeps, about: removing `ratio` of the groups keeps
    1 - ratio of each; of FLOPs or parameters, which shrink with the widths on both sides of an op,
    about the square root of what is left."""
    left = min(max(1.0 - ratio, 0.0), 1.0)
    return left if by == "groups" else math.sqrt(left)


def heavy_ops(graph: Graph, shapes: dict, prunable_axes: set[tuple[str, int]]) -> list[HeavyOp]:
    """The model's Conv, Gemm and MatMul ops with constant weights and known input shapes (symbolic
    dimensions of the input taken as 1: the batch, for these models), in graph order."""
    found = []
    for op in graph.ops():
        if op.domain not in ("", "ai.onnx") or op.op_type not in ("Conv", "Gemm", "MatMul"):
            continue
        inputs = graph.inputs_of(op)
        if len(inputs) < 2 or inputs[0] is None or inputs[1] is None or not inputs[1].is_initializer:
            continue
        x_type, w = shapes.get(inputs[0].name), tuple(int(d) for d in inputs[1].tensor.shape)
        if x_type is None or x_type.shape is None:
            continue
        if not x_type.shape or any(not (isinstance(d, int) and d > 0) for d in x_type.shape[1:]):
            continue  # channels or sizes unknown (a reshape shape inference could not follow): not timable
        x = (x_type.shape[0] if isinstance(x_type.shape[0], int) and x_type.shape[0] > 0 else 1,) + tuple(x_type.shape[1:])
        made = _heavy(op, x, w, inputs[1].name, prunable_axes)
        if made is not None:
            found.append(made)
    return found


def _heavy(op, x: tuple[int, ...], w: tuple[int, ...], weight: str, prunable: set[tuple[str, int]]) -> HeavyOp | None:
    if op.op_type == "Conv":
        if len(x) != len(w) or len(x) < 3 or op.attr("auto_pad", "NOTSET") not in ("NOTSET", b"NOTSET"):
            return None
        group = int(op.attr("group", 1))
        if x[1] != w[1] * group:
            return None  # shapes that disagree: onnxruntime would reject the probe
        attrs = (("dilations", tuple(op.attr("dilations", None) or (1,) * (len(w) - 2))), ("group", group),
                 ("pads", tuple(op.attr("pads", None) or (0,) * (2 * (len(w) - 2)))),
                 ("strides", tuple(op.attr("strides", None) or (1,) * (len(w) - 2))))
        if group > 1 and group == x[1] == w[0] and w[1] == 1:
            kind = "depthwise"
        elif group > 1:
            kind = "grouped"  # loses whole groups, each keeping its width
        else:
            kind = "pointwise" if all(k == 1 for k in w[2:]) else "conv"
        return HeavyOp(kind, "Conv", x, w, attrs, kind != "grouped" and (weight, 1) in prunable,
                       (weight, 0) in prunable, weight)
    if len(w) != 2 or len(x) < 2:
        return None
    if op.op_type == "Gemm":
        if len(x) != 2 or op.attr("transA", 0):
            return None
        trans_b = int(op.attr("transB", 0))
        in_axis, out_axis = (1, 0) if trans_b else (0, 1)
        return HeavyOp("gemm", "Gemm", x, w, (("transB", trans_b),), (weight, in_axis) in prunable,
                       (weight, out_axis) in prunable, weight)
    return HeavyOp("matmul", "MatMul", x, w, (), (weight, 0) in prunable, (weight, 1) in prunable, weight)


# ---------------------------------------------------------------------- measuring
def probe_model(probe: Probe, copies: int = 1):
    """A model of `copies` instances of `probe` side by side on one input (random weights, seeded: only
    the time matters), their outputs added: the difference between two copy counts is the op's own
    time in the layout onnxruntime gives it, without the layout conversions at the model's edges."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits, outputs = [], [], []
    attrs = {k: list(v) if isinstance(v, tuple) else v for k, v in probe.attrs}
    for index in range(copies):
        inits.append(numpy_helper.from_array(rng.standard_normal(probe.w).astype(np.float32), f"W{index}"))
        inputs = ["X", f"W{index}"]
        if probe.op_type == "Conv":  # as exported models have it: a bias per output channel
            inits.append(numpy_helper.from_array(rng.standard_normal(probe.w[0]).astype(np.float32), f"B{index}"))
            inputs.append(f"B{index}")
        nodes.append(helper.make_node(probe.op_type, inputs, [f"Y{index}"], **attrs))
        outputs.append(f"Y{index}")
    while len(outputs) > 1:  # Add, not Sum: the layout transform keeps Add in the blocked layout
        nodes.append(helper.make_node("Add", outputs[:2], [f"S{len(nodes)}"]))
        outputs = outputs[2:] + [f"S{len(nodes) - 1}"]
    nodes.append(helper.make_node("Identity", outputs, ["Y"]))
    graph = helper.make_graph(nodes, "probe", [helper.make_tensor_value_info("X", TensorProto.FLOAT, list(probe.x))],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8)


@dataclass(frozen=True)
class Timed:
    """One op's figures: `ms`, its time inside a model (without layout conversions at the model's edges);
    `alone`, a model of the op alone; `blocked`, whether onnxruntime ran it in its blocked (NCHWc) layout.
    Where the op is blocked, alone - ms is about what converting its input and output costs."""

    ms: float
    alone: float
    blocked: bool = False


def measure_probe(probe: Probe, threads: int, copies: int = 3) -> Timed:
    """`probe` timed in onnxruntime (CPU, every graph optimisation, `threads` intra-op threads, as
    `measure_latency` times whole models). Alone, an op that runs in a blocked layout (NCHWc) also pays
    for converting its input and output, which a chain of such ops in a model pays once; so its time
    in a model is the difference between `copies` instances side by side and one (the conversions
    cancel), divided by copies - 1. A shape the blocked layout rejects (onnxruntime 1.19 fails on
    some channel counts) is timed at the extended level, as a deployment would have to load it."""
    try:
        one, blocked = _fastest_run(probe_model(probe, 1), probe.x, threads, layout=True)
        many, _ = _fastest_run(probe_model(probe, copies), probe.x, threads)
    except Exception:  # onnxruntime raises its own exception types
        one, blocked = _fastest_run(probe_model(probe, 1), probe.x, threads, extended=True)
        many, _ = _fastest_run(probe_model(probe, copies), probe.x, threads, extended=True)
    # timing noise can make the difference tiny or negative: never below a tenth of the op alone
    return Timed(max((many - one) / (copies - 1), 0.1 * one), one, blocked)


def _fastest_run(model, shape: tuple[int, ...], threads: int, *, layout: bool = False, extended: bool = False,
                 budget_s: float = 0.015, min_runs: int = 5, max_runs: int = 100) -> tuple[float, bool]:
    """The fastest of several runs of `model` (ms), and (with `layout`) whether onnxruntime rewrote it to
    its blocked NCHWc layout. The min, not the median: it is the run least disturbed by the rest of
    the machine, so the table is steadier."""
    import onnx

    from .runtime import inference_session

    blocked = False
    with tempfile.TemporaryDirectory(prefix="onnxprune-probe-") as folder:
        probe = Path(folder) / "probe.onnx"
        onnx.save(model, probe)  # a one-op probe: the session is built from a file, as every session is
        optimized = Path(folder) / "optimized.onnx" if layout else None  # the optimised graph says which layout
        session = inference_session(probe, level="extended" if extended else "all", threads=threads,
                                    inter_threads=1, optimized_path=optimized)
        if layout:
            blocked = any(node.domain == "com.microsoft.nchwc" for node in onnx.load(optimized).graph.node)
    feeds = {"X": np.random.default_rng(1).standard_normal(shape).astype(np.float32)}
    for _ in range(2):  # the first runs allocate and pick kernels
        session.run(None, feeds)
    best, runs, start = math.inf, 0, time.perf_counter()
    while runs < max_runs and (runs < min_runs or time.perf_counter() - start < budget_s):
        began = time.perf_counter()
        session.run(None, feeds)
        best = min(best, time.perf_counter() - began)
        runs += 1
    return 1000 * best, blocked


def machine_key(threads: int) -> dict[str, str]:
    """What the timings depend on: the CPU model, the onnxruntime version, the thread count."""
    try:
        from .runtime import onnxruntime

        version = onnxruntime().__version__
    except ImportError:
        version = "none"
    return {"cpu": cpu_model(), "onnxruntime": version, "threads": str(threads)}


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (the platform's processor string elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def cache_dir() -> Path:
    """Where timing tables live: $ONNXPRUNE_CACHE, else $XDG_CACHE_HOME/onnxprune, else ~/.cache/onnxprune."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "onnxprune"


class WidthTable:
    """Measured figures of ops (`Timed`, by `Probe.key`), for one machine key, kept in a JSON file in
    `folder`.

    `times(probes)` measures only the probes the file lacks (with `measure`, by default onnxruntime;
    a measure that returns a plain number gives the op's time with no layout information) and writes
    the file again when it measured any; a file that cannot be read is measured anew, one that cannot
    be written leaves the table in memory only."""

    def __init__(self, threads: int = 1, folder: Path | str | None = None,
                 measure: Callable[[Probe, int], Timed | float] | None = None) -> None:
        self.threads = threads
        self.key = machine_key(threads)
        digest = hashlib.sha1(json.dumps(self.key, sort_keys=True).encode()).hexdigest()[:16]
        self.path = Path(folder if folder is not None else cache_dir()) / f"widths-{digest}.json"
        self.measure = measure
        self.entries: dict[str, Timed] = self._read()
        self.measured = 0  # probes timed by this object (0: everything came from the file)

    def _read(self) -> dict[str, Timed]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("key") != self.key or not isinstance(data.get("ops"), dict):
            return {}  # another machine's table under a colliding name, an older format, or a damaged file
        try:
            return {k: Timed(math.nan if v[0] is None else float(v[0]), math.nan if v[1] is None else float(v[1]),
                             bool(v[2])) for k, v in data["ops"].items()}
        except (TypeError, ValueError, IndexError):
            return {}

    def times(self, probes: Iterable[Probe]) -> dict[str, Timed]:
        """`Timed` per probe key, measuring the ones not in the table yet."""
        missing = {p.key: p for p in probes if p.key not in self.entries}
        measure = self.measure or measure_probe  # looked up now: tests swap the module's timer
        for key, probe in sorted(missing.items()):
            try:
                found = measure(probe, self.threads)
            except Exception:  # onnxruntime rejects the shape alone: the op is left out of every estimate
                found = Timed(math.nan, math.nan)
            self.entries[key] = found if isinstance(found, Timed) else Timed(float(found), float(found))
            self.measured += 1
        if missing:
            self._write()
        return self.entries

    def _write(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            ops = {k: [None if math.isnan(t.ms) else round(t.ms, 6), None if math.isnan(t.alone) else round(t.alone, 6),
                       int(t.blocked)] for k, t in sorted(self.entries.items())}
            with tempfile.NamedTemporaryFile("w", dir=self.path.parent, suffix=".tmp", delete=False) as file:
                json.dump({"key": self.key, "ops": ops}, file, indent=0)
            os.replace(file.name, self.path)  # whole or not at all: another process may be reading it
        except OSError:
            pass  # a read-only home: the choice is the same, only not remembered


# ---------------------------------------------------------------------- choosing
@dataclass(frozen=True)
class WidthChoice:
    """The chosen multiple and why: `estimates[m]` is the summed time (ms, batch 1) of the model's
    heavy ops at the widths rounding to m gives (`estimate`); `ops` of them were counted, `measured`
    newly timed."""

    round_to: int
    estimates: dict[int, float]
    ops: int
    measured: int
    seconds: float
    path: Path | None = None

    @property
    def order(self) -> list[int]:
        """The candidates to try: the chosen one, then the others from the fastest estimate to the
        slowest (1, no rounding, always reaches the target, and is last where it is slowest)."""
        return [self.round_to] + sorted((m for m in self.estimates if m != self.round_to),
                                        key=lambda m: (self.estimates[m], m))

    def describe(self) -> str:
        """'8 (measured: 1: 12.1 ms, 4: 9.0 ms, 8: 6.2 ms, 16: 6.4 ms; 52 Conv/Gemm/MatMul ops, ...)'."""
        if not self.estimates:
            return f"{self.round_to} (no Conv/Gemm/MatMul op with known shapes to measure)"
        figures = ", ".join(f"{m}: {ms:.3g} ms" for m, ms in self.estimates.items())
        where = (f"{self.measured} shapes timed in {self.seconds:.1f} s" if self.measured
                 else "from the cached table") + (f", {self.path}" if self.path else "")
        return f"{self.round_to} (measured: {figures}; sum of {self.ops} Conv/Gemm/MatMul ops at batch 1; {where})"


def choose_round_to(ops: list[HeavyOp], keep: float, table: WidthTable,
                    candidates: Iterable[int] = CANDIDATES, tolerance: float = TOLERANCE) -> WidthChoice:
    """The multiple whose rounded widths make `ops` fastest in sum (`estimate`): of the candidates within
    `tolerance` of the fastest, the coarsest. Near-ties are timing noise, and what the ops alone do not
    show favours the coarser multiple: onnxruntime pads a blocked activation's channels up to its block
    (16 with AVX-512), and the elementwise ops between the Convs (activations, residual adds) run on
    the padded tensor. Where the coarser multiple cannot reach the pruning target, `prune` falls back
    along `WidthChoice.order`."""
    start = time.perf_counter()
    candidates = sorted({int(c) for c in candidates})
    if not ops:
        return WidthChoice(1, {}, 0, 0, 0.0, None)
    probes = {m: [op.probe(keep, m) for op in ops] for m in candidates}
    before = table.measured
    times = table.times(p for group in probes.values() for p in group)
    timable = [i for i in range(len(ops)) if all(not math.isnan(times[probes[m][i].key].ms) for m in candidates)]
    probes = {m: [group[i] for i in timable] for m, group in probes.items()}  # the same ops for every multiple
    estimates = estimate(probes, times)
    fastest = min(estimates.values())
    chosen = max(m for m in candidates if estimates[m] <= fastest * (1 + tolerance))
    return WidthChoice(chosen, estimates, len(ops), table.measured - before, time.perf_counter() - start, table.path)


def estimate(probes: dict[int, list[Probe]], times: dict[str, Timed]) -> dict[int, float]:
    """Per candidate multiple, the time of its probes in a model: each op's own time, plus, for a Conv
    that onnxruntime leaves in the plain layout where the model's other Convs run blocked (NCHWc), the
    conversions of its input and output that its blocked neighbours then need. What a conversion costs
    per element is read off the measured ops themselves (the median over blocked Convs of
    (alone - in a model) / (input + output elements)), not assumed."""
    every = [p for group in probes.values() for p in group]
    cost = in_model_costs(every, times)
    return {m: float(sum(cost[p.key] for p in group)) for m, group in probes.items()}


def in_model_costs(probes: list[Probe], times: dict[str, Timed]) -> dict[str, float]:
    """Each probe's time in a model (see `estimate`): its own, plus for a Conv left in the plain layout
    among blocked ones, the conversions of its input and output at the cost per element that the
    blocked Convs among `probes` show."""
    every = {p.key: p for p in probes}
    blocked = [p for key, p in every.items() if times[key].blocked and p.op_type == "Conv"]
    per_element = float(np.median([max(times[p.key].alone - times[p.key].ms, 0.0) /
                                   (_elements(p, True) + _elements(p, False)) for p in blocked])) if blocked else 0.0

    def cost(p: Probe) -> float:
        found = times[p.key]
        if found.blocked or p.op_type != "Conv":
            return found.ms
        return found.ms + per_element * (_elements(p, True) + _elements(p, False))

    return {key: cost(p) for key, p in every.items()}


def _elements(probe: Probe, inputs: bool) -> int:
    """Elements of a Conv probe's input (or about, of its output: the spatial size over the strides)."""
    if inputs:
        return int(np.prod(probe.x))
    strides = dict(probe.attrs).get("strides") or (1,) * (len(probe.x) - 2)
    return int(probe.w[0] * np.prod([-(-size // stride) for size, stride in zip(probe.x[2:], strides)]))


def removable_groups(space, multiple: int) -> int:
    """The most groups training can zero when every family keeps a multiple of `multiple` groups (at
    least one multiple: a family no wider than it stays whole), as the sparse optimizers choose."""
    return sum(f.size - multiple if multiple > 1 else f.size - 1
               for f in space.prunable if f.size > max(multiple, 1))


def prunable_axes(space) -> set[tuple[str, int]]:
    """(value, axis) pairs that prunable families shrink."""
    return {(m.value, m.axis) for f in space.prunable if f.size > 1 for m in f.members}


def choose_for_graph(graph: Graph, shapes: dict, space, ratio: float, by: str, threads: int = 1,
                     table: WidthTable | None = None) -> WidthChoice:
    """`choose_round_to` for a model: its heavy ops, at the widths about `ratio` removed `by` groups,
    params or FLOPs leaves, timed on `threads` threads (the table in the user's cache unless given)."""
    table = table or WidthTable(threads)
    return choose_round_to(heavy_ops(graph, shapes, prunable_axes(space)), keep_share(ratio, by), table)

