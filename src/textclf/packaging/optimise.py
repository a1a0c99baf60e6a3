"""Transformer graph fusion with ONNX Runtime's offline optimiser (``onnxruntime.transformers``).

The fused graph replaces each layer's dozen attention ops with one ``Attention`` contrib op
and folds GELU, bias and residual + LayerNorm pairs into single kernels. Those are
``com.microsoft`` ops that the stock CPU execution provider runs, so the archive needs no extra
package. ONNX Runtime's own load-time optimiser (``ORT_ENABLE_ALL``) does not fuse attention on
CPU; this step is what makes the difference.

Fusion is best effort: an architecture whose graph the optimiser does not recognise keeps its
unfused graph (logged), and the caller's logits check still decides whether the result is sound.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from textclf.packaging.quiet import root_logger_at_least

log = logging.getLogger(__name__)

#: ``config.model_type`` -> optimiser model type. DistilBERT has no entry of its own in
#: ``onnxruntime.transformers.optimizer.MODEL_TYPES``; its encoder matches the BERT patterns.
OPTIMISER_TYPES = {"bert": "bert", "distilbert": "bert"}

#: Python fusions only (``opt_level=0``): level 1 would bake ONNX Runtime's basic rewrites into
#: the file, which the serving session repeats anyway; 0 keeps the archive a plain graph.
_OPT_LEVEL = 0

#: Contrib ops the fusion produces; their presence in a graph means it was fused.
FUSED_OP_TYPES = (
    "Attention",
    "EmbedLayerNormalization",
    "SkipLayerNormalization",
    "BiasGelu",
    "FastGelu",
    "Gelu",
)


def fusion_shape(config: dict[str, object]) -> tuple[str, int, int] | None:
    """``(optimiser model type, heads, hidden size)`` from a HF ``config.json``; None if unknown."""
    kind = OPTIMISER_TYPES.get(str(config.get("model_type", "")))
    if kind is None:
        return None
    # BERT names them num_attention_heads / hidden_size, DistilBERT n_heads / dim.
    heads = config.get("num_attention_heads", config.get("n_heads"))
    hidden = config.get("hidden_size", config.get("dim"))
    if not isinstance(heads, int) or not isinstance(hidden, int):
        return None
    return kind, heads, hidden


def fuse_graph(src: Path, dst: Path, config_path: Path) -> dict[str, int]:
    """Write the fused graph of ``src`` to ``dst``; return fused op counts ({} = not fused, copied).

    Never raises for an unsupported architecture or a failed fusion: ``dst`` then holds ``src``
    unchanged and the reason is logged.
    """
    config = json.loads(config_path.read_text(encoding="utf-8"))
    shape = fusion_shape(config)
    if shape is None:
        log.info("graph fusion skipped: model_type %r is not supported", config.get("model_type"))
        shutil.copyfile(src, dst)
        return {}
    kind, heads, hidden = shape
    try:
        counts = _fuse(src, dst, kind, heads, hidden)
    except Exception as exc:
        # Broad on purpose: the optimiser's failure modes (pattern asserts, shape inference,
        # protobuf errors) are many and undocumented, and fusion is only an optimisation.
        log.info("graph fusion failed (%s: %s); serving the unfused graph", type(exc).__name__, exc)
        shutil.copyfile(src, dst)
        return {}
    if not counts.get("Attention"):
        # Fusing only LayerNorm/GELU would gain little and still change the graph: keep it simple.
        log.info("graph fusion found no attention block to fuse (%s); serving the unfused graph", counts)
        shutil.copyfile(src, dst)
        return {}
    log.info("graph fusion: %s", ", ".join(f"{op} x{n}" for op, n in sorted(counts.items())))
    return counts


def _fuse(src: Path, dst: Path, kind: str, heads: int, hidden: int) -> dict[str, int]:
    from onnxruntime.transformers.optimizer import optimize_model

    # The optimiser's modules log every fusion at INFO through top-level loggers ("fusion_base",
    # "onnx_model", ...) that inherit the root level.
    with root_logger_at_least(logging.WARNING):
        model = optimize_model(
            str(src), model_type=kind, num_heads=heads, hidden_size=hidden, opt_level=_OPT_LEVEL
        )
        counts = {op: n for op, n in model.get_fused_operator_statistics().items() if n}
        model.save_model_to_file(str(dst))
    return counts


def fused_ops(path: Path) -> dict[str, int]:
    """Count of each fused contrib op in the graph at ``path`` ({} for an unfused graph)."""
    import onnx

    counts: dict[str, int] = {}
    for node in onnx.load(str(path), load_external_data=False).graph.node:
        if node.domain == "com.microsoft" and node.op_type in FUSED_OP_TYPES:
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))
