"""Exploratory analysis of the processed splits and the ``max_length`` choice for training.

Outputs (``textclf eda``): ``class_balance.png``, ``token_lengths.png``,
``headlines_per_story.png`` (grouped splits only: STORY or ``--group-column``), ``report.md`` and
``eda.json``. ``eda.json["max_length"]`` is what training reads: the smallest token length
covering ``coverage`` of the TRAINING texts (special tokens included), rounded up to a multiple
of ``round_to``, and capped at the tokenizer's limit and at :data:`CPU_MAX_LENGTH` (the report
then says what the uncapped length would cover and cost). It is chosen on train only so the test
split stays unseen; its coverage on every split is reported beside it. The label set and its
order are the dataset's (``labels.json``), whatever the data.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from textclf.data.read import read_split
from textclf.data.split import SPLITS
from textclf.errors import UserError

log = logging.getLogger(__name__)

FORMAT_VERSION = 2
GROUP_PLOT = "headlines_per_story.png"
PLOTS = ("class_balance.png", "token_lengths.png", GROUP_PLOT)
OUTPUTS = (*PLOTS, "report.md", "eda.json")
#: The longest max_length the EDA suggests, for training on a CPU. A row's cost grows faster than
#: its length: per layer ~24 d^2 FLOPs per token in the dense layers and ~4 L d in attention
#: (:func:`relative_cost`). On the 2-core machine a MiniLM training step measured 2.0x (256 tokens)
#: and 4.6x (512) the per-row time of 128, as that count predicts; 256 keeps long documents
#: within a CPU run's budget at twice the cost of 128. Longer texts are cut (``--truncation``);
#: ``textclf train --max-length`` overrides the suggestion (a GPU job can afford 512).
CPU_MAX_LENGTH = 256
#: The max_length costs are quoted against.
COST_REFERENCE = 128
#: Hidden size assumed when the tokenizer folder has no model config (DistilBERT / BERT-base).
DEFAULT_HIDDEN_SIZE = 768


@dataclass(frozen=True)
class EdaResult:
    out: Path
    summary: dict[str, Any]
    reused: bool
    seconds: float


def token_lengths(texts: list[str], tokenizer_dir: Path, *, batch_size: int = 20_000) -> np.ndarray:
    """Token count of each text with special tokens, as the model will see it untruncated."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    except (OSError, ValueError) as exc:
        raise UserError(f"--tokenizer {tokenizer_dir}: cannot load a tokenizer ({exc})") from exc
    lengths = np.empty(len(texts), dtype=np.int32)
    backend = getattr(tok, "backend_tokenizer", None) if tok.is_fast else None
    if backend is not None:
        # The Rust tokenizer directly: about 2x faster than tok(...) since no BatchEncoding
        # is built; with truncation/padding off it counts exactly what tok(text) would.
        backend.no_truncation()
        backend.no_padding()
    for start in range(0, len(texts), batch_size):
        chunk = texts[start : start + batch_size]
        if backend is not None:
            counts = [len(e.ids) for e in backend.encode_batch(chunk, add_special_tokens=True)]
        else:
            counts = [len(ids) for ids in tok(chunk, add_special_tokens=True)["input_ids"]]
        lengths[start : start + len(chunk)] = counts
    return lengths


def choose_max_length(
    lengths: np.ndarray, coverage: float, round_to: int = 8, cap: int | None = None
) -> tuple[int, int]:
    """(raw, chosen): raw is the smallest L with share(len <= L) >= coverage; chosen rounds it up."""
    if len(lengths) == 0:
        raise UserError("no headlines to measure")
    if not 0.0 < coverage <= 1.0:
        raise UserError(f"--coverage must be in (0, 1], got {coverage}")
    ordered = np.sort(lengths)
    # The k-th smallest length covers k/n of the texts; need k >= coverage * n. The epsilon
    # keeps e.g. 0.995 * 200 = 199.00000000000003 from demanding a 200th text.
    k = max(1, math.ceil(coverage * len(ordered) - 1e-9))
    raw = int(ordered[k - 1])
    chosen = int(math.ceil(raw / round_to) * round_to) if round_to > 1 else raw
    if cap is not None:
        chosen = min(chosen, cap)
    return raw, chosen


