"""Compute ceiling: FLOP count from the config, GEMM rate measured, bound in the report."""

from __future__ import annotations

import pytest

from textclf.bench import report
from textclf.bench.ceiling import Shape, compute_ceiling, encoder_shape, flops_per_headline, gemm_gflops

MINILM = {"model_type": "bert", "num_hidden_layers": 6, "hidden_size": 384, "intermediate_size": 1536}


def test_flops_of_minilm_by_hand() -> None:
    shape = encoder_shape(MINILM)
    assert shape == Shape(layers=6, hidden=384, intermediate=1536)
    # Per layer and token: 4*384^2 = 589,824 + 2*384*1536 = 1,179,648 + 2*10*384 = 7,680.
    per_token = 6 * (589_824 + 1_179_648 + 7_680)
    assert flops_per_headline(shape, 10) == pytest.approx(2 * per_token * 10)


def test_distilbert_config_names() -> None:
    config = {"model_type": "distilbert", "n_layers": 6, "dim": 768, "hidden_dim": 3072}
    assert encoder_shape(config) == Shape(6, 768, 3072)
    with pytest.raises(ValueError, match="num_hidden_layers"):
        encoder_shape({"model_type": "gpt2", "n_layer": 12})


def test_ceiling_is_the_measured_rate_over_the_model_cost() -> None:
    tiny = {"num_hidden_layers": 2, "hidden_size": 64, "intermediate_size": 128}
    ceiling = compute_ceiling(tiny, [8, 12, 10], threads=1, batch_size=4)
    assert ceiling["mean_tokens"] == 10
    assert ceiling["gemm_gflops_fp32"] > 0
    flops = flops_per_headline(encoder_shape(tiny), 10)
    # Written out for 2 layers, h = 64, f = 128, 10 tokens: 2 x 10 x 2 x (4h^2 + 2hf + 2 x 10 x h).
    assert flops == 2 * 10 * 2 * (4 * 64 * 64 + 2 * 64 * 128 + 2 * 10 * 64) == 1_361_920
    assert ceiling["gflop_per_headline"] == pytest.approx(flops / 1e9)
    assert ceiling["ceiling_headlines_per_s_fp32"] == pytest.approx(ceiling["gemm_gflops_fp32"] * 1e9 / flops)
    assert ceiling["ceiling_single_ms_fp32"] == pytest.approx(1e3 / ceiling["ceiling_headlines_per_s_fp32"])
    with pytest.raises(ValueError, match="no headlines"):
        compute_ceiling(tiny, [], threads=1)


def test_gemm_rate_runs_for_the_time_asked() -> None:
    assert gemm_gflops(16, Shape(1, 32, 64), threads=1, seconds=0.05) > 0


def test_report_line_applies_the_measured_int8_gain() -> None:
    ceiling = {
        "gflop_per_headline": 0.3,
        "mean_tokens": 15.0,
        "shape": {"layers": 6, "hidden": 384, "intermediate": 1536},
        "gemm_gflops_fp32": 90.0,
        "threads": 2,
        "ceiling_headlines_per_s_fp32": 300.0,
    }
    runtimes = {"onnx-fp32": {"batch_throughput": 200.0}, "onnx-int8": {"batch_throughput": 300.0}}
    line = report.ceiling_line(ceiling, runtimes)
    assert "at most 300 headlines/s in fp32" in line
    assert "1.50x fp32" in line and "about 450 headlines/s" in line
    assert "int8" not in report.ceiling_line(ceiling, {})
