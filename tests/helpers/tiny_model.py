"""A tiny text classifier in exactly the layout ``model/train.py`` writes (docs/DESIGN.md).

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
from collections.abc import Sequence
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

#: Made-up topic words for label sets other than the news preset: two per label, none a news keyword.
_TOPIC_WORDS = [
    "amber",
    "birch",
    "cobalt",
    "dune",
    "ember",
    "fjord",
    "garnet",
    "harbor",
    "indigo",
    "jasper",
    "kelp",
    "lagoon",
    "maple",
    "nectar",
    "onyx",
    "pebble",
    "quartz",
    "raven",
    "saffron",
    "tundra",
    "umber",
    "violet",
    "willow",
    "zephyr",
]
#: The most labels :func:`keyword_headlines` can make headlines for.
MAX_LABELS = len(_TOPIC_WORDS) // 2


def keyword_headlines(labels: Sequence[str] | None = None) -> dict[str, list[str]]:
    """Six training headlines per label: the news keywords for the news preset (or ``None``), else
    headlines built from two made-up words per label (label ``i`` gets words ``2i`` and ``2i+1``)."""
    if labels is None or list(labels) == list(LABELS):
        return KEYWORD_HEADLINES
    if not 2 <= len(labels) <= MAX_LABELS:
        raise ValueError(f"tiny models take 2 to {MAX_LABELS} labels, got {len(labels)}")
    out: dict[str, list[str]] = {}
    for i, label in enumerate(labels):
        a, b = _TOPIC_WORDS[2 * i], _TOPIC_WORDS[2 * i + 1]
        out[label] = [
            f"{a} report released today",
            f"new {b} figures announced",
            f"{a} and {b} in the news",
            f"experts discuss {b} again",
            f"the {a} question returns",
            f"{b} {a} update",
        ]
    return out


def probe_headlines(labels: Sequence[str] | None = None) -> dict[str, str]:
    """One held-out headline per label that a ``trained=True`` tiny model gets right."""
    if labels is None or list(labels) == list(LABELS):
        return PROBE_HEADLINES
    keywords = keyword_headlines(labels)
    return {label: f"{lines[0].split()[0]} {lines[1].split()[1]} story" for label, lines in keywords.items()}


_SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _vocab(headlines: dict[str, list[str]], probes: dict[str, str]) -> list[str]:
    """Special tokens, every keyword, and single characters (plain and ``##``) so no text is [UNK]."""
    words: set[str] = set()
    for line in [*(t for lines in headlines.values() for t in lines), *probes.values()]:
        words.update(line.split())
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    tokens = _SPECIAL + sorted(words - set(chars)) + chars + [f"##{c}" for c in chars]
    return list(dict.fromkeys(tokens))


def make_tiny_model_dir(
    path: str | Path,
    *,
    trained: bool = False,
    max_length: int = 32,
    seed: int = 0,
    labels: Sequence[str] | None = None,
    truncation: str = "head",
) -> Path:
    """Write a tiny BERT classifier to ``path`` (created) and return it.

    ``labels``: its label set in class-id order (default: the news preset's four); ``trained=True``
    fits it on :func:`keyword_headlines` of those labels. ``truncation`` is recorded in
    ``textclf_meta.json`` as train.py records it.

    Files: ``config.json`` (with ``id2label``/``label2id`` in ``labels`` order),
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
        vocab = _vocab(keyword_headlines(labels), probe_headlines(labels))
        (Path(vocab_dir) / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
        tokenizer = BertTokenizer.from_pretrained(vocab_dir, do_lower_case=True)
    tokenizer.model_max_length = max_length

    names = list(LABELS if labels is None else labels)
    id2label = dict(enumerate(names))
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

    losses = (
        fit_on_keywords(model, tokenizer, label2id, max_length, keyword_headlines(names)) if trained else []
    )

    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    hyperparameters = {"epochs": 60 if trained else 0, "learning_rate": 5e-3, "max_length": max_length}
    meta = {
        "max_length": max_length,
        "truncation": truncation,
        "base_model": "tiny-bert-from-config",
        "labels": names,
        "runtime": "torch",
        "hyperparameters": hyperparameters,
    }
    (out / "textclf_meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    metrics = {"train_loss": losses, "epochs": [], "train_time_s": 0.0, "tiny_fixture": True}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    return out


def fit_on_keywords(
    model: Any,
    tokenizer: Any,
    label2id: dict[str, int],
    max_length: int = 32,
    headlines: dict[str, list[str]] | None = None,
) -> list[float]:
    """Fit ``model`` (any sequence classifier) on keyword headlines (default: the news ones): 60
    full-batch steps, well under a second. Returns the losses; leaves the model in eval mode."""
    import torch

    headlines = KEYWORD_HEADLINES if headlines is None else headlines
    texts = [t for lines in headlines.values() for t in lines]
    labels = torch.tensor([label2id[name] for name, lines in headlines.items() for _ in lines])
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


def write_keyword_dataset(out: str | Path, labels: Sequence[str]) -> Path:
    """A processed dataset (``textclf data``'s layout: ``manifest.json``, ``labels.json`` and
    ``train``/``validation``/``test``) of :func:`keyword_headlines` for ``labels``.

    Train holds every keyword headline in two spellings, validation and test a third spelling
    each, so every split has every label and a ``trained=True`` tiny model or the lexical head
    gets most of them right. Columns: the split schema, other columns empty (generic data).
    """
    import pandas as pd

    from textclf.data import COLUMNS

    out = Path(out)
    spellings = {
        "train": (str, str.title),
        "validation": (lambda t: f"{t} today",),
        "test": (lambda t: f"latest {t}",),
    }
    names = list(labels)
    counts = dict.fromkeys(names, 0)
    start = 0
    for split, forms in spellings.items():
        rows = [
            {"text": form(line), "label": label}
            for label, lines in keyword_headlines(names).items()
            for line in lines
            for form in forms
        ]
        for row in rows:
            counts[str(row["label"])] += 1
        frame = pd.DataFrame(rows)
        frame["id"] = range(start, start + len(frame))
        frame["story"] = frame["id"].astype(str)  # each row its own group, as for generic data
        start += len(frame)
        (out / split).mkdir(parents=True, exist_ok=True)
        frame.reindex(columns=list(COLUMNS)).to_parquet(out / split / "data.parquet")
        (out / split / "labels.json").write_text(json.dumps(names), encoding="utf-8")
    (out / "labels.json").write_text(json.dumps(names), encoding="utf-8")
    manifest = {
        "labels": names,
        "label_counts": counts,
        "dataset_sha256": f"keywords-{len(names)}",
        "split_method": "stratified",
        "input": {"format": "keywords", "preset": None, "text_columns": ["text"], "label_column": "label"},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return out


def without_dropout(model_dir: Path, dest: Path) -> Path:
    """A copy of ``model_dir`` with dropout off: two trainings on the same rows in the same order
    then take the same steps, so their weights can be compared (data-parallel vs one process)."""
    import shutil

    shutil.copytree(model_dir, dest)
    config = json.loads((dest / "config.json").read_text(encoding="utf-8"))
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (dest / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return dest


def weight_distance(a_dir: Path, b_dir: Path) -> float:
    """Euclidean distance between two model folders' ``model.safetensors`` (the same tensor names)."""
    import math

    from safetensors.torch import load_file

    a, b = load_file(a_dir / "model.safetensors"), load_file(b_dir / "model.safetensors")
    assert a.keys() == b.keys(), sorted(a.keys() ^ b.keys())
    return math.sqrt(sum(float((a[k].double() - b[k].double()).pow(2).sum()) for k in a))
