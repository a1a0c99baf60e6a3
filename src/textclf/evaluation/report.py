"""Evaluate a model and the baseline on one dataset; write ``evaluation.json`` and the figure."""

from __future__ import annotations

import json
import logging
import platform
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from textclf.errors import UserError
from textclf.evaluation import baseline as baseline_mod
from textclf.evaluation.metrics import ECE_BINS, classification_report, paired_comparison, prediction_report
from textclf.evaluation.plots import plot_confusion_matrices
from textclf.evaluation.predict import latency_ms, load_model, predict_proba, timed
from textclf.hashing import sha256_file

log = logging.getLogger(__name__)

REPORT_FILE = "evaluation.json"
FIGURE_FILE = "confusion_matrix.png"
#: Confusion-matrix panel titles of the linear models (evaluation.json keys: baseline, anchor).
MATRIX_TITLES = {"baseline": "baseline (TF-IDF + LR)", "anchor": "anchor (TF-IDF + linear SVM)"}


@dataclass(frozen=True)
class EvalSettings:
    model_dir: Path
    data: Path
    out: Path
    train_data: Path | None  # None: no baseline
    batch_size: int = 64
    max_samples: int = 0  # 0 = every row of ``data``
    latency_samples: int = 200
    seed: int = 0
    num_threads: int | None = None


def _data_file(path: Path) -> Path:
    return path / "data.parquet" if path.is_dir() else path


def fingerprint(settings: EvalSettings) -> dict[str, Any]:
    """Inputs that determine the report; an identical fingerprint lets a re-run reuse it."""
    weights = [
        *sorted(settings.model_dir.glob("*.safetensors")),
        *sorted(settings.model_dir.glob("*.bin")),
        *sorted(settings.model_dir.glob("lexical_*")),
    ]
    return {
        "model_sha256": [sha256_file(p) for p in weights],
        "data_sha256": sha256_file(_data_file(settings.data)),
        "train_data_sha256": sha256_file(_data_file(settings.train_data)) if settings.train_data else None,
        "max_samples": settings.max_samples,
        "seed": settings.seed,
        "baseline_version": baseline_mod.BASELINE.version,
        "anchor_version": baseline_mod.ANCHOR.version,
    }


def label_ids(frame: pd.DataFrame, labels: list[str], what: str) -> np.ndarray:
    unknown = sorted(set(frame["label"]) - set(labels))
    if unknown:
        raise UserError(f"{what} has labels the model does not know: {unknown} (model labels: {labels})")
    index = {name: i for i, name in enumerate(labels)}
    return frame["label"].map(index).to_numpy(dtype=np.int64)


