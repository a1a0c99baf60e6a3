"""Serving artefact: ONNX export, int8 quantisation, fidelity gate and ``model.tar.gz``.

Reusable pieces (the benchmark imports them):
- :func:`stage_runtime` lays a trained model directory out for ``torch``, ``onnx-fp32`` or
  ``onnx-int8`` (export/quantise as needed) in a directory ``inference.model_fn`` can load;
- :func:`load_model` loads such a directory with ``model/inference.py`` and
  :func:`predict_texts` classifies with it, exactly as the endpoint does;
- :func:`load_inference_module` imports ``model/inference.py`` by path.
"""

from textclf.packaging.build import (
    DEFAULT_RUNTIME,
    RUNTIMES,
    PackageResult,
    build_package,
    read_archive_meta,
    stage_runtime,
)
from textclf.packaging.fidelity import FidelityError, FidelityReport
from textclf.packaging.runtime import inference_script, load_inference_module, load_model, predict_texts

__all__ = [
    "DEFAULT_RUNTIME",
    "RUNTIMES",
    "FidelityError",
    "FidelityReport",
    "PackageResult",
    "build_package",
    "inference_script",
    "load_inference_module",
    "load_model",
    "predict_texts",
    "read_archive_meta",
    "stage_runtime",
]
