"""Sparse training (DESIGN §8): artifacts, engines, data, schedules, the loop and its callbacks, checkpoints.

Nothing here imports a pass or the pass manager: `onnxprune.app.training.sparse_train` (and the
`sparse-train` pass) prepare a graph, make its analyses and call `train_graph`.
"""

from .artifacts import TrainingArtifacts, build_artifacts, trainable_parameters
from .config import TrainConfig, TrainResult
from .data import ArrayData, FactoryData, open_data
from .schedule import LearningRate
from .sparse import prepare_for_training, train_graph

__all__ = ["ArrayData", "FactoryData", "LearningRate", "TrainConfig", "TrainResult", "TrainingArtifacts",
           "build_artifacts", "open_data", "prepare_for_training", "train_graph", "trainable_parameters"]
