"""Class probabilities from a trained model directory, on the CPU, through ``model/inference.py``.

Evaluation loads and scores the model with the serving script's own code (tokenisation,
truncation, length-sorted batches, the lexical-head blend), so what ``textclf evaluate``
reports is what the endpoint answers.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from textclf.errors import UserError
from textclf.packaging.runtime import load_inference_module

#: What a model directory needs to be evaluated (``textclf train`` and train.py write all three).
REQUIRED_FILES = ("config.json", "textclf_meta.json", "model.safetensors")


def load_model(model_dir: Path, num_threads: int | None = None) -> Any:
    """The serving script's ``Classifier`` for a training output, on torch (``inference.load_classifier``)."""
    if not model_dir.is_dir():
        raise UserError(f"model directory {model_dir} does not exist: run `textclf train` first")
    missing = [name for name in REQUIRED_FILES if not (model_dir / name).is_file()]
    if missing:
        raise UserError(
            f"{model_dir} is not a textclf model directory (missing {', '.join(missing)}): "
            "run `textclf train` first, or pass the folder it wrote"
        )
    # Before torch starts OpenMP: spinning waiters collapse throughput on a shared CPU
    # (see textclf.training.environment). No effect if torch was imported already.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    loaded = load_inference_module().load_classifier(model_dir, "torch")
    if num_threads:
        import torch

        torch.set_num_threads(num_threads)
    return loaded


def predict_proba(
    loaded: Any, texts: Sequence[str], batch_size: int = 64, *, lexical: bool = True
) -> np.ndarray:
    """Class probabilities in input order; ``lexical=False`` leaves the lexical head out."""
    # A copy with its own batch size: the endpoint's passes of 8 suit latency, evaluation
    # scores tens of thousands of headlines in larger passes.
    model = dataclasses.replace(loaded, batch_size=batch_size)
    # The inference module that built this classifier, looked up directly: finding it again by
    # path costs ~80 us, which single-headline latency figures would include.
    inference = sys.modules[type(loaded).__module__]
    probs: np.ndarray = inference.predict_proba(model, texts, lexical=lexical)
    return probs


def timed(fn: Any, *args: Any) -> tuple[Any, float]:
    """``fn(*args)`` and the seconds it took (wall clock)."""
    started = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - started


def latency_ms(predict_one: Any, texts: Sequence[str]) -> dict[str, float]:
    """Single-headline latency (one call per headline) in milliseconds: p50, p95, mean."""
    if not texts:
        return {"p50": 0.0, "p95": 0.0, "mean": 0.0, "n": 0}
    predict_one(texts[0])  # warm-up: first call pays for lazy initialisation
    samples = []
    for text in texts:
        started = time.perf_counter()
        predict_one(text)
        samples.append((time.perf_counter() - started) * 1000)
    arr = np.array(samples)
    return {
        "p50": float(np.percentile(arr, 50)),
        "p95": float(np.percentile(arr, 95)),
        "mean": float(arr.mean()),
        "n": len(samples),
    }
