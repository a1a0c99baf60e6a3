"""``textclf bench-train``: data-parallel training beside one process, same sample, same machine.

Both runs train ``model/train.py`` on the same rows with the same effective batch (one process
with ``B`` rows per step against ``N`` torchrun processes with ``B / N`` each), so they take the
same optimiser steps; the table gives each run's training time, rows per second and validation
accuracy / macro-F1 of the transformer (the lexical head is off: it is fitted once, on rank 0,
whatever the process count). On a CPU the processes share the same cores, so this measures the
cost of the gradient all-reduce, not a speed-up; on GPUs each process has its own device.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textclf import training
from textclf.errors import UserError


@dataclass(frozen=True)
class Run:
    processes: int
    per_process_batch: int
    steps: int
    train_seconds: float
    rows_per_s: float
    accuracy: float
    macro_f1: float


def settings_for(base: training.TrainSettings, processes: int, cores: int) -> training.TrainSettings:
    from dataclasses import replace

    if base.batch_size % processes:
        raise UserError(f"--batch-size {base.batch_size} must divide by --processes {processes}")
    return replace(
        base,
        batch_size=base.batch_size // processes,
        processes=processes,
        num_threads=max(1, cores // processes),
        lexical_head=0,
    )


def measure(data: Path, out: Path, base: training.TrainSettings, processes: int, cores: int) -> Run:
    settings = settings_for(base, processes, cores)
    result = training.run_training(data, out / f"processes-{processes}", settings, force=True)
    metrics: dict[str, Any] = result.metrics
    seconds = float(metrics["train_time_s"])
    return Run(
        processes=processes,
        per_process_batch=settings.batch_size,
        steps=int(metrics["steps"]),
        train_seconds=seconds,
        rows_per_s=float(metrics["train_examples_per_s"]),
        accuracy=float(metrics["validation_accuracy"]),
        macro_f1=float(metrics["validation_macro_f1"]),
    )


def render(runs: list[Run], machine: dict[str, Any], base: training.TrainSettings) -> str:
    baseline = runs[0]
    lines = [
        f"machine: {machine.get('cpu_model')} ({machine.get('logical_cpus')} logical CPUs); int8 "
        f"instructions: {', '.join(machine.get('int8_instructions') or []) or 'unknown'}",
        f"sample: {base.max_train_samples} training rows, {base.max_eval_samples} validation rows, "
        f"effective batch {base.batch_size}, {base.epochs} epoch(s), base model {base.base_model}",
        "",
        "| processes | rows/step each | steps | train s | rows/s | vs 1 process | val. accuracy | macro-F1 |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        lines.append(
            f"| {run.processes} | {run.per_process_batch} | {run.steps} | {run.train_seconds:.1f} | "
            f"{run.rows_per_s:.1f} | {run.rows_per_s / baseline.rows_per_s:.2f}x | {run.accuracy:.2%} | "
            f"{run.macro_f1:.4f} |"
        )
    return "\n".join(lines)


def bench(data: Path, out: Path, base: training.TrainSettings, processes: int) -> str:
    from textclf.bench.runner import describe_machine
    from textclf.threads import available_cores

    machine = describe_machine()
    cores = available_cores()
    runs = [measure(data, out, base, p, cores) for p in (1, processes)]
    report = render(runs, machine, base)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_train.json").write_text(
        json.dumps({"machine": machine, "runs": [r.__dict__ for r in runs]}, indent=2) + "\n",
        encoding="utf-8",
    )
    (out / "bench_train.md").write_text(report + "\n", encoding="utf-8")
    return report
