"""What a training job leaves behind (rank 0): the lexical head, the model folder, ``metrics.json``,
the training curve, the serving archive, its ``baseline.json`` and the test-channel evaluation.

Shipped beside ``train.py`` (everything in ``model/`` ships); ``train.py`` hands over a
:class:`Trained` once the transformer is trained and the other ranks have left.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import baseline
import channels
import lexical
import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

EVALUATION_FILE = "evaluation.json"
# Flags that describe where things are, not how the model is trained: left out of the
# checkpoint fingerprint and of textclf_meta.json's hyperparameters.
PATH_FLAGS = (
    "model_dir",
    "train_dir",
    "validation_dir",
    "test_dir",
    "output_data_dir",
    "checkpoint_dir",
    "feedback_dir",
    "recent_dir",
    "champion_dir",
)


def is_main_process() -> bool:
    # torchrun's variable: helpers need no cluster argument to stay quiet off rank 0.
    return int(os.environ.get("RANK", "0")) == 0


def say(line: str) -> None:
    """A log line from rank 0 only: N ranks would print every line N times."""
    if is_main_process():
        print(f"train.py: {line}", flush=True)


def metric(name: str, value: float) -> None:
    """One line per metric, matched by SageMaker's regex ``METRIC <name>=([0-9.eE+-]+)``; rank 0's
    only (every rank holds the same figures)."""
    if not is_main_process():
        return
    line = f"METRIC {name}={value:.6g}"
    if sys.stderr.isatty():
        tqdm.write(line, file=sys.stdout)  # keeps the Trainer's live progress bar intact
    else:
        print(line)  # logs (CloudWatch): a plain line, no bar redraw
    sys.stdout.flush()


def hyperparameters_of(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in vars(args).items() if k not in PATH_FLAGS}


@dataclass
class Trained:
    """The trained transformer and what rank 0 needs to report on it."""

    args: argparse.Namespace
    model: Any  # PreTrainedModel, on the CPU
    tokenizer: Any
    labels: list[str]
    all_train: pd.DataFrame  # every training row (the lexical head, the baseline)
    train: pd.DataFrame  # the rows the transformer trained on
    valid: pd.DataFrame
    offset: np.ndarray  # the prior-shift offset the loss added to the logits
    valid_probs: np.ndarray  # the final model's validation probabilities, rows in ``valid`` order
    evaluations: list[dict[str, Any]]
    train_loss_log: list[dict[str, Any]]
    steps: int
    train_seconds: float
    device: str
    amp_dtype: str | None
    distributed: dict[str, Any]
    warm_started: bool = False  # fine-tuned on from the champion's weights (a retrain)

    @property
    def label2id(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.labels)}


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean F1 over the labels present in either array (sklearn's ``average="macro"``)."""
    scores = []
    for k in np.union1d(y_true, y_pred):
        tp = np.sum((y_pred == k) & (y_true == k))
        fp = np.sum((y_pred == k) & (y_true != k))
        fn = np.sum((y_pred != k) & (y_true == k))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))


def fit_lexical_head(run: Trained) -> tuple[Any, dict[str, Any]]:
    """Fit the lexical head on every training row and choose its blend weight on validation."""
    args, train, valid, label2id = run.args, run.all_train, run.valid, run.label2id
    started = time.time()
    print(f"train.py: fitting the lexical head on {len(train)} training rows", flush=True)
    y_train = train["label"].map(label2id).to_numpy(dtype=np.int64)
    y_valid = valid["label"].map(label2id).to_numpy(dtype=np.int64)
    vectorizer, weight, bias = lexical.fit(
        train["text"].tolist(), y_train, len(label2id), c=args.lexical_c, min_df=args.lexical_min_df
    )
    head = lexical.LexicalHead(vectorizer, weight, bias, (1.0, 1.0))
    valid_logits = head.logits(valid["text"].tolist())
    w, t, scores = lexical.choose_blend(run.valid_probs, valid_logits, y_valid, args.blend_min_weight)
    head.blend_weight, head.temperature = w, t
    blended = lexical.blend(run.valid_probs, valid_logits, w, t).argmax(1)
    report: dict[str, Any] = {
        "blend_weight": w,
        "temperature": t,
        "ngrams": len(vectorizer.vocab),
        "train_rows": len(train),
        "fit_seconds": round(time.time() - started, 2),
        **scores,
        "blend_macro_f1": macro_f1(y_valid, blended),
    }
    for name in ("lexical_accuracy", "blend_accuracy", "blend_weight"):
        metric(name, report[name])
    print(
        f"train.py: lexical head: {len(vectorizer.vocab)} n-grams in {report['fit_seconds']:.0f}s; "
        f"validation accuracy transformer {scores['transformer_accuracy']:.4f}, "
        f"lexical {scores['lexical_accuracy']:.4f}, blend {scores['blend_accuracy']:.4f} (w={w}, t={t})",
        flush=True,
    )
    return head, report


