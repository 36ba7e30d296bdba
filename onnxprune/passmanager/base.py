"""What a pass is: `Pass`, `AnalysisPass`, `TransformPass`, `CheckPass`, `PassResult`, and typed pass options.

A pass declares its options as a dataclass (`Options`) whose field types say how a pipeline string's
text is converted (bool, int, float, str, Literal choices, `X | None`); its docstring's first line is
what `onnxprune passes` shows.

Passes hand each other typed results ("facts": a `Selection`, the masked reference `compact` keeps,
a training result), never an untyped dictionary. A pass declares the fact types it `requires` and
`provides`, and a transform the facts it `keeps` (survive it); the PassManager checks a pipeline
against these before it runs anything (LLVM's preserved sets, onnx-ir's requires/ensures), and the
AnalysisManager invalidates facts as it does analyses. (DESIGN §4; the framework lives in `onnxprune.passmanager` because the
built-in passes themselves are installed as `onnxprune.passes`.)
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from ..errors import PipelineError
from .pipeline import quote_value


@dataclass(frozen=True)
class NoOptions:
    """Options of a pass that takes none."""


class _AllAnalyses:
    """Marker: a transform preserved every analysis."""

    def __contains__(self, name: object) -> bool:
        return True

    def __repr__(self) -> str:
        return "ALL"


ALL = _AllAnalyses()


@dataclass(frozen=True)
class PassResult:
    """What a transform did: whether it changed the graph, and which analyses (by name) and facts (by
    type) stay valid. `preserved` is a set of names and types, or `ALL`. Facts the transform provided
    itself stay valid whatever it says."""

    modified: bool
    preserved: frozenset[str | type] | _AllAnalyses = frozenset()

    @classmethod
    def unchanged(cls) -> PassResult:
        """The graph was not touched; every analysis stays valid."""
        return cls(False, ALL)

    @classmethod
    def changed(cls, preserved: typing.Iterable[str | type] = ()) -> PassResult:
        """The graph changed; only the named analyses stay valid."""
        return cls(True, frozenset(preserved))


class Pass:
    """Base of every pass. Subclasses set `name` (the registry and pipeline name) and may set
    `Options` to a frozen dataclass of typed options."""

    name: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions
    #: Fact types this pass hands to later passes of the pipeline (`am.provide`).
    provides: ClassVar[tuple[type, ...]] = ()

    def __init__(self, options: Any = None, **kwargs: Any) -> None:
        if options is not None and kwargs:
            raise TypeError("give either an Options object or keyword options, not both")
        if options is None:
            unknown = set(kwargs) - {f.name for f in dataclasses.fields(self.Options)}
            if unknown:
                raise PipelineError(f"pass '{self.name}' has no option {', '.join(sorted(unknown))}"
                                    f"{_option_hint(self.Options)}")
            options = self.Options(**kwargs)
        self.options = options

    @classmethod
    def from_strings(cls, raw: dict[str, str]) -> Pass:
        """Build the pass from a pipeline string's `key=value` texts, converting each by its type."""
        hints = typing.get_type_hints(cls.Options)
        fields = {f.name: f for f in dataclasses.fields(cls.Options)}
        values = {}
        for key, text in raw.items():
            field_name = key.replace("-", "_")
            if field_name in values:
                raise PipelineError(f"pass '{cls.name}': option '{key}' given twice")
            if field_name not in fields:
                raise PipelineError(f"pass '{cls.name}' has no option '{key}'{_option_hint(cls.Options)}")
            try:
                values[field_name] = convert_option(text, hints[field_name])
            except ValueError as exc:
                raise PipelineError(f"pass '{cls.name}', option '{key}': {exc}") from None
        return cls(**values)

    @classmethod
    def summary(cls) -> str:
        """The first line of the pass's docstring."""
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""

    @classmethod
    def option_specs(cls) -> list[tuple[str, str, Any]]:
        """(name, type description, default) for each option, for listings."""
        hints = typing.get_type_hints(cls.Options)
        specs = []
        for f in dataclasses.fields(cls.Options):
            default = f.default if f.default is not dataclasses.MISSING else None
            specs.append((f.name.replace("_", "-"), describe_type(hints[f.name]), default))
        return specs

    def requires(self) -> tuple[type, ...]:
        """Fact types an earlier pass of the pipeline (or the caller, through `am.provide`) must have
        provided; a method because options can lift a need (`compact{selection=FILE}`)."""
        return ()

    def spec(self) -> str:
        """This pass with its non-default options, in pipeline-string form."""
        changed = []
        for f in dataclasses.fields(self.Options):
            value = getattr(self.options, f.name)
            if f.default is dataclasses.MISSING or value != f.default:
                changed.append(f"{f.name.replace('_', '-')}={format_option(value)}")
        return f"{self.name}{{{','.join(changed)}}}" if changed else self.name


