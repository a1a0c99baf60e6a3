"""``inference.py``'s explain request: tokens, occlusion attributions, lexical n-grams (tiny model)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

from tests.unit.serving.conftest import headline_rows
from textclf.labels import LABELS
from textclf.packaging import load_inference_module, load_model

pytestmark = pytest.mark.heavy  # a real (tiny) model

EXPLAIN = "application/json"


@pytest.fixture(scope="module")
def inference() -> ModuleType:
    return load_inference_module()


@pytest.fixture(scope="module")
def with_head(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory, inference: ModuleType) -> Path:
    model_dir = tmp_path_factory.mktemp("explain") / "model"
    shutil.copytree(tiny_model, model_dir)
    rows = pd.DataFrame(headline_rows())
    y = rows["label"].map({name: i for i, name in enumerate(LABELS)}).to_numpy()
    vectorizer, weight, bias = inference.lexical.fit(rows["text"].tolist(), y, len(LABELS), min_df=1)
    inference.lexical.LexicalHead(vectorizer, weight, bias, (0.5, 1.2)).save(model_dir)
    return model_dir


def explained(inference: ModuleType, model: object, text: str) -> dict[str, object]:
    data = inference.input_fn(json.dumps({"inputs": text, "explain": True}), EXPLAIN)
    assert isinstance(data, list) and data == [text]  # still the list of texts the contract names
    result: dict[str, object] = inference.predict_fn(data, model)
    return json.loads(inference.output_fn(result, EXPLAIN))


def test_explanation_is_the_prediction_plus_what_it_rests_on(inference: ModuleType, with_head: Path) -> None:
    model = load_model(with_head, "torch")
    text = "measles outbreak spreads"
    answer = explained(inference, model, text)
    (served,) = inference.predict_texts(model, [text])
    assert answer["label"] == served["label"] and answer["scores"] == pytest.approx(served["scores"])
    assert answer["model_version"] == model.model_version
    tokens, attributions = answer["tokens"], answer["attributions"]
    assert isinstance(tokens, list) and isinstance(attributions, list)
    assert len(tokens) == len(attributions)
    assert tokens[0] == {"text": "[CLS]", "special": True, "truncated": False}
    assert tokens[-1]["text"] == "[SEP]" and tokens[-1]["special"]
    assert [t["text"] for t in tokens[1:-1]] == model.tokenizer.tokenize(text)
    assert attributions[0] == attributions[-1] == 0.0
    assert any(a != 0.0 for a in attributions[1:-1])
    lexical = answer["lexical"]
    assert isinstance(lexical, dict) and lexical["toward"]
    assert {e["ngram"] for e in lexical["toward"]} <= {
        "measles",
        "outbreak",
        "spreads",
        "measles outbreak",
        "outbreak spreads",
    }
    weights = [e["weight"] for e in lexical["toward"]]
    assert weights == sorted(weights, reverse=True) and all(w > 0 for w in weights)
    assert all(e["weight"] < 0 for e in lexical["against"])


def test_an_attribution_is_the_log_odds_drop_without_that_token(
    inference: ModuleType, tiny_model: Path
) -> None:
    model = load_model(tiny_model, "torch")
    text = "stocks fall as earnings disappoint"
    answer = explained(inference, model, text)
    label = LABELS.index(answer["label"])
    ids = model.tokenizer(text)["input_ids"]

    def log_odds(row: list[int]) -> float:
        z = model.forward(
            {
                "input_ids": np.array([row]),
                "attention_mask": np.ones((1, len(row)), dtype=np.int64),
                "token_type_ids": np.zeros((1, len(row)), dtype=np.int64),
            }
        )[0].astype(np.float64)
        others = np.delete(z, label)
        return float(z[label] - np.log(np.exp(others).sum()))

    for i in (1, 3):
        without = ids[:i] + ids[i + 1 :]
        assert answer["attributions"][i] == pytest.approx(log_odds(ids) - log_odds(without), abs=1e-4)
    assert answer["lexical"] is None  # no head in this model
    assert answer["answered_by"] == "transformer"


def test_pieces_past_max_length_are_shown_as_cut(inference: ModuleType, tiny_model: Path) -> None:
    model = load_model(tiny_model, "torch")
    text = " ".join(["stocks"] * (model.max_length + 5))
    answer = explained(inference, model, text)
    cut = [t for t in answer["tokens"] if t["truncated"]]
    seen = [t for t in answer["tokens"] if not t["truncated"]]
    assert len(seen) == model.max_length and len(cut) == 7  # the 5 extra plus the 2 special slots
    assert all(
        a == 0.0 for t, a in zip(answer["tokens"], answer["attributions"], strict=True) if t["truncated"]
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"inputs": ["a", "b"], "explain": True}, "'explain' takes one headline"),
        ({"inputs": "a", "explain": "yes"}, "'explain' must be true or false"),
        ({"inputs": "  ", "explain": True}, "inputs is blank"),
        ({"inputs": "a", "explain": True, "x": 1}, "unknown field(s) 'x'"),
    ],
)
def test_bad_explain_requests_name_the_problem(
    inference: ModuleType, body: dict[str, object], message: str
) -> None:
    with pytest.raises(inference.PayloadError) as err:
        inference.input_fn(json.dumps(body), EXPLAIN)
    assert message in str(err.value)


def test_without_explain_it_is_a_prediction(inference: ModuleType, tiny_model: Path) -> None:
    model = load_model(tiny_model, "torch")
    data = inference.input_fn(json.dumps({"inputs": "film premiere", "explain": False}), EXPLAIN)
    assert not isinstance(data, inference.ExplainInputs)
    assert set(inference.predict_fn(data, model)) == {"predictions", "labels", "model_version"}


def test_textclf_explain_prints_the_explanation(
    with_head: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from textclf.cli import main
    from textclf.packaging import build_package

    archive = build_package(with_head, tmp_path / "model.tar.gz", runtime="torch", echo=lambda _l: None).out
    assert main(["explain", "measles outbreak spreads", "--model", str(archive), "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["label"] in LABELS and len(answer["tokens"]) == len(answer["attributions"])
    assert main(["explain", "measles outbreak spreads", "--model", str(archive), "--no-color"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith(answer["label"])
    assert "[CLS]" in out and "measles(" in out and "n-grams toward:" in out
    assert "\033[" not in out  # --no-color (and a pipe) print plain text
    assert main(["explain", "   ", "--model", str(archive)]) == 2
    assert "blank" in capsys.readouterr().err
