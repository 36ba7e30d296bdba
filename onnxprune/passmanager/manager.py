"""`AnalysisManager` (cached analyses and facts, invalidation) and `PassManager` (checks, then runs, a pipeline)."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx

from ..errors import IRError, PipelineError
from ..files import paused_gc
from ..ir import Graph, save
from .base import ALL, AnalysisPass, CheckPass, Pass, PassResult, TransformPass, fact_name, is_record
from .registry import REGISTRY, Registry

AnalysisKey = tuple[str, tuple]
_MISSING = object()


def _key(analysis: AnalysisPass) -> AnalysisKey:
    return analysis.name, tuple(dataclasses.astuple(analysis.options))


class AnalysisManager:
    """Computes analyses of one graph on demand and caches them.

    A cached result stays valid until a transform that did not preserve it runs, or until the graph
    is edited behind the manager's back (its `version` moved without an `invalidate`). Results that
    were computed from another analysis are dropped with it.

    `input_shapes` ("name=1x3x224x224" bindings of dynamic input dims) describe how the graph is used,
    not one pass: every analysis that takes `input_shapes` and is asked for by name or class without
    them gets these, and passes that run the graph on sample inputs (verify) make them this size.
    `sample_inputs` (name -> array, say from `--sample-inputs FILE.npz`) are the inputs verify feeds
    when given; inputs they lack are drawn.

    Facts are the typed results passes hand to later ones (`provide`, `fact`), keyed by type: valid for
    the graph version they were provided at, dropped by a transform that does not preserve them. A
    fact provided while a transform runs is valid for the graph that transform leaves.
    """

    def __init__(self, graph: Graph, registry: Registry = REGISTRY, input_shapes: tuple[str, ...] = (),
                 sample_inputs: dict | None = None) -> None:
        self.graph = graph
        self.registry = registry
        self.input_shapes = tuple(input_shapes)
        self.sample_inputs = dict(sample_inputs or {})
        self._cache: dict[AnalysisKey, tuple[Any, int]] = {}
        self._deps: dict[AnalysisKey, set[AnalysisKey]] = {}
        self._stack: list[AnalysisKey] = []
        self.computed: list[str] = []  # names of analyses actually run, in order (for tests and timing)
        # type -> (value, graph version it is valid for; None while the transform providing it runs)
        self._facts: dict[type, tuple[Any, int | None]] = {}
        self._in_transform = False

    def provide(self, value: Any, kind: type | None = None) -> None:
        """Hand `value` to later passes as the fact of type `kind` (default: its own type)."""
        self._facts[kind or type(value)] = (value, None if self._in_transform else self.graph.version)

    def fact(self, kind: type, default: Any = _MISSING) -> Any:
        """The valid fact of type `kind`; `default` (or a PipelineError naming what provides it) if none."""
        entry = self._facts.get(kind)
        if entry is not None and (entry[1] in (None, self.graph.version) or is_record(kind)):
            return entry[0]
        if default is not _MISSING:
            return default
        raise PipelineError(f"{fact_name(kind)} is not available for this graph: {_providers_hint(self.registry, kind)}")

    def has(self, kind: type) -> bool:
        """True if a valid fact of type `kind` exists."""
        return self.fact(kind, None) is not None

    def discard(self, kind: type) -> None:
        """Forget the fact of type `kind` (to free what it holds)."""
        self._facts.pop(kind, None)

    @contextlib.contextmanager
    def transforming(self):
        """While a transform runs: what it provides is valid for the graph it leaves (stamped by
        `invalidate`); if it fails, what it provided is dropped."""
        self._in_transform = True
        try:
            yield
        except BaseException:
            self._facts = {k: v for k, v in self._facts.items() if v[1] is not None}
            raise
        finally:
            self._in_transform = False

    def facts(self) -> set[type]:
        """The types of every valid fact."""
        return {kind for kind in self._facts if self.has(kind)}

    def get(self, analysis: str | type[AnalysisPass] | AnalysisPass, **options: Any) -> Any:
        """The result of `analysis` on this graph, computing it if needed."""
        if isinstance(analysis, str):
            cls = self.registry.get(analysis)
            if not issubclass(cls, AnalysisPass):
                raise TypeError(f"'{analysis}' is a transform, not an analysis")
            analysis = cls(**self._with_defaults(cls, options))
        elif isinstance(analysis, type):
            analysis = analysis(**self._with_defaults(analysis, options))
        key = _key(analysis)
        if self._stack:
            self._deps.setdefault(self._stack[-1], set()).add(key)
        cached = self._cache.get(key)
        if cached is not None and cached[1] == self.graph.version:
            return cached[0]
        self._deps.pop(key, None)
        self._stack.append(key)
        try:
            with paused_gc():
                result = analysis.run(self.graph, self)
        finally:
            self._stack.pop()
        self._cache[key] = (result, self.graph.version)
        self.computed.append(analysis.name)
        return result

    def _with_defaults(self, cls: type[AnalysisPass], options: dict[str, Any]) -> dict[str, Any]:
        takes_shapes = "input_shapes" in {f.name for f in dataclasses.fields(cls.Options)}
        if takes_shapes and self.input_shapes and "input_shapes" not in options:
            return {**options, "input_shapes": self.input_shapes}
        return options

    def is_cached(self, name: str) -> bool:
        """True if some result of analysis `name` is cached and valid."""
        return any(k[0] == name and v[1] == self.graph.version for k, v in self._cache.items())

    def invalidate(self, preserved, since: int | None = None) -> None:
        """After a transform: drop every result not in `preserved` (a set of names and fact types, or
        ALL), and every result computed from a dropped one; the survivors, and the facts the transform
        provided, are valid for the graph as it is now. `since` is the graph version before the
        transform: results already stale then stay stale."""
        for kind, (value, version) in list(self._facts.items()):
            if version is None or is_record(kind) or (kind in preserved and version in (since, self.graph.version)):
                self._facts[kind] = (value, self.graph.version)
            else:
                del self._facts[kind]
        dropped = {k for k, (_, version) in self._cache.items()
                   if k[0] not in preserved or (since is not None and version != since)}
        changed = True
        while changed:
            changed = False
            for key, deps in self._deps.items():
                if key in self._cache and key not in dropped and deps & dropped:
                    dropped.add(key)
                    changed = True
        for key in dropped:
            self._cache.pop(key, None)
            self._deps.pop(key, None)
        for key, (result, _) in list(self._cache.items()):
            self._cache[key] = (result, self.graph.version)

    def clear(self) -> None:
        """Forget everything."""
        self._cache.clear()
        self._deps.clear()
        self._facts.clear()


def _providers_hint(registry: Registry, kind: type) -> str:
    names = [name for name in registry.names() if kind in registry.get(name).provides]
    return f"add {' or '.join(names)} before it" if names else "the caller must provide it (am.provide)"


def check_pipeline(passes: Sequence[Pass], available: set[type], registry: Registry = REGISTRY) -> None:
    """Refuse, before anything runs, a pipeline whose passes need facts no earlier pass provides
    ("compact needs a selection: add select or sparse-train before it"). `available`: the facts
    valid when it starts. A transform is assumed to lose every fact it does not keep or provide."""
    available = set(available)
    for p in passes:
        for kind in p.requires():
            if kind not in available:
                raise PipelineError(f"{p.name} needs {fact_name(kind)}: {_providers_hint(registry, kind)}")
        if isinstance(p, TransformPass) and p.keeps is not ALL:
            available = {kind for kind in available if kind in p.keeps or is_record(kind)}
        available |= set(p.provides)


@dataclass
class PassRecord:
    """What one pass did in a pipeline run."""

    name: str
    spec: str
    kind: str  # "analysis" or "transform"
    seconds: float
    modified: bool = False
    ops_before: int = 0
    ops_after: int = 0


@dataclass
class PipelineReport:
    """The outcome of `PassManager.run`: one record per pass, and the analyses' results by name."""

    records: list[PassRecord] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)

    @property
    def modified(self) -> bool:
        """True if any transform changed the graph."""
        return any(r.modified for r in self.records)

    def format_timings(self) -> str:
        """A per-pass timing table, like LLVM's -time-passes."""
        total = sum(r.seconds for r in self.records) or 1e-12
        lines = [f"{'seconds':>9} {'%':>6}  {'ops':>11}  pass"]
        for r in self.records:
            ops = f"{r.ops_before}->{r.ops_after}" if r.kind == "transform" else str(r.ops_before)
            mark = "*" if r.modified else " "
            lines.append(f"{r.seconds:9.4f} {100 * r.seconds / total:5.1f}%  {ops:>11} {mark}{r.spec}")
        lines.append(f"{total:9.4f} 100.0%  total ('*' = changed the graph)")
        return "\n".join(lines)


