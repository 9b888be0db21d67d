"""seqlab: sequence-learning tasks for recurrent networks as a reproducible DVC + MLflow pipeline."""

__version__ = "0.1.0"
