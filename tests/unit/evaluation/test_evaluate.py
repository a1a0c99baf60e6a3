"""``textclf evaluate``: model vs baseline report on processed splits and raw corpus files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.helpers.tiny_model import PROBE_HEADLINES
from textclf.cli import main
from textclf.data.samples import real_sample_lines, write_raw_corpus
from textclf.errors import UserError
from textclf.evaluation.predict import load_model, predict_proba
from textclf.evaluation.report import EvalSettings, evaluate, format_table

pytestmark = pytest.mark.heavy  # real models, exports, servers or tools: not in `make unit`


def test_batched_length_sorted_predictions_come_back_in_input_order(tiny_model: Path) -> None:
    loaded = load_model(tiny_model)
    texts = [
        *PROBE_HEADLINES.values(),
        "a",
        "a much longer headline about markets and movies and phones today",
    ]
    batched = predict_proba(loaded, texts, batch_size=3)
    one_by_one = np.vstack([predict_proba(loaded, [t], batch_size=1) for t in texts])
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)
    # The trained fixture knows its probe headlines: labels map through config id2label.
    predicted = [loaded.labels[i] for i in batched[: len(PROBE_HEADLINES)].argmax(axis=1)]
    assert predicted == list(PROBE_HEADLINES)


def test_evaluate_split_with_baseline(tiny_model: Path, tiny_data: Path, tmp_path: Path) -> None:
    settings = EvalSettings(
        model_dir=tiny_model,
        data=tiny_data / "test",
        out=tmp_path / "eval",
        train_data=tiny_data / "train",
        latency_samples=5,
    )
    report = evaluate(settings)
    assert report["reused"] is False
    saved = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert (tmp_path / "eval" / "confusion_matrix.png").stat().st_size > 5000
    test = pd.read_parquet(tiny_data / "test" / "data.parquet")
    assert saved["rows"] == len(test)
    assert saved["labels"] == ["business", "science_and_technology", "entertainment", "health"]
    for side in ("model", "baseline"):
        part = saved[side]
        assert set(part["per_class"]) == set(saved["labels"])
        assert 0.0 <= part["accuracy"] <= 1.0
        assert 0.0 <= part["ece"] <= 1.0
        assert part["throughput"]["headlines_per_s"] > 0
        assert part["throughput"]["latency_ms_single"]["n"] == 5
        assert sum(map(sum, part["confusion_matrix"])) == len(test)
    # The model's accuracy is what its own predictions give.
    loaded = load_model(tiny_model)
    probs = predict_proba(loaded, test["text"].tolist())
    y = test["label"].map({n: i for i, n in enumerate(loaded.labels)}).to_numpy()
    assert saved["model"]["accuracy"] == pytest.approx(float(np.mean(probs.argmax(1) == y)))
    assert saved["baseline"]["train_rows"] == len(pd.read_parquet(tiny_data / "train" / "data.parquet"))

    best = max(saved["model"]["accuracy"], saved["baseline"]["accuracy"])
    assert best <= saved["either_correct"] <= 1.0
    assert set(saved["story_vote_accuracy"]) == {"model", "baseline", "anchor"}

    # The anchor: TF-IDF word 1-2 grams, sublinear tf, LinearSVC C=0.5 on every training row.
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.svm import LinearSVC

    train = pd.read_parquet(tiny_data / "train" / "data.parquet")
    features = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    svm = LinearSVC(C=0.5).fit(
        features.fit_transform(train["text"]),
        train["label"].map(dict(zip(loaded.labels, range(4), strict=True))),
    )
    anchor_right = svm.predict(features.transform(test["text"])) == y
    anchor = saved["anchor"]
    assert anchor["accuracy"] == pytest.approx(float(np.mean(anchor_right)))
    assert anchor["ece"] is None and anchor["train_rows"] == len(train)  # margins, no probabilities
    assert set(anchor["per_class"]) == set(saved["labels"])
    # Paired with the served model on the same rows: counts, difference and McNemar's p.
    model_right = probs.argmax(1) == y
    paired = anchor["paired_with_model"]
    assert paired["only_model_right"] == int(np.sum(model_right & ~anchor_right))
    assert paired["only_other_right"] == int(np.sum(anchor_right & ~model_right))
    assert paired["accuracy_difference"] == pytest.approx(saved["model"]["accuracy"] - anchor["accuracy"])
    assert 0.0 < paired["mcnemar_p"] <= 1.0
    assert saved["baseline"]["paired_with_model"]["accuracy_difference"] == pytest.approx(
        saved["model"]["accuracy"] - saved["baseline"]["accuracy"]
    )
    table = format_table(report)
    assert table.splitlines()[0].split() == ["model", "baseline", "anchor"]
    ece_row = next(line for line in table.splitlines() if line.startswith("ECE"))
    assert ece_row.split()[-1] == "n/a"
    assert "model - anchor:" in table and "McNemar p =" in table and "linear SVM (C=0.5)" in table
    assert "majority prediction" in table and "right by the model or the baseline" in table
    for label in saved["labels"]:
        assert f"{label} F1" in table

    # Same inputs: the report is reused; --force recomputes it.
    assert evaluate(settings)["reused"] is True
    assert evaluate(settings, force=True)["reused"] is False


def test_evaluate_raw_corpus_file_via_cli(
    tiny_model: Path,
    shared_zip: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEXTCLF_ARTIFACTS", str(tmp_path / "artifacts"))  # default --out lives here
    lines = real_sample_lines(shared_zip, 60, 3, 4)
    raw = write_raw_corpus(tmp_path / "sample.zip", [*lines, "not\ta\tvalid\tline"])
    code = main(["evaluate", "--model", str(tiny_model), "--data", str(raw), "--no-baseline"])
    assert code == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "accuracy" in out and "baseline" not in out.splitlines()[0]
    report = json.loads((tmp_path / "artifacts" / "eval" / "evaluation.json").read_text())
    assert report["rows"] == len(lines)  # the malformed line was skipped, not scored
    assert "baseline" not in report


def test_unknown_label_is_a_user_error(tiny_model: Path, tiny_data: Path, tmp_path: Path) -> None:
    frame = pd.read_parquet(tiny_data / "test" / "data.parquet")
    frame.loc[0, "label"] = "sports"
    bad = tmp_path / "bad.parquet"
    frame.to_parquet(bad)
    with pytest.raises(UserError, match="sports"):
        evaluate(EvalSettings(model_dir=tiny_model, data=bad, out=tmp_path / "eval", train_data=None))


def test_cli_reports_missing_model(
    tmp_path: Path, tiny_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["evaluate", "--model", str(tmp_path / "none"), "--data", str(tiny_data / "test"), "--no-baseline"]
    )
    assert code == 2
    assert "none does not exist" in capsys.readouterr().err


def test_cli_names_what_a_bare_model_folder_lacks(
    tiny_model: Path, tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Hugging Face folder without textclf's metadata (max_length) is refused by name."""
    import shutil

    bare = tmp_path / "bare"
    shutil.copytree(tiny_model, bare)
    (bare / "textclf_meta.json").unlink()
    code = main(["evaluate", "--model", str(bare), "--data", str(tiny_data / "test"), "--no-baseline"])
    assert code == 2
    err = capsys.readouterr().err
    assert "not a textclf model directory (missing textclf_meta.json)" in err


