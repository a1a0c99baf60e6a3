"""``textclf figures``: the figures and numbers docs/theory.md is built on, made from this data.

Every figure comes from the trained model (``<artifacts>/model``, what ``make demo`` trains) or
the processed corpus, except the first, a simulation of the variance argument for 1/sqrt(d).
"""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from textclf.bench.plots import save_figure
from textclf.errors import UserError

DPI = 110
ATTENTION_HEADLINE = "Ebola outbreak spreads in West Africa, WHO says"


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def scaling_figure(out: Path, seed: int = 0) -> dict[str, Any]:
    """Var(q . k) grows like d for unit-variance q, k; dividing by sqrt(d) keeps it at 1, and with it
    the softmax over 32 keys from collapsing onto one key."""
    rng = np.random.default_rng(seed)
    dims = [8, 16, 32, 64, 128, 256, 512]
    variance, peak_raw, peak_scaled = [], [], []
    for d in dims:
        q = rng.standard_normal((2000, d))
        k = rng.standard_normal((2000, 32, d))
        scores = np.einsum("nd,nkd->nk", q, k)
        variance.append(float(scores.var()))

        def peak(s: np.ndarray) -> float:
            e = np.exp(s - s.max(axis=1, keepdims=True))
            return float((e / e.sum(axis=1, keepdims=True)).max(axis=1).mean())

        peak_raw.append(peak(scores))
        peak_scaled.append(peak(scores / np.sqrt(d)))
    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    a.loglog(dims, variance, "o-", label="Var(q·k), measured")
    a.loglog(dims, dims, "--", label="d")
    a.set_xlabel("head dimension d")
    a.set_title("dot products of unit-variance vectors")
    a.legend()
    b.semilogx(dims, peak_raw, "o-", label="softmax(q·k)")
    b.semilogx(dims, peak_scaled, "s-", label="softmax(q·k / √d)")
    b.axvline(32, color="grey", lw=0.8)
    b.text(33, 0.5, "MiniLM: d = 384 / 12 = 32", fontsize=8)
    b.set_xlabel("head dimension d")
    b.set_ylabel("mean largest attention weight (32 keys)")
    b.legend()
    save_figure(fig, out / "theory_scaling.png", DPI)
    return {"dims": dims, "variance": variance, "peak_unscaled": peak_raw, "peak_scaled": peak_scaled}


def attention_figure(model: Any, tokenizer: Any, out: Path) -> dict[str, Any]:
    import torch

    batch = tokenizer(ATTENTION_HEADLINE, return_tensors="pt")
    with torch.inference_mode():
        result = model(**batch, output_attentions=True)
    last = result.attentions[-1][0].mean(0).numpy()  # [query, key], averaged over the heads
    tokens = tokenizer.convert_ids_to_tokens(batch["input_ids"][0])
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    image = ax.imshow(last, cmap="Blues")
    ax.set_xticks(range(len(tokens)), tokens, rotation=70, fontsize=8)
    ax.set_yticks(range(len(tokens)), tokens, fontsize=8)
    ax.set_xlabel("key")
    ax.set_ylabel("query")
    ax.set_title("last layer, mean over 12 heads (fine-tuned MiniLM)")
    fig.colorbar(image, ax=ax, fraction=0.046)
    save_figure(fig, out / "theory_attention.png", DPI)
    cls_row = {t: round(float(w), 3) for t, w in zip(tokens, last[0], strict=True)}
    return {"headline": ATTENTION_HEADLINE, "cls_attention_last_layer": cls_row}


