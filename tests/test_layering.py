"""The layers hold: no module-level import circle, and the framework never imports a concrete pass.

Imports inside functions are deferred on purpose (heavy packages, plugins) and are not counted.
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


def _import_graph() -> nx.DiGraph:
    modules = _modules()
    graph = nx.DiGraph()
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.parse(path.read_text()).body:  # module level only
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
