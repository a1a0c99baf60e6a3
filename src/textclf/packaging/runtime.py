"""Load ``model/inference.py`` by path and serve a model directory with it.

``inference.py`` is a script shipped inside ``model.tar.gz`` (not part of this package), so the
CLI, the fidelity check and the benchmark import that very file: what they measure is what the
endpoint runs.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from textclf.config import model_code_dir

INFERENCE_SCRIPT = "inference.py"
_MODULE_PREFIX = "textclf_packaging_inference"


def inference_script() -> Path:
    """The repository's ``model/inference.py`` (``TEXTCLF_MODEL_CODE`` moves it)."""
    return model_code_dir() / INFERENCE_SCRIPT


def load_inference_module(script: Path | None = None) -> ModuleType:
    """Import ``script`` (default :func:`inference_script`) once per path, by path."""
    path = (script or inference_script()).resolve()
    # One module per file: a test may load two different copies (e.g. from an unpacked archive).
    name = f"{_MODULE_PREFIX}_{hashlib.sha1(str(path).encode()).hexdigest()[:12]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    # Registered before exec: dataclasses resolve their module through sys.modules.
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def load_model(model_dir: str | Path, runtime: str | None = None) -> Any:
    """A ``Classifier`` for ``model_dir`` (runtime: the one its ``textclf_meta.json`` names).

    ``model_dir`` is either a training output (``torch`` only) or a staged serving directory
    from :func:`textclf.packaging.stage_runtime` / an unpacked ``model.tar.gz``. Predict with
    :func:`predict_texts`.
    """
    return load_inference_module().load_classifier(model_dir, runtime)


def predict_texts(model: Any, texts: list[str]) -> list[dict[str, Any]]:
    """``inference.predict_texts``: one ``{"label", "score", "scores"}`` per text, in order."""
    result: list[dict[str, Any]] = load_inference_module().predict_texts(model, texts)
    return result
