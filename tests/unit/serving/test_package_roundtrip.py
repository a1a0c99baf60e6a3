"""package -> untar -> model_fn/input_fn/predict_fn/output_fn, for every runtime."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from textclf_api.logic.predict import read_reply
from textclf_api.schemas import PredictResponse

from tests.helpers.tiny_model import KEYWORD_HEADLINES, PROBE_HEADLINES
from tests.unit.serving.conftest import RUNTIMES
from textclf.labels import LABELS
from textclf.packaging import load_inference_module, load_model, read_archive_meta

pytestmark = pytest.mark.heavy  # real models, exports, servers or tools: not in `make unit`

# Mixed lengths, repeated items and a text far past max_length (32 tokens): order must survive
# the length sort, and truncation must be explicit rather than an error.
TEXTS = [
    PROBE_HEADLINES["health"],
    "stocks fall as earnings disappoint investors " * 12,
    PROBE_HEADLINES["business"],
    "apple",
    PROBE_HEADLINES["entertainment"],
    PROBE_HEADLINES["science_and_technology"],
    PROBE_HEADLINES["health"],
]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_archive_layout(runtime: str, packages: dict[str, Path]) -> None:
    with tarfile.open(packages[runtime], "r:gz") as tar:
        names = tar.getnames()
        requirements = tar.extractfile("code/requirements.txt").read().decode()  # type: ignore[union-attr]
    assert names[0] == "textclf_meta.json"
    assert {"config.json", "tokenizer.json", "code/inference.py", "code/requirements.txt"} <= set(names)
    assert all("/" not in n for n in names if not n.startswith("code/")), "model files sit at the root"
    if runtime == "torch":
        assert "model.safetensors" in names and "model.onnx" not in names
        assert not [line for line in requirements.splitlines() if line and not line.startswith("#")]
    else:
        assert "model.onnx" in names and "model.safetensors" not in names
        assert "onnxruntime==" in requirements
    meta = read_archive_meta(packages[runtime])
    assert meta is not None and meta["runtime"] == runtime
    assert meta["labels"] == list(LABELS) and meta["max_length"] == 32
    if runtime == "torch":
        assert meta["fidelity"] is None
    else:
        fid = meta["fidelity"]
        assert fid["passed"] and fid["rows"] == 72 and fid["candidate_runtime"] == runtime
        assert fid["passed"] and fid["accuracy_drop"] <= fid["max_accuracy_drop"]
    assert meta["packaging"]["vendored_wheels"] == []


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_handlers_round_trip(runtime: str, unpacked: dict[str, Path], tiny_model: Path) -> None:
    model_dir = unpacked[runtime]
    # The archive's own copy of inference.py, as the container imports it.
    inference = load_inference_module(model_dir / "code" / "inference.py")
    model = inference.model_fn(str(model_dir), context=None)
    assert model.runtime == runtime

    data = inference.input_fn(json.dumps({"inputs": TEXTS}).encode(), "application/json", None)
    body = inference.output_fn(inference.predict_fn(data, model, None), "application/json", None)
    predictions = json.loads(body)["predictions"]
    # The served label set in class-id order (config.json's id2label): what the API checks against.
    assert json.loads(body)["labels"] == list(LABELS)

    # The API's 200 body once the Lambda names each prediction (strict pydantic model, extra
    # fields forbidden), as the Lambda reads it: checked against the label set the reply reports.
    assert read_reply(body.encode("utf-8"), PredictResponse, "0" * 32).labels == list(LABELS)
    assert len(predictions) == len(TEXTS)
    for pred in predictions:
        assert list(pred) == ["label", "score", "scores"]
        assert list(pred["scores"]) == list(LABELS)
        assert pred["score"] == max(pred["scores"].values()) == pred["scores"][pred["label"]]
        assert sum(pred["scores"].values()) == pytest.approx(1.0, abs=1e-9)
    # In input order: each probe headline gets its own label, duplicates get equal answers.
    for text, pred in zip(TEXTS, predictions, strict=True):
        for label, probe in PROBE_HEADLINES.items():
            if text == probe:
                assert pred["label"] == label, text
    # Equal up to float rounding: the two copies may sit in forward passes of other padded widths
    # (seen at 1e-10 on an AMD EPYC with torch).
    assert predictions[0]["label"] == predictions[6]["label"]
    for label in LABELS:
        assert predictions[0]["scores"][label] == pytest.approx(predictions[6]["scores"][label], abs=1e-7)

    # A single string gives one prediction, equal to the same text inside a batch. Not exactly
    # for int8: dynamic quantisation scales activations per batch, so batch-mates shift the
    # scores a little (never the label here).
    single = inference.predict_fn(
        inference.input_fn(json.dumps({"inputs": TEXTS[2]}), "application/json"), model
    )
    assert single["predictions"][0]["label"] == predictions[2]["label"]
    same_text_tolerance = 0.01 if runtime == "onnx-int8" else 1e-5
    assert single["predictions"][0]["score"] == pytest.approx(
        predictions[2]["score"], abs=same_text_tolerance
    )

    # Same answers as the torch model the archive was built from.
    reference = load_model(tiny_model, "torch")
    want = np.array(
        [[p["scores"][label] for label in LABELS] for p in inference.predict_texts(reference, TEXTS)]
    )
    got = np.array([[p["scores"][label] for label in LABELS] for p in predictions])
    assert (got.argmax(axis=1) == want.argmax(axis=1)).all()
    tolerance = {"torch": 1e-6, "onnx-fp32": 1e-4, "onnx-int8": 0.05}[runtime]
    assert np.abs(got - want).max() <= tolerance


def test_batches_are_sorted_by_length_and_results_restored(unpacked: dict[str, Path]) -> None:
    """Many texts across several internal batches: every result must belong to its own input."""
    # fp32: results independent of batch-mates up to rounding, so a mix-up cannot hide in a tolerance.
    inference = load_inference_module(unpacked["onnx-fp32"] / "code" / "inference.py")
    model = inference.model_fn(str(unpacked["onnx-fp32"]))
    model.batch_size = 4  # force several batches over the 24 texts
    texts = [t for lines in KEYWORD_HEADLINES.values() for t in lines]
    texts = [t if i % 3 else f"{t} and then some more words" for i, t in enumerate(texts)]
    seen: list[int] = []
    forward = model.forward

    def spying_forward(batch: dict[str, np.ndarray]) -> np.ndarray:
        seen.append(batch["input_ids"].shape[1])
        return forward(batch)

    model.forward = spying_forward
    batched = inference.predict_texts(model, texts)
    one_by_one = [inference.predict_texts(model, [t])[0] for t in texts]
    assert [p["label"] for p in batched] == [p["label"] for p in one_by_one]
    for a, b in zip(batched, one_by_one, strict=True):
        assert a["scores"] == pytest.approx(b["scores"], abs=1e-5)
    # Longest first, non-increasing widths: padding stays small.
    assert seen[:6] == sorted(seen[:6], reverse=True) and len(seen) == 6 + len(texts)
