"""Fidelity gate: is an exported/quantised runtime as good as the torch model it came from?

What users care about is accuracy and calibration, not whether two runtimes agree row by row (on
2,000 rows a 98.95% agreement refused an int8 model whose accuracy on 50,866 held-out headlines
was *higher* than fp32's). Both models classify the same validation headlines, and the
candidate passes when, against the reference:

- its accuracy and its macro-F1 are at most ``max_accuracy_drop`` lower (point estimates);
- the worst plausible accuracy loss -- the upper end of the 95% confidence interval of the
  paired difference -- is at most ``max_worst_case_drop``; the pairing (the same rows, scored
  by both) makes the interval narrow: only the rows where one is right and the other wrong
  count (McNemar's setting; its exact p-value is reported too);
- its expected calibration error rises by at most ``max_ece_increase``.

Argmax agreement and the largest probability difference are reported as information. The sample
is deterministic: all rows when the split has at most ``sample_size``, else ``sample_size`` rows
drawn without replacement by ``numpy.random.default_rng(seed)``, kept in file order.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from textclf.errors import UserError
from textclf.evaluation.metrics import expected_calibration_error, macro_f1, mcnemar_p
from textclf.packaging.runtime import load_inference_module

#: Rows compared by default: the whole validation split of the real corpus has ~37,000; 20,000
#: paired rows bound the accuracy difference to about +-0.2 points (95%) at int8's discordance.
SAMPLE_SIZE = 20_000
SAMPLE_SEED = 0
#: z of a two-sided 95% normal interval.
Z_95 = 1.959963984540054


@dataclass(frozen=True)
class Thresholds:
    """The gate's bars (fractions: 0.002 = 0.2 points). The one place their defaults live."""

    max_accuracy_drop: float = 0.002
    max_worst_case_drop: float = 0.005
    max_ece_increase: float = 0.01

    def check(self) -> None:
        for name, value in asdict(self).items():
            if not 0.0 <= value <= 1.0:
                flag = "--" + name.replace("_", "-")
                raise UserError(f"{flag} is a fraction in [0, 1] (0.002 = 0.2 points), got {value}")


class FidelityError(UserError):
    """The candidate runtime is worse than the reference beyond the thresholds."""


