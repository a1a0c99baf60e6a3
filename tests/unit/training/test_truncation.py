"""``model/truncation.py``: one cut for training and serving, head / tail / head+tail."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.helpers.tiny_model import make_tiny_model_dir
from textclf import config
from textclf.packaging import load_inference_module, load_model

MAX_LENGTH = 16
#: First word "ebola", last word "movie", "stocks" in between: 40 text tokens, far over 14.
LONG = " ".join(["ebola", "outbreak", *["stocks"] * 36, "box", "movie"])


@pytest.fixture(scope="module")
def inference() -> ModuleType:
    return load_inference_module()


@pytest.fixture(scope="module")
def cut(inference: ModuleType) -> ModuleType:
    # The copy inference.py loaded from its own folder: the one the archive's code/ ships.
    return inference.truncation  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from transformers import AutoTokenizer

    model_dir = make_tiny_model_dir(tmp_path_factory.mktemp("cut") / "model", max_length=MAX_LENGTH)
    return AutoTokenizer.from_pretrained(str(model_dir))


def test_the_budget_split_follows_sun_et_al(cut: ModuleType) -> None:
    # 512 tokens = [CLS] + 510 + [SEP]: the paper's head 128 + tail 382.
    assert cut.split_budget(2000, 510, "head+tail") == (128, 382)
    assert cut.split_budget(2000, 510, "head") == (510, 0)
    assert cut.split_budget(2000, 510, "tail") == (0, 510)
    for mode in cut.MODES:  # a text that fits is never cut
        assert cut.split_budget(100, 510, mode) == (100, 0)
    assert cut.split_budget(40, 14, "head+tail") == (4, 10)
    with pytest.raises(ValueError, match="unknown truncation 'middle'"):
        cut.split_budget(40, 14, "middle")


def test_each_mode_keeps_its_end_and_the_special_tokens(cut: ModuleType, tokenizer: Any) -> None:
    text_ids = tokenizer(LONG, add_special_tokens=False)["input_ids"]
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    got = {mode: cut.encode(tokenizer, [LONG], MAX_LENGTH, mode)["input_ids"][0] for mode in cut.MODES}
    for ids in got.values():
        assert len(ids) == MAX_LENGTH and ids[0] == cls and ids[-1] == sep
    assert got["head"][1:-1] == text_ids[:14]
    assert got["tail"][1:-1] == text_ids[-14:]
    assert got["head+tail"][1:-1] == text_ids[:4] + text_ids[-10:]  # the last tokens are kept
    # Every field the model takes is cut at the same positions.
    fields = cut.encode(tokenizer, [LONG, "short"], MAX_LENGTH, "head+tail")
    assert {len(fields[name][0]) for name in fields} == {MAX_LENGTH}
    assert fields["input_ids"][1] == tokenizer("short")["input_ids"]


@pytest.mark.parametrize("name", ["tiny", "minilm"])
def test_head_is_the_tokenizers_own_truncation(cut: ModuleType, tokenizer: Any, name: str) -> None:
    """``head`` keeps the tokenizer's truncation=True (today's models serve unchanged); the
    position rule explain uses gives the very same ids."""
    from transformers import AutoTokenizer

    tok = tokenizer if name == "tiny" else AutoTokenizer.from_pretrained(str(config.local_base_model()))
    texts = [LONG, "Ebola outbreak spreads in West Africa, WHO says", LONG.upper() + " ünïcødé"]
    full = tok(texts, truncation=False, return_special_tokens_mask=True, verbose=False)
    by_position = [
        [ids[i] for i in cut.kept_positions(mask, MAX_LENGTH, "head")]
        for ids, mask in zip(full["input_ids"], full["special_tokens_mask"], strict=True)
    ]
    assert by_position == cut.encode(tok, texts, MAX_LENGTH, "head")["input_ids"]
    assert by_position == tok(texts, truncation=True, max_length=MAX_LENGTH)["input_ids"]


def test_the_hyperparameter_offers_exactly_the_modes(cut: ModuleType) -> None:
    from textclf_api import hyperparameters as hp

    spec = hp.BY_NAME["truncation"]
    assert spec.choices == cut.MODES and spec.default == cut.DEFAULT


@pytest.mark.parametrize("mode", ["head", "tail", "head+tail"])
def test_training_and_serving_cut_a_long_text_identically(
    mode: str, train_module: ModuleType, inference: ModuleType, tmp_path: Path
) -> None:
    from transformers import AutoTokenizer

    model_dir = make_tiny_model_dir(tmp_path / "model", max_length=MAX_LENGTH, truncation=mode)
    texts = [LONG, "stocks fall", f"movie {LONG} ebola"]
    # Training: train.py's tokenisation of a channel frame.
    args = argparse.Namespace(max_length=MAX_LENGTH, truncation=mode)
    frame = pd.DataFrame({"text": texts, "label": ["health"] * len(texts)})
    trained_on = train_module.fine_tune.tokenised(
        frame, AutoTokenizer.from_pretrained(str(model_dir)), args, ["health"]
    ).ids
    # Serving: the ids inference.py feeds the model, recorded at its forward function.
    classifier = load_model(model_dir, "torch")
    assert classifier.truncation == mode
    served: list[list[int]] = []
    forward = classifier.forward

    def recording(batch: dict[str, np.ndarray]) -> np.ndarray:
        pairs = zip(batch["input_ids"], batch["attention_mask"], strict=True)
        served.extend(ids[mask == 1].tolist() for ids, mask in pairs)
        return forward(batch)

    classifier.forward = recording
    inference.predict_proba(classifier, texts, lexical=False)
    # Served longest first: the same rows, in another order (the three differ in every mode).
    assert sorted(served) == sorted(trained_on) and len({tuple(r) for r in served}) == len(texts)
    assert len(trained_on[0]) == MAX_LENGTH


def test_explain_shows_the_pieces_the_cut_left_out(inference: ModuleType, tmp_path: Path) -> None:
    model_dir = make_tiny_model_dir(tmp_path / "model", max_length=MAX_LENGTH, truncation="tail")
    classifier = load_model(model_dir, "torch")
    answer = inference.explain(classifier, LONG)
    seen = [t["text"] for t in answer["tokens"] if not t["truncated"]]
    cut_off = [t["text"] for t in answer["tokens"] if t["truncated"]]
    assert len(seen) == MAX_LENGTH and seen[-2:] == ["movie", "[SEP]"]  # tail: the end is kept
    assert cut_off[:2] == ["ebola", "outbreak"] and len(cut_off) == 40 - 14
    (prediction,) = inference.predict_texts(classifier, [LONG])
    assert answer["scores"] == pytest.approx(prediction["scores"])


def test_an_unknown_truncation_in_the_archive_is_refused(inference: ModuleType, tmp_path: Path) -> None:
    model_dir = make_tiny_model_dir(tmp_path / "model", max_length=MAX_LENGTH)
    meta = json.loads((model_dir / "textclf_meta.json").read_text())
    (model_dir / "textclf_meta.json").write_text(json.dumps(meta | {"truncation": "middle"}))
    with pytest.raises(ValueError, match=r"unknown truncation 'middle' in textclf_meta\.json"):
        inference.load_classifier(model_dir)
    del meta["truncation"]  # an archive from before the option: the head, as then
    (model_dir / "textclf_meta.json").write_text(json.dumps(meta))
    assert inference.load_classifier(model_dir).truncation == "head"
