"""Packaging-time graph fusion and the int8 recipe on top of it (tiny BERT, fast)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from textclf.packaging import load_model, predict_texts, stage_runtime
from textclf.packaging.onnx_export import export_onnx
from textclf.packaging.optimise import fuse_graph, fused_ops, fusion_shape
from textclf.packaging.quantize import QUANTIZED_OPS

pytestmark = pytest.mark.heavy  # real models, exports, servers or tools: not in `make unit`

TEXTS = ["stocks fall as earnings disappoint investors", "ebola", "new movie tops box office today"]


def _scores(model_dir: Path, runtime: str | None = None) -> np.ndarray:
    predictions = predict_texts(load_model(model_dir, runtime), TEXTS)
    return np.array([list(p["scores"].values()) for p in predictions])


def test_fp32_export_is_fused_and_matches_torch(tiny_model: Path, tmp_path: Path) -> None:
    staged = stage_runtime(tiny_model, "onnx-fp32", tmp_path / "staged")
    ops = fused_ops(staged / "model.onnx")
    assert ops.get("Attention") == 1 and ops.get("SkipLayerNormalization")
    assert json.loads((staged / "textclf_meta.json").read_text())["onnx"]["fused_ops"] == ops
    assert np.abs(_scores(staged) - _scores(tiny_model, "torch")).max() < 1e-4


def test_int8_recipe_round_trips(tiny_model: Path, tmp_path: Path) -> None:
    staged = stage_runtime(tiny_model, "onnx-int8", tmp_path / "staged")
    graph = onnx.load(str(staged / "model.onnx")).graph
    op_types = {node.op_type for node in graph.node}
    assert {"QAttention", "MatMulInteger", "QEmbedLayerNormalization"} <= op_types
    quantization = json.loads((staged / "textclf_meta.json").read_text())["onnx"]["quantization"]
    assert quantization["op_types"] == list(QUANTIZED_OPS)
    got = _scores(staged)
    assert np.allclose(got.sum(axis=1), 1.0)
    # A 32-wide model quantises coarsely (probabilities move by up to ~0.1); the labels hold.
    assert (got.argmax(axis=1) == _scores(tiny_model, "torch").argmax(axis=1)).all()


def test_unfused_export_has_no_contrib_ops(tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "plain.onnx"
    export_onnx(tiny_model, out, fuse=False)
    assert fused_ops(out) == {}
    assert not list(tmp_path.glob("*.traced.onnx"))


def test_unknown_architecture_keeps_the_plain_graph(
    tiny_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    plain = tmp_path / "plain.onnx"
    export_onnx(tiny_model, plain, fuse=False)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"model_type": "roberta-of-the-future", "hidden_size": 32}))
    with caplog.at_level(logging.INFO, logger="textclf.packaging.optimise"):
        assert fuse_graph(plain, tmp_path / "out.onnx", config) == {}
    assert (tmp_path / "out.onnx").read_bytes() == plain.read_bytes()
    assert "graph fusion skipped" in caplog.text


def test_failed_fusion_falls_back(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from textclf.packaging import optimise

    def broken(*_args: object) -> dict[str, int]:
        raise RuntimeError("pattern mismatch")

    monkeypatch.setattr(optimise, "_fuse", broken)
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model, model_dir)
    with caplog.at_level(logging.INFO, logger="textclf.packaging.optimise"):
        staged = stage_runtime(model_dir, "onnx-fp32", tmp_path / "staged")
    assert "graph fusion failed" in caplog.text
    assert fused_ops(staged / "model.onnx") == {}
    assert np.abs(_scores(staged) - _scores(tiny_model, "torch")).max() < 1e-4


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"model_type": "bert", "num_attention_heads": 12, "hidden_size": 384}, ("bert", 12, 384)),
        ({"model_type": "distilbert", "n_heads": 12, "dim": 768}, ("bert", 12, 768)),
        ({"model_type": "gpt2", "n_head": 12, "n_embd": 768}, None),
    ],
)
def test_fusion_shape_from_config(config: dict[str, object], expected: tuple[str, int, int] | None) -> None:
    assert fusion_shape(config) == expected
