"""aws-train-remote: run your training script locally, or as a SageMaker training job, unchanged.

Importing this package loads nothing heavy (no boto3, no yaml): the public names are
resolved on first use, so `import aws_train_remote` costs a few milliseconds and the
in-container runtime, which ships this file, can import it with the standard library only.
"""
from __future__ import annotations

from ._version import __version__

__all__ = [
    "__version__",
    "training_main",
    "training_job",
    "TrainRemoteError",
    "UsageError",
    "ConfigError",
    "DefinitionError",
    "AwsError",
    "JobFailed",
]

_LAZY = {
    "training_main": ("training", "training_main"),
    "training_job": ("training", "training_job"),
    "sagemaker_training_main": ("training", "sagemaker_training_main"),
    "TrainRemoteError": ("errors", "TrainRemoteError"),
    "UsageError": ("errors", "UsageError"),
    "ConfigError": ("errors", "ConfigError"),
    "DefinitionError": ("errors", "DefinitionError"),
    "AwsError": ("errors", "AwsError"),
    "JobFailed": ("errors", "JobFailed"),
}


def __getattr__(name: str):
    try:
        module_name, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'aws_train_remote' has no attribute {name!r}") from None
    import importlib

    value = getattr(importlib.import_module(f".{module_name}", __name__), attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
