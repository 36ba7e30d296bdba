"""Group-sparse optimizers (HESSO, DHSPG) over the groups of a PruningSpace, on torch tensors.

Parameters and gradients are dictionaries of torch tensors, normally zero-copy views of the training
engine's buffers (on CPU or CUDA); every update is in place and vectorised over groups."""

from .base import BaseDirection, BaseSettings
from .dhspg import Dhspg, DhspgSettings
from .groups import AxisGroups, GroupLayout, group_layout
from .hesso import Hesso, HessoSettings
from .scores import CRITERIA, DEFAULT_MIX, GroupStats, criterion, importance
from .segments import GroupSegments
from .sparse import GroupSparseOptimizer

__all__ = [
           "CRITERIA",
           "DEFAULT_MIX",
           "AxisGroups",
           "BaseDirection",
           "BaseSettings",
           "Dhspg",
           "DhspgSettings",
           "GroupLayout",
           "GroupSegments",
           "GroupSparseOptimizer",
           "GroupStats",
           "Hesso",
           "HessoSettings",
           "criterion",
           "group_layout",
           "importance",
]