def test_evaluate_reports_the_blend_and_the_transformer_alone(
    tiny_model: Path, tiny_data: Path, tmp_path: Path
) -> None:
    """A model with a lexical head: the served blend is "model", the transformer an ablation."""
    import shutil

    from textclf.packaging import load_inference_module

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model, model_dir)
    lexical = load_inference_module().lexical
    train = pd.read_parquet(tiny_data / "train" / "data.parquet")
    labels = load_model(tiny_model).labels
    y_train = train["label"].map({n: i for i, n in enumerate(labels)}).to_numpy()
    vectorizer, weight, bias = lexical.fit(train["text"].tolist(), y_train, len(labels))
    lexical.LexicalHead(vectorizer, weight, bias, (0.3, 1.0)).save(model_dir)

    settings = EvalSettings(
        model_dir=model_dir,
        data=tiny_data / "test",
        out=tmp_path / "eval",
        train_data=None,
        latency_samples=3,
    )
    report = evaluate(settings)
    test = pd.read_parquet(tiny_data / "test" / "data.parquet")
    y = test["label"].map({n: i for i, n in enumerate(labels)}).to_numpy()
    alone = predict_proba(load_model(tiny_model), test["text"].tolist())
    blended = predict_proba(load_model(model_dir), test["text"].tolist())
    assert report["transformer_only"]["accuracy"] == pytest.approx(float(np.mean(alone.argmax(1) == y)))
    assert report["model"]["accuracy"] == pytest.approx(float(np.mean(blended.argmax(1) == y)))
    assert not np.allclose(alone, blended, atol=1e-3)  # the head is really applied
    assert report["model"]["ece"] != report["transformer_only"]["ece"]
    assert "transformer" in format_table(report).splitlines()[0]
    # Changing the head changes the fingerprint: the report is not reused.
    lexical.LexicalHead(vectorizer, weight, bias, (0.9, 1.0)).save(model_dir)
    assert evaluate(settings)["reused"] is False


def test_story_vote_accuracy_gives_each_story_its_majority() -> None:
    from textclf.evaluation.report import story_vote_accuracy

    stories = np.array(["a", "a", "a", "b", "b", "c"])
    predicted = np.array([1, 1, 0, 2, 3, 0])
    truth = np.array([1, 1, 1, 3, 3, 0])
    # a -> 1 (3/3 right), b -> tie 2/3 -> lowest id 2 (0/2 right), c -> 0 (1/1 right)
    assert story_vote_accuracy(stories, predicted, truth) == pytest.approx(4 / 6)


@pytest.mark.parametrize("labels", [["no", "yes"], [f"topic {i}" for i in range(12)]], ids=["binary", "12"])
def test_evaluate_any_label_set(labels: list[str], tmp_path: Path) -> None:
    """Labels from the model's id2label and the data; a binary anchor answers one margin per row."""
    from tests.helpers.tiny_model import make_tiny_model_dir, write_keyword_dataset

    model_dir = make_tiny_model_dir(tmp_path / "model", trained=True, labels=labels)
    data = write_keyword_dataset(tmp_path / "data", labels)
    settings = EvalSettings(
        model_dir=model_dir,
        data=data / "test",
        out=tmp_path / "eval",
        train_data=data / "train",
        latency_samples=3,
    )
    report = evaluate(settings)
    assert report["labels"] == labels
    for side in ("model", "baseline", "anchor"):
        assert list(report[side]["per_class"]) == labels
        assert np.array(report[side]["confusion_matrix"]).shape == (len(labels), len(labels))
    # Keyword texts: the linear models get them; the one-layer tiny transformer beats chance well.
    assert report["baseline"]["accuracy"] >= 0.9 and report["anchor"]["accuracy"] >= 0.9
    assert report["model"]["accuracy"] > 1.5 / len(labels)
    assert "story_vote_accuracy" not in report  # every row its own group: no story to vote in
    assert (tmp_path / "eval" / "confusion_matrix.png").stat().st_size > 5000
    assert all(f"{label} F1" in format_table(report) for label in labels)
