"""The compute ceiling: how many headlines/s this CPU could classify if it did nothing but GEMMs.

A transformer encoder's cost is almost all matrix multiplication. Counting the model's
multiply-adds per headline (from its ``config.json`` and the real token lengths) and measuring the
machine's matrix-multiply rate *at the model's own shapes* gives an upper bound no server can beat
with this model on this machine. The benchmark prints it beside the throughput targets, so a
missed target can be told apart from a slow server.

The rate is measured with torch's fp32 GEMM (oneDNN/MKL, the kernels torch and ONNX Runtime use);
int8 kernels on a CPU without VNNI (AVX2 only) reach well under 2x of it in practice, which the
model level measures directly (ONNX int8 vs fp32 batch throughput).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Shape:
    layers: int
    hidden: int
    intermediate: int


def encoder_shape(config: Mapping[str, Any]) -> Shape:
    """Layers, hidden and feed-forward sizes of a BERT-like (or DistilBERT) ``config.json``."""
    layers = config.get("num_hidden_layers", config.get("n_layers"))
    hidden = config.get("hidden_size", config.get("dim"))
    intermediate = config.get("intermediate_size", config.get("hidden_dim"))
    if not all(isinstance(v, int) and v > 0 for v in (layers, hidden, intermediate)):
        raise ValueError("config.json lacks num_hidden_layers / hidden_size / intermediate_size")
    return Shape(int(layers), int(hidden), int(intermediate))


def flops_per_headline(shape: Shape, tokens: float) -> float:
    """Floating-point operations (2 per multiply-add) of one forward pass over ``tokens`` tokens.

    Per layer and token: Q, K, V and output projections (4 h^2), the feed-forward pair (2 h f),
    and attention scores plus the weighted sum (2 t h). Embeddings, layer norms, softmax and
    the classifier are lookups or O(h) per token and left out: the bound stays an upper bound.
    """
    h, f = shape.hidden, shape.intermediate
    per_token = shape.layers * (4 * h * h + 2 * h * f + 2 * tokens * h)
    return 2.0 * per_token * tokens


def gemm_gflops(rows: int, shape: Shape, threads: int, seconds: float = 1.0) -> float:
    """Measured fp32 GFLOP/s of ``[rows, h] x [h, f]`` -- the model's widest GEMM -- on ``threads``."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        x = torch.rand(rows, shape.hidden)
        w = torch.rand(shape.intermediate, shape.hidden)
        for _ in range(5):
            x @ w.T
        calls = 0
        started = time.perf_counter()
        while True:
            x @ w.T
            calls += 1
            elapsed = time.perf_counter() - started
            if elapsed >= seconds:
                break
    finally:
        torch.set_num_threads(previous)
    return 2.0 * rows * shape.hidden * shape.intermediate * calls / elapsed / 1e9


def compute_ceiling(
    config: Mapping[str, Any], token_counts: Sequence[int], threads: int, batch_size: int = 32
) -> dict[str, Any]:
    """FLOPs per headline, the measured GEMM rate, and the headlines/s they allow."""
    if not token_counts:
        raise ValueError("no headlines to count tokens of")
    shape = encoder_shape(config)
    mean_tokens = sum(token_counts) / len(token_counts)
    flops = flops_per_headline(shape, mean_tokens)
    rate = gemm_gflops(max(1, round(batch_size * mean_tokens)), shape, threads)
    return {
        "shape": asdict(shape),
        "mean_tokens": mean_tokens,
        "gflop_per_headline": flops / 1e9,
        "gemm_gflops_fp32": rate,
        "threads": threads,
        "batch_size": batch_size,
        "ceiling_headlines_per_s_fp32": rate * 1e9 / flops,
        "ceiling_single_ms_fp32": flops / (rate * 1e9) * 1e3,
    }