@dataclass(frozen=True)
class FidelityReport:
    """Figures of one comparison; stored in the archive's ``textclf_meta.json``."""

    candidate_runtime: str
    reference_runtime: str
    data: str
    rows_available: int
    rows: int
    sample_seed: int
    accuracy_reference: float
    accuracy_candidate: float
    accuracy_drop: float
    #: Upper end of the 95% interval of the paired accuracy drop: the worst plausible loss.
    accuracy_drop_upper95: float
    macro_f1_reference: float
    macro_f1_candidate: float
    macro_f1_drop: float
    ece_reference: float
    ece_candidate: float
    ece_increase: float
    #: Rows only the reference got right / only the candidate got right.
    only_reference_right: int
    only_candidate_right: int
    mcnemar_p: float
    agreement: float
    max_abs_prob_diff: float
    max_accuracy_drop: float
    max_worst_case_drop: float
    max_ece_increase: float

    def failures(self) -> list[str]:
        """Human-readable reasons the candidate fails; empty when it passes."""
        out = []
        if self.accuracy_drop > self.max_accuracy_drop:
            out.append(
                f"accuracy drops {self.accuracy_drop * 100:.2f} points, {self.accuracy_reference:.2%} -> "
                f"{self.accuracy_candidate:.2%} (at most {self.max_accuracy_drop * 100:.2f} allowed)"
            )
        if self.macro_f1_drop > self.max_accuracy_drop:
            out.append(
                f"macro-F1 drops {self.macro_f1_drop * 100:.2f} points, {self.macro_f1_reference:.4f} -> "
                f"{self.macro_f1_candidate:.4f} (at most {self.max_accuracy_drop * 100:.2f} allowed)"
            )
        if self.accuracy_drop_upper95 > self.max_worst_case_drop:
            out.append(
                f"the accuracy loss may be up to {self.accuracy_drop_upper95 * 100:.2f} points (95% bound; "
                f"at most {self.max_worst_case_drop * 100:.2f} allowed): score more rows or improve the "
                "runtime"
            )
        if self.ece_increase > self.max_ece_increase:
            out.append(
                f"calibration error rises {self.ece_increase:.4f}, {self.ece_reference:.4f} -> "
                f"{self.ece_candidate:.4f} (at most {self.max_ece_increase:.4f} allowed)"
            )
        return out

    @property
    def passed(self) -> bool:
        return not self.failures()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"passed": self.passed}

    def summary(self) -> str:
        return (
            f"fidelity {self.candidate_runtime} vs {self.reference_runtime} on {self.rows} rows of "
            f"{self.data}: accuracy {self.accuracy_reference:.2%} -> {self.accuracy_candidate:.2%} "
            f"(drop {self.accuracy_drop * 100:+.2f} points, "
            f"95% bound {self.accuracy_drop_upper95 * 100:+.2f}; "
            f"{self.only_reference_right} vs {self.only_candidate_right} discordant rows, McNemar p "
            f"{self.mcnemar_p:.3f}), "
            f"macro-F1 {self.macro_f1_reference:.4f} -> {self.macro_f1_candidate:.4f}, "
            f"ECE {self.ece_reference:.4f} -> {self.ece_candidate:.4f}; agreement {self.agreement:.2%}"
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


def paired_accuracy_drop(ref_right: np.ndarray, cand_right: np.ndarray) -> tuple[float, float]:
    """(drop, upper end of its 95% interval): the mean of ``ref_right - cand_right`` per row and
    the normal-approximation bound from the variance of those paired differences."""
    diff = ref_right.astype(float) - cand_right.astype(float)
    n = len(diff)
    mean = float(diff.mean()) if n else 0.0
    se = float(diff.std(ddof=1) / math.sqrt(n)) if n > 1 else 0.0
    return mean, mean + Z_95 * se


@dataclass(frozen=True)
class Comparison:
    """A report and the candidate's probabilities on the sample (the cascade reuses them)."""

    report: FidelityReport
    candidate_probabilities: np.ndarray
    gold: np.ndarray


def compare(
    reference: Any,
    candidate: Any,
    texts: list[str],
    labels: list[str],
    *,
    data: str,
    rows_available: int,
    sample_seed: int = SAMPLE_SEED,
    thresholds: Thresholds | None = None,
) -> Comparison:
    """Score two loaded ``Classifier`` objects (``inference.load_classifier``) on ``texts``."""
    thresholds = thresholds or Thresholds()
    if list(reference.labels) != list(candidate.labels):
        raise FidelityError(f"label order differs: {reference.labels} vs {candidate.labels}")
    index = {name: i for i, name in enumerate(reference.labels)}
    unknown = sorted(set(labels) - set(index))
    if unknown:
        raise UserError(f"{data}: labels {unknown} are not among the model's labels {list(reference.labels)}")
    gold = np.array([index[name] for name in labels])
    inference = load_inference_module()
    # The served probabilities of each, cascade off: the gate judges the runtime, not the cascade.
    p_ref = inference.predict_proba(reference, texts, cascade=False)
    p_cand = inference.predict_proba(candidate, texts, cascade=False)
    a_ref, a_cand = p_ref.argmax(axis=1), p_cand.argmax(axis=1)
    ref_right, cand_right = a_ref == gold, a_cand == gold
    drop, drop_upper = paired_accuracy_drop(ref_right, cand_right)
    f1_ref = macro_f1(gold, a_ref, len(reference.labels))
    f1_cand = macro_f1(gold, a_cand, len(reference.labels))
    ece_ref = expected_calibration_error(p_ref.max(axis=1), ref_right)
    ece_cand = expected_calibration_error(p_cand.max(axis=1), cand_right)
    only_ref, only_cand = int((ref_right & ~cand_right).sum()), int((cand_right & ~ref_right).sum())
    report = FidelityReport(
        candidate_runtime=candidate.runtime,
        reference_runtime=reference.runtime,
        data=data,
        rows_available=rows_available,
        rows=len(texts),
        sample_seed=sample_seed,
        accuracy_reference=float(ref_right.mean()),
        accuracy_candidate=float(cand_right.mean()),
        accuracy_drop=drop,
        accuracy_drop_upper95=drop_upper,
        macro_f1_reference=f1_ref,
        macro_f1_candidate=f1_cand,
        macro_f1_drop=f1_ref - f1_cand,
        ece_reference=ece_ref,
        ece_candidate=ece_cand,
        ece_increase=ece_cand - ece_ref,
        only_reference_right=only_ref,
        only_candidate_right=only_cand,
        mcnemar_p=mcnemar_p(only_ref, only_cand),
        agreement=float((a_ref == a_cand).mean()),
        max_abs_prob_diff=float(np.abs(p_ref - p_cand).max()),
        max_accuracy_drop=thresholds.max_accuracy_drop,
        max_worst_case_drop=thresholds.max_worst_case_drop,
        max_ece_increase=thresholds.max_ece_increase,
    )
    return Comparison(report, p_cand, gold)


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