class AnalysisPass(Pass):
    """A read-only pass whose result the AnalysisManager caches until a transform invalidates it."""

    def run(self, graph, am) -> Any:
        """Compute the analysis result for `graph`; use `am.get(...)` for other analyses."""
        raise NotImplementedError


class TransformPass(Pass):
    """A pass that may change the graph and reports what it preserved.

    `keeps` names the facts that stay valid across it whatever it does (`ALL` for a transform that never
    edits the graph, such as `select`); the pipeline check assumes every other fact is lost."""

    keeps: ClassVar[tuple[type, ...] | _AllAnalyses] = ()

    def run(self, graph, am) -> PassResult:
        """Transform `graph` in place and say what changed."""
        raise NotImplementedError


class CheckPass(Pass):
    """A pass that inspects the graph and raises when the check fails. Its report is returned (and
    provided as a fact, for callers) but never cached: a check runs every time it is asked for."""

    def run(self, graph, am) -> Any:
        """Check `graph`; raise on failure, else return what was checked."""
        raise NotImplementedError


def fact_name(kind: type) -> str:
    """How messages name a fact type: its `fact_name` ("a selection"), or its class name."""
    return getattr(kind, "fact_name", kind.__name__)


def is_record(kind: type) -> bool:
    """True for a fact type that records what a pass did (`record = True`): it stays true whatever
    happens to the graph later, so no transform drops it (a newer one replaces it)."""
    return bool(getattr(kind, "record", False))


# ---------------------------------------------------------------------- option conversion
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def convert_option(text: str, annotation: Any) -> Any:
    """Convert a pipeline-string value to the option's declared type; ValueError says why not."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        arms = [a for a in typing.get_args(annotation) if a is not type(None)]
        if text.lower() in ("none", "null", ""):
            return None
        errors = []
        for arm in arms:
            try:
                return convert_option(text, arm)
            except ValueError as exc:
                errors.append(str(exc))
        raise ValueError("; ".join(errors))
    if origin is Literal:
        choices = typing.get_args(annotation)
        for choice in choices:
            if str(choice) == text:
                return choice
        raise ValueError(f"expected one of {', '.join(map(str, choices))}, got '{text}'")
    if annotation is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ValueError(f"expected true or false, got '{text}'")
    if annotation is int:
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"expected an integer, got '{text}'") from None
    if annotation is float:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"expected a number, got '{text}'") from None
    if annotation is str:
        return text
    if origin is tuple:
        (item,) = {a for a in typing.get_args(annotation) if a is not Ellipsis}
        return tuple(convert_option(part.strip(), item) for part in text.split(";") if part.strip())
    raise ValueError(f"options of type {annotation!r} cannot be given in a pipeline string")


def describe_type(annotation: Any) -> str:
    """A short human description of an option type."""
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return "|".join(map(str, typing.get_args(annotation)))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe_type(a) if a is not type(None) else "none" for a in typing.get_args(annotation))
    if origin is tuple:
        return f"list of {describe_type(typing.get_args(annotation)[0])} (';'-separated)"
    return getattr(annotation, "__name__", str(annotation))


def format_option(value: Any) -> str:
    """Render an option value so that `convert_option` reads it back."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, tuple):  # items may not contain ';' (the separator)
        return quote_value(";".join(str(v) for v in value))
    return quote_value(str(value))


def _option_hint(options_type: type) -> str:
    names = [f.name.replace("_", "-") for f in dataclasses.fields(options_type)]
    return f" (options: {', '.join(names)})" if names else " (it takes no options)"
