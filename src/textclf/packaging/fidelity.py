"""Fidelity gate: does an exported/quantised runtime still behave like the torch model?

Both models classify the same validation headlines; the candidate passes when its argmax agrees
with torch's on at least ``min_agreement`` of them and its accuracy is at most
``max_accuracy_drop`` below torch's. The sample is deterministic: all rows when the split has
at most ``sample_size``, else ``sample_size`` rows drawn without replacement by
``numpy.random.default_rng(seed)`` (default 2,000 rows, seed 0), kept in file order.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from textclf.errors import UserError
from textclf.packaging.runtime import load_inference_module

SAMPLE_SIZE = 2000
SAMPLE_SEED = 0
MIN_AGREEMENT = 0.995
MAX_ACCURACY_DROP = 0.003


class FidelityError(UserError):
    """The candidate runtime disagrees with the torch model beyond the thresholds."""


@dataclass(frozen=True)
class FidelityReport:
    """Figures of one comparison; stored in the archive's ``textclf_meta.json``."""

    candidate_runtime: str
    reference_runtime: str
    data: str
    rows_available: int
    rows: int
    sample_seed: int
    agreement: float
    accuracy_reference: float
    accuracy_candidate: float
    accuracy_drop: float
    max_abs_prob_diff: float
    min_agreement: float
    max_accuracy_drop: float

    def failures(self) -> list[str]:
        """Human-readable reasons the candidate fails; empty when it passes."""
        out = []
        if self.agreement < self.min_agreement:
            out.append(
                f"argmax agreement with {self.reference_runtime} is {self.agreement:.2%} "
                f"(< {self.min_agreement:.2%} required)"
            )
        if self.accuracy_drop > self.max_accuracy_drop:
            out.append(
                f"accuracy drops {self.accuracy_drop * 100:.2f} points, {self.accuracy_reference:.2%} -> "
                f"{self.accuracy_candidate:.2%} (at most {self.max_accuracy_drop * 100:.2f} allowed)"
            )
        return out

    @property
    def passed(self) -> bool:
        return not self.failures()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"passed": self.passed}

    def summary(self) -> str:
        return (
            f"fidelity {self.candidate_runtime} vs {self.reference_runtime} "
            f"on {self.rows} rows of {self.data}: "
            f"agreement {self.agreement:.2%}, accuracy {self.accuracy_reference:.2%} -> "
            f"{self.accuracy_candidate:.2%} (drop {self.accuracy_drop * 100:+.2f} points), "
            f"max |prob diff| {self.max_abs_prob_diff:.4f}"
        )


def sample_validation(
    path: Path, sample_size: int = SAMPLE_SIZE, seed: int = SAMPLE_SEED
) -> tuple[list[str], list[str], int]:
    """``(texts, label names, rows in the split)`` of the deterministic sample described above."""
    from textclf.data import read_split

    return sample_frame(read_split(path), str(path), sample_size, seed)


def sample_frame(
    frame: Any, source: str, sample_size: int = SAMPLE_SIZE, seed: int = SAMPLE_SEED
) -> tuple[list[str], list[str], int]:
    """The same sample of an already loaded ``text``/``label`` frame (the training job's channel)."""
    total = len(frame)
    if total == 0:
        raise UserError(f"{source}: the validation data has no rows")
    if total > sample_size:
        keep = np.sort(np.random.default_rng(seed).choice(total, size=sample_size, replace=False))
        frame = frame.iloc[keep]
    return [str(t) for t in frame["text"]], [str(label) for label in frame["label"]], total


def measure(
    reference: Any,
    candidate: Any,
    texts: list[str],
    labels: list[str],
    *,
    data: str,
    rows_available: int,
    sample_seed: int = SAMPLE_SEED,
    min_agreement: float = MIN_AGREEMENT,
    max_accuracy_drop: float = MAX_ACCURACY_DROP,
) -> FidelityReport:
    """Compare two loaded ``Classifier`` objects (``inference.load_classifier``) on ``texts``."""
    if list(reference.labels) != list(candidate.labels):
        raise FidelityError(f"label order differs: {reference.labels} vs {candidate.labels}")
    index = {name: i for i, name in enumerate(reference.labels)}
    unknown = sorted(set(labels) - set(index))
    if unknown:
        raise UserError(f"{data}: labels {unknown} are not among the model's labels {list(reference.labels)}")
    gold = np.array([index[name] for name in labels])
    inference = load_inference_module()
    p_ref = inference.predict_proba(reference, texts)
    p_cand = inference.predict_proba(candidate, texts)
    a_ref, a_cand = p_ref.argmax(axis=1), p_cand.argmax(axis=1)
    acc_ref = float((a_ref == gold).mean())
    acc_cand = float((a_cand == gold).mean())
    return FidelityReport(
        candidate_runtime=candidate.runtime,
        reference_runtime=reference.runtime,
        data=data,
        rows_available=rows_available,
        rows=len(texts),
        sample_seed=sample_seed,
        agreement=float((a_ref == a_cand).mean()),
        accuracy_reference=acc_ref,
        accuracy_candidate=acc_cand,
        accuracy_drop=acc_ref - acc_cand,
        max_abs_prob_diff=float(np.abs(p_ref - p_cand).max()),
        min_agreement=min_agreement,
        max_accuracy_drop=max_accuracy_drop,
    )


def check(report: FidelityReport) -> None:
    """Raise :class:`FidelityError` naming every failed threshold."""
    failures = report.failures()
    if failures:
        fallback = "onnx-fp32 or torch" if report.candidate_runtime == "onnx-int8" else "torch"
        raise FidelityError(
            f"refusing to package {report.candidate_runtime}: "
            + "; ".join(failures)
            + f" on {report.rows} validation rows. Nothing was written; try --runtime {fallback}."
        )
