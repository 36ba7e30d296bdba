"""The pass registry: every pass by name, built-ins plus third-party passes from entry points.

Third parties add passes by declaring, in their package metadata,

    [project.entry-points."onnxprune.passes"]
    my-pass = "my_package.passes:MyPass"

where `MyPass` subclasses AnalysisPass, TransformPass or CheckPass and sets `name = "my-pass"`. A plugin that
fails to import is reported as a warning and skipped; it never takes the tool down.
"""

from __future__ import annotations

import difflib
import importlib
import warnings
from importlib.metadata import entry_points

from ..errors import PipelineError
from .base import AnalysisPass, CheckPass, Pass, TransformPass
from .pipeline import PipelineEntry, parse_pipeline

ENTRY_POINT_GROUP = "onnxprune.passes"
BUILTIN_MODULE = "onnxprune.passes"


class PluginWarning(UserWarning):
    """A third-party pass could not be loaded."""


class Registry:
    """Maps pass names to pass classes; loads built-ins and entry points on first use."""

    def __init__(self, *, load_plugins: bool = True) -> None:
        self._passes: dict[str, type[Pass]] = {}
        self._origins: dict[str, str] = {}
        self._load_plugins = load_plugins
        self._loaded = False

    def register(self, cls: type[Pass], origin: str = "builtin") -> type[Pass]:
        """Add a pass class under its `name`; a second pass with the same name is refused."""
        if not (isinstance(cls, type) and issubclass(cls, (AnalysisPass, TransformPass, CheckPass))):
            raise TypeError(f"{cls!r} is not an AnalysisPass, TransformPass or CheckPass subclass")
        if not cls.name:
            raise TypeError(f"{cls.__name__} has no pass name")
        existing = self._passes.get(cls.name)
        if existing is not None and existing is not cls:
            raise ValueError(f"pass name '{cls.name}' is taken by {self._origins[cls.name]}")
        self._passes[cls.name] = cls
        self._origins[cls.name] = origin
        return cls

    def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        builtins = importlib.import_module(BUILTIN_MODULE)
        for cls in builtins.BUILTIN_PASSES:
            self.register(cls)
        if self._load_plugins:
            for point in entry_points(group=ENTRY_POINT_GROUP):
                origin = f"plugin {point.value}" + (f" ({point.dist.name})" if point.dist else "")
                try:
                    self.register(point.load(), origin)
                except (Exception, SystemExit) as exc:  # a broken plugin must not break (or end) the tool
                    warnings.warn(f"skipping pass plugin '{point.name}' ({point.value}): {exc}", PluginWarning,
                                  stacklevel=2)

    def get(self, name: str) -> type[Pass]:
        """The pass class called `name`; PipelineError (with a suggestion) if there is none."""
        self._ensure_loaded()
        try:
            return self._passes[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._passes, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise PipelineError(f"unknown pass '{name}'{hint} (`onnxprune passes` lists them)") from None

    def origin(self, name: str) -> str:
        """Where the pass came from: 'builtin' or the plugin's entry point."""
        self._ensure_loaded()
        return self._origins[name]

    def names(self) -> list[str]:
        """All registered pass names, sorted."""
        self._ensure_loaded()
        return sorted(self._passes)

    def create(self, entry: PipelineEntry | str) -> Pass:
        """Instantiate one pipeline entry (or a bare pass name)."""
        if isinstance(entry, str):
            entry = PipelineEntry(entry)
        return self.get(entry.name).from_strings(entry.options)

    def build(self, pipeline: str) -> list[Pass]:
        """Parse a pipeline string and instantiate its passes."""
        return [self.create(entry) for entry in parse_pipeline(pipeline)]


#: The process-wide registry the CLI and PassManager use by default.
REGISTRY = Registry()
