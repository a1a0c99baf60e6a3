"""A model with a lexical head: packaged with its files and code, served as the same blend."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.unit.serving.conftest import headline_rows
from textclf.evaluation.predict import load_model as load_for_evaluation
from textclf.evaluation.predict import predict_proba as evaluation_proba
from textclf.labels import LABELS
from textclf.packaging import build_package, load_inference_module, load_model

pytestmark = pytest.mark.heavy  # real models, exports, servers or tools: not in `make unit`

PROBES = ["stocks fall as earnings disappoint", "new phone unveiled", "measles outbreak", "film premiere"]


@pytest.fixture(scope="module")
def with_head(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model plus a lexical head fitted on the keyword headlines, blended half and half."""
    model_dir = tmp_path_factory.mktemp("with-head") / "model"
    shutil.copytree(tiny_model, model_dir)
    lexical = load_inference_module().lexical
    rows = pd.DataFrame(headline_rows())
    y = rows["label"].map({name: i for i, name in enumerate(LABELS)}).to_numpy()
    vectorizer, weight, bias = lexical.fit(rows["text"].tolist(), y, len(LABELS), min_df=1)
    lexical.LexicalHead(vectorizer, weight, bias, (0.5, 1.2)).save(model_dir)
    return model_dir


def test_served_probabilities_are_the_blend(tiny_model: Path, with_head: Path) -> None:
    lexical = load_inference_module().lexical
    alone = load_inference_module().predict_proba(load_model(tiny_model, "torch"), PROBES)
    head = lexical.LexicalHead.load(with_head)
    # The product of experts written out (not lexical.blend, the function under test):
    # softmax(t * (w * log p + (1 - w) * log softmax(z))) with w = 0.5, t = 1.2.
    z = head.logits(PROBES)
    log_lexical = (
        z - np.log(np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True)) - z.max(1, keepdims=True)
    )
    mixed = 1.2 * (0.5 * np.log(alone) + 0.5 * log_lexical)
    want = np.exp(mixed) / np.exp(mixed).sum(1, keepdims=True)
    got = load_inference_module().predict_proba(load_model(with_head, "torch"), PROBES)
    np.testing.assert_allclose(got, want, rtol=1e-9)
    assert not np.allclose(got, alone, atol=1e-3)  # the head really moves the probabilities
    # `textclf evaluate` scores the same blend the endpoint serves.
    np.testing.assert_allclose(evaluation_proba(load_for_evaluation(with_head), PROBES), want, atol=1e-5)


def test_archive_carries_the_head_and_its_code(
    with_head: Path, validation_split: Path, tmp_path: Path
) -> None:
    archive = build_package(
        with_head,
        tmp_path / "model.tar.gz",
        runtime="onnx-fp32",
        validation_data=validation_split,
        vendor="no",
        echo=lambda _line: None,
    ).out
    target = tmp_path / "opt-ml-model"
    with tarfile.open(archive, "r:gz") as tar:
        names = set(tar.getnames())
        tar.extractall(target, filter="data")
    assert {"lexical_vocab.txt", "lexical_head.npz", "code/lexical.py", "code/inference.py"} <= names
    # The archive's own inference.py imports the lexical.py beside it, as in the container.
    inference = load_inference_module(target / "code" / "inference.py")
    model = inference.model_fn(str(target), context=None)
    assert model.lexical_head is not None and model.lexical_head.blend_weight == 0.5
    data = inference.input_fn(json.dumps({"inputs": PROBES}).encode(), "application/json", None)
    body = inference.output_fn(inference.predict_fn(data, model, None), "application/json", None)
    served = np.array([[p["scores"][name] for name in LABELS] for p in json.loads(body)["predictions"]])
    reference = load_inference_module().predict_proba(load_model(with_head, "torch"), PROBES)
    # The archive records a cascade chosen on validation: headlines the head is sure of get the
    # head's answer, the rest the blend -- each exactly as computed without the cascade.
    assert model.cascade_threshold is not None
    lexical = model.lexical_head.probabilities(PROBES)
    covered = lexical.max(axis=1) >= model.cascade_threshold
    expected = np.where(covered[:, None], lexical, reference)
    np.testing.assert_allclose(served, expected, atol=1e-4)


def test_the_cascade_sends_only_unsure_headlines_to_the_transformer(
    with_head: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inference = load_inference_module()
    model = load_model(with_head, "torch")
    blend = inference.predict_proba(model, PROBES)
    lexical = model.lexical_head.probabilities(PROBES)
    # A threshold between the head's confidences: some headlines covered, some not.
    threshold = float(np.sort(lexical.max(axis=1))[1]) + 1e-9
    model.cascade_threshold = threshold
    rows_seen: list[int] = []
    forward = model.forward

    def counting(batch: dict[str, np.ndarray]) -> np.ndarray:
        rows_seen.append(len(batch["input_ids"]))
        return forward(batch)

    model.forward = counting
    served = inference.predict_proba(model, PROBES)
    covered = lexical.max(axis=1) >= threshold
    assert 0 < covered.sum() < len(PROBES)
    assert sum(rows_seen) == (~covered).sum()  # the transformer saw only the unsure ones
    np.testing.assert_allclose(served[covered], lexical[covered], rtol=1e-12)
    # Up to float rounding: the unsure rows are padded in batches of their own.
    np.testing.assert_allclose(served[~covered], blend[~covered], atol=1e-6)
    # The gate and the evaluation can ask for the cascade-free answer.
    np.testing.assert_allclose(inference.predict_proba(model, PROBES, cascade=False), blend, rtol=1e-9)


def test_textclf_cascade_off_switches_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    inference = load_inference_module()
    meta = {"cascade": {"threshold": 0.9}}
    assert inference.cascade_threshold(meta) == 0.9
    assert inference.cascade_threshold({"cascade": None}) is None
    monkeypatch.setenv("TEXTCLF_CASCADE", "off")
    assert inference.cascade_threshold(meta) is None