def relative_cost(
    lengths: np.ndarray, max_length: int, hidden: int, reference: int = COST_REFERENCE
) -> float:
    """Training time per row at ``max_length`` over that at ``reference``, estimated for these
    token lengths: a row pays for its own (cut) length L -- batches are length-grouped and padded
    to their longest row -- at L * (6 d + L) FLOPs per layer (dense layers 24 d^2 per token,
    attention 4 L d; the constant factors cancel)."""

    def cost(cap: int) -> float:
        cut = np.minimum(lengths, cap).astype(np.float64)
        return float(np.mean(cut * (6 * hidden + cut)))

    return cost(max_length) / cost(reference) if len(lengths) else 1.0


def hidden_size(model_dir: Path) -> int:
    """The encoder's width from ``config.json`` beside the tokenizer (BERT ``hidden_size``,
    DistilBERT ``dim``), else :data:`DEFAULT_HIDDEN_SIZE`."""
    try:
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return DEFAULT_HIDDEN_SIZE
    value = config.get("hidden_size", config.get("dim")) if isinstance(config, dict) else None
    return int(value) if isinstance(value, int) and value > 0 else DEFAULT_HIDDEN_SIZE


@dataclass(frozen=True)
class MaxLength:
    """The ``max_length`` suggestion and what capped it."""

    raw: int  # the smallest length covering the coverage target of the training texts
    uncapped: int  # raw rounded up, within the model's limit (length_limit)
    chosen: int  # uncapped, at most the CPU cap

    @property
    def capped_for_cpu(self) -> bool:
        return self.chosen < self.uncapped


def suggest_max_length(
    lengths: np.ndarray,
    coverage: float,
    round_to: int,
    model_cap: int | None,
    cpu_cap: int = CPU_MAX_LENGTH,
) -> MaxLength:
    """The EDA rule: coverage of the training texts, rounded up, capped by the model and the CPU."""
    raw, uncapped = choose_max_length(lengths, coverage, round_to, model_cap)
    return MaxLength(raw, uncapped, min(uncapped, cpu_cap))


def length_limit(tokenizer_dir: Path) -> int:
    """The longest max_length training takes: the tokenizer's ``model_max_length`` (when it gives
    one rather than a sentinel such as int(1e30)), at most the hyperparameter's maximum."""
    from textclf_api import hyperparameters as hp
    from transformers import AutoTokenizer

    limit = int(hp.BY_NAME["max_length"].maximum or 512)
    model_max = int(AutoTokenizer.from_pretrained(str(tokenizer_dir)).model_max_length)
    return min(model_max, limit) if model_max > 0 else limit


def training_defaults(
    data: Path, tokenizer_dir: Path, *, coverage: float = 0.995, round_to: int = 8
) -> dict[str, Any]:
    """What the dataset pointer tells training jobs: the label set and the ``max_length`` the EDA
    rule picks on the training split (:func:`suggest_max_length`), so a job started without
    ``max_length`` uses it."""
    texts = read_split(data / "train")["text"].astype(str).tolist()
    lengths = token_lengths(texts, tokenizer_dir)
    chosen = suggest_max_length(lengths, coverage, round_to, length_limit(tokenizer_dir)).chosen
    labels = json.loads((data / "labels.json").read_text(encoding="utf-8"))
    return {"max_length": max(chosen, 8), "labels": labels, "max_length_coverage": coverage}


def _length_stats(lengths: np.ndarray, max_length: int) -> dict[str, Any]:
    q = np.quantile(lengths, [0.5, 0.9, 0.95, 0.99, 0.995]) if len(lengths) else [0] * 5
    return {
        "n": len(lengths),
        "mean": round(float(lengths.mean()), 2) if len(lengths) else 0.0,
        "p50": float(q[0]),
        "p90": float(q[1]),
        "p95": float(q[2]),
        "p99": float(q[3]),
        "p99_5": float(q[4]),
        "max": int(lengths.max()) if len(lengths) else 0,
        "truncated": int((lengths > max_length).sum()),
        "coverage": round(float((lengths <= max_length).mean()), 6) if len(lengths) else 1.0,
    }


def _story_stats(frame: pd.DataFrame) -> dict[str, Any]:
    sizes = frame.groupby("story").size()
    if sizes.empty:
        return {"stories": 0}
    return {
        "stories": len(sizes),
        "mean": round(float(sizes.mean()), 2),
        "median": float(sizes.median()),
        "p90": float(sizes.quantile(0.9)),
        "max": int(sizes.max()),
        "single_headline_stories": int((sizes == 1).sum()),
    }


