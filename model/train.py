"""Fine-tune a Hugging Face encoder to classify news headlines: the SageMaker training contract.

Runs unchanged in the Hugging Face PyTorch training DLC (GPUs, mixed precision) and on a laptop
CPU (``textclf train`` starts it as a subprocess). Contract (docs/DESIGN.md):

* hyperparameters are the flags of ``hyperparameters.py`` (SageMaker passes ``--name value``);
* data: ``*.parquet`` (columns ``text``, ``label``, optional ``story``) in ``SM_CHANNEL_TRAIN`` and
  ``SM_CHANNEL_VALIDATION``, optionally ``SM_CHANNEL_TEST``; the label set and its order come from
  ``labels.json`` in the train channel -- nothing here names a label (``channels.py``);
* output: ``SM_MODEL_DIR`` gets the serving archive (or, ``--serving_runtime none``, the plain
  ``save_pretrained`` model) with ``textclf_meta.json``, ``metrics.json`` and ``training_curve.png``;
  ``SM_OUTPUT_DATA_DIR`` the figures (``job_outputs.py``);
* checkpoints go to ``/opt/ml/checkpoints`` when it exists (SageMaker syncs it to S3 for spot
  training) or ``--checkpoint_dir``; a restarted job of the same run resumes from the last one;
* metrics are printed as ``METRIC name=value`` lines for the ``MetricDefinitions`` regexes;
* distributed: under ``torchrun`` (the toolkit's launcher when the job sets
  ``sagemaker_torch_distributed_enabled``) every process trains its share of each epoch's batches
  with ``--batch_size`` rows per step (effective batch = ``batch_size x processes``; the learning
  rate is used as given), DDP averages the gradients (NCCL on GPUs, gloo on CPUs), and rank 0 alone
  fits the lexical head and writes the model, archive and metrics.

The loop is ``transformers.Trainer`` (DDP, mixed precision, checkpoints and resume, length-grouped
batches); this file adds the prior-shift offset to the training loss, a (seed, epoch) batch order a
resumed job replays, the evaluation schedule and the ``METRIC`` lines.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    TrainingArguments,
    set_seed,
)
from transformers.trainer_callback import PrinterCallback

# The shipped folder (everything in model/): the toolkit runs the script from it; a test that loads
# this file by path needs it said.
HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import channels  # noqa: E402
import fine_tune  # noqa: E402
import hyperparameters  # noqa: E402
import job_outputs  # noqa: E402
import retraining  # noqa: E402
from job_outputs import say  # noqa: E402

SAGEMAKER_CHECKPOINT_DIR = "/opt/ml/checkpoints"


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
    retraining.add_arguments(p)  # a retrain's feedback, recent and champion channels
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


@dataclass
class Data:
    """The channels, sampled; rows are addressed by position."""

    labels: list[str]
    all_train: pd.DataFrame  # every training row: the lexical head and the label prior use them
    train: pd.DataFrame  # the transformer's rows (all, or the --max_train_samples sample)
    valid: pd.DataFrame
    offset: np.ndarray  # prior-shift correction added to the logits in the loss
    feedback: pd.DataFrame  # a retrain's feedback rows (also in all_train and train)
    recent: pd.DataFrame  # a retrain's newest feedback, never trained on

    @property
    def label2id(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.labels)}


def load_data(args: argparse.Namespace) -> Data:
    labels = channels.read_labels(args.train_dir)
    label2id = {name: i for i, name in enumerate(labels)}
    train = channels.read_channel(args.train_dir)
    valid = channels.read_channel(args.validation_dir)
    for name, frame in (("train", train), ("validation", valid)):
        unknown = set(frame["label"]) - set(labels)
        if unknown:
            sys.exit(f"train.py: {name} has labels not in labels.json: {sorted(unknown)}")
    feedback = retraining.read_rows(args.feedback_dir, labels, "feedback")
    all_train = retraining.with_feedback(train, feedback)
    full_prior = all_train["label"].value_counts(normalize=True)
    if args.sampling == "uniform" and 0 < args.max_train_samples < len(train):
        train = train.sample(n=args.max_train_samples, random_state=args.seed).reset_index(drop=True)
    else:
        train = channels.sample_across_stories(train, args.max_train_samples, args.seed)
    # The sample draws from the parent's rows; every feedback row is kept (it is the news).
    train = retraining.with_feedback(train, feedback)
    if 0 < args.max_eval_samples < len(valid):
        # Uniform (not per-story) sample: validation accuracy should estimate per-headline accuracy.
        valid = valid.sample(n=args.max_eval_samples, random_state=args.seed).reset_index(drop=True)
    stories = train["story"].nunique() if "story" in train else "?"
    say(f"{len(train)} train rows ({stories} stories), {len(valid)} validation rows, labels={labels}")
    offset = (
        channels.prior_offset(full_prior, train["label"], label2id)
        if args.prior_correction
        else np.zeros(len(labels))
    )
    return Data(
        labels=labels,
        all_train=all_train,
        train=train,
        valid=valid,
        offset=offset,
        feedback=feedback,
        recent=retraining.read_rows(args.recent_dir, labels, "recent"),
    )


def load_model(
    args: argparse.Namespace, labels: list[str], champion: Path | None
) -> tuple[PreTrainedModel, bool]:
    """The model to fine-tune, and whether it is the champion's (a retrain's warm start: what it
    learnt from earlier feedback is kept, measured in docs/retraining.md)."""
    warm = retraining.warm_start_dir(args, labels, champion)
    model = AutoModelForSequenceClassification.from_pretrained(
        str(warm or args.base_model),
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
        ignore_mismatched_sizes=True,  # a base model with another head (or label count) is fine
        use_safetensors=True,  # weights as data: a pickled .bin could run code while loading
    )
    freeze(model, args)
    return model, warm is not None


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


# -- the job ----------------------------------------------------------------------------------


def training_arguments(args: argparse.Namespace, total_steps: int, output_dir: str) -> TrainingArguments:
    cuda = torch.cuda.is_available()
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    bf16 = cuda and torch.cuda.is_bf16_supported()  # bf16 needs no loss scaling; fp16 on older GPUs
    return TrainingArguments(
        output_dir=output_dir,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.batch_size * 2,
        max_steps=total_steps,
        learning_rate=args.learning_rate,
        lr_scheduler_type="linear",
        warmup_steps=int(args.warmup_ratio * total_steps),
        weight_decay=args.weight_decay,
        optim="adamw_torch_fused",  # ~10x cheaper optimiser step on a CPU than the loop of kernels
        max_grad_norm=1.0,
        bf16=bf16,
        fp16=cuda and not bf16,
        seed=args.seed,
        # The Schedule callback decides when to log, evaluate and save.
        logging_strategy="no",
        eval_strategy="no",
        save_strategy="no",
        save_total_limit=1,
        ddp_find_unused_parameters=False,  # frozen weights have requires_grad off: DDP never waits on them
        use_cpu=not cuda,  # accelerate then runs torchrun's processes as DDP over gloo
        ddp_backend="gloo" if distributed and not cuda else None,
        dataloader_pin_memory=cuda,
        remove_unused_columns=False,
        label_names=["labels"],
        report_to="none",
        disable_tqdm=not sys.stderr.isatty(),
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="textclf-champion-") as scratch:
        # A retrain's champion, unpacked once: the warm start and the comparison both read it.
        return train_job(args, retraining.unpack_champion(args.champion_dir, Path(scratch)))


def train_job(args: argparse.Namespace, champion: Path | None) -> int:
    started = time.time()
    set_seed(args.seed)
    if args.num_threads > 0:
        torch.set_num_threads(args.num_threads)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    tokenizer = AutoTokenizer.from_pretrained(args.base_model)
    data = load_data(args)
    train_rows = fine_tune.tokenised(data.train, tokenizer, args, data.labels)
    valid_rows, valid_order = fine_tune.length_sorted(
        fine_tune.tokenised(data.valid, tokenizer, args, data.labels)
    )
    per_epoch = fine_tune.steps_per_epoch(len(train_rows), args.batch_size, world_size)
    if per_epoch == 0:
        sys.exit(
            f"train.py: {len(train_rows)} rows make fewer batches of {args.batch_size} than the "
            f"{world_size} processes; lower --batch_size or use fewer processes"
        )
    total_steps = max(1, math.ceil(per_epoch * args.epochs))
    with tempfile.TemporaryDirectory(prefix="textclf-trainer-") as scratch:
        training_args = training_arguments(args, total_steps, args.checkpoint_dir or scratch)
        say(
            f"device={training_args.device} bf16={training_args.bf16} fp16={training_args.fp16} "
            f"threads={torch.get_num_threads()} torch={torch.__version__} base_model={args.base_model} "
            f"processes={world_size} backend={training_args.ddp_backend}"
        )
        record = fine_tune.fingerprint(args, len(data.train), data.labels, world_size)
        resume = fine_tune.checkpoint_to_resume(args, record, training_args.process_index == 0)
        if world_size > 1:
            torch.distributed.barrier()  # rank 0 has cleared another run's checkpoints
        latest: dict[str, Any] = {}
        model, warm_started = load_model(args, data.labels, champion)
        trainer = fine_tune.JobTrainer(
            model=model,
            args=training_args,
            train_dataset=train_rows,
            eval_dataset=valid_rows,
            data_collator=fine_tune.padder(
                tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
            ),
            compute_metrics=fine_tune.scorer(valid_order, latest),
            callbacks=[
                fine_tune.Schedule(args, per_epoch, bool(args.checkpoint_dir)),
                fine_tune.MetricLines(),
            ],
            logit_offset=data.offset,
        )
        trainer.remove_callback(PrinterCallback)  # the METRIC lines are the log
        outcome = trainer.train(resume_from_checkpoint=resume)
        evaluations, losses = fine_tune.history(trainer.state.log_history)
        if "probs" not in latest or evaluations[-1]["step"] != trainer.state.global_step:
            # Resumed after the last evaluation (a spot restart): the blend needs this model's
            # validation probabilities, which the checkpoint does not hold (predict's scorer keeps them).
            trainer.predict(valid_rows)
        steps_done = trainer.state.global_step - (int(Path(resume).name.split("-")[-1]) if resume else 0)
        dist = fine_tune.distribution(trainer, per_epoch, world_size) | {"steps_this_attempt": steps_done}
        fine_tune.leave_group(trainer)
    if training_args.process_index > 0:
        return 0
    run = job_outputs.Trained(
        args=args,
        model=trainer.model,
        tokenizer=tokenizer,
        labels=data.labels,
        all_train=data.all_train,
        train=data.train,
        valid=data.valid,
        offset=data.offset,
        valid_probs=latest["probs"],
        evaluations=evaluations,
        train_loss_log=losses,
        steps=trainer.state.global_step,
        train_seconds=float(outcome.metrics.get("train_runtime", 0.0)),
        device=str(training_args.device),
        amp_dtype="bfloat16" if training_args.bf16 else "float16" if training_args.fp16 else None,
        distributed=dist,
        warm_started=warm_started,
    )
    lexical_report = job_outputs.fit_lexical_head(run) if args.lexical_head else None
    metrics = job_outputs.write_outputs(run, lexical_report, started)
    test = job_outputs.read_test(args, data.labels) if args.test_dir else None
    retraining.evaluate(
        args,
        Path(args.model_dir),
        test,
        feedback=data.feedback,
        recent=data.recent,
        inference=job_outputs.job_inference(),
        champion_dir=champion,
    )
    say(
        f"done in {run.train_seconds:.0f}s training ({time.time() - started:.0f}s total); "
        f"validation accuracy {metrics.get('validation_accuracy') or float('nan'):.4f}; "
        f"model in {args.model_dir}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