def evaluate(settings: EvalSettings, *, force: bool = False) -> dict[str, Any]:
    from textclf.data import read_split

    report_path = settings.out / REPORT_FILE
    fp = fingerprint(settings)
    if not force and report_path.is_file() and (settings.out / FIGURE_FILE).is_file():
        previous = json.loads(report_path.read_text(encoding="utf-8"))
        if previous.get("fingerprint") == fp:
            log.info("reusing %s: same model, data and settings (--force re-evaluates)", report_path)
            previous["reused"] = True
            return previous

    frame = read_split(settings.data)
    if frame.empty:
        raise UserError(f"{settings.data}: no rows to evaluate")
    if 0 < settings.max_samples < len(frame):
        frame = frame.sample(n=settings.max_samples, random_state=settings.seed).reset_index(drop=True)
    texts = frame["text"].tolist()

    loaded = load_model(settings.model_dir, settings.num_threads)
    labels = loaded.labels
    y_true = label_ids(frame, labels, str(settings.data))
    rng = np.random.default_rng(settings.seed)
    latency_texts = [
        texts[i] for i in rng.choice(len(texts), min(settings.latency_samples, len(texts)), replace=False)
    ]

    log.info("scoring %d headlines with the model", len(texts))
    raw, seconds = timed(lambda: predict_proba(loaded, texts, settings.batch_size, lexical=False))
    results: dict[str, Any] = {}
    matrices: dict[str, np.ndarray] = {}
    head = loaded.lexical_head
    if head is not None:
        # The served model is the blend; the transformer alone is reported beside it (ablation).
        alone = classification_report(y_true, raw, labels)
        alone["throughput"] = _throughput(
            len(texts),
            seconds,
            settings.batch_size,
            lambda t: predict_proba(loaded, [t], 1, lexical=False),
            latency_texts,
        )
        results["transformer_only"] = alone
        probs, head_seconds = timed(head.combine, raw, texts)
        seconds += head_seconds
    else:
        probs = raw
    model_report = classification_report(y_true, probs, labels)
    model_report["throughput"] = _throughput(
        len(texts), seconds, settings.batch_size, lambda t: predict_proba(loaded, [t], 1), latency_texts
    )
    results = {"model": model_report, **results}
    compared = {"model": probs.argmax(1)}
    matrices["fine-tuned model" + (" + lexical head" if head is not None else "")] = np.array(
        model_report["confusion_matrix"]
    )

    if settings.train_data is not None:
        train = read_split(settings.train_data)
        y_train = label_ids(train, labels, str(settings.train_data))
        model_right = probs.argmax(1) == y_true
        for recipe in (baseline_mod.BASELINE, baseline_mod.ANCHOR):
            log.info("fitting the %s on %d training rows", recipe.name, len(train))
            side, predicted = _linear_report(
                recipe,
                settings,
                train,
                y_train,
                texts=texts,
                y_true=y_true,
                labels=labels,
                latency_texts=latency_texts,
            )
            results[recipe.slug] = side
            matrices[MATRIX_TITLES[recipe.slug]] = np.array(side["confusion_matrix"])
            # Paired on the same rows: is the model's margin over this linear model more than chance?
            results[recipe.slug]["paired_with_model"] = paired_comparison(model_right, predicted == y_true)
            compared[recipe.slug] = predicted
        # Complementarity: the share of rows at least one of model and baseline gets right.
        results["either_correct"] = float(np.mean(model_right | (compared["baseline"] == y_true)))
    # Only where rows share stories (groups): a generic dataset's every row is its own.
    if "story" in frame.columns and frame["story"].nunique() < len(frame):
        stories = frame["story"].to_numpy()
        results["story_vote_accuracy"] = {
            side: story_vote_accuracy(stories, predicted, y_true) for side, predicted in compared.items()
        }

    meta_file = settings.model_dir / "textclf_meta.json"
    report: dict[str, Any] = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "model_dir": str(settings.model_dir),
        "model_meta": json.loads(meta_file.read_text(encoding="utf-8")) if meta_file.is_file() else None,
        "data": str(settings.data),
        "train_data": str(settings.train_data) if settings.train_data else None,
        "rows": len(texts),
        "labels": labels,
        "ece_bins": ECE_BINS,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "threads": _threads(),
        },
        "fingerprint": fp,
        **results,
    }
    settings.out.mkdir(parents=True, exist_ok=True)
    plot_confusion_matrices(matrices, labels, settings.out / FIGURE_FILE)
    report_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    report["reused"] = False
    return report


def story_vote_accuracy(stories: np.ndarray, predicted: np.ndarray, y_true: np.ndarray) -> float:
    """Accuracy if every headline got its story's most frequent prediction (ties: lowest label id).

    A diagnostic, not a servable model (a request carries one headline, not its story): the gap
    to the per-headline accuracy is how much headlines that do not show their story's topic cost.
    """
    frame = pd.DataFrame({"story": stories, "pred": predicted})
    counts = frame.groupby(["story", "pred"]).size().reset_index(name="n")
    counts = counts.sort_values(["story", "n", "pred"], ascending=[True, False, True])
    vote = counts.drop_duplicates("story").set_index("story")["pred"]
    return float(np.mean(frame["story"].map(vote).to_numpy() == y_true))


