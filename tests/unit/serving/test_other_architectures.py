"""The cloud default base model is DistilBERT: no token_type_ids, other module names."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.tiny_model import PROBE_HEADLINES, fit_on_keywords
from textclf.packaging import load_model, predict_texts, stage_runtime

pytestmark = pytest.mark.heavy  # real models, exports, servers or tools: not in `make unit`

PROBE_TEXTS = list(PROBE_HEADLINES.values())


@pytest.fixture(scope="module")
def tiny_distilbert(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, DistilBertConfig

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
    model = AutoModelForSequenceClassification.from_config(config)
    # Trained briefly, as the BERT fixture is: an untrained network answers nearly the same
    # near-uniform distribution for every text, which any broken export would match too.
    fit_on_keywords(model, AutoTokenizer.from_pretrained(out), config.label2id)
    model.save_pretrained(out)
    return out


def _scores(model_dir: Path, runtime: str | None = None) -> tuple[np.ndarray, list[str]]:
    predictions = predict_texts(load_model(model_dir, runtime), PROBE_TEXTS)
    return np.array([list(p["scores"].values()) for p in predictions]), [p["label"] for p in predictions]


def test_the_trained_distilbert_answers_far_from_uniform(tiny_distilbert: Path) -> None:
    """What makes the comparisons below meaningful: confident, text-dependent, right answers."""
    want, labels = _scores(tiny_distilbert, "torch")
    assert labels == list(PROBE_HEADLINES)
    assert want.max(axis=1).min() > 0.6  # every row confident
    assert np.abs(want - 1 / want.shape[1]).max() > 0.5  # a uniform answer is far off


def test_distilbert_exports_without_token_type_ids(tiny_distilbert: Path, tmp_path: Path) -> None:
    staged = stage_runtime(tiny_distilbert, "onnx-fp32", tmp_path / "staged")
    meta = json.loads((staged / "textclf_meta.json").read_text())
    assert meta["onnx"]["inputs"] == ["input_ids", "attention_mask"]
    assert load_model(staged).input_names == ("input_ids", "attention_mask")
    got, got_labels = _scores(staged)
    want, want_labels = _scores(tiny_distilbert, "torch")
    assert got_labels == want_labels
    assert np.abs(got - want).max() < 1e-4


def test_distilbert_graph_is_fused_and_int8_serves(tiny_distilbert: Path, tmp_path: Path) -> None:
    from textclf.packaging.optimise import fused_ops

    fp32 = stage_runtime(tiny_distilbert, "onnx-fp32", tmp_path / "fp32")
    assert fused_ops(fp32 / "model.onnx").get("Attention") == 1
    int8 = stage_runtime(tiny_distilbert, "onnx-int8", tmp_path / "int8")
    got, got_labels = _scores(int8)
    want, want_labels = _scores(tiny_distilbert, "torch")
    # int8 weights: close to the torch model's confident, text-dependent probabilities (a uniform
    # or input-blind answer is > 0.5 away, see above), not equal; each row a distribution.
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-9)
    assert got_labels == want_labels
    assert np.abs(got - want).max() < 0.05
    assert np.abs(got - want).max() > 0  # really the quantised graph, not the fp32 one
    quantised = {n.op_type for n in __import__("onnx").load(str(int8 / "model.onnx")).graph.node}
    assert quantised & {"DynamicQuantizeLinear", "MatMulInteger", "QAttention", "DynamicQuantizeMatMul"}
