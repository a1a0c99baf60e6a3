"""The local SageMaker: ``app`` (the server in front of moto), ``training``, ``hosting`` (endpoints)
and ``transform`` (batch transform jobs)."""

from textclf.local.sagemaker.app import PACKAGE_EVENT, LocalSageMaker
from textclf.local.sagemaker.common import SageMakerError
from textclf.local.sagemaker.hosting import ENDPOINT_EVENT
from textclf.local.sagemaker.training import TRAINING_EVENT
from textclf.local.sagemaker.transform import TRANSFORM_EVENT

__all__ = [
    "ENDPOINT_EVENT",
    "PACKAGE_EVENT",
    "TRAINING_EVENT",
    "TRANSFORM_EVENT",
    "LocalSageMaker",
    "SageMakerError",
]
