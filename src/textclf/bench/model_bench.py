"""Model level, one process: latency and throughput per runtime, and int8-vs-fp32 accuracy.

Every runtime gets the same headlines in the same order. Measurements are interleaved in
rounds (runtime A, B, C, D, then again) rather than one runtime after another, so a change in
background load on a shared machine affects every runtime alike instead of biasing one.

What each row times, end to end (tokenisation and post-processing included, as a server pays):
- ``pipeline``: ``transformers.pipeline("text-classification")`` called per headline, the usual
  way to serve the model (batch figure: the pipeline given a list with ``batch_size=32``).
- ``torch``, ``onnx-fp32``, ``onnx-int8``: ``model/inference.py`` ``predict_texts`` with the
  runtime its ``textclf_meta.json`` names, exactly what the endpoint runs.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textclf.bench.stats import LatencySummary, summarize

log = logging.getLogger(__name__)

#: ``predict(texts) -> one label name per text``.
LabelFn = Callable[[list[str]], list[str]]


@dataclass
class Runtime:
    """A named way to classify headlines: ``predict`` takes a list, returns label names."""

    name: str
    predict: LabelFn
    batch_predict: LabelFn
    load_s: float
    source: str
    #: The loaded ``inference.Classifier`` behind ``predict`` (None for the pipeline baseline).
    model: Any = None


def inference_runtime(name: str, model_dir: Path) -> Runtime:
    """A runtime served by ``model/inference.py`` from ``model_dir`` (runtime from its meta)."""
    # The packaging engineer's loader: the very model/inference.py the endpoint serves with.
    from textclf.packaging.runtime import load_inference_module

    inference = load_inference_module()
    t0 = time.perf_counter()
    model = inference.model_fn(str(model_dir))
    load_s = time.perf_counter() - t0

    def predict(texts: list[str]) -> list[str]:
        return [str(p["label"]) for p in inference.predict_texts(model, texts)]

    return Runtime(name, predict, predict, load_s, str(model_dir), model)


def cascade_runtime(name: str, model_dir: Path, threshold: float) -> Runtime:
    """:func:`inference_runtime` with the confidence cascade at ``threshold`` (the packaged one)."""
    runtime = inference_runtime(name, model_dir)
    if runtime.model.lexical_head is None:
        raise ValueError(f"{model_dir} has no lexical head: a cascade needs one")
    runtime.model.cascade_threshold = threshold
    return runtime


def pipeline_runtime(model_dir: Path, batch_size: int = 32) -> Runtime:
    """The Hugging Face ``pipeline`` baseline (CPU)."""
    from transformers import pipeline

    t0 = time.perf_counter()
    classifier = pipeline("text-classification", model=str(model_dir), tokenizer=str(model_dir), device=-1)
    load_s = time.perf_counter() - t0

    def predict(texts: list[str]) -> list[str]:
        # Per-headline calls, as a per-request server makes them.
        return [str(classifier(text)[0]["label"]) for text in texts]

    def batch_predict(texts: list[str]) -> list[str]:
        return [str(r["label"]) for r in classifier(texts, batch_size=batch_size)]

    return Runtime("pipeline", predict, batch_predict, load_s, str(model_dir))


@dataclass
class RuntimeTiming:
    """Timings of one runtime (single-headline latencies in seconds)."""

    name: str
    source: str
    load_s: float
    single_latencies_s: list[float] = field(default_factory=list, repr=False)
    batch_size: int = 32
    batch_headlines: int = 0
    batch_seconds: float = 0.0

    @property
    def single(self) -> LatencySummary:
        return summarize(self.single_latencies_s)

    @property
    def batch_throughput(self) -> float:
        return self.batch_headlines / self.batch_seconds if self.batch_seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "load_s": self.load_s,
            "single": self.single.to_dict(),
            "batch_size": self.batch_size,
            "batch_headlines": self.batch_headlines,
            "batch_seconds": self.batch_seconds,
            "batch_throughput": self.batch_throughput,
        }


def time_runtimes(
    runtimes: Sequence[Runtime],
    headlines: Sequence[str],
    *,
    single_calls: int,
    batch_calls: int,
    batch_size: int = 32,
    rounds: int = 5,
    warmup_calls: int = 10,
    budget_s: float | None = None,
) -> list[RuntimeTiming]:
    """Interleaved single-headline and batch timings for every runtime.

    ``single_calls`` and ``batch_calls`` are per runtime; ``budget_s`` (optional) stops the
    rounds early once that much wall time has passed, so a slow runtime cannot run away.
    """
    if not headlines:
        raise ValueError("no headlines to time")
    if rounds < 1 or single_calls < 1 or batch_calls < 0:
        raise ValueError("rounds and single_calls must be >= 1, batch_calls >= 0")
    timings = [RuntimeTiming(r.name, r.source, r.load_s, batch_size=batch_size) for r in runtimes]
    perf = time.perf_counter
    texts = list(headlines)

    for runtime in runtimes:
        # Warm-up: first calls allocate arenas, JIT-select kernels and fill caches.
        for i in range(warmup_calls):
            runtime.predict([texts[i % len(texts)]])
        if batch_calls:
            runtime.batch_predict([texts[i % len(texts)] for i in range(batch_size)])

    # Freeze what exists now (models, tokenizers) out of the collector's reach: collections
    # during the timed loops then only scan the few new objects, so a GC pause cannot land on
    # one runtime's figures.
    gc.collect()
    gc.freeze()
    started = perf()
    cursor_single = 0
    cursor_batch = 0
    for round_index in range(rounds):
        if budget_s is not None and perf() - started > budget_s:
            log.info("model bench: time budget of %.0f s reached, stopping rounds early", budget_s)
            break
        # Calls spread exactly over the rounds (their sum is exactly the requested count).
        n_single = _share(single_calls, rounds, round_index)
        n_batch = _share(batch_calls, rounds, round_index)
        single_chunk = [texts[(cursor_single + i) % len(texts)] for i in range(n_single)]
        cursor_single += n_single
        batches = [
            [texts[(cursor_batch + b * batch_size + i) % len(texts)] for i in range(batch_size)]
            for b in range(n_batch)
        ]
        cursor_batch += n_batch * batch_size
        for runtime, timing in zip(runtimes, timings, strict=True):
            for text in single_chunk:
                t0 = perf()
                runtime.predict([text])
                timing.single_latencies_s.append(perf() - t0)
            for batch in batches:
                t0 = perf()
                runtime.batch_predict(batch)
                timing.batch_seconds += perf() - t0
                timing.batch_headlines += len(batch)
    gc.unfreeze()
    return timings


#: Rows per forward pass tried by :func:`sub_batch_sweep` (``inference.BATCH_SIZE`` is one of them).
SUB_BATCH_SIZES = (4, 8, 16, 32)


def sub_batch_sweep(
    models: Mapping[str, Any],
    headlines: Sequence[str],
    *,
    batch_calls: int,
    sizes: Sequence[int] = SUB_BATCH_SIZES,
    batch_size: int = 32,
    rounds: int = 3,
) -> dict[str, dict[str, float]]:
    """Headlines/s of ``predict_texts`` on batches of ``batch_size``, split into passes of each size.

    What the endpoint does with a micro-batch of 32 requests: ``inference.py`` scores it in
    length-sorted passes of ``BATCH_SIZE`` rows. Interleaved in rounds like :func:`time_runtimes`.
    ``models`` are loaded ``inference.Classifier`` objects; their ``batch_size`` is restored after.
    """
    from textclf.packaging.runtime import load_inference_module

    if not headlines or batch_calls < 1:
        raise ValueError("need headlines and batch_calls >= 1")
    inference = load_inference_module()
    texts = list(headlines)
    seconds = {name: dict.fromkeys(sizes, 0.0) for name in models}
    scored = {name: dict.fromkeys(sizes, 0) for name in models}
    for model in models.values():
        inference.predict_texts(model, texts[:batch_size])  # warm-up
    original = {name: model.batch_size for name, model in models.items()}
    cursor = 0
    try:
        for round_index in range(rounds):
            n = _share(batch_calls, rounds, round_index)
            batches = [[texts[(cursor + i) % len(texts)] for i in range(batch_size)] for _ in range(n)]
            cursor += n * batch_size
            for name, model in models.items():
                for size in sizes:
                    model.batch_size = size
                    t0 = time.perf_counter()
                    for batch in batches:
                        inference.predict_texts(model, batch)
                    seconds[name][size] += time.perf_counter() - t0
                    scored[name][size] += n * batch_size
    finally:
        for name, model in models.items():
            model.batch_size = original[name]
    return {
        name: {
            str(size): scored[name][size] / seconds[name][size] for size in sizes if seconds[name][size] > 0
        }
        for name in models
    }


def _share(total: int, parts: int, index: int) -> int:
    """The ``index``-th of ``parts`` near-equal integer shares of ``total``."""
    return total * (index + 1) // parts - total * index // parts


@dataclass
class AccuracyResult:
    """Accuracy of several runtimes on the same labelled texts."""

    n: int
    sampled: bool
    accuracy: dict[str, float]
    agreement: float  # argmax agreement between the first two runtimes
    seconds: dict[str, float]
    macro_f1: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "sampled": self.sampled,
            "accuracy": dict(self.accuracy),
            "macro_f1": dict(self.macro_f1),
            "agreement": self.agreement,
            "seconds": dict(self.seconds),
        }


def measure_accuracy(
    runtimes: Sequence[Runtime],
    texts: Sequence[str],
    labels: Sequence[str],
    *,
    sampled: bool,
    batch_size: int = 64,
) -> AccuracyResult:
    """Accuracy of each runtime on (``texts``, ``labels``) and agreement of the first two."""
    if len(texts) != len(labels):
        raise ValueError("texts and labels differ in length")
    if not texts:
        raise ValueError("no labelled texts")
    # Length-sorted batches pad less, which makes a full-split pass several times cheaper.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    predictions: dict[str, list[str]] = {}
    seconds: dict[str, float] = {}
    for runtime in runtimes:
        preds: list[str] = [""] * len(texts)
        t0 = time.perf_counter()
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            for i, label in zip(idx, runtime.batch_predict([texts[i] for i in idx]), strict=True):
                preds[i] = label
        seconds[runtime.name] = time.perf_counter() - t0
        predictions[runtime.name] = preds
    from sklearn.metrics import accuracy_score, f1_score

    gold = list(labels)
    names_seen = sorted(set(gold))  # macro over the labels present, as the evaluation reports
    accuracy = {name: float(accuracy_score(gold, preds)) for name, preds in predictions.items()}
    macro_f1 = {
        name: float(f1_score(gold, preds, labels=names_seen, average="macro", zero_division=0))
        for name, preds in predictions.items()
    }
    names = list(predictions)
    agreement = 1.0
    if len(names) >= 2:
        agreement = float(accuracy_score(predictions[names[0]], predictions[names[1]]))
    return AccuracyResult(len(texts), sampled, accuracy, agreement, seconds, macro_f1)
