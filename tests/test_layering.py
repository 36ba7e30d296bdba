"""The layers hold: no module-level import circle, the framework never imports a concrete pass, and
training never reaches back into the passes or the pass manager (DESIGN §2).

Imports inside functions are deferred on purpose (heavy packages, plugins) and are not counted for
circles; for training they are: `train/` re-running analyses by pass name once closed the circle
train -> registry -> passes -> train behind a function-level import.

Check with: python -m pytest -q tests/test_layering.py
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).parent.parent


def _modules() -> dict[str, Path]:
    found = {}
    for path in [*ROOT.glob("onnxprune/**/*.py"), *ROOT.glob("passes/*.py")]:
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[0] == "passes":  # installed as onnxprune.passes
            parts = ["onnxprune", "passes", *parts[1:]]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _import_graph(deferred: bool = False) -> nx.DiGraph:
    """Module -> module edges of onnxprune's own imports: module level only, or (`deferred`) imports
    inside functions too."""
    modules = _modules()
    graph = nx.DiGraph()
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        tree = ast.parse(path.read_text())
        for node in (ast.walk(tree) if deferred else tree.body):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
                module = ".".join(base + ([node.module] if node.module else []))
                # `from . import wire` names the submodule; `from .x import y` names module x
                targets = [f"{module}.{a.name}" for a in node.names if f"{module}.{a.name}" in modules] or [module]
            else:
                continue
            for target in targets:
                if target in modules and target != name and not name.startswith(target + "."):
                    graph.add_edge(name, target)
    return graph


def test_no_module_level_import_circle():
    cycles = list(nx.simple_cycles(_import_graph()))
    assert cycles == [], [" -> ".join(c) for c in cycles]


def test_the_framework_imports_no_concrete_pass():
    graph = _import_graph()
    leaks = [(a, b) for a, b in graph.edges if not a.startswith("onnxprune.passes") and b.startswith("onnxprune.passes")]
    assert leaks == []


def test_the_graph_sees_every_layer():
    # the checks above are only as good as the graph: it must hold the modules the layers are made of
    nodes = set(_import_graph().nodes)
    for module in ("onnxprune.cli", "onnxprune.app.run", "onnxprune.app.training", "onnxprune.app.prune",
                   "onnxprune.train.loop", "onnxprune.train.callbacks", "onnxprune.train.sparse",
                   "onnxprune.passmanager.registry", "onnxprune.passes.sparse_train"):
        assert module in nodes, module


def test_training_reaches_no_pass_nor_the_pass_manager():
    graph = _import_graph(deferred=True)
    training = [n for n in graph.nodes if n.startswith("onnxprune.train")]
    leaks = sorted((a, b) for a in training for b in graph.successors(a)
                   if b.startswith(("onnxprune.passes", "onnxprune.passmanager", "onnxprune.app", "onnxprune.cli")))
    assert leaks == []