def plot_curve(history: list[dict[str, Any]], log_history: list[dict[str, Any]], out: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot([h["epoch"] for h in log_history], [h["train_loss"] for h in log_history], label="train")
    ax_loss.plot(
        [h["epoch"] for h in history], [h["validation_loss"] for h in history], "o-", label="validation"
    )
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("cross-entropy loss")
    ax_loss.legend()
    ax_acc.plot(
        [h["epoch"] for h in history], [h["validation_accuracy"] for h in history], "o-", label="accuracy"
    )
    ax_acc.plot(
        [h["epoch"] for h in history], [h["validation_macro_f1"] for h in history], "s-", label="macro-F1"
    )
    ax_acc.set_xlabel("epoch")
    ax_acc.set_title("validation")
    ax_acc.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return True


def _textclf() -> ModuleType:
    """The packaging part of textclf: shipped beside this script in the source bundle (the
    container puts this folder first on sys.path), installed in a checkout's virtualenv."""
    # inference.py and lexical.py beside this script are the ones the archive's code/ gets.
    os.environ.setdefault("TEXTCLF_MODEL_CODE", str(Path(__file__).resolve().parent))
    from textclf.packaging import build

    return build


def package_for_serving(args: argparse.Namespace, trained: Path, dest: Path, valid: pd.DataFrame) -> None:
    """Assemble the serving archive (``textclf package``'s layout and gate) from ``trained`` into ``dest``."""
    build = _textclf()
    # The rows `textclf package` would compare the runtimes on (its rule, its seed).
    texts, labels, total = build.fidelity.sample_frame(valid, "validation channel")
    sample = build.ValidationSample(
        texts=texts, labels=labels, rows_available=total, source="validation channel"
    )
    runtimes = build.RUNTIMES_FASTEST_FIRST if args.serving_runtime == "auto" else (args.serving_runtime,)

    def echo(line: str) -> None:
        print(f"train.py: package: {line}", flush=True)

    # A restarted (spot) job finds its previous attempt's files here; the folder itself may be a
    # mount point, so only its contents go.
    for stale in dest.iterdir():
        if stale.is_dir():
            shutil.rmtree(stale)
        else:
            stale.unlink()
    meta, _report = build.assemble_fastest(trained, dest, runtimes=runtimes, sample=sample, echo=echo)
    print(f"train.py: serving archive in {dest}: runtime {meta['runtime']}", flush=True)


def read_test(args: argparse.Namespace, labels: list[str]) -> pd.DataFrame:
    """The test channel's rows the job scores (``--max_test_samples`` of them, by seed)."""
    test = channels.read_channel(args.test_dir)
    unknown = set(test["label"]) - set(labels)
    if unknown:
        sys.exit(f"train.py: test has labels not in labels.json: {sorted(unknown)}")
    if 0 < args.max_test_samples < len(test):
        test = test.sample(n=args.max_test_samples, random_state=args.seed).reset_index(drop=True)
    return test


def job_inference() -> ModuleType:
    """The ``inference.py`` shipped beside this script (the one every archive's ``code/`` gets)."""
    _textclf()
    from textclf.packaging.runtime import load_inference_module

    return load_inference_module(Path(__file__).with_name("inference.py"))


def evaluate_on_test(
    args: argparse.Namespace,
    serving_dir: Path,
    train: pd.DataFrame,
    labels: list[str],
    baseline: Any,
) -> dict[str, Any]:
    """Score the test channel with the archive's own ``code/inference.py`` (what the endpoint
    runs) beside the TF-IDF + logistic-regression baseline (the lexical head alone); write
    ``evaluation.json`` into the archive and print the test metrics."""
    from textclf.evaluation.metrics import classification_report
    from textclf.packaging.runtime import load_inference_module

    test = read_test(args, labels)
    texts = test["text"].astype(str).tolist()
    y_test = test["label"].map({name: i for i, name in enumerate(labels)}).to_numpy(dtype=np.int64)
    script = serving_dir / "code" / "inference.py"
    if not script.is_file():  # --serving_runtime none: the plain model, served by the script beside this
        script = Path(__file__).with_name("inference.py")
    inference = load_inference_module(script)
    classifier = inference.load_classifier(serving_dir)
    scoring_started = time.time()
    model_report = classification_report(y_test, inference.predict_proba(classifier, texts), labels)
    scoring_seconds = time.time() - scoring_started
    if baseline is None:
        # No lexical head in the model: fit the same TF-IDF + linear model for the comparison.
        y_train = train["label"].map({name: i for i, name in enumerate(labels)}).to_numpy(dtype=np.int64)
        vectorizer, weight, bias = lexical.fit(
            train["text"].tolist(), y_train, len(labels), c=args.lexical_c, min_df=args.lexical_min_df
        )
        baseline = lexical.LexicalHead(vectorizer, weight, bias, (1.0, 1.0))
    baseline_probs = baseline.probabilities(texts)
    baseline_report = classification_report(y_test, baseline_probs, labels)
    evaluation = {
        "data": "test channel",
        "rows": len(texts),
        "runtime": classifier.runtime,
        "model": model_report,
        "baseline": {"name": "TF-IDF word 1-2 grams + logistic regression (lexical.py)", **baseline_report},
        "headlines_per_s": round(len(texts) / max(scoring_seconds, 1e-9), 1),
    }
    (serving_dir / EVALUATION_FILE).write_text(json.dumps(evaluation, indent=2) + "\n", encoding="utf-8")
    meta_path = serving_dir / "textclf_meta.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta["evaluation"] = {
        "rows": len(texts),
        "test_accuracy": model_report["accuracy"],
        "test_macro_f1": model_report["macro_f1"],
        "baseline_test_accuracy": baseline_report["accuracy"],
        "baseline_test_macro_f1": baseline_report["macro_f1"],
    }
    meta_path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    for name, value in meta["evaluation"].items():
        if name != "rows":
            metric(name, value)
    return evaluation