def pooled_figure(
    model: Any, classifier: Any, texts: list[str], labels: list[str], *, encode: Any, out: Path
) -> dict[str, Any]:
    """The [CLS] vector after the pooler (what the classifier layer reads), projected on its top
    two principal components. ``classifier``: the served model (its tokenizer, label order,
    ``max_length`` and truncation); ``encode``: ``inference.encode``, the cut it is served with."""
    import torch

    from textclf.evaluation.plots import label_colours

    tokenizer = classifier.tokenizer
    vectors = []
    with torch.inference_mode():
        for start in range(0, len(texts), 64):
            batch = tokenizer.pad(encode(classifier, texts[start : start + 64]), return_tensors="pt")
            hidden = model.base_model(**batch)
            vectors.append(hidden.pooler_output.numpy())
    x = np.concatenate(vectors)
    x = x - x.mean(axis=0)
    _u, s, vt = np.linalg.svd(x, full_matrices=False)
    xy = x @ vt[:2].T
    explained = (s[:2] ** 2 / (s**2).sum()).tolist()
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 5))
    for label, colour in label_colours(classifier.labels).items():
        mask = np.array(labels) == label
        ax.scatter(xy[mask, 0], xy[mask, 1], s=4, alpha=0.5, c=colour, label=label)
    ax.set_xlabel(f"PC1 ({explained[0]:.0%} of variance)")
    ax.set_ylabel(f"PC2 ({explained[1]:.0%})")
    ax.set_title(f"pooled [CLS] vectors of {len(texts):,} test headlines")
    ax.legend(markerscale=4, fontsize=8)
    save_figure(fig, out / "theory_cls_pca.png", DPI)
    return {"rows": len(texts), "explained_variance_pc1_pc2": explained}


def wordpiece_examples(tokenizer: Any, texts: list[str], top: int = 12) -> dict[str, Any]:
    """Words of the corpus the tokenizer cuts into the most pieces, and how often words are cut."""
    words = Counter(w for t in texts for w in re.findall(r"[A-Za-z]+", t))
    split: dict[str, list[str]] = {}
    cut = 0
    for word, count in words.items():
        pieces = tokenizer.tokenize(word)
        if len(pieces) > 1:
            cut += count
            if count >= 20:
                split[word] = pieces
    longest = sorted(split.items(), key=lambda kv: (-len(kv[1]), -words[kv[0]]))[:top]
    return {
        "word_tokens": int(sum(words.values())),
        "share_of_words_cut": cut / max(1, sum(words.values())),
        "examples": [{"word": w, "pieces": p, "headlines": words[w]} for w, p in longest],
    }


def lengths_figure(lengths: np.ndarray, max_length: int, out: Path) -> dict[str, Any]:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.hist(lengths, bins=np.arange(0, lengths.max() + 2), color="#4c72b0")
    ax.axvline(max_length + 0.5, color="#d62728", label=f"max_length = {max_length}")
    ax.set_xlabel("tokens per headline, [CLS] and [SEP] included")
    ax.set_ylabel("training headlines")
    ax.legend()
    save_figure(fig, out / "theory_lengths.png", DPI)
    return {"rows": len(lengths), "covered": float(np.mean(lengths <= max_length)), "max_length": max_length}


