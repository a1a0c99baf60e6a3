"""Class probabilities from a trained model directory, on the CPU.

Headlines are sorted by length and batched, so each batch is padded only to its own longest
row; gradients are off (``torch.inference_mode``). Probabilities come back in input order.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from textclf.errors import UserError
from textclf.packaging.runtime import load_inference_module


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    labels: list[str]  # class-id order, from the model's config.json id2label
    max_length: int
    #: The model's lexical head (model/lexical.py), blended in exactly as the endpoint does.
    lexical_head: Any = None


def load_model(model_dir: Path, num_threads: int | None = None) -> LoadedModel:
    # Before torch starts OpenMP: spinning waiters collapse throughput on a shared CPU
    # (see textclf.training.environment). No effect if torch was imported already.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    if not (model_dir / "config.json").is_file():
        raise UserError(f"{model_dir} is not a model directory (no config.json): run `textclf train` first")
    if num_threads:
        torch.set_num_threads(num_threads)
    meta_file = model_dir / "textclf_meta.json"
    meta = json.loads(meta_file.read_text(encoding="utf-8")) if meta_file.is_file() else {}
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    model.eval()
    id2label = {int(k): v for k, v in model.config.id2label.items()}
    labels = [id2label[i] for i in range(len(id2label))]
    max_length = int(meta.get("max_length") or min(int(tokenizer.model_max_length), 512))
    # The serving script's own copy of the head code: evaluated = served.
    head = load_inference_module().lexical.LexicalHead.load(model_dir)
    return LoadedModel(
        model=model, tokenizer=tokenizer, labels=labels, max_length=max_length, lexical_head=head
    )


def predict_proba(
    loaded: LoadedModel, texts: Sequence[str], batch_size: int = 64, *, lexical: bool = True
) -> np.ndarray:
    """Class probabilities in input order; ``lexical=False`` leaves the lexical head out."""
    import torch

    if not texts:
        return np.zeros((0, len(loaded.labels)))
    encoded = loaded.tokenizer(list(texts), truncation=True, max_length=loaded.max_length)["input_ids"]
    order = np.argsort([len(ids) for ids in encoded], kind="stable")
    pad_id = loaded.tokenizer.pad_token_id or 0
    out = np.empty((len(texts), len(loaded.labels)), dtype=np.float64)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            width = max(len(encoded[i]) for i in rows)
            input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for j, i in enumerate(rows):
                input_ids[j, : len(encoded[i])] = torch.tensor(encoded[i])
                mask[j, : len(encoded[i])] = 1
            logits = loaded.model(input_ids=input_ids, attention_mask=mask).logits
            out[rows] = torch.softmax(logits.float(), dim=-1).numpy()
    if lexical and loaded.lexical_head is not None:
        out = loaded.lexical_head.combine(out, texts)
    return out


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