def _linear_report(
    recipe: baseline_mod.Recipe,
    settings: EvalSettings,
    train: pd.DataFrame,
    y_train: np.ndarray,
    *,
    texts: list[str],
    y_true: np.ndarray,
    labels: list[str],
    latency_texts: list[str],
) -> tuple[dict[str, Any], np.ndarray]:
    """A linear model fitted on every training row (or its cached fit), scored on ``texts``:
    its report and its predicted label ids."""
    assert settings.train_data is not None
    fitted, fit_seconds = baseline_mod.load_or_train(
        _data_file(settings.train_data),
        train["text"].tolist(),
        y_train,
        settings.out / "cache",
        settings.seed,
        recipe=recipe,
    )
    if recipe.probabilistic:
        probs, seconds = timed(baseline_mod.predict_proba, fitted, texts, len(labels))
        report = classification_report(y_true, probs, labels)
        predicted = probs.argmax(1)

        def one(t: str) -> Any:
            return baseline_mod.predict_proba(fitted, [t], len(labels))
    else:
        predicted, seconds = timed(baseline_mod.predict, fitted, texts)
        report = prediction_report(y_true, predicted, labels)  # no probabilities: ECE n/a

        def one(t: str) -> Any:
            return baseline_mod.predict(fitted, [t])

    report["throughput"] = _throughput(len(texts), seconds, len(texts), one, latency_texts)
    report["name"] = recipe.name
    report["train_rows"] = len(train)
    report["fit_seconds"] = fit_seconds
    return report, predicted


def _throughput(
    rows: int, seconds: float, batch_size: int, one: Any, latency_texts: list[str]
) -> dict[str, Any]:
    return {
        "headlines_per_s": rows / seconds,
        "seconds": seconds,
        "batch_size": batch_size,
        "latency_ms_single": latency_ms(one, latency_texts),
    }


def _threads() -> int:
    import torch

    return int(torch.get_num_threads())


def format_table(report: dict[str, Any]) -> str:
    """Side-by-side text table: every figure for the model and (when present) the linear models."""
    columns = [c for c in ("model", "transformer_only", "baseline", "anchor") if c in report]
    rows: list[tuple[str, list[str]]] = []

    def add(name: str, getter: Any, fmt: str) -> None:
        values = [getter(report[c]) for c in columns]
        rows.append((name, ["n/a" if v is None else format(v, fmt) for v in values]))

    add("accuracy", lambda r: r["accuracy"], ".4f")
    add("macro-F1", lambda r: r["macro_f1"], ".4f")
    add(f"ECE ({report.get('ece_bins', ECE_BINS)} bins)", lambda r: r["ece"], ".4f")
    for label in report["labels"]:
        for key, short in (("precision", "P"), ("recall", "R"), ("f1", "F1")):
            add(f"{label} {short}", lambda r, label=label, key=key: r["per_class"][label][key], ".4f")
    add("throughput (texts/s)", lambda r: r["throughput"]["headlines_per_s"], ",.0f")
    add("latency, 1 text p50 (ms)", lambda r: r["throughput"]["latency_ms_single"]["p50"], ".2f")
    add("latency, 1 text p95 (ms)", lambda r: r["throughput"]["latency_ms_single"]["p95"], ".2f")
    width = max(len(name) for name, _ in rows) + 2
    heads = {"model": "model", "transformer_only": "transformer", "baseline": "baseline", "anchor": "anchor"}
    lines = [f"{'':<{width}}" + "".join(f"{heads[c]:>12}" for c in columns)]
    lines += [f"{name:<{width}}" + "".join(f"{v:>12}" for v in values) for name, values in rows]
    for side in ("baseline", "anchor"):
        if side in report:
            lines.append(
                f"{side}: {report[side]['name']}"
                + ("" if report[side]["ece"] is not None else " (margins, no probabilities: ECE n/a)")
            )
            paired = report[side].get("paired_with_model")
            if paired:
                lines.append(
                    f"  model - {side}: {paired['accuracy_difference'] * 100:+.2f} points of accuracy "
                    f"({paired['only_model_right']:,} rows only the model gets right, "
                    f"{paired['only_other_right']:,} only the {side}); McNemar p = {paired['mcnemar_p']:.2g}"
                )
    votes = report.get("story_vote_accuracy") or {}
    if votes:
        lines.append(
            "if every headline took its story's majority prediction: "
            + ", ".join(f"{heads[c]} {votes[c]:.4f}" for c in columns if c in votes)
        )
    if "either_correct" in report:
        lines.append(f"right by the model or the baseline (or both): {report['either_correct']:.4f}")
    lines.append(f"rows: {report['rows']:,}  data: {report['data']}")
    return "\n".join(lines)
