"""The pass framework: passes, pipeline strings, the registry and the managers (DESIGN §4)."""

from .base import ALL, AnalysisPass, CheckPass, NoOptions, Pass, PassResult, TransformPass, fact_name
from .manager import AnalysisManager, PassManager, PassRecord, PipelineReport, check_pipeline
from .pipeline import PipelineEntry, format_pipeline, parse_pipeline
from .registry import ENTRY_POINT_GROUP, REGISTRY, PluginWarning, Registry

__all__ = [
           "ALL",
           "ENTRY_POINT_GROUP",
           "REGISTRY",
           "AnalysisManager",
           "AnalysisPass",
           "CheckPass",
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
           "check_pipeline",
           "fact_name",
           "format_pipeline",
           "parse_pipeline",
]
