"""Pipeline strings, the registry, analysis caching and invalidation, verification and dumps."""

from __future__ import annotations

import sys
import textwrap
import warnings
from dataclasses import dataclass
from typing import Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

import onnxprune
from onnxprune.errors import IRError, PipelineError
from onnxprune.passmanager import (
    ALL,
    REGISTRY,
    AnalysisManager,
    AnalysisPass,
    PassManager,
    PassResult,
    PipelineEntry,
    PluginWarning,
    Registry,
    TransformPass,
    format_pipeline,
    parse_pipeline,
)

from .conftest import ZOO


# ---------------------------------------------------------------------- pipeline strings
def test_parse_pipeline_with_options():
    entries = parse_pipeline(' shapes , cleanup{keep-identity=true} ,select{ratio=0.5, name="a,b{c}"}')
    assert entries == [PipelineEntry("shapes"), PipelineEntry("cleanup", {"keep-identity": "true"}),
                       PipelineEntry("select", {"ratio": "0.5", "name": "a,b{c}"})]
    assert parse_pipeline(format_pipeline(entries)) == entries
    assert parse_pipeline("x{}") == [PipelineEntry("x")]
    assert parse_pipeline('x{s="say \\"hi\\""}')[0].options == {"s": 'say "hi"'}


@pytest.mark.parametrize("text, fragment", [
    ("", "empty"),
    ("shapes,,cleanup", "expected a pass name at column 8"),
    ("cleanup{keep-identity}", "expected '=' at column 22"),
    ("cleanup{a=1", "expected '}' at column 12"),
    ("cleanup{a=1,a=2}", "option 'a' of 'cleanup' given twice"),
    ('x{s="open}', "closing"),
    ("shapes cleanup", "expected ',' or the end of the pipeline at column 8"),
])
def test_bad_pipelines_say_where(text, fragment):
    with pytest.raises(PipelineError, match=fragment.replace("(", r"\(").replace("{", r"\{")):
        parse_pipeline(text)


# ---------------------------------------------------------------------- typed options
@dataclass(frozen=True)
class _Opts:
    flag: bool = False
    count: int = 3
    ratio: float = 0.5
    mode: Literal["l1", "l2"] = "l1"
    label: str | None = None
    names: tuple[str, ...] = ()


class _Typed(AnalysisPass):
    """A pass with every option type."""

    name = "typed"
    Options = _Opts

    def run(self, graph, am):
        return self.options


def test_options_are_converted_by_type():
    p = _Typed.from_strings({"flag": "yes", "count": "7", "ratio": "0.25", "mode": "l2", "label": "none",
                             "names": "a;b"})
    assert p.options == _Opts(True, 7, 0.25, "l2", None, ("a", "b"))
    assert p.spec() == "typed{flag=true,count=7,ratio=0.25,mode=l2,names=a;b}"
    for raw, message in [({"count": "many"}, "expected an integer"), ({"mode": "l3"}, "expected one of l1, l2"),
                         ({"flag": "maybe"}, "expected true or false"), ({"nope": "1"}, "has no option 'nope'")]:
        with pytest.raises(PipelineError, match=message):
            _Typed.from_strings(raw)


# ---------------------------------------------------------------------- registry
def test_builtin_passes_are_registered_with_docs():
    for name in ("shapes", "infer-shapes", "cleanup", "check", "cost"):
        cls = REGISTRY.get(name)
        assert cls.name == name and cls.summary()


def test_unknown_pass_suggests_a_name():
    with pytest.raises(PipelineError, match="unknown pass 'claenup'; did you mean 'cleanup'"):
        REGISTRY.get("claenup")


def test_duplicate_pass_names_are_refused():
    registry = Registry(load_plugins=False)

    class Other(AnalysisPass):
        name = "shapes"

    registry.names()
    with pytest.raises(ValueError, match="taken"):
        registry.register(Other)


def _install_plugin(tmp_path, monkeypatch, body: str, entry: str) -> None:
    """Make an importable package with an `onnxprune.passes` entry point (a real dist-info)."""
    (tmp_path / "myplugin.py").write_text(textwrap.dedent(body))
    dist = tmp_path / "myplugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: myplugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[onnxprune.passes]\n{entry}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "myplugin", raising=False)


def test_third_party_pass_from_entry_point(tmp_path, monkeypatch):
    _install_plugin(tmp_path, monkeypatch, """
        from onnxprune.passmanager import AnalysisPass

        class CountOps(AnalysisPass):
            '''Count the ops.'''
            name = "count-ops"

            def run(self, graph, am):
                return len(graph)
    """, "count-ops = myplugin:CountOps")
    registry = Registry()
    assert "count-ops" in registry.names()
    assert registry.origin("count-ops").startswith("plugin myplugin:CountOps")
    graph = onnxprune.load(ZOO / "mlp.onnx")
    report = PassManager("count-ops", registry=registry).run(graph)
    assert report.results["count-ops"] == len(graph)


