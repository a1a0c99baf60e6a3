"""Fine-tune a Hugging Face encoder to classify news headlines — SageMaker training contract.

Runs unchanged in the Hugging Face PyTorch training DLC (one GPU, mixed precision) and on a
laptop CPU (``textclf train`` starts it as a subprocess). Contract (docs/DESIGN.md):

* hyperparameters are the flags below (SageMaker passes them as ``--name value``);
* data: ``*.parquet`` (columns ``text``, ``label``, optional ``story``) in ``SM_CHANNEL_TRAIN``
  and ``SM_CHANNEL_VALIDATION``; the label set and its order come from ``labels.json`` in the
  train channel — nothing here names a label;
* output: ``SM_MODEL_DIR`` gets the ``save_pretrained`` model and tokenizer (``id2label`` in
  the config), ``textclf_meta.json``, ``metrics.json`` and ``training_curve.png``;
* checkpoints go to ``/opt/ml/checkpoints`` when it exists (SageMaker syncs it to S3 for spot
  training) or ``--checkpoint_dir``; a restarted job resumes from the last one;
* metrics are printed as ``METRIC name=value`` lines for ``MetricDefinitions`` regexes;
* distributed: started by ``torchrun`` (the toolkit's launcher when the job sets
  ``sagemaker_torch_distributed_enabled``; by hand ``torchrun --standalone --nproc_per_node=N``),
  every process trains its shard of each epoch with ``--batch_size`` rows per step, DDP averages
  the gradients (NCCL on GPUs, gloo on CPUs), validation is split over the processes and summed,
  and rank 0 alone fits the lexical head and writes the model, archive, metrics and checkpoints.
  Effective batch = ``batch_size x processes``; the learning rate is used as given.

The script reads top to bottom: arguments, data, model, the loop (``build_loop``/``run_epochs``
over a ``Loop`` state), then what rank 0 leaves behind (``write_outputs``). The loop is our own
rather than ``transformers.Trainer`` because it trains on the logits plus a prior-shift offset,
replays a length-bucketed (seed, epoch) batch order on resume and hands its validation
probabilities to the lexical-head blend; DDP, autocast and GradScaler are torch's.

Only stdlib, torch, transformers (4.x or 5.x), numpy, pandas/pyarrow, tqdm (a transformers
dependency) are imported; matplotlib is used when present.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import math
import os
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    get_linear_schedule_with_warmup,
)


def _load_sibling(name: str) -> ModuleType:
    """Import ``name``.py from this script's folder (the source bundle ships it beside train.py)."""
    path = Path(__file__).resolve().with_name(f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"textclf_train_{name}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


lexical = _load_sibling("lexical")
hyperparameters = _load_sibling("hyperparameters")

CHECKPOINT_FILE = "checkpoint.pt"
SAGEMAKER_CHECKPOINT_DIR = "/opt/ml/checkpoints"
# Flags that describe where things are, not how the model is trained: left out of the
# checkpoint fingerprint and of textclf_meta.json's hyperparameters.
PATH_FLAGS = ("model_dir", "train_dir", "validation_dir", "test_dir", "output_data_dir", "checkpoint_dir")
EVALUATION_FILE = "evaluation.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    # Types, defaults, bounds and help: hyperparameters.py, the one source (the API reads it too).
    for spec in hyperparameters.HYPERPARAMETERS:
        p.add_argument(
            f"--{spec.name}", type=spec.type, default=spec.default, choices=spec.choices, help=spec.help
        )
    p.add_argument("--model_dir", default=os.environ.get("SM_MODEL_DIR", "model"))
    p.add_argument("--train_dir", default=os.environ.get("SM_CHANNEL_TRAIN", "data/train"))
    p.add_argument("--validation_dir", default=os.environ.get("SM_CHANNEL_VALIDATION", "data/validation"))
    p.add_argument("--output_data_dir", default=os.environ.get("SM_OUTPUT_DATA_DIR", ""))
    # Optional channel: when present the job scores the archive it wrote on these STORY-disjoint rows.
    p.add_argument("--test_dir", default=os.environ.get("SM_CHANNEL_TEST", ""))
    p.add_argument("--checkpoint_dir", default="")
    # parse_known_args: a job started with an extra hyperparameter (e.g. a newer Lambda)
    # should still train; the unknown names are printed so a typo is visible in the log.
    args, unknown = p.parse_known_args(argv)
    if unknown:
        say(f"ignoring unknown arguments {unknown}")
    if not args.checkpoint_dir and Path(SAGEMAKER_CHECKPOINT_DIR).is_dir():
        args.checkpoint_dir = SAGEMAKER_CHECKPOINT_DIR
    problems = hyperparameters.problems(vars(args))
    if problems:
        p.error("; ".join(problems))
    return args


def metric(name: str, value: float) -> None:
    """One line per metric, matched by SageMaker's regex ``METRIC <name>=([0-9.eE+-]+)``; rank 0's
    only (every rank holds the same figures)."""
    if not is_main_process():
        return
    line = f"METRIC {name}={value:.6g}"
    if sys.stderr.isatty():
        tqdm.write(line, file=sys.stdout)  # keeps the live progress bar intact
    else:
        print(line)  # logs (CloudWatch): a plain line, no bar redraw
    sys.stdout.flush()


def read_channel(path: str) -> pd.DataFrame:
    files = sorted(Path(path).rglob("*.parquet"))
    if not files:
        sys.exit(f"train.py: no .parquet files under {path}")
    frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    missing = {"text", "label"} - set(frame.columns)
    if missing:
        sys.exit(f"train.py: {path} lacks columns {sorted(missing)}")
    return frame


def read_labels(train_dir: str) -> list[str]:
    # labels.json sits beside the parquet file (or one level up when the channel is the
    # dataset root); its order is the class-id order.
    for candidate in (Path(train_dir) / "labels.json", Path(train_dir).parent / "labels.json"):
        if candidate.is_file():
            labels = json.loads(candidate.read_text(encoding="utf-8"))
            if not (isinstance(labels, list) and labels and all(isinstance(x, str) for x in labels)):
                sys.exit(f"train.py: {candidate} must be a non-empty JSON list of label names")
            return labels
    sys.exit(f"train.py: no labels.json in {train_dir}")


def sample_across_stories(frame: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """Up to ``n`` rows, deterministic by seed, spread over as many stories as possible.

    Headlines of one story are near-duplicates, so a plain random sample spends most of its
    budget re-learning the big stories. Round-robin instead: a random headline of every story
    (stories in random order), then a second one of every story that has one, and so on.
    """
    if n <= 0 or n >= len(frame):
        return frame.reset_index(drop=True)
    rng = np.random.default_rng(seed)
    shuffled = frame.iloc[rng.permutation(len(frame))]
    if "story" not in shuffled.columns:
        return shuffled.iloc[:n].reset_index(drop=True)
    rank = shuffled.groupby("story", sort=False).cumcount().to_numpy()
    # Stories are numbered in order of first appearance in the shuffled frame = random order.
    story_order = pd.factorize(shuffled["story"])[0]
    take = np.lexsort((story_order, rank))[:n]
    return shuffled.iloc[np.sort(take)].reset_index(drop=True)


def prior_offset(full_prior: pd.Series, sample_labels: pd.Series, label2id: dict[str, int]) -> np.ndarray:
    """Per-label ``log(p_sample / p_all)``, added to the logits in the training loss.

    Round-robin sampling over-represents labels with many small stories. Training on
    ``logits + offset`` makes the raw logits (what is served) follow the label mix of all
    training rows, which is the mix test headlines come from (prior-shift correction).
    """
    sample_prior = sample_labels.value_counts(normalize=True)
    offset = np.zeros(len(label2id))
    for name, i in label2id.items():
        if sample_prior.get(name, 0) > 0 and full_prior.get(name, 0) > 0:
            offset[i] = math.log(sample_prior[name] / full_prior[name])
    return offset


def make_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator | None) -> list[np.ndarray]:
    """Length-bucketed batches: little padding, yet (with ``rng``) random batch order.

    Rows are shuffled, cut into chunks of 50 batches, sorted by length inside each chunk and
    batched; the batch order is then shuffled. Without ``rng`` (evaluation) everything is
    simply sorted by length.
    """
    n = len(lengths)
    if rng is None:
        order = np.argsort(lengths, kind="stable")
        return [order[i : i + batch_size] for i in range(0, n, batch_size)]
    idx = rng.permutation(n)
    chunk = batch_size * 50
    batches: list[np.ndarray] = []
    for start in range(0, n, chunk):
        part = idx[start : start + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def collate(ids: list[list[int]], rows: np.ndarray, pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(ids[i]) for i in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for j, i in enumerate(rows):
        input_ids[j, : len(ids[i])] = torch.tensor(ids[i])
        mask[j, : len(ids[i])] = 1
    return {"input_ids": input_ids, "attention_mask": mask}


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean F1 over the labels present in either array (sklearn's ``average="macro"``)."""
    scores = []
    for k in np.union1d(y_true, y_pred):
        tp = np.sum((y_pred == k) & (y_true == k))
        fp = np.sum((y_pred == k) & (y_true != k))
        fn = np.sum((y_pred != k) & (y_true == k))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))


def score_rows(
    model: torch.nn.Module,
    ids: list[list[int]],
    labels: np.ndarray,
    rows: np.ndarray,
    *,
    batch_size: int,
    pad_id: int,
    rt: Runtime,
    probs_out: np.ndarray,
) -> float:
    """Class probabilities of ``rows`` into ``probs_out[rows]``; returns their summed cross-entropy."""
    model.eval()
    lengths = np.array([len(ids[i]) for i in rows])
    loss_sum = 0.0
    with torch.inference_mode():
        for part in tqdm(
            make_batches(lengths, batch_size, None),
            desc="validate",
            leave=False,
            disable=not (sys.stderr.isatty() and rt.cluster.is_main),
        ):
            chunk = rows[part]
            batch = {k: v.to(rt.device) for k, v in collate(ids, chunk, pad_id).items()}
            target = torch.as_tensor(labels[chunk], device=rt.device)
            with torch.autocast(rt.device.type, dtype=rt.amp_dtype, enabled=rt.amp_dtype is not None):
                logits = model(**batch).logits.float()
            loss_sum += float(torch.nn.functional.cross_entropy(logits, target, reduction="sum"))
            probs_out[chunk] = torch.softmax(logits, dim=-1).cpu().numpy()
    model.train()
    return loss_sum


def fit_lexical_head(
    args: argparse.Namespace,
    train: pd.DataFrame,
    valid: pd.DataFrame,
    valid_probs: np.ndarray,
    label2id: dict[str, int],
) -> tuple[Any, dict[str, Any]]:
    """Fit the lexical head on every training row and choose its blend weight on validation."""
    started = time.time()
    print(f"train.py: fitting the lexical head on {len(train)} training rows", flush=True)
    y_train = train["label"].map(label2id).to_numpy(dtype=np.int64)
    y_valid = valid["label"].map(label2id).to_numpy(dtype=np.int64)
    vectorizer, weight, bias = lexical.fit(
        train["text"].tolist(), y_train, len(label2id), c=args.lexical_c, min_df=args.lexical_min_df
    )
    head = lexical.LexicalHead(vectorizer, weight, bias, (1.0, 1.0))
    valid_logits = head.logits(valid["text"].tolist())
    w, t, scores = lexical.choose_blend(valid_probs, valid_logits, y_valid)
    head.blend_weight, head.temperature = w, t
    blended = lexical.blend(valid_probs, valid_logits, w, t).argmax(1)
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


def encoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """Transformer blocks, bottom first (BERT ``encoder.layer``, DistilBERT ``transformer.layer``)."""
    base = getattr(model, "base_model", model)
    for path in ("encoder.layer", "transformer.layer", "encoder.layers", "layers"):
        node: Any = base
        for part in path.split("."):
            node = getattr(node, part, None)
        if isinstance(node, torch.nn.ModuleList):
            return list(node)
    return []


def make_grad_scaler() -> Any:
    # torch >= 2.3 has torch.amp.GradScaler("cuda"); older DLC images only torch.cuda.amp.
    if hasattr(torch, "amp") and hasattr(torch.amp, "GradScaler"):
        return torch.amp.GradScaler("cuda")
    return torch.cuda.amp.GradScaler()


def fingerprint(args: argparse.Namespace, n_train: int, labels: list[str], world_size: int) -> dict[str, Any]:
    """What must match for a checkpoint to be resumed (a reused checkpoint URI must not mix runs;
    another process count cuts epochs into other steps)."""
    return {
        "hyperparameters": hyperparameters_of(args),
        "train_rows": n_train,
        "labels": labels,
        "world_size": world_size,
    }


def read_checkpoint(path: Path) -> dict[str, Any] | None:
    """A spot checkpoint, loaded as data only (``weights_only``): the checkpoint prefix is written
    by training jobs, and a pickle could run code before its fingerprint is even compared. One that
    is not plain tensors and containers is ignored and training starts over."""
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for a forbidden global, EOFError/RuntimeError when cut
        say(f"ignoring checkpoint {path}: not a plain checkpoint ({type(exc).__name__})")
        return None
    return state if isinstance(state, dict) else None


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    path.mkdir(parents=True, exist_ok=True)
    tmp = path / (CHECKPOINT_FILE + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path / CHECKPOINT_FILE)  # atomic: a spot interruption never leaves half a file


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

    test = read_channel(args.test_dir)
    unknown = set(test["label"]) - set(labels)
    if unknown:
        sys.exit(f"train.py: test has labels not in labels.json: {sorted(unknown)}")
    if 0 < args.max_test_samples < len(test):
        test = test.sample(n=args.max_test_samples, random_state=args.seed).reset_index(drop=True)
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


# -- where this process runs -----------------------------------------------------------------


@dataclass(frozen=True)
class Cluster:
    """This process's place in the job. ``torchrun`` (the SageMaker toolkit's launcher when the
    job has ``sagemaker_torch_distributed_enabled``) sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``;
    a plain ``python train.py`` is rank 0 of 1 and never touches torch.distributed."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0


@dataclass(frozen=True)
class Runtime:
    cluster: Cluster
    device: torch.device
    amp_dtype: torch.dtype | None


def is_main_process() -> bool:
    # Read from torchrun's variables, so helpers need no cluster argument to stay quiet off rank 0.
    return int(os.environ.get("RANK", "0")) == 0


def say(line: str) -> None:
    """A log line from rank 0 only: N ranks would print every line N times."""
    if is_main_process():
        print(f"train.py: {line}", flush=True)


def join_cluster() -> Cluster:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Cluster()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    # NCCL between GPUs; gloo is the CPU backend (a laptop, the local stack, CPU instances).
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    torch.distributed.init_process_group(backend=backend)
    return Cluster(rank=rank, world_size=world_size, local_rank=local_rank, backend=backend)


def release_ddp(loop: Loop) -> None:
    """Drop the DDP wrapper while every rank is still in the group.

    Its reducer holds the gloo process group; freed at interpreter exit, the group's destructor
    joins gloo's worker thread while holding the GIL, and that thread may still need the GIL to
    free the tensors of the last collective: the process never exits. A barrier (the worker
    has then finished every earlier collective) and an explicit release avoid it.
    """
    if loop.net is loop.model:
        return
    torch.distributed.barrier()
    loop.net = loop.model
    gc.collect()


def leave_cluster(cluster: Cluster) -> None:
    if cluster.backend is not None and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def make_runtime(cluster: Cluster) -> Runtime:
    device = torch.device("cpu")
    amp_dtype: torch.dtype | None = None
    if torch.cuda.is_available():
        device = torch.device("cuda", cluster.local_rank)
        # bf16 needs no loss scaling (Ampere and newer); fp16 + GradScaler on older GPUs.
        amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return Runtime(cluster=cluster, device=device, amp_dtype=amp_dtype)


def sum_over_ranks(cluster: Cluster, values: np.ndarray) -> np.ndarray:
    """Element-wise sum of every rank's ``values`` (the values themselves on one process)."""
    if cluster.world_size == 1:
        return values
    tensor = torch.as_tensor(values, dtype=torch.float64)
    if cluster.backend == "nccl":
        tensor = tensor.cuda()
    torch.distributed.all_reduce(tensor)
    return tensor.cpu().numpy()


def gather_from_ranks(cluster: Cluster, value: Any) -> list[Any]:
    if cluster.world_size == 1:
        return [value]
    gathered: list[Any] = [None] * cluster.world_size
    torch.distributed.all_gather_object(gathered, value)
    return gathered


def shard(batches: list[np.ndarray], cluster: Cluster) -> list[np.ndarray]:
    """This rank's batches of an epoch: every ``world_size``-th one, starting at its rank.

    Every rank builds the same epoch order from (seed, epoch), so the shards are disjoint and
    together cover the epoch; the last ``len % world_size`` batches are dropped so that all ranks
    take the same number of steps (DDP's gradient all-reduce needs every rank at every step).
    """
    usable = len(batches) // cluster.world_size * cluster.world_size
    return batches[cluster.rank : usable : cluster.world_size]


# -- data -----------------------------------------------------------------------------------


@dataclass
class Data:
    """The channels, sampled and tokenised once; rows are addressed by position."""

    labels: list[str]
    all_train: pd.DataFrame  # every training row: the lexical head and the label prior use them
    train: pd.DataFrame  # the transformer's rows (all, or the --max_train_samples sample)
    valid: pd.DataFrame
    train_ids: list[list[int]]
    valid_ids: list[list[int]]
    y_train: np.ndarray
    y_valid: np.ndarray
    offset: np.ndarray  # prior-shift correction added to the logits in the loss

    @property
    def label2id(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.labels)}


def load_data(args: argparse.Namespace, tokenizer: Any) -> Data:
    labels = read_labels(args.train_dir)
    label2id = {name: i for i, name in enumerate(labels)}
    train = read_channel(args.train_dir)
    valid = read_channel(args.validation_dir)
    for name, frame in (("train", train), ("validation", valid)):
        unknown = set(frame["label"]) - set(labels)
        if unknown:
            sys.exit(f"train.py: {name} has labels not in labels.json: {sorted(unknown)}")
    full_prior = train["label"].value_counts(normalize=True)
    all_train = train
    if args.sampling == "uniform" and 0 < args.max_train_samples < len(train):
        train = train.sample(n=args.max_train_samples, random_state=args.seed).reset_index(drop=True)
    else:
        train = sample_across_stories(train, args.max_train_samples, args.seed)
    if 0 < args.max_eval_samples < len(valid):
        # Uniform (not per-story) sample: validation accuracy should estimate per-headline accuracy.
        valid = valid.sample(n=args.max_eval_samples, random_state=args.seed).reset_index(drop=True)
    stories = train["story"].nunique() if "story" in train else "?"
    say(f"{len(train)} train rows ({stories} stories), {len(valid)} validation rows, labels={labels}")
    # Tokenise once; batches are padded on the fly to their longest row (dynamic padding).
    tokenize = lambda frame: tokenizer(  # noqa: E731 - two calls, one set of options
        frame["text"].tolist(), truncation=True, max_length=args.max_length
    )["input_ids"]
    offset = (
        prior_offset(full_prior, train["label"], label2id) if args.prior_correction else np.zeros(len(labels))
    )
    return Data(
        labels=labels,
        all_train=all_train,
        train=train,
        valid=valid,
        train_ids=tokenize(train),
        valid_ids=tokenize(valid),
        y_train=train["label"].map(label2id).to_numpy(dtype=np.int64),
        y_valid=valid["label"].map(label2id).to_numpy(dtype=np.int64),
        offset=offset,
    )


# -- model and optimiser ----------------------------------------------------------------------


def load_model(args: argparse.Namespace, labels: list[str]) -> PreTrainedModel:
    model = AutoModelForSequenceClassification.from_pretrained(
        args.base_model,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
        ignore_mismatched_sizes=True,  # a base model with another head (or label count) is fine
        use_safetensors=True,  # weights as data: a pickled .bin could run code while loading
    )
    freeze(model, args)
    return model


def freeze(model: PreTrainedModel, args: argparse.Namespace) -> None:
    if args.freeze_layers > 0:
        # Backpropagation stops at the lowest trainable layer, so freezing the bottom layers
        # (and everything under them) shortens every step on a CPU; the top layers adapt.
        layers = encoder_layers(model)
        n_frozen = min(args.freeze_layers, max(len(layers) - 1, 0))  # the top layer always trains
        if n_frozen < args.freeze_layers:
            say(f"the model has {len(layers)} layers; freezing {n_frozen}")
        base: Any = model.base_model
        frozen = [getattr(base, "embeddings", model.get_input_embeddings())]
        for module in frozen + layers[:n_frozen]:
            for param in module.parameters():
                param.requires_grad = False
    elif args.freeze_embeddings:
        # The word-embedding matrix is half of MiniLM's parameters; a short fine-tune gains
        # little from moving it and its gradient and optimiser update cost time on a CPU.
        for param in model.get_input_embeddings().parameters():
            param.requires_grad = False


def make_optimizer(model: torch.nn.Module, args: argparse.Namespace) -> torch.optim.Optimizer:
    # No weight decay on biases and layer norms (BERT's "LayerNorm", DistilBERT's "*_layer_norm").
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    no_decay = [p for n, p in trainable if n.endswith("bias") or "norm" in n.lower()]
    decay = [p for n, p in trainable if not (n.endswith("bias") or "norm" in n.lower())]
    groups = [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    try:
        # The fused kernel makes the CPU optimiser step ~10x cheaper (torch >= 2.4; CUDA earlier).
        return torch.optim.AdamW(groups, lr=args.learning_rate, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(groups, lr=args.learning_rate)


# -- the training loop ----------------------------------------------------------------------


@dataclass
class Progress:
    """What advances step by step and what a checkpoint restores (``global_step`` counts this
    rank's optimiser steps; every rank takes the same number)."""

    global_step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    log_history: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: float = 0.0
    # Not checkpointed: this attempt's running loss and the rows this rank trained, per epoch.
    running_loss: float = 0.0
    running_steps: int = 0
    valid_scored: bool = False
    rows_by_epoch: dict[int, list[np.ndarray]] = field(default_factory=dict)


@dataclass
class Loop:
    args: argparse.Namespace
    rt: Runtime
    data: Data
    model: PreTrainedModel  # the plain module: what is saved and evaluated
    net: torch.nn.Module  # what is stepped: the model, or DDP around it
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: Any
    pad_id: int
    steps_per_epoch: int
    total_steps: int
    eval_every: int
    fingerprint: dict[str, Any]
    checkpoint_dir: Path | None
    valid_probs: np.ndarray
    logit_offset: torch.Tensor  # data.offset on the device, made once (added to every step's logits)
    progress: Progress = field(default_factory=Progress)

    @property
    def epoch(self) -> float:
        return self.progress.global_step / self.steps_per_epoch


def build_loop(args: argparse.Namespace, rt: Runtime, data: Data, pad_id: int) -> Loop:
    model = load_model(args, data.labels)
    # Module.to itself: PreTrainedModel.to's decorator hides its signature from type checkers.
    torch.nn.Module.to(model, rt.device)
    optimizer = make_optimizer(model, args)
    n_batches = len(make_batches(np.ones(len(data.train_ids)), args.batch_size, np.random.default_rng(0)))
    steps_per_epoch = n_batches // rt.cluster.world_size
    if steps_per_epoch == 0:
        sys.exit(
            f"train.py: {len(data.train_ids)} rows make {n_batches} batches of {args.batch_size}, fewer "
            f"than the {rt.cluster.world_size} processes; lower --batch_size or use fewer processes"
        )
    total_steps = max(1, math.ceil(steps_per_epoch * args.epochs))
    scheduler = get_linear_schedule_with_warmup(optimizer, int(args.warmup_ratio * total_steps), total_steps)
    loop = Loop(
        args=args,
        rt=rt,
        data=data,
        model=model,
        net=model,
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=make_grad_scaler() if rt.amp_dtype == torch.float16 else None,
        pad_id=pad_id,
        steps_per_epoch=steps_per_epoch,
        total_steps=total_steps,
        eval_every=max(1, math.ceil(steps_per_epoch / args.evals_per_epoch)),
        fingerprint=fingerprint(args, len(data.train), data.labels, rt.cluster.world_size),
        checkpoint_dir=Path(args.checkpoint_dir) if args.checkpoint_dir else None,
        valid_probs=np.zeros((len(data.valid), len(data.labels))),
        logit_offset=torch.as_tensor(data.offset, dtype=torch.float32, device=rt.device),
    )
    if rt.cluster.rank > 0:
        # Dropout differs per rank (one seed for all would mask the same units on every shard).
        # Rank 0 keeps the generator a single process has, so one process trains exactly the
        # model the script trained before it learned DDP; a resumed run restores its generator.
        torch.manual_seed(args.seed + rt.cluster.rank)
    resume(loop)
    if rt.cluster.world_size > 1:
        # Wrapped after the resume: DDP broadcasts rank 0's weights to every rank when it is built,
        # then averages the gradients of every step across ranks.
        device_ids = [rt.device.index] if rt.device.type == "cuda" else None
        loop.net = torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
    return loop


def resume(loop: Loop) -> None:
    """Restore a spot checkpoint of this very run: the batch order of every epoch is a pure
    function of (seed, epoch), so a restarted job replays it and skips what was done."""
    if loop.checkpoint_dir is None:
        return
    path = loop.checkpoint_dir / CHECKPOINT_FILE
    state = read_checkpoint(path)
    if state is None:
        return
    if state.get("fingerprint") != loop.fingerprint:
        say(f"ignoring {path}: it belongs to another run")
        return
    loop.model.load_state_dict(state["model"])
    loop.optimizer.load_state_dict(state["optimizer"])
    loop.scheduler.load_state_dict(state["scheduler"])
    if loop.scaler is not None and state.get("scaler"):
        loop.scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["torch_rng"])
    if loop.rt.cluster.rank > 0:
        # Only rank 0's generator is checkpointed; the others get their own stream back.
        torch.manual_seed(loop.args.seed + loop.rt.cluster.rank + 7919 * state["global_step"])
    loop.progress = Progress(
        global_step=state["global_step"],
        history=state["history"],
        log_history=state["log_history"],
        train_seconds=state["train_seconds"],
    )
    say(f"resumed from {path} at step {loop.progress.global_step}")


def checkpoint(loop: Loop, segment_start: float) -> None:
    # Rank 0's state is every rank's (DDP keeps weights and optimiser state identical).
    if loop.checkpoint_dir is None or not loop.rt.cluster.is_main:
        return
    p = loop.progress
    save_checkpoint(
        loop.checkpoint_dir,
        {
            "fingerprint": loop.fingerprint,
            "model": loop.model.state_dict(),
            "optimizer": loop.optimizer.state_dict(),
            "scheduler": loop.scheduler.state_dict(),
            "scaler": loop.scaler.state_dict() if loop.scaler is not None else None,
            "torch_rng": torch.get_rng_state(),
            "global_step": p.global_step,
            "history": p.history,
            "log_history": p.log_history,
            "train_seconds": p.train_seconds + (time.time() - segment_start),
        },
    )


def train_step(loop: Loop, rows: np.ndarray) -> float:
    rt, data = loop.rt, loop.data
    batch = {k: v.to(rt.device) for k, v in collate(data.train_ids, rows, loop.pad_id).items()}
    target = torch.as_tensor(data.y_train[rows], device=rt.device)
    offset = loop.logit_offset
    with torch.autocast(rt.device.type, dtype=rt.amp_dtype, enabled=rt.amp_dtype is not None):
        logits = loop.net(**batch).logits
    loss = torch.nn.functional.cross_entropy(logits.float() + offset, target)
    loop.optimizer.zero_grad(set_to_none=True)
    if loop.scaler is not None:
        loop.scaler.scale(loss).backward()
        loop.scaler.unscale_(loop.optimizer)
        torch.nn.utils.clip_grad_norm_(loop.model.parameters(), 1.0)
        loop.scaler.step(loop.optimizer)
        loop.scaler.update()
    else:
        loss.backward()  # under DDP the gradients arrive here averaged over every rank
        torch.nn.utils.clip_grad_norm_(loop.model.parameters(), 1.0)
        loop.optimizer.step()
    loop.scheduler.step()
    return float(loss.item())


def validate(loop: Loop) -> dict[str, Any]:
    """One validation pass, split over the ranks and summed: every rank ends with the whole
    split's class probabilities (kept for the lexical-head blend) and the same figures."""
    data, cluster = loop.data, loop.rt.cluster
    n, k = len(data.valid_ids), len(data.labels)
    probs = np.zeros((n, k))
    mine = np.arange(cluster.rank, n, cluster.world_size)
    loss_sum = score_rows(
        loop.model,
        data.valid_ids,
        data.y_valid,
        mine,
        batch_size=loop.args.batch_size * 2,
        pad_id=loop.pad_id,
        rt=loop.rt,
        probs_out=probs,
    )
    # Each row was scored by exactly one rank and is zero elsewhere: the sum is every row once.
    total = sum_over_ranks(cluster, np.append(probs.ravel(), loss_sum))
    loop.valid_probs[:] = total[:-1].reshape(n, k)
    preds = loop.valid_probs.argmax(1)
    loop.progress.valid_scored = True
    return {
        "step": loop.progress.global_step,
        "epoch": loop.epoch,
        "validation_loss": float(total[-1]) / n,
        "validation_accuracy": float(np.mean(preds == data.y_valid)),
        "validation_macro_f1": macro_f1(data.y_valid, preds),
    }


def log_train_loss(loop: Loop) -> None:
    p = loop.progress
    loss_sum, steps = sum_over_ranks(loop.rt.cluster, np.array([p.running_loss, p.running_steps]))
    loss = float(loss_sum / steps)  # a Python float: checkpoints hold plain types only (weights_only)
    p.log_history.append({"step": p.global_step, "epoch": loop.epoch, "train_loss": loss})
    metric("train_loss", loss)
    p.running_loss, p.running_steps = 0.0, 0


def run_epochs(loop: Loop) -> None:
    args, p, cluster = loop.args, loop.progress, loop.rt.cluster
    lengths = np.array([len(x) for x in loop.data.train_ids])
    tty = sys.stderr.isatty()
    bar = tqdm(
        total=loop.total_steps,
        initial=p.global_step,
        unit="step",
        desc="train",
        mininterval=1 if tty else 30,
        disable=not cluster.is_main,
    )
    loop.net.train()
    segment_start = time.time()
    while p.global_step < loop.total_steps:
        epoch = p.global_step // loop.steps_per_epoch
        batches = shard(
            make_batches(lengths, args.batch_size, np.random.default_rng(args.seed + epoch)), cluster
        )
        for step in range(p.global_step - epoch * loop.steps_per_epoch, loop.steps_per_epoch):
            if p.global_step >= loop.total_steps:
                break
            p.running_loss += train_step(loop, batches[step])
            p.rows_by_epoch.setdefault(epoch, []).append(batches[step])
            p.global_step += 1
            p.running_steps += 1
            bar.update(1)
            bar.set_postfix(
                loss=f"{p.running_loss / p.running_steps:.4f}", epoch=f"{loop.epoch:.2f}", refresh=False
            )
            done_with_epoch = step == loop.steps_per_epoch - 1 or p.global_step == loop.total_steps
            evaluate_now = (step + 1) % loop.eval_every == 0 or done_with_epoch
            # The running training loss every logging_steps and before every evaluation, so each
            # validation point has a training point beside it.
            if p.global_step % args.logging_steps == 0 or (evaluate_now and p.running_steps):
                log_train_loss(loop)
            if evaluate_now:
                record = validate(loop)
                p.history.append(record)
                for name in ("epoch", "validation_loss", "validation_accuracy", "validation_macro_f1"):
                    metric(name, record[name])
                checkpoint(loop, segment_start)
            elif args.save_steps and p.global_step % args.save_steps == 0:
                checkpoint(loop, segment_start)
    bar.close()
    p.train_seconds += time.time() - segment_start
    if not p.valid_scored:
        # Resumed after the last evaluation (a spot restart): the blend needs this model's
        # validation probabilities, which the checkpoint does not hold.
        record = validate(loop)
        if not p.history:
            p.history.append(record)


def distribution_report(loop: Loop) -> dict[str, Any]:
    """Who trained what, from the rows each rank really stepped on (gathered from every rank)."""
    cluster = loop.rt.cluster
    mine = {e: np.unique(np.concatenate(parts)) for e, parts in loop.progress.rows_by_epoch.items()}
    every = gather_from_ranks(cluster, {e: rows.tolist() for e, rows in mine.items()})
    visits = gather_from_ranks(
        cluster, sum(len(b) for parts in loop.progress.rows_by_epoch.values() for b in parts)
    )
    shared = 0
    for epoch in mine:
        seen: set[int] = set()
        for rank_rows in every:
            rows = set(rank_rows.get(epoch, []))
            shared += len(seen & rows)
            seen |= rows
    return {
        "world_size": cluster.world_size,
        "backend": cluster.backend,
        "per_device_batch_size": loop.args.batch_size,
        "effective_batch_size": loop.args.batch_size * cluster.world_size,
        "steps_per_epoch": loop.steps_per_epoch,
        # Row visits of this attempt (a resumed job counts from its restart).
        "rows_per_rank": [int(v) for v in visits],
        "rows_trained_by_two_ranks_in_one_epoch": shared,
    }


# -- what the job leaves behind (rank 0) ------------------------------------------------------


def save_trained(
    loop: Loop,
    tokenizer: Any,
    lexical_report: tuple[Any, dict[str, Any]] | None,
    dest: Path,
    dist: dict[str, Any],
) -> dict[str, Any]:
    """The plain model folder: weights, tokenizer, lexical head, ``textclf_meta.json``."""
    args = loop.args
    torch.nn.Module.to(loop.model, "cpu")
    loop.model.save_pretrained(dest)
    # Inference truncates to the trained length unless told otherwise.
    tokenizer.model_max_length = args.max_length
    tokenizer.save_pretrained(dest)
    meta: dict[str, Any] = {
        "max_length": args.max_length,
        "base_model": args.base_model,
        "labels": loop.data.labels,
        "runtime": "torch",
        "hyperparameters": hyperparameters_of(args),
        "distributed": {k: dist[k] for k in ("world_size", "effective_batch_size", "rows_per_rank")},
    }
    if lexical_report is not None:
        head, lexical_scores = lexical_report
        head.save(dest)
        meta["lexical_head"] = lexical_scores
    (dest / "textclf_meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return meta


def hyperparameters_of(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in vars(args).items() if k not in PATH_FLAGS}


def metrics_report(
    loop: Loop,
    meta: dict[str, Any],
    lexical_report: tuple[Any, dict[str, Any]] | None,
    dist: dict[str, Any],
    started: float,
) -> dict[str, Any]:
    p, data = loop.progress, loop.data
    final = dict(p.history[-1]) if p.history else {}
    if lexical_report is not None:
        # The served model is the blend: its validation figures are the headline ones.
        final["transformer_validation_accuracy"] = final.get("validation_accuracy")
        final.update(
            validation_accuracy=lexical_report[1]["blend_accuracy"],
            validation_macro_f1=lexical_report[1]["blend_macro_f1"],
            validation_loss=lexical_report[1]["blend_log_loss"],
        )
    world = loop.rt.cluster.world_size
    return {
        "validation_accuracy": final.get("validation_accuracy"),
        "validation_macro_f1": final.get("validation_macro_f1"),
        "validation_loss": final.get("validation_loss"),
        "transformer_validation_accuracy": final.get("transformer_validation_accuracy"),
        "lexical_head": meta.get("lexical_head"),
        "evaluations": p.history,
        "train_loss_log": p.log_history,
        "train_time_s": round(p.train_seconds, 2),
        "wall_time_s": round(time.time() - started, 2),
        "train_samples": len(data.train),
        "label_prior_offset": dict(zip(data.labels, data.offset.round(4).tolist(), strict=True)),
        "train_stories": int(data.train["story"].nunique()) if "story" in data.train.columns else None,
        "validation_samples": len(data.valid),
        "steps": p.global_step,
        "train_examples_per_s": round(
            p.global_step * loop.args.batch_size * world / max(p.train_seconds, 1e-9), 2
        ),
        "device": str(loop.rt.device),
        "amp_dtype": str(loop.rt.amp_dtype) if loop.rt.amp_dtype else None,
        "num_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "distributed": dist,
        "hyperparameters": hyperparameters_of(loop.args),
    }


def write_outputs(
    loop: Loop,
    tokenizer: Any,
    lexical_report: tuple[Any, dict[str, Any]] | None,
    dist: dict[str, Any],
    started: float,
) -> dict[str, Any]:
    """Model dir = the serving archive (or the plain model with ``--serving_runtime none``);
    output data = the figures; the test channel scored through the archive when given."""
    args = loop.args
    serving_dir = Path(args.model_dir)
    serving_dir.mkdir(parents=True, exist_ok=True)
    # The trained files go to a scratch folder first and are then assembled (runtime chosen,
    # gated, code/ added) into the model directory.
    with tempfile.TemporaryDirectory(prefix="textclf-trained-") as scratch:
        trained = serving_dir if args.serving_runtime == "none" else Path(scratch)
        meta = save_trained(loop, tokenizer, lexical_report, trained, dist)
        metrics = metrics_report(loop, meta, lexical_report, dist, started)
        (trained / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
        plotted = plot_curve(loop.progress.history, loop.progress.log_history, trained / "training_curve.png")
        if args.serving_runtime != "none":
            package_for_serving(args, trained, serving_dir, loop.data.valid)
    evaluation = None
    if args.test_dir:
        baseline = lexical_report[0] if lexical_report is not None else None
        evaluation = evaluate_on_test(args, serving_dir, loop.data.all_train, loop.data.labels, baseline)
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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.time()
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    if args.num_threads > 0:
        torch.set_num_threads(args.num_threads)
    cluster = join_cluster()
    rt = make_runtime(cluster)
    say(
        f"device={rt.device} amp={rt.amp_dtype} threads={torch.get_num_threads()} torch={torch.__version__} "
        f"base_model={args.base_model} processes={cluster.world_size} backend={cluster.backend}"
    )
    try:
        tokenizer = AutoTokenizer.from_pretrained(args.base_model)
        data = load_data(args, tokenizer)
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        loop = build_loop(args, rt, data, pad_id)
        run_epochs(loop)
        dist = distribution_report(loop)
        release_ddp(loop)
    finally:
        # Past this point only rank 0 works (lexical head, archive, test scoring): no collective
        # call is left, so the other ranks leave now instead of waiting on a timeout.
        leave_cluster(cluster)
    if not cluster.is_main:
        return 0
    lexical_report = (
        fit_lexical_head(args, data.all_train, data.valid, loop.valid_probs, data.label2id)
        if args.lexical_head
        else None
    )
    metrics = write_outputs(loop, tokenizer, lexical_report, dist, started)
    say(
        f"done in {loop.progress.train_seconds:.0f}s training ({time.time() - started:.0f}s total); "
        f"validation accuracy {metrics.get('validation_accuracy') or float('nan'):.4f}; "
        f"model in {args.model_dir}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