def _plot_class_balance(path: Path, balance: dict[str, dict[str, int]], labels: list[str]) -> None:
    import matplotlib.pyplot as plt

    # Wider for many labels; the news preset's four keep the 8-inch figure.
    fig, ax = plt.subplots(figsize=(max(8.0, 0.5 * len(labels) * len(SPLITS)), 4.5))
    width = 0.8 / len(SPLITS)
    x = np.arange(len(labels))
    for i, split in enumerate(SPLITS):
        counts = np.array([balance[split][lab] for lab in labels], dtype=float)
        share = 100 * counts / max(counts.sum(), 1)
        bars = ax.bar(x + (i - (len(SPLITS) - 1) / 2) * width, share, width, label=split)
        ax.bar_label(bars, labels=[f"{int(c):,}" for c in counts], fontsize=6, rotation=90, padding=2)
    names = [lab.replace("_", " ") for lab in labels]
    slanted = len(labels) > 6 or max(map(len, names)) > 24
    ax.set_xticks(x, names, rotation=30 if slanted else 0, ha="right" if slanted else "center")
    ax.set_ylabel("share of split (%)")
    ax.set_title("Class balance per split (bar labels: rows)")
    ax.set_ylim(0, ax.get_ylim()[1] * 1.15)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_token_lengths(
    path: Path, lengths: dict[str, np.ndarray], choice: MaxLength, coverage: float
) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    top = max(int(v.max()) for v in lengths.values() if len(v))
    # One bin per integer length for short texts; 200 bins for long documents.
    bins: Any = [x + 0.5 for x in range(top + 1)] if top <= 400 else 200
    for split, values in lengths.items():
        if len(values):
            ax.hist(values, bins=bins, density=True, histtype="step", linewidth=1.4, label=split)
    ax.axvline(choice.chosen, color="red", linestyle="--", label=f"max_length = {choice.chosen}")
    if choice.raw != choice.chosen:
        ax.axvline(choice.raw, color="gray", linestyle=":", label=f"{coverage:.1%} of train = {choice.raw}")
    ax.set_xlabel("tokens per text (incl. special tokens)")
    ax.set_ylabel("share of texts")
    ax.set_title("Token-length distribution")
    cum = ax.twinx()
    train = np.sort(lengths["train"])
    cum.plot(train, np.arange(1, len(train) + 1) / len(train), color="black", alpha=0.4, linewidth=1)
    cum.set_ylabel("cumulative share (train)")
    cum.set_ylim(0, 1.02)
    ax.legend(loc="center right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_story_sizes(path: Path, frames: dict[str, pd.DataFrame]) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    # A cumulative curve rather than a histogram: story sizes are integers from 1 to ~1000, and
    # log-spaced histogram bins of uneven integer width make a jagged, misleading picture.
    for split, frame in frames.items():
        sizes = np.sort(frame.groupby("story").size().to_numpy())
        if len(sizes) == 0:
            continue
        share = np.arange(1, len(sizes) + 1) / len(sizes)
        median = float(np.median(sizes))
        ax.step(sizes, share, where="post", label=f"{split}: {len(sizes):,} stories, median {median:.0f}")
    ax.set_xscale("log")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("headlines per story (after per-split dedup, log scale)")
    ax.set_ylabel("share of stories with at most x headlines")
    ax.set_title("Headlines per story")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def cost_note(summary: dict[str, Any]) -> str | None:
    """One line on the CPU cap when it lowered the suggestion, else None (the CLI prints it too)."""
    cap = summary.get("cpu_cap") or {}
    if not cap.get("applied"):
        return None
    return (
        f"max_length {summary['max_length_uncapped']} would cover "
        f"{summary['coverage_uncapped']:.1%} of train texts but costs ~{cap['cost_uncapped']:.1f}x "
        f"the time of {COST_REFERENCE} per row on CPU; capped at {summary['max_length']} "
        f"(covers {summary['token_lengths']['train']['coverage']:.1%}, ~{cap['cost_chosen']:.1f}x) "
        f"-- pass `textclf train --max-length {summary['max_length_uncapped']}` to override, "
        "and consider `--truncation head+tail` for texts longer than that"
    )


def _report(summary: dict[str, Any]) -> str:
    ml = summary["max_length"]
    cov = summary["coverage_target"]
    tl = summary["token_lengths"]
    labels = summary["labels"]
    title = (
        "UCI News Aggregator" if summary.get("preset") == "uci-news" else f"`{Path(summary['data']).name}`"
    )
    caps = []
    if summary["capped"]:
        caps.append(f"capped at the model's limit, {summary['model_max_length']}")
    note = cost_note(summary)
    lines = [
        f"# EDA — {title} (processed splits)",
        "",
        f"Data: `{summary['data']}` (dataset sha256 `{str(summary['dataset_sha256'])[:12]}`), "
        f"tokenizer `{summary['tokenizer']}`, generated {summary['created']}.",
        "",
        "## Truncation choice",
        "",
        f"**max_length = {ml}** tokens (special tokens included). The smallest length covering "
        f"≥ {cov:.1%} of the training texts is {summary['max_length_raw']} tokens; it is "
        f"rounded up to a multiple of {summary['round_to']}"
        + (f" ({', '.join(caps)})" if caps else "")
        + ". It was chosen on train only; coverage on each split:",
        "",
        "| split | texts | mean | p50 | p95 | p99 | p99.5 | max | longer than max_length | coverage |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for split, s in tl.items():
        lines.append(
            f"| {split} | {s['n']:,} | {s['mean']:.1f} | {s['p50']:.0f} | {s['p95']:.0f} | {s['p99']:.0f} "
            f"| {s['p99_5']:.0f} | {s['max']} | {s['truncated']:,} | {s['coverage']:.4%} |"
        )
    if note:
        lines += [
            "",
            f"CPU cost: {note}. Costs are estimated per row from the encoder's FLOPs (hidden size "
            f"{summary['cpu_cap']['hidden_size']}); the cap is {summary['cpu_cap']['max_length']}.",
        ]
    if summary["sample"]:
        lines += ["", f"Token lengths measured on a seeded sample of {summary['sample']:,} rows per split."]
    lines += [
        "",
        "![token lengths](token_lengths.png)",
        "",
        "## Class balance per split",
        "",
        "| split | rows | " + " | ".join(labels) + " |",
        "|---|---:|" + "---:|" * len(labels),
    ]
    for split, counts in summary["class_balance"].items():
        total = sum(counts.values())
        cells = " | ".join(f"{counts[lab]:,} ({counts[lab] / max(total, 1):.1%})" for lab in labels)
        lines.append(f"| {split} | {total:,} | {cells} |")
    lines += ["", "![class balance](class_balance.png)", ""]
    if summary["stories"]:
        lines += [
            "Stories are dealt to splits per label, so the class shares match across splits.",
            "",
            "## Headlines per story",
            "",
            "| split | stories | mean | median | p90 | max | single-headline stories |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for split, s in summary["stories"].items():
            if s["stories"]:
                lines.append(
                    f"| {split} | {s['stories']:,} | {s['mean']:.1f} | {s['median']:.0f} | {s['p90']:.0f} "
                    f"| {s['max']:,} | {s['single_headline_stories']:,} |"
                )
        lines += [
            "",
            "Many headlines per story, often near-duplicates, are why the splits are grouped by STORY: "
            "a random row split would put copies of test headlines in training.",
            "",
            f"![headlines per story]({GROUP_PLOT})",
            "",
        ]
    return "\n".join(lines)


def _reusable(out: Path, key: dict[str, Any]) -> dict[str, Any] | None:
    try:
        summary = json.loads((out / "eda.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(summary, dict) or summary.get("key") != key:
        return None
    if not all((out / name).is_file() for name in summary.get("outputs", OUTPUTS)):
        return None
    return summary


def dataset_labels(data: Path, manifest: dict[str, Any]) -> list[str]:
    """The dataset's label set in class-id order: ``labels.json``, else the manifest's ``labels``."""
    try:
        labels = json.loads((data / "labels.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        labels = manifest.get("labels")
    if not (isinstance(labels, list) and labels and all(isinstance(x, str) for x in labels)):
        raise UserError(f"{data}: no label list in labels.json or manifest.json; run `textclf data` again")
    return labels


def grouped(manifest: dict[str, Any]) -> bool:
    """True when rows share groups the split kept whole (the news corpus's STORY, a
    ``--group-column``); without one every row is its own group and group sizes say nothing."""
    spec = manifest.get("input")
    # Manifests from before `--source` are the news corpus, split by STORY.
    return bool(spec.get("group_column")) if isinstance(spec, dict) else True


def run_eda(
    data: Path,
    out: Path,
    tokenizer_dir: Path,
    *,
    coverage: float = 0.995,
    round_to: int = 8,
    sample: int = 0,
    seed: int = 13,
    force: bool = False,
) -> EdaResult:
    """Write plots, ``report.md`` and ``eda.json`` for the processed dataset in ``data``."""
    import matplotlib

    matplotlib.use("Agg")  # headless: no display on build machines or in CI
    started = time.perf_counter()
    if round_to < 1:
        raise UserError(f"--round-to must be >= 1, got {round_to}")
    if not (data / "manifest.json").is_file():
        raise UserError(f"{data}: no manifest.json; run `textclf data` first (or pass --data)")
    manifest = json.loads((data / "manifest.json").read_text(encoding="utf-8"))
    key = {
        "format_version": FORMAT_VERSION,
        "dataset_sha256": manifest.get("dataset_sha256"),
        "tokenizer": str(tokenizer_dir),
        "coverage": coverage,
        "round_to": round_to,
        "sample": sample,
        "seed": seed,
        "cpu_max_length": CPU_MAX_LENGTH,
    }
    if not force and (reused := _reusable(out, key)) is not None:
        return EdaResult(out, reused, True, time.perf_counter() - started)

    labels = dataset_labels(data, manifest)
    frames = {split: read_split(data / split) for split in SPLITS}
    if frames["train"].empty:
        raise UserError(f"{data / 'train'}: the training split is empty")
    lengths: dict[str, np.ndarray] = {}
    for split, frame in frames.items():
        texts = frame["text"]
        if sample and len(texts) > sample:
            texts = texts.sample(n=sample, random_state=seed)
        t0 = time.perf_counter()
        lengths[split] = token_lengths(texts.tolist(), tokenizer_dir)
        log.info("tokenised %s: %d texts in %.1f s", split, len(texts), time.perf_counter() - t0)

    cap = length_limit(tokenizer_dir)
    choice = suggest_max_length(lengths["train"], coverage, round_to, cap)
    hidden = hidden_size(tokenizer_dir)
    train_lengths = lengths["train"]

    out.mkdir(parents=True, exist_ok=True)
    balance = {
        split: {lab: int((frame["label"] == lab).sum()) for lab in labels} for split, frame in frames.items()
    }
    with_groups = grouped(manifest)
    outputs = [name for name in OUTPUTS if with_groups or name != GROUP_PLOT]
    input_spec = manifest.get("input")
    summary: dict[str, Any] = {
        "max_length": choice.chosen,
        "max_length_raw": choice.raw,
        "max_length_uncapped": choice.uncapped,
        "coverage_uncapped": round(float((train_lengths <= choice.uncapped).mean()), 6),
        "coverage_target": coverage,
        "round_to": round_to,
        "model_max_length": cap,
        "capped": choice.uncapped == cap and cap < choice.raw,
        "cpu_cap": {
            "max_length": CPU_MAX_LENGTH,
            "applied": choice.capped_for_cpu,
            "hidden_size": hidden,
            "cost_reference": COST_REFERENCE,
            "cost_chosen": round(relative_cost(train_lengths, choice.chosen, hidden), 2),
            "cost_uncapped": round(relative_cost(train_lengths, choice.uncapped, hidden), 2),
        },
        "chosen_on": "train",
        "tokenizer": str(tokenizer_dir),
        "data": str(data),
        # Manifests from before `--source` are the news corpus.
        "preset": input_spec.get("preset") if isinstance(input_spec, dict) else "uci-news",
        "dataset_sha256": manifest.get("dataset_sha256"),
        "labels": labels,
        "sample": sample if sample and any(len(f) > sample for f in frames.values()) else 0,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "token_lengths": {split: _length_stats(v, choice.chosen) for split, v in lengths.items()},
        "class_balance": balance,
        "stories": {split: _story_stats(frame) for split, frame in frames.items()} if with_groups else {},
        "outputs": outputs,
        "key": key,
    }
    _plot_class_balance(out / "class_balance.png", balance, labels)
    _plot_token_lengths(out / "token_lengths.png", lengths, choice, coverage)
    if with_groups:
        _plot_story_sizes(out / GROUP_PLOT, frames)
    else:
        (out / GROUP_PLOT).unlink(missing_ok=True)  # an earlier run's, of other data
    (out / "report.md").write_text(_report(summary), encoding="utf-8")
    # eda.json last (atomically): its presence with a matching key means the rest is complete.
    tmp = out / f".eda.json.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out / "eda.json")
    return EdaResult(out, summary, False, time.perf_counter() - started)
