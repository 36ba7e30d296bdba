"""Sparse training with onnxruntime-training (DESIGN §8): artifacts, engine, data, schedules, the run."""

from .artifacts import TrainingArtifacts, build_artifacts, trainable_parameters
from .data import ArrayData, FactoryData, open_data
from .run import TrainConfig, TrainResult, run_model, sparse_train
from .schedule import LearningRate

__all__ = ["ArrayData", "FactoryData", "LearningRate", "TrainConfig", "TrainResult", "TrainingArtifacts",
           "build_artifacts", "open_data", "run_model", "sparse_train", "trainable_parameters"]