def test_broken_plugin_is_skipped_with_a_warning(tmp_path, monkeypatch):
    _install_plugin(tmp_path, monkeypatch, "raise ImportError('boom')\n", "broken = myplugin:Nope")
    registry = Registry()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        names = registry.names()
    assert "broken" not in names and "cleanup" in names
    assert any(issubclass(w.category, PluginWarning) and "boom" in str(w.message) for w in caught)


# ---------------------------------------------------------------------- analysis caching
class _Counted(AnalysisPass):
    """Counts its own runs."""

    name = "counted"
    runs = 0

    def run(self, graph, am):
        type(self).runs += 1
        return len(graph)


class _Derived(AnalysisPass):
    """Depends on `counted`."""

    name = "derived"

    def run(self, graph, am):
        return am.get(_Counted) * 2


class _Rename(TransformPass):
    """Renames the first output; preserves what it is told to."""

    name = "rename"
    keep: frozenset = frozenset()

    def run(self, graph, am):
        graph.rename_value(graph.outputs[0], graph.fresh_name("renamed"))
        return PassResult.changed(self.keep)


@pytest.fixture
def graph():
    _Counted.runs = 0
    return onnxprune.load(ZOO / "mlp.onnx")


def _registry(*extra):
    registry = Registry(load_plugins=False)
    for cls in extra:
        registry.register(cls)
    return registry


def test_analyses_are_cached(graph):
    am = AnalysisManager(graph, _registry(_Counted))
    assert am.get("counted") == am.get(_Counted) == len(graph)
    assert _Counted.runs == 1


def test_transform_invalidates_unpreserved_analyses(graph):
    registry = _registry(_Counted, _Rename)
    am = AnalysisManager(graph, registry)
    PassManager("counted,rename,counted", registry=registry).run(graph, am)
    assert _Counted.runs == 2


def test_preserved_analyses_survive(graph):
    class Keep(_Rename):
        name = "rename-keep"
        keep = frozenset({"counted"})

    registry = _registry(_Counted, Keep)
    PassManager("counted,rename-keep,counted", registry=registry).run(graph)
    assert _Counted.runs == 1


def test_dependents_of_an_invalidated_analysis_are_dropped(graph):
    class KeepDerived(_Rename):
        name = "rename-keep-derived"
        keep = frozenset({"derived"})  # claims derived survives, but what it was computed from did not

    registry = _registry(_Counted, _Derived, KeepDerived)
    am = AnalysisManager(graph, registry)
    am.get("derived")
    PassManager("rename-keep-derived", registry=registry).run(graph, am)
    assert not am.is_cached("derived") and not am.is_cached("counted")
    am.get("derived")
    assert _Counted.runs == 2


def test_edits_outside_the_manager_invalidate(graph):
    am = AnalysisManager(graph, _registry(_Counted))
    am.get(_Counted)
    graph.rename_value(graph.outputs[0], "elsewhere")
    am.get(_Counted)
    assert _Counted.runs == 2


def test_unchanged_transform_preserves_all(graph):
    class Noop(TransformPass):
        name = "noop"

        def run(self, graph, am):
            return PassResult.unchanged()

    registry = _registry(_Counted, Noop)
    PassManager("counted,noop,counted", registry=registry).run(graph)
    assert _Counted.runs == 1
    assert PassResult.unchanged().preserved is ALL


def test_a_pass_that_lies_about_changes_is_caught(graph):
    class Liar(TransformPass):
        name = "liar"

        def run(self, graph, am):
            graph.rename_value(graph.outputs[0], "x2")
            return PassResult.unchanged()

    with pytest.raises(IRError, match="changed the graph but reported"):
        PassManager("liar", registry=_registry(Liar)).run(graph)


def test_verify_each_names_the_breaking_pass(graph):
    class Breaker(TransformPass):
        name = "breaker"

        def run(self, graph, am):
            op = graph.topological_order()[0]
            graph.set_input(op, 0, graph.add_value("dangling"))
            return PassResult.changed()

    PassManager("breaker", registry=_registry(Breaker)).run(graph.copy())  # unchecked: no error
    with pytest.raises(IRError, match="after pass 'breaker'.*dangling"):
        PassManager("breaker", registry=_registry(Breaker), verify_each=True).run(graph)


def test_dump_after_and_timings(graph, tmp_path):
    records = []
    manager = PassManager("shapes,cleanup,cost", dump_after=["cleanup"], dump_dir=tmp_path, on_pass=records.append)
    report = manager.run(graph)
    assert (tmp_path / "02-cleanup.onnx").exists()
    assert [r.name for r in report.records] == ["shapes", "cleanup", "cost"] == [r.name for r in records]
    assert all(r.seconds >= 0 for r in report.records)
    assert "total" in report.format_timings()
    with pytest.raises(PipelineError, match="does not run"):
        PassManager("shapes", dump_after=["cleanup"])