def save_trained(
    run: Trained, lexical_report: tuple[Any, dict[str, Any]] | None, dest: Path
) -> dict[str, Any]:
    """The plain model folder: weights, tokenizer, lexical head, ``textclf_meta.json``."""
    args, tokenizer, dist = run.args, run.tokenizer, run.distributed
    torch.nn.Module.to(run.model, "cpu")
    run.model.save_pretrained(dest)
    # Inference truncates to the trained length unless told otherwise.
    tokenizer.model_max_length = args.max_length
    tokenizer.save_pretrained(dest)
    meta: dict[str, Any] = {
        "max_length": args.max_length,
        # How inference.py cuts longer texts: the way they were cut for training.
        "truncation": args.truncation,
        "base_model": args.base_model,
        "labels": run.labels,
        "runtime": "torch",
        "hyperparameters": hyperparameters_of(args),
        "distributed": {k: dist[k] for k in ("world_size", "effective_batch_size", "rows_per_rank")},
        "warm_started": run.warm_started,
    }
    if lexical_report is not None:
        head, lexical_scores = lexical_report
        head.save(dest)
        meta["lexical_head"] = lexical_scores
    (dest / "textclf_meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return meta


def metrics_report(
    run: Trained, meta: dict[str, Any], lexical_report: tuple[Any, dict[str, Any]] | None, started: float
) -> dict[str, Any]:
    final = dict(run.evaluations[-1]) if run.evaluations else {}
    if lexical_report is not None:
        # The served model is the blend: its validation figures are the headline ones.
        final["transformer_validation_accuracy"] = final.get("validation_accuracy")
        final.update(
            validation_accuracy=lexical_report[1]["blend_accuracy"],
            validation_macro_f1=lexical_report[1]["blend_macro_f1"],
            validation_loss=lexical_report[1]["blend_log_loss"],
        )
    world = run.distributed["world_size"]
    return {
        "validation_accuracy": final.get("validation_accuracy"),
        "validation_macro_f1": final.get("validation_macro_f1"),
        "validation_loss": final.get("validation_loss"),
        "transformer_validation_accuracy": final.get("transformer_validation_accuracy"),
        "lexical_head": meta.get("lexical_head"),
        "evaluations": run.evaluations,
        "train_loss_log": run.train_loss_log,
        "train_time_s": round(run.train_seconds, 2),
        "wall_time_s": round(time.time() - started, 2),
        "train_samples": len(run.train),
        "label_prior_offset": dict(zip(run.labels, run.offset.round(4).tolist(), strict=True)),
        "train_stories": int(run.train["story"].nunique()) if "story" in run.train.columns else None,
        "validation_samples": len(run.valid),
        "steps": run.steps,
        "train_examples_per_s": round(
            run.distributed["steps_this_attempt"]
            * run.args.batch_size
            * world
            / max(run.train_seconds, 1e-9),
            2,
        ),
        "device": run.device,
        "amp_dtype": run.amp_dtype,
        "num_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "distributed": run.distributed,
        "hyperparameters": hyperparameters_of(run.args),
    }


def write_baseline(run: Trained, lexical_report: tuple[Any, dict[str, Any]] | None, dest: Path) -> None:
    """``baseline.json`` in the archive root: the served blend's answers on validation (the
    transformer's alone without a lexical head), the cascade the archive chose, and the sketch
    of the training words (baseline.py)."""
    texts = run.valid["text"].astype(str).tolist()
    probs = run.valid_probs if lexical_report is None else lexical_report[0].combine(run.valid_probs, texts)
    meta = json.loads((dest / "textclf_meta.json").read_text(encoding="utf-8"))
    cascade = meta.get("cascade")
    record = baseline.build(
        labels=run.labels,
        probs=np.asarray(probs),
        true_labels=run.valid["label"].astype(str).tolist(),
        valid_texts=texts,
        train_texts=run.all_train["text"].astype(str),
        cascade_coverage=cascade.get("coverage") if isinstance(cascade, dict) else None,
    )
    baseline.write(dest, record)
    say(
        f"baseline: {record['rows']} validation rows, "
        f"mean top probability {record['mean_top_probability']:.3f}"
    )


def write_outputs(
    run: Trained, lexical_report: tuple[Any, dict[str, Any]] | None, started: float
) -> dict[str, Any]:
    """Model dir = the serving archive (or the plain model with ``--serving_runtime none``);
    output data = the figures; the test channel scored through the archive when given."""
    args = run.args
    serving_dir = Path(args.model_dir)
    serving_dir.mkdir(parents=True, exist_ok=True)
    # The trained files go to a scratch folder first and are then assembled (runtime chosen,
    # gated, code/ added) into the model directory.
    with tempfile.TemporaryDirectory(prefix="textclf-trained-") as scratch:
        trained = serving_dir if args.serving_runtime == "none" else Path(scratch)
        meta = save_trained(run, lexical_report, trained)
        metrics = metrics_report(run, meta, lexical_report, started)
        (trained / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
        plotted = plot_curve(run.evaluations, run.train_loss_log, trained / "training_curve.png")
        if args.serving_runtime != "none":
            package_for_serving(args, trained, serving_dir, run.valid)
    write_baseline(run, lexical_report, serving_dir)
    evaluation = None
    if args.test_dir:
        baseline = lexical_report[0] if lexical_report is not None else None
        evaluation = evaluate_on_test(args, serving_dir, run.all_train, run.labels, baseline)
    if args.output_data_dir:
        # output.tar.gz of the job: the figures without downloading the model.
        out = Path(args.output_data_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
        if evaluation is not None:
            (out / EVALUATION_FILE).write_text(json.dumps(evaluation, indent=2) + "\n", encoding="utf-8")
        if plotted:
            (out / "training_curve.png").write_bytes((serving_dir / "training_curve.png").read_bytes())
    return metrics