def blend_and_calibration_figures(
    probs: np.ndarray, lexical_logits: np.ndarray, y: np.ndarray, *, head: Any, lexical: Any, out: Path
) -> dict[str, Any]:
    from textclf.evaluation.metrics import expected_calibration_error

    weights = np.round(np.linspace(0, 1, 21), 2)
    accuracy = [
        float(np.mean(lexical.blend(probs, lexical_logits, float(w), 1.0).argmax(1) == y)) for w in weights
    ]
    temps = np.round(np.arange(0.5, 3.01, 0.1), 2)
    w = head.blend_weight

    def log_loss(p: np.ndarray) -> float:
        return float(-np.mean(np.log(np.maximum(p[np.arange(len(y)), y], 1e-12))))

    losses = [log_loss(lexical.blend(probs, lexical_logits, w, float(t))) for t in temps]
    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    a.plot(weights, accuracy, "o-")
    a.axvline(w, color="grey", lw=0.8)
    a.set_xlabel("transformer weight w (1 - w: lexical head)")
    a.set_ylabel("validation accuracy")
    a.set_title("product of experts, t = 1")
    b.plot(temps, losses, "o-")
    b.axvline(head.temperature, color="grey", lw=0.8)
    b.set_xlabel("temperature t")
    b.set_ylabel("validation log loss")
    b.set_title(f"at the chosen w = {w}")
    save_figure(fig, out / "theory_blend.png", DPI)

    served = lexical.blend(probs, lexical_logits, w, head.temperature)
    curves = {"transformer alone": probs, f"served blend (w = {w}, t = {head.temperature})": served}
    if head.temperature != 1.0:
        curves["blend at t = 1"] = lexical.blend(probs, lexical_logits, w, 1.0)
    ece = {}
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], "--", color="grey", lw=0.8)
    edges = np.linspace(0, 1, 16)
    for name, p in curves.items():
        confidence, correct = p.max(1), (p.argmax(1) == y).astype(float)
        ece[name] = expected_calibration_error(confidence, correct)
        bins = np.clip(np.searchsorted(edges[1:-1], confidence), 0, 14)
        xs = [confidence[bins == k].mean() for k in range(15) if np.any(bins == k)]
        ys = [correct[bins == k].mean() for k in range(15) if np.any(bins == k)]
        ax.plot(xs, ys, "o-", ms=3, label=f"{name} (ECE {ece[name]:.3f})")
    ax.set_xlabel("confidence (top probability)")
    ax.set_ylabel("accuracy")
    ax.set_title("reliability on validation headlines")
    ax.legend(fontsize=8)
    save_figure(fig, out / "theory_calibration.png", DPI)
    return {
        "rows": len(y),
        "accuracy_by_weight": dict(zip(weights.tolist(), accuracy, strict=True)),
        "chosen_weight": w,
        "chosen_temperature": head.temperature,
        "log_loss_by_temperature": dict(zip(temps.tolist(), losses, strict=True)),
        "ece": ece,
    }


def make_figures(model_dir: Path, data: Path, out: Path, rows: int, seed: int = 0) -> dict[str, Any]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from textclf.data import read_split
    from textclf.eda import token_lengths
    from textclf.packaging import load_inference_module

    if not (model_dir / "config.json").is_file():
        raise UserError(f"no trained model in {model_dir}: run `make demo` (or `textclf train`) first")
    out.mkdir(parents=True, exist_ok=True)
    inference = load_inference_module()
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForSequenceClassification.from_pretrained(
        str(model_dir), attn_implementation="eager"
    ).eval()
    classifier = inference.load_classifier(model_dir, "torch")
    meta = json.loads((model_dir / "textclf_meta.json").read_text(encoding="utf-8"))
    train = read_split(data / "train")
    valid = read_split(data / "validation")
    valid = valid.sample(n=min(rows, len(valid)), random_state=seed)
    test = read_split(data / "test")
    test = test.sample(n=min(rows, 2000, len(test)), random_state=seed)
    report: dict[str, Any] = {"model": str(model_dir), "max_length": meta["max_length"]}
    report["scaling"] = scaling_figure(out)
    report["attention"] = attention_figure(model, tokenizer, out)
    report["pooled"] = pooled_figure(
        model, classifier, test["text"].tolist(), test["label"].tolist(), encode=inference.encode, out=out
    )
    report["wordpiece"] = wordpiece_examples(tokenizer, train["text"].astype(str).tolist())
    lengths = token_lengths(train["text"].astype(str).tolist(), model_dir)
    report["lengths"] = lengths_figure(lengths, int(meta["max_length"]), out)
    texts = valid["text"].astype(str).tolist()
    y = valid["label"].map({name: i for i, name in enumerate(classifier.labels)}).to_numpy()
    probs = inference.predict_proba(classifier, texts, lexical=False, cascade=False)
    head = classifier.lexical_head
    if head is not None:
        report["blend"] = blend_and_calibration_figures(
            probs, head.logits(texts), y, head=head, lexical=inference.lexical, out=out
        )
    curve = model_dir / "training_curve.png"  # train.py draws it from the run's own losses
    if curve.is_file():
        shutil.copyfile(curve, out / "theory_training_curve.png")
        report["training"] = json.loads((model_dir / "metrics.json").read_text(encoding="utf-8")).get(
            "evaluations"
        )
    (out / "theory.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report