class PassManager:
    """Runs passes in order over one graph, sharing an AnalysisManager.

    `verify_each` checks the IR after every pass (and that a pass reporting "unchanged" really left
    the graph alone); `dump_after` names passes after which the graph is saved to `dump_dir` as
    `NN-name.onnx`; `on_pass` is called with each PassRecord as it completes.
    """

    def __init__(self, passes: str | Sequence[Pass], *, registry: Registry = REGISTRY, verify_each: bool = False,
                 dump_after: Sequence[str] = (), dump_dir: str | Path | None = None,
                 on_pass: Callable[[PassRecord], None] | None = None) -> None:
        self.registry = registry
        self.passes = registry.build(passes) if isinstance(passes, str) else list(passes)
        self.verify_each = verify_each
        self.dump_after = set(dump_after)
        unknown = self.dump_after - {p.name for p in self.passes}
        if unknown:
            raise PipelineError(f"--dump-after names {', '.join(sorted(unknown))}, which the pipeline does not run")
        self.dump_dir = Path(dump_dir) if dump_dir is not None else Path(".")
        self.on_pass = on_pass
        self.last_report: PipelineReport | None = None  # what `apply` ran last

    def dump_paths(self) -> list[Path]:
        """The files `run` will write for `dump_after`."""
        return [self.dump_dir / f"{i + 1:02d}-{p.name}.onnx" for i, p in enumerate(self.passes)
                if p.name in self.dump_after]

    @property
    def pipeline(self) -> str:
        """The pipeline in canonical string form."""
        return ",".join(p.spec() for p in self.passes)

    def apply(self, model, am: AnalysisManager | None = None):
        """Run the pipeline on `model` and hand back the same kind, for deployment pipelines: a Graph is
        changed in place and returned; an `onnx.ModelProto` or an onnx-graphsurgeon Graph comes back as a
        new one (the caller's is never edited); a path gives the Graph. The report is `self.last_report`."""
        from ..ir.serde import is_graphsurgeon, load

        graph = model if isinstance(model, Graph) else load(model)
        self.last_report = self.run(graph, am)
        if isinstance(model, onnx.ModelProto):
            return graph.to_onnx()
        if is_graphsurgeon(model):
            import onnx_graphsurgeon as gs

            return gs.import_onnx(graph.to_onnx())
        return graph

    def run(self, graph: Graph, am: AnalysisManager | None = None) -> PipelineReport:
        """Check the pipeline's contracts, then run every pass on `graph` (in place) and report what
        happened."""
        am = am or AnalysisManager(graph, self.registry)
        check_pipeline(self.passes, am.facts(), self.registry)
        report = PipelineReport()
        for index, p in enumerate(self.passes):
            ops_before = len(graph)
            start = time.perf_counter()
            if isinstance(p, AnalysisPass):
                report.results[p.name] = am.get(p)
                record = PassRecord(p.name, p.spec(), "analysis", time.perf_counter() - start, False, ops_before,
                                    ops_before)
            elif isinstance(p, CheckPass):
                result = p.run(graph, am)  # never cached: a check runs every time
                am.provide(result)
                report.results[p.name] = result
                record = PassRecord(p.name, p.spec(), "check", time.perf_counter() - start, False, ops_before,
                                    ops_before)
            elif isinstance(p, TransformPass):
                version = graph.version
                with am.transforming(), paused_gc():
                    result = p.run(graph, am)
                if not isinstance(result, PassResult):
                    raise TypeError(f"pass '{p.name}' returned {type(result).__name__}, not PassResult")
                if not result.modified and graph.version != version:
                    raise IRError(f"pass '{p.name}' changed the graph but reported that it did not")
                preserved = result.preserved if result.preserved is ALL or p.keeps is ALL else \
                    result.preserved | set(p.keeps)  # what it declares it keeps, whatever it changed
                am.invalidate(preserved, since=version)
                record = PassRecord(p.name, p.spec(), "transform", time.perf_counter() - start, result.modified,
                                    ops_before, len(graph))
            else:
                raise TypeError(f"{p!r} is not a pass")
            if self.verify_each:
                try:
                    graph.verify()
                except IRError as exc:
                    raise IRError(f"the IR is broken after pass '{p.name}': {exc}") from None
            report.records.append(record)
            if p.name in self.dump_after:
                self.dump_dir.mkdir(parents=True, exist_ok=True)
                save(graph, self.dump_dir / f"{index + 1:02d}-{p.name}.onnx", external_data=False)
            if self.on_pass is not None:
                self.on_pass(record)
        return report
