"""The pass framework: passes, pipeline strings, the registry and the managers (DESIGN §4)."""

from .base import ALL, AnalysisPass, NoOptions, Pass, PassResult, TransformPass
from .manager import AnalysisManager, PassManager, PassRecord, PipelineReport
from .pipeline import PipelineEntry, format_pipeline, parse_pipeline
from .registry import ENTRY_POINT_GROUP, REGISTRY, PluginWarning, Registry

__all__ = [
           "ALL",
           "ENTRY_POINT_GROUP",
           "REGISTRY",
           "AnalysisManager",
           "AnalysisPass",
           "NoOptions",
           "Pass",
           "PassManager",
           "PassRecord",
           "PassResult",
           "PipelineEntry",
           "PipelineReport",
           "PluginWarning",
           "Registry",
           "TransformPass",
           "format_pipeline",
           "parse_pipeline",
]
