"""Exploratory analysis of the processed splits and the ``max_length`` choice for training.

Outputs (``textclf eda``): ``class_balance.png``, ``token_lengths.png``,
``headlines_per_story.png``, ``report.md`` and ``eda.json``. ``eda.json["max_length"]`` is
what training reads: the smallest token length covering ``coverage`` of the TRAINING
headlines (special tokens included), rounded up to a multiple of ``round_to``. It is chosen on
train only so the test split stays unseen; its coverage on every split is reported beside it.
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
from textclf.labels import LABELS

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
PLOTS = ("class_balance.png", "token_lengths.png", "headlines_per_story.png")
OUTPUTS = (*PLOTS, "report.md", "eda.json")


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


def training_defaults(
    data: Path, tokenizer_dir: Path, *, coverage: float = 0.995, round_to: int = 8
) -> dict[str, Any]:
    """What the dataset pointer tells training jobs: the label set and the ``max_length`` the EDA
    rule picks on the training split (the smallest multiple of ``round_to`` tokens covering
    ``coverage`` of the headlines), so a job started without ``max_length`` uses it."""
    texts = read_split(data / "train")["text"].astype(str).tolist()
    _raw, chosen = choose_max_length(token_lengths(texts, tokenizer_dir), coverage, round_to)
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


def _plot_class_balance(path: Path, balance: dict[str, dict[str, int]]) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    width = 0.8 / len(SPLITS)
    x = np.arange(len(LABELS))
    for i, split in enumerate(SPLITS):
        counts = np.array([balance[split][lab] for lab in LABELS], dtype=float)
        share = 100 * counts / max(counts.sum(), 1)
        bars = ax.bar(x + (i - (len(SPLITS) - 1) / 2) * width, share, width, label=split)
        ax.bar_label(bars, labels=[f"{int(c):,}" for c in counts], fontsize=6, rotation=90, padding=2)
    ax.set_xticks(x, [lab.replace("_", " ") for lab in LABELS])
    ax.set_ylabel("share of split (%)")
    ax.set_title("Class balance per split (bar labels: rows)")
    ax.set_ylim(0, ax.get_ylim()[1] * 1.15)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_token_lengths(
    path: Path, lengths: dict[str, np.ndarray], raw: int, chosen: int, coverage: float
) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    top = max(int(v.max()) for v in lengths.values() if len(v))
    bins = [x + 0.5 for x in range(top + 1)]  # one bin per integer length
    for split, values in lengths.items():
        if len(values):
            ax.hist(values, bins=bins, density=True, histtype="step", linewidth=1.4, label=split)
    ax.axvline(chosen, color="red", linestyle="--", label=f"max_length = {chosen}")
    if raw != chosen:
        ax.axvline(raw, color="gray", linestyle=":", label=f"{coverage:.1%} of train = {raw}")
    ax.set_xlabel("tokens per headline (incl. special tokens)")
    ax.set_ylabel("share of headlines")
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


def _report(summary: dict[str, Any]) -> str:
    ml = summary["max_length"]
    cov = summary["coverage_target"]
    tl = summary["token_lengths"]
    lines = [
        "# EDA — UCI News Aggregator (processed splits)",
        "",
        f"Data: `{summary['data']}` (dataset sha256 `{str(summary['dataset_sha256'])[:12]}`), "
        f"tokenizer `{summary['tokenizer']}`, generated {summary['created']}.",
        "",
        "## Truncation choice",
        "",
        f"**max_length = {ml}** tokens (special tokens included). The smallest length covering "
        f"≥ {cov:.1%} of the training headlines is {summary['max_length_raw']} tokens; it is "
        f"rounded up to a multiple of {summary['round_to']}"
        + (f" (capped at the tokenizer's {summary['model_max_length']})" if summary["capped"] else "")
        + ". It was chosen on train only; coverage on each split:",
        "",
        "| split | headlines | mean | p50 | p95 | p99 | p99.5 | max | longer than max_length | coverage |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for split, s in tl.items():
        lines.append(
            f"| {split} | {s['n']:,} | {s['mean']:.1f} | {s['p50']:.0f} | {s['p95']:.0f} | {s['p99']:.0f} "
            f"| {s['p99_5']:.0f} | {s['max']} | {s['truncated']:,} | {s['coverage']:.4%} |"
        )
    if summary["sample"]:
        lines += ["", f"Token lengths measured on a seeded sample of {summary['sample']:,} rows per split."]
    lines += [
        "",
        "![token lengths](token_lengths.png)",
        "",
        "## Class balance per split",
        "",
        "| split | rows | " + " | ".join(LABELS) + " |",
        "|---|---:|" + "---:|" * len(LABELS),
    ]
    for split, counts in summary["class_balance"].items():
        total = sum(counts.values())
        cells = " | ".join(f"{counts[lab]:,} ({counts[lab] / max(total, 1):.1%})" for lab in LABELS)
        lines.append(f"| {split} | {total:,} | {cells} |")
    lines += [
        "",
        "Stories are dealt to splits per label, so the class shares match across splits.",
        "",
        "![class balance](class_balance.png)",
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
        "![headlines per story](headlines_per_story.png)",
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
    if not all((out / name).is_file() for name in OUTPUTS):
        return None
    return summary


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
    }
    if not force and (reused := _reusable(out, key)) is not None:
        return EdaResult(out, reused, True, time.perf_counter() - started)

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
        log.info("tokenised %s: %d headlines in %.1f s", split, len(texts), time.perf_counter() - t0)

    from transformers import AutoTokenizer

    model_max = int(AutoTokenizer.from_pretrained(str(tokenizer_dir)).model_max_length)
    # Some tokenizers report a huge sentinel (int(1e30)) when no limit is configured.
    cap = model_max if 0 < model_max < 100_000 else None
    raw, chosen = choose_max_length(lengths["train"], coverage, round_to, cap)

    out.mkdir(parents=True, exist_ok=True)
    balance = {
        split: {lab: int((frame["label"] == lab).sum()) for lab in LABELS} for split, frame in frames.items()
    }
    summary: dict[str, Any] = {
        "max_length": chosen,
        "max_length_raw": raw,
        "coverage_target": coverage,
        "round_to": round_to,
        "model_max_length": cap,
        "capped": cap is not None and chosen == cap and chosen < raw,
        "chosen_on": "train",
        "tokenizer": str(tokenizer_dir),
        "data": str(data),
        "dataset_sha256": manifest.get("dataset_sha256"),
        "sample": sample if sample and any(len(f) > sample for f in frames.values()) else 0,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "token_lengths": {split: _length_stats(v, chosen) for split, v in lengths.items()},
        "class_balance": balance,
        "stories": {split: _story_stats(frame) for split, frame in frames.items()},
        "key": key,
    }
    _plot_class_balance(out / "class_balance.png", balance)
    _plot_token_lengths(out / "token_lengths.png", lengths, raw, chosen, coverage)
    _plot_story_sizes(out / "headlines_per_story.png", frames)
    (out / "report.md").write_text(_report(summary), encoding="utf-8")
    # eda.json last (atomically): its presence with a matching key means the rest is complete.
    tmp = out / f".eda.json.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out / "eda.json")
    return EdaResult(out, summary, False, time.perf_counter() - started)
