"""A tiny headline classifier in exactly the layout ``model/train.py`` writes (docs/DESIGN.md).

Built from a config (BERT, hidden size 32, one layer) with a small WordPiece vocabulary that
this module writes itself, so tests need no download and no bundled weights. The tokenizer is
created with ``from_pretrained(dir)``: transformers 5 silently ignores ``vocab_file=``.

``trained=True`` fits the model for a few hundred milliseconds on keyword headlines so that
obvious inputs ("stocks fall as earnings disappoint") get the obvious label — enough for tests
that check predictions end to end; ``trained=False`` leaves random weights (fastest).
"""

from __future__ import annotations

import json
import string
import tempfile
from pathlib import Path
from typing import Any

from textclf.labels import LABELS

#: Keyword headlines per label: used for the vocabulary and for ``trained=True``.
KEYWORD_HEADLINES: dict[str, list[str]] = {
    "business": [
        "stocks fall as earnings disappoint investors",
        "bank shares rise after profit report",
        "oil prices climb on market fears",
        "fed holds interest rates steady",
        "dollar gains as stocks rally",
        "company profit beats wall street forecast",
    ],
    "science_and_technology": [
        "apple unveils new iphone software",
        "google launches android update",
        "microsoft releases windows patch",
        "nasa telescope spots distant galaxy",
        "facebook buys app maker",
        "samsung galaxy phone review",
    ],
    "entertainment": [
        "kardashian wedding photos revealed",
        "new movie tops box office",
        "singer announces world tour album",
        "star wars film cast announced",
        "actress wins award at festival",
        "tv show finale draws fans",
    ],
    "health": [
        "ebola outbreak spreads in africa",
        "new study links sugar to cancer",
        "flu vaccine cuts hospital visits",
        "doctors warn of measles cases",
        "fda approves drug for patients",
        "obesity raises heart disease risk",
    ],
}

#: Headlines the trained fixture is expected to classify correctly (held out of training).
PROBE_HEADLINES: dict[str, str] = {
    "business": "stocks rally as profit rises",
    "science_and_technology": "apple iphone software update",
    "entertainment": "movie star wedding photos",
    "health": "ebola vaccine study patients",
}

_SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _vocab() -> list[str]:
    """Special tokens, every keyword, and single characters (plain and ``##``) so no text is [UNK]."""
    words: set[str] = set()
    for lines in KEYWORD_HEADLINES.values():
        for line in lines:
            words.update(line.split())
    for line in PROBE_HEADLINES.values():
        words.update(line.split())
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    tokens = _SPECIAL + sorted(words - set(chars)) + chars + [f"##{c}" for c in chars]
    return list(dict.fromkeys(tokens))


def make_tiny_model_dir(
    path: str | Path, *, trained: bool = False, max_length: int = 32, seed: int = 0
) -> Path:
    """Write a tiny 4-label BERT classifier to ``path`` (created) and return it.

    Files: ``config.json`` (with ``id2label``/``label2id`` in ``textclf.labels`` order),
    ``model.safetensors``, tokenizer files, ``textclf_meta.json`` and ``metrics.json`` — the
    model-directory contract of docs/DESIGN.md (``training_curve.png`` is omitted: nothing
    reads it and matplotlib would slow every test that uses this fixture).
    """
    import torch
    from transformers import AutoModelForSequenceClassification, BertConfig, BertTokenizer

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)

    with tempfile.TemporaryDirectory() as vocab_dir:
        (Path(vocab_dir) / "vocab.txt").write_text("\n".join(_vocab()) + "\n", encoding="utf-8")
        tokenizer = BertTokenizer.from_pretrained(vocab_dir, do_lower_case=True)
    tokenizer.model_max_length = max_length

    id2label = dict(enumerate(LABELS))
    label2id = {name: i for i, name in id2label.items()}
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=max(64, max_length),
        id2label=id2label,
        label2id=label2id,
    )
    model = AutoModelForSequenceClassification.from_config(config)

    losses = fit_on_keywords(model, tokenizer, label2id, max_length) if trained else []

    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    hyperparameters = {"epochs": 60 if trained else 0, "learning_rate": 5e-3, "max_length": max_length}
    meta = {
        "max_length": max_length,
        "base_model": "tiny-bert-from-config",
        "labels": list(LABELS),
        "runtime": "torch",
        "hyperparameters": hyperparameters,
    }
    (out / "textclf_meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    metrics = {"train_loss": losses, "epochs": [], "train_time_s": 0.0, "tiny_fixture": True}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    return out


def fit_on_keywords(
    model: Any, tokenizer: Any, label2id: dict[str, int], max_length: int = 32
) -> list[float]:
    """Fit ``model`` (any sequence classifier) on the keyword headlines: 60 full-batch steps, well
    under a second. Returns the losses; leaves the model in eval mode."""
    import torch

    texts = [t for lines in KEYWORD_HEADLINES.values() for t in lines]
    labels = torch.tensor([label2id[name] for name, lines in KEYWORD_HEADLINES.items() for _ in lines])
    batch = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3)
    model.train()
    losses: list[float] = []
    # One thread: for a model this small, multi-threaded kernels cost ~50x more in
    # synchronisation than they save, worse still when other tests share the cores.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(60):
            optimizer.zero_grad()
            loss = model(**batch, labels=labels).loss
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    finally:
        torch.set_num_threads(threads)
    model.eval()
    return losses
