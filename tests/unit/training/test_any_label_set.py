"""Any label set, end to end on the model side: ``labels.json`` -> train.py -> ``textclf package``
-> the endpoint's replies, for 3 and 12 labels (none of them a news topic)."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest

from tests.helpers.tiny_model import make_tiny_model_dir, probe_headlines, write_keyword_dataset

pytestmark = pytest.mark.heavy  # trains, packages and serves a (tiny) model

LABEL_SETS = {
    # Not sorted, so class-id order is visibly labels.json's and not an alphabetical one.
    3: ["positive", "neutral", "negative"],
    12: [f"kategorie-{i:02d}" for i in range(11)] + ["café"],
}


@pytest.mark.parametrize("n", sorted(LABEL_SETS))
def test_a_label_set_from_the_data_trains_packages_and_serves(
    n: int, train_module: ModuleType, tmp_path: Path
) -> None:
    from textclf.packaging import build_package
    from textclf.serving.endpoint import ServingModel

    labels = LABEL_SETS[n]
    data = write_keyword_dataset(tmp_path / "data", labels)
    # The base model only lends its encoder and vocabulary: train.py sets the head from labels.json.
    base = make_tiny_model_dir(tmp_path / "base", labels=labels)
    args = ["--train_dir", str(data / "train"), "--validation_dir", str(data / "validation")]
    args += ["--model_dir", str(tmp_path / "model"), "--base_model", str(base), "--epochs", "2"]
    args += ["--batch_size", "16", "--learning_rate", "5e-3", "--max_length", "16", "--num_threads", "1"]
    args += ["--truncation", "head+tail", "--lexical_min_df", "1", "--serving_runtime", "none"]
    assert train_module.main(args) == 0

    model_dir = tmp_path / "model"
    config = json.loads((model_dir / "config.json").read_text())
    assert [config["id2label"][str(i)] for i in range(n)] == labels
    meta = json.loads((model_dir / "textclf_meta.json").read_text())
    assert meta["labels"] == labels and meta["truncation"] == "head+tail"
    assert set(json.loads((model_dir / "metrics.json").read_text())["label_prior_offset"]) == set(labels)

    archive = build_package(model_dir, tmp_path / "model.tar.gz", runtime="torch", echo=lambda _l: None).out
    served = ServingModel.load(archive)
    assert served.model.labels == labels and served.model.truncation == "head+tail"
    probes = probe_headlines(labels)
    body = json.loads(served.render(served.predict(list(probes.values())), "application/json"))
    assert body["labels"] == labels  # the served set, in class-id order
    for prediction in body["predictions"]:
        assert prediction["label"] in labels and list(prediction["scores"]) == labels
    # Keyword headlines the model never saw: the blend with the lexical head gets them right.
    right = sum(p["label"] == gold for p, gold in zip(body["predictions"], probes, strict=True))
    assert right == n, body["predictions"]

    explained = json.loads(served.explain(served.texts(b'{"inputs": "amber", "explain": true}', ""), ""))
    assert explained["labels"] == labels and explained["label"] in labels
