"""The cloud default base model is DistilBERT: no token_type_ids, other module names."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from textclf.packaging import load_model, predict_texts, stage_runtime

pytestmark = pytest.mark.heavy  # real models, exports, servers or tools: not in `make unit`


@pytest.fixture(scope="module")
def tiny_distilbert(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from transformers import AutoModelForSequenceClassification, DistilBertConfig

    out = tmp_path_factory.mktemp("distilbert") / "model"
    out.mkdir()
    # Reuse the tiny model's tokenizer and metadata; only the network differs.
    for name in ("tokenizer.json", "tokenizer_config.json", "textclf_meta.json"):
        shutil.copy2(tiny_model / name, out / name)
    labels = json.loads((tiny_model / "config.json").read_text())["id2label"]
    torch.manual_seed(0)
    config = DistilBertConfig(
        vocab_size=json.loads((tiny_model / "config.json").read_text())["vocab_size"],
        dim=32,
        n_layers=1,
        n_heads=2,
        hidden_dim=64,
        max_position_embeddings=64,
        id2label={int(k): v for k, v in labels.items()},
        label2id={v: int(k) for k, v in labels.items()},
    )
    AutoModelForSequenceClassification.from_config(config).save_pretrained(out)
    return out


def test_distilbert_exports_without_token_type_ids(tiny_distilbert: Path, tmp_path: Path) -> None:
    staged = stage_runtime(tiny_distilbert, "onnx-fp32", tmp_path / "staged")
    meta = json.loads((staged / "textclf_meta.json").read_text())
    assert meta["onnx"]["inputs"] == ["input_ids", "attention_mask"]
    onnx_model = load_model(staged)
    assert onnx_model.input_names == ("input_ids", "attention_mask")
    texts = ["stocks fall as earnings disappoint investors", "ebola", "new movie tops box office today"]
    got = np.array([list(p["scores"].values()) for p in predict_texts(onnx_model, texts)])
    want = np.array(
        [list(p["scores"].values()) for p in predict_texts(load_model(tiny_distilbert, "torch"), texts)]
    )
    assert np.abs(got - want).max() < 1e-4


def test_distilbert_graph_is_fused_and_int8_serves(tiny_distilbert: Path, tmp_path: Path) -> None:
    from textclf.packaging.optimise import fused_ops

    fp32 = stage_runtime(tiny_distilbert, "onnx-fp32", tmp_path / "fp32")
    assert fused_ops(fp32 / "model.onnx").get("Attention") == 1
    int8 = stage_runtime(tiny_distilbert, "onnx-int8", tmp_path / "int8")
    texts = ["ebola", "stocks fall", "new movie tops box office today"]
    got = np.array([list(p["scores"].values()) for p in predict_texts(load_model(int8), texts)])
    want = np.array(
        [list(p["scores"].values()) for p in predict_texts(load_model(tiny_distilbert, "torch"), texts)]
    )
    # int8 weights: close to the torch model's probabilities, not equal; each row a distribution.
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-9)
    assert np.abs(got - want).max() < 0.05
    quantised = {n.op_type for n in __import__("onnx").load(str(int8 / "model.onnx")).graph.node}
    assert quantised & {"DynamicQuantizeLinear", "MatMulInteger", "QAttention", "DynamicQuantizeMatMul"}
