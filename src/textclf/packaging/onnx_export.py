"""Export a trained sequence classifier to ONNX and check the graph against torch.

The TorchScript-based exporter (``dynamo=False``) is used on purpose: the dynamo exporter of
torch 2.13 needs ``onnxscript`` (not a dependency), and the traced graph with named dynamic
batch/sequence axes is what ONNX Runtime's quantiser handles best.

The model is exported with eager attention and then fused (:mod:`textclf.packaging.optimise`):
the SDPA path traces to a graph ONNX Runtime's attention fusion does not recognise. The torch
check runs on the final, fused graph.
"""

from __future__ import annotations

import inspect
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from textclf.errors import UserError

log = logging.getLogger(__name__)

#: Opset 17 has LayerNormalization as one op; ONNX Runtime >= 1.14 runs it.
OPSET = 17
OUTPUT_NAME = "logits"
#: Largest |logit| difference accepted between the exported graph and torch (fp32 both).
EXPORT_TOLERANCE = 1e-3

# Two different shapes: one traces the graph, the other checks the dynamic axes really are
# dynamic (a graph traced with fixed sizes would fail or differ on it).
_TRACE_TEXTS = ["markets rally as rates hold", "a short one"]
_CHECK_TEXTS = [
    "apple unveils a new phone with a bigger screen and a faster chip, analysts say",
    "ebola spreads",
    "film tops box office for a third week",
]


class ExportError(UserError):
    """The exported graph does not reproduce the torch model."""


def export_onnx(model_dir: Path, out: Path, *, opset: int = OPSET, fuse: bool = True) -> list[str]:
    """Write ``model_dir``'s classifier to ``out`` as ONNX; return the graph's input names.

    ``fuse``: run the transformer fusions on the exported graph (falls back to the plain graph
    for an architecture they do not cover).

    Inputs are the tokenizer's ``model_input_names`` the model's ``forward`` accepts (BERT:
    ``input_ids``, ``attention_mask``, ``token_type_ids``; DistilBERT has no token types), int64
    ``[batch, sequence]`` with both axes dynamic; the output is float logits ``[batch, labels]``.
    """
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = _load_eager(AutoModelForSequenceClassification, model_dir)
    accepted = list(inspect.signature(model.forward).parameters)
    # Positional order of forward(): the traced wrapper below passes inputs positionally.
    names = [n for n in accepted if n in tokenizer.model_input_names]
    if "input_ids" not in names:
        raise ExportError(f"{model_dir}: the model's forward() takes no input_ids ({accepted})")

    class _Logits(torch.nn.Module):
        """forward(*inputs) -> logits: the exporter traces tensors, not a ModelOutput."""

        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.inner(**dict(zip(names, inputs, strict=True))).logits

    sample = tokenizer(_TRACE_TEXTS, padding=True, truncation=True, return_tensors="pt")
    dynamic_axes: dict[str, dict[int, str]] = {n: {0: "batch", 1: "sequence"} for n in names}
    dynamic_axes[OUTPUT_NAME] = {0: "batch"}
    out.parent.mkdir(parents=True, exist_ok=True)
    traced = out.with_name(f"{out.stem}.traced{out.suffix}") if fuse else out
    with warnings.catch_warnings(), torch.no_grad():
        # Tracer warnings about Python conditionals on shapes are expected: they concern branches
        # (causal masks, KV caches) that an encoder classifier never takes.
        warnings.simplefilter("ignore")
        # eval() on the wrapper too: the exporter restores the wrapper's training flag
        # recursively after tracing, and a fresh Module is in training mode -- that would
        # switch dropout on in the model we compare against below.
        torch.onnx.export(
            _Logits(model).eval(),
            tuple(sample[n] for n in names),
            str(traced),
            input_names=names,
            output_names=[OUTPUT_NAME],
            dynamic_axes=dynamic_axes,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    if fuse:
        from textclf.packaging.optimise import fuse_graph

        try:
            fuse_graph(traced, out, model_dir / "config.json")
        finally:
            traced.unlink(missing_ok=True)
    _check_against_torch(model, tokenizer, out, names)
    return names


def _load_eager(auto_class: Any, model_dir: Path) -> Any:
    """The model with eager attention: its traced Softmax(QK^T)V is what the fusion matches."""
    try:
        model = auto_class.from_pretrained(str(model_dir), attn_implementation="eager", use_safetensors=True)
    except (ValueError, TypeError) as exc:
        # An architecture without an eager path: its default attention exports just the same.
        log.info("eager attention unavailable (%s); exporting the default attention", exc)
        model = auto_class.from_pretrained(str(model_dir), use_safetensors=True)
    return model.eval()


def _check_against_torch(model: object, tokenizer: object, onnx_path: Path, names: list[str]) -> None:
    import onnxruntime as ort
    import torch

    batch = tokenizer(_CHECK_TEXTS, padding=True, truncation=True, return_tensors="np")  # type: ignore[operator]
    feed = {n: np.asarray(batch[n], dtype=np.int64) for n in names}
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run([OUTPUT_NAME], feed)[0]
    with torch.no_grad():
        want = model(**{n: torch.from_numpy(v) for n, v in feed.items()}).logits.numpy()  # type: ignore[operator]
    diff = float(np.abs(got - want).max())
    log.info("ONNX export check: max |logit difference| vs torch = %.2e", diff)
    if not diff <= EXPORT_TOLERANCE:
        raise ExportError(
            f"the exported ONNX graph differs from the torch model by {diff:.3g} in the logits "
            f"(tolerance {EXPORT_TOLERANCE}); export is broken for this model"
        )