# ---------------------------------------------------------------------- property: format/parse round trip
_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_\-.:]{0,12}", fullmatch=True)
_keys = st.from_regex(r"[A-Za-z_][A-Za-z0-9_\-]{0,8}", fullmatch=True)
_values = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12).filter(
    lambda v: v.strip() == v and v.strip())


@given(st.lists(st.builds(PipelineEntry, _names, st.dictionaries(_keys, _values, max_size=3)), min_size=1, max_size=5))
def test_any_pipeline_formats_and_parses_back(entries):
    assert parse_pipeline(format_pipeline(entries)) == entries


# ---------------------------------------------------------------------- typed facts and contracts
def test_a_pipeline_missing_a_fact_is_refused_before_anything_runs(graph):
    version = graph.version
    with pytest.raises(PipelineError, match="compact needs a selection: add select or sparse-train before it"):
        PassManager("cleanup,compact,verify").run(graph)
    assert graph.version == version  # cleanup did not run either
    with pytest.raises(PipelineError, match="verify needs a compacted model"):
        PassManager("verify").run(graph)


def test_a_transform_between_select_and_compact_loses_the_selection(graph):
    # cleanup may edit the graph, so the selection's family ids may no longer name the same groups
    with pytest.raises(PipelineError, match="compact needs a selection"):
        PassManager("select{ratio=0.5},cleanup,compact").run(graph)
    PassManager("select{ratio=0.5},compact,cleanup,verify").run(graph)  # cleanup keeps the masked reference


def test_select_provides_a_selection_that_an_edit_invalidates(graph):
    from onnxprune.facts import Outcome
    from onnxprune.space import Selection

    am = AnalysisManager(graph)
    report = PassManager("select{ratio=0.5}").run(graph, am)
    assert not report.modified and am.has(Selection) and am.fact(Outcome).share > 0
    graph.rename_value(graph.outputs[0], "renamed")  # edited behind the manager's back
    assert not am.has(Selection)
    assert am.has(Outcome)  # a record of what select did stays true
    with pytest.raises(PipelineError, match="a selection is not available for this graph: add select"):
        am.fact(Selection)


def test_compact_with_a_selection_file_needs_no_select(graph, tmp_path):
    import json

    from onnxprune.facts import Compaction, VerifyReport

    am = AnalysisManager(graph.copy())
    PassManager("select{ratio=0.5}").run(am.graph, am)
    path = tmp_path / "sel.json"
    path.write_text(json.dumps(am.fact(onnxprune.space.Selection).to_json(am.get("prune-space"))))
    am = AnalysisManager(graph)
    PassManager(f"compact{{selection={path}}},verify").run(graph, am)
    assert am.fact(VerifyReport).ok and am.fact(Compaction).selection.group_count


def test_checks_run_every_time_they_are_asked_for(graph, monkeypatch):
    from onnxprune.passes import verify as verify_module

    calls = []
    real = verify_module.compare
    monkeypatch.setattr(verify_module, "compare", lambda *a, **k: calls.append(1) or real(*a, **k))
    am = AnalysisManager(graph)
    PassManager("select{ratio=0.5},compact,verify,verify").run(graph, am)
    PassManager("verify").run(graph, am)
    assert len(calls) == 3 and "verify" not in am.computed


def test_a_failing_transform_leaves_no_fact_behind(graph):
    from onnxprune.space import Selection

    class Half(TransformPass):
        """Provides a selection, then fails."""

        name = "half"
        provides = (Selection,)

        def run(self, graph, am):
            am.provide(Selection({}))
            raise RuntimeError("boom")

    am = AnalysisManager(graph)
    with pytest.raises(RuntimeError):
        PassManager([Half()]).run(graph, am)
    assert not am.has(Selection)


def test_opt_names_the_missing_pass_in_one_line(capsys, tmp_path):
    from .test_cli import run_cli

    code, _, err = run_cli(capsys, "opt", ZOO / "mlp.onnx", "--passes", "compact,verify", "-o", tmp_path / "x.onnx")
    assert code == 2 and err.strip().splitlines() == [
        "onnxprune: error: compact needs a selection: add select or sparse-train before it"]
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.parametrize("enabled", [True, False])
def test_passes_leave_the_garbage_collector_as_they_found_it(graph, enabled):
    """Passes run with the cyclic collector paused (`files.paused_gc`); a library must hand the
    process back as it was, after a failing pass too, and never enable what its caller disabled."""
    import gc

    class Fails(TransformPass):
        """Always raises."""

        name = "fails"

        def run(self, graph, am):
            assert not gc.isenabled()
            raise RuntimeError("boom")

    was = gc.isenabled()
    try:
        gc.enable() if enabled else gc.disable()
        PassManager("cleanup,cost").run(graph, AnalysisManager(graph))
        assert gc.isenabled() == enabled
        with pytest.raises(RuntimeError):
            PassManager([Fails()]).run(graph, AnalysisManager(graph))
        assert gc.isenabled() == enabled
        onnxprune.load(ZOO / "mlp.onnx")
        assert gc.isenabled() == enabled
    finally:
        gc.enable() if was else gc.disable()
