"""The ``transformers.Trainer`` as the training job uses it (shipped beside ``train.py``).

What the library does not do by itself: the prior-shift offset in the training loss, a batch
order that is a function of (seed, epoch) so a resumed job replays it, the evaluation schedule
(``evals_per_epoch``, the last at each epoch's end), ``METRIC`` lines for SageMaker's metric
regexes, checkpoints that are resumed only by the run that wrote them and only when they are plain
data, and the report of which rank trained which rows.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import shutil
from pathlib import Path
from typing import Any

import job_outputs
import numpy as np
import pandas as pd
import torch
import truncation
from job_outputs import metric, say
from transformers import EvalPrediction, Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_pt_utils import LengthGroupedSampler, safe_globals
from transformers.trainer_utils import get_last_checkpoint

#: Beside the checkpoints: which run wrote them (a reused checkpoint URI must not mix runs).
FINGERPRINT_FILE = "textclf_run.json"


# -- what the Trainer is given ------------------------------------------------------------------


class Rows(torch.utils.data.Dataset):
    """Tokenised rows; ``row`` is the position in the frame (which rank trained what)."""

    def __init__(self, ids: list[list[int]], labels: np.ndarray, rows: np.ndarray) -> None:
        self.ids, self.labels, self.rows = ids, labels, rows

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"input_ids": self.ids[i], "labels": int(self.labels[i]), "row": int(self.rows[i])}


def tokenised(frame: pd.DataFrame, tokenizer: Any, args: argparse.Namespace, labels: list[str]) -> Rows:
    # The cut the served model makes too (inference.py calls the same encode).
    texts = frame["text"].tolist()
    ids = truncation.encode(tokenizer, texts, args.max_length, args.truncation)["input_ids"]
    y = frame["label"].map({name: i for i, name in enumerate(labels)}).to_numpy(dtype=np.int64)
    return Rows(ids, y, np.arange(len(frame)))


def length_sorted(rows: Rows) -> tuple[Rows, np.ndarray]:
    """Validation in length order (little padding); ``order`` maps the results back."""
    order = np.argsort([len(x) for x in rows.ids], kind="stable")
    return Rows([rows.ids[i] for i in order], rows.labels[order], rows.rows[order]), order


def padder(pad_id: int) -> Any:
    """Pads each batch to its own longest row (dynamic padding)."""

    def collate(features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        width = max(len(f["input_ids"]) for f in features)
        input_ids = torch.full((len(features), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(features), width), dtype=torch.long)
        for j, f in enumerate(features):
            input_ids[j, : len(f["input_ids"])] = torch.tensor(f["input_ids"])
            mask[j, : len(f["input_ids"])] = 1
        return {
            "input_ids": input_ids,
            "attention_mask": mask,
            "labels": torch.tensor([f["labels"] for f in features]),
            "row": torch.tensor([f["row"] for f in features]),
        }

    return collate


class EpochSeededLengthSampler(LengthGroupedSampler):
    """Trainer's ``group_by_length`` order drawn from (seed, epoch), not from the global generator:
    a job resumed in the middle of an epoch replays that epoch's batches and skips the done ones.

    Under DDP only whole rounds of full batches are yielded (the rest of the epoch's order is left
    out): every rank takes the same number of steps and no row goes to two ranks in one epoch,
    where accelerate would otherwise repeat rows to even out the last round.
    """

    def __init__(self, batch_size: int, lengths: list[int], seed: int, world_size: int = 1) -> None:
        super().__init__(batch_size, lengths=lengths, generator=torch.Generator())
        self.seed, self.epoch = seed, 0
        round_rows = batch_size * world_size
        self.usable = len(lengths) if world_size == 1 else len(lengths) // round_rows * round_rows

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.usable

    def __iter__(self) -> Any:
        # Reseeded on every pass: each rank (and a restarted job) draws the very same order.
        self.generator.manual_seed(self.seed + self.epoch)
        return iter(list(super().__iter__())[: self.usable])


class JobTrainer(Trainer):
    """``Trainer`` with the prior-shift offset in the training loss and the (seed, epoch) order."""

    def __init__(self, *args: Any, logit_offset: np.ndarray, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.logit_offset = torch.as_tensor(logit_offset, dtype=torch.float32, device=self.args.device)
        # The plain mean cross-entropy of this batch: no rescaling by token counts across ranks.
        self.model_accepts_loss_kwargs = False
        self.rows_by_epoch: dict[int, list[np.ndarray]] = {}

    def _get_train_sampler(self, train_dataset: Any = None) -> torch.utils.data.Sampler:
        lengths = [len(x) for x in self.train_dataset.ids]  # type: ignore[union-attr]  # always Rows
        return EpochSeededLengthSampler(
            self.args.per_device_train_batch_size, lengths, self.args.seed, self.args.world_size
        )

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, torch.Tensor | Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> Any:
        inputs = dict(inputs)  # the caller reads the labels from its own dict afterwards
        rows, labels = inputs.pop("row"), inputs.pop("labels")
        outputs = model(**inputs)
        logits = outputs.logits.float()
        if model.training:
            # Training on logits + log(p_sample / p_all) makes the served logits follow the label
            # mix of all training rows (channels.prior_offset). Validation scores the plain logits.
            logits = logits + self.logit_offset
            self.rows_by_epoch.setdefault(int(self.state.epoch or 0), []).append(rows.cpu().numpy())
        loss = torch.nn.functional.cross_entropy(logits, labels)
        return (loss, outputs) if return_outputs else loss


class Schedule(TrainerCallback):
    """Evaluate ``evals_per_epoch`` times per epoch, the last at the epoch's end; checkpoint after
    each evaluation (and every ``save_steps``); log the training loss every ``logging_steps`` and
    before each evaluation, so every validation point has a training point beside it."""

    def __init__(self, args: argparse.Namespace, steps_per_epoch: int, checkpointing: bool) -> None:
        self.args, self.steps_per_epoch, self.checkpointing = args, steps_per_epoch, checkpointing
        self.eval_every = max(1, math.ceil(steps_per_epoch / args.evals_per_epoch))

    def on_train_begin(self, args: TrainingArguments, state: Any, control: Any, **_: Any) -> None:
        if args.process_index > 0:
            # Dropout differs per rank (one seed for all would mask the same units on every
            # shard); rank 0 keeps the seeded stream. A resumed run restores every rank's generator.
            torch.manual_seed(self.args.seed + args.process_index)

    def on_step_end(self, args: TrainingArguments, state: Any, control: Any, **_: Any) -> Any:
        step = state.global_step
        in_epoch = (step - 1) % self.steps_per_epoch + 1
        evaluate = (
            in_epoch % self.eval_every == 0 or in_epoch == self.steps_per_epoch or step == state.max_steps
        )
        control.should_evaluate = evaluate
        control.should_log = evaluate or step % self.args.logging_steps == 0
        saves = bool(self.args.save_steps) and step % self.args.save_steps == 0
        control.should_save = self.checkpointing and (evaluate or saves)
        return control


class MetricLines(TrainerCallback):
    """The Trainer's logs as ``METRIC`` lines, named as the template's MetricDefinitions expect."""

    def on_log(self, args: TrainingArguments, state: Any, control: Any, logs: Any = None, **_: Any) -> None:
        logs = logs or {}
        if "loss" in logs:
            metric("train_loss", logs["loss"])
        if "eval_loss" in logs:
            metric("epoch", logs["epoch"])
            for name in ("loss", "accuracy", "macro_f1"):
                metric(f"validation_{name}", logs[f"eval_{name}"])


def scorer(valid_order: np.ndarray, latest: dict[str, Any]) -> Any:
    """``compute_metrics``: accuracy and macro-F1; keeps the probabilities (rows in frame order)
    for the lexical-head blend, so the final evaluation need not be run twice."""

    def compute(prediction: EvalPrediction) -> dict[str, float]:
        logits = torch.as_tensor(np.asarray(prediction.predictions), dtype=torch.float32)
        probs = np.empty((len(valid_order), logits.shape[1]))
        probs[valid_order] = torch.softmax(logits, dim=-1).numpy()
        y = np.empty(len(valid_order), dtype=np.int64)
        y[valid_order] = np.asarray(prediction.label_ids)
        latest["probs"] = probs
        preds = probs.argmax(1)
        return {"accuracy": float(np.mean(preds == y)), "macro_f1": job_outputs.macro_f1(y, preds)}

    return compute


# -- checkpoints ------------------------------------------------------------------------------


def fingerprint(args: argparse.Namespace, n_train: int, labels: list[str], world_size: int) -> dict[str, Any]:
    """What must match for a checkpoint to be resumed (another process count cuts epochs into
    other steps)."""
    record = {
        "hyperparameters": job_outputs.hyperparameters_of(args),
        "train_rows": n_train,
        "labels": labels,
        "world_size": world_size,
    }
    return dict(json.loads(json.dumps(record)))


def plain_checkpoint(folder: Path) -> bool:
    """True when every pickle the Trainer would load is plain tensors and containers: the
    checkpoint prefix is written by training jobs, and a pickle could run code while it loads."""
    for path in sorted(folder.glob("*.pt")) + sorted(folder.glob("*.pth")):
        try:
            with safe_globals():  # the numpy types of an RNG state, as the Trainer loads it
                torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # UnpicklingError for a forbidden global, EOFError/RuntimeError when cut
            return False
    return True


def checkpoint_to_resume(args: argparse.Namespace, record: dict[str, Any], is_main: bool) -> str | None:
    """The last checkpoint of this very run, or ``None`` (old checkpoints of another run go)."""
    if not args.checkpoint_dir:
        return None
    root = Path(args.checkpoint_dir)
    last = get_last_checkpoint(str(root)) if root.is_dir() else None
    try:
        written_by = json.loads((root / FINGERPRINT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        written_by = None
    usable = last is not None and written_by == record and plain_checkpoint(Path(last))
    if last is not None and not usable:
        why = "it belongs to another run" if written_by != record else "not a plain checkpoint"
        say(f"ignoring checkpoint {last}: {why}")
    if is_main and not usable:
        for stale in root.glob("checkpoint-*"):
            shutil.rmtree(stale, ignore_errors=True)
        root.mkdir(parents=True, exist_ok=True)
        (root / FINGERPRINT_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    if not usable or last is None:
        return None
    step = json.loads((Path(last) / "trainer_state.json").read_text(encoding="utf-8"))["global_step"]
    say(f"resumed from {last} at step {step}")
    return last


def steps_per_epoch(n_rows: int, batch_size: int, world_size: int) -> int:
    if world_size == 1:
        return math.ceil(n_rows / batch_size)
    return n_rows // batch_size // world_size  # full batches, the same count on every rank


def distribution(trainer: JobTrainer, steps: int, world_size: int) -> dict[str, Any]:
    """Who trained what, from the rows each rank really stepped on (gathered from every rank)."""
    mine = {e: np.unique(np.concatenate(b)).tolist() for e, b in trainer.rows_by_epoch.items()}
    visits = sum(len(b) for parts in trainer.rows_by_epoch.values() for b in parts)
    every: list[Any] = [(mine, visits)]
    if world_size > 1:
        every = [None] * world_size
        torch.distributed.all_gather_object(every, (mine, visits))
    shared = 0
    for epoch in mine:
        seen: set[int] = set()
        for rank_rows, _ in every:
            rows = set(rank_rows.get(epoch, []))
            shared += len(seen & rows)
            seen |= rows
    return {
        "world_size": world_size,
        "backend": trainer.args.ddp_backend if world_size > 1 else None,
        "per_device_batch_size": trainer.args.per_device_train_batch_size,
        "effective_batch_size": trainer.args.per_device_train_batch_size * world_size,
        "steps_per_epoch": steps,
        # Row visits of this attempt (a resumed job counts from its restart).
        "rows_per_rank": [int(v) for _, v in every],
        "rows_trained_by_two_ranks_in_one_epoch": shared,
    }


def leave_group(trainer: JobTrainer) -> None:
    """Drop DDP and the process group while every rank is still in it: freed at interpreter exit,
    gloo's group destructor joins its worker thread holding the GIL, and the process never exits.
    Past this point only rank 0 works (lexical head, archive, test scoring)."""
    if not torch.distributed.is_initialized():
        return
    torch.distributed.barrier()
    if isinstance(trainer.model, torch.nn.Module):
        trainer.model_wrapped = trainer.model
    trainer.accelerator.free_memory()
    gc.collect()
    torch.distributed.destroy_process_group()


def history(log: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(evaluations, training-loss points) from the Trainer's log (kept across a resume)."""
    evaluations = [
        {
            "step": e["step"],
            "epoch": e["epoch"],
            "validation_loss": e["eval_loss"],
            "validation_accuracy": e["eval_accuracy"],
            "validation_macro_f1": e["eval_macro_f1"],
        }
        for e in log
        if "eval_loss" in e
    ]
    losses = [{"step": e["step"], "epoch": e["epoch"], "train_loss": e["loss"]} for e in log if "loss" in e]
    return evaluations, losses
