"""Every hyperparameter of ``train.py``: the one place that gives its type, default, bounds and help.

Hand-edited here only. Three readers derive from it:

* ``model/train.py`` builds its argparse flags (and their range checks) from :data:`HYPERPARAMETERS`;
  this file ships beside it in the source bundle, so the job needs nothing else;
* the API's ``TrainRequest`` (``functions/textclf_api/schemas.py``) takes its defaults and bounds
  from :func:`field_bounds` / :func:`default`. The Lambda package is ``functions/`` alone
  (``CodeUri: functions/`` in template.yaml) and cannot import ``model/``, so it carries a
  byte-identical copy, ``functions/textclf_api/hyperparameters.py``; a unit test fails when the
  copy differs (``make hyperparameters`` rewrites it);
* ``textclf train`` (``src/textclf/training.py``) takes :func:`local_default`: the job's default, or
  the CPU profile's value where a laptop needs another one (measured in docs/results.md: 15 minutes
  for a useful model on 2 cores).

Standard library only: the Lambda imports it and must stay small.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final


@dataclass(frozen=True)
class Hyperparameter:
    name: str
    type: type
    default: Any  # what a SageMaker job gets when the flag is not given
    help: str
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False  # True: value > minimum; False: value >= minimum
    choices: tuple[str, ...] | None = None
    local: Any = None  # `textclf train`'s CPU default where it differs from the job's

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is out of bounds, in one line; ``None`` when it is fine."""
        if self.choices is not None:
            return (
                None if value in self.choices else f"--{self.name} must be one of {', '.join(self.choices)}"
            )
        if self.type is float and not math.isfinite(value):
            return f"--{self.name} must be a finite number"
        low = self.minimum
        if low is not None and (value <= low if self.exclusive_minimum else value < low):
            return f"--{self.name} must be {'>' if self.exclusive_minimum else '>='} {low:g}"
        if self.maximum is not None and value > self.maximum:
            return f"--{self.name} must be <= {self.maximum:g}"
        return None


SERVING_RUNTIMES: Final = ("torch", "onnx-fp32", "onnx-int8")

HYPERPARAMETERS: Final[tuple[Hyperparameter, ...]] = (
    Hyperparameter(
        "epochs", float, 3.0, "may be fractional (e.g. 1.5)", 0, 20, exclusive_minimum=True, local=1.0
    ),
    Hyperparameter(
        "learning_rate", float, 5e-5, "peak AdamW learning rate", 0, 1e-2, exclusive_minimum=True, local=2e-4
    ),
    Hyperparameter("batch_size", int, 32, "rows per optimiser step and process", 1, 512),
    Hyperparameter("max_length", int, 64, "tokens per text, incl. special tokens", 8, 512, local=32),
    Hyperparameter(
        "truncation",
        str,
        "head",
        "which tokens of a longer text are kept: the first, the last, or both ends (head+tail, "
        "Sun et al. 2019); serving cuts the same way (truncation.py, whose MODES these are)",
        choices=("head", "tail", "head+tail"),
    ),
    Hyperparameter("max_train_samples", int, 0, "training rows to use, 0 = all", 0, local=32_000),
    Hyperparameter(
        "sampling",
        str,
        "stories",
        "how --max_train_samples picks rows: round-robin over stories, or uniformly",
        choices=("stories", "uniform"),
    ),
    Hyperparameter(
        "prior_correction", int, 1, "1 = train so predictions follow the label mix of all training rows", 0, 1
    ),
    Hyperparameter("max_eval_samples", int, 0, "validation rows per evaluation, 0 = all", 0, local=3_000),
    Hyperparameter("base_model", str, "distilbert-base-uncased", "Hub id or local folder"),
    Hyperparameter("seed", int, 42, "seeds sampling, batch order, dropout and the head's init", 0),
    Hyperparameter("warmup_ratio", float, 0.06, "share of the steps with a rising learning rate", 0, 1),
    Hyperparameter("weight_decay", float, 0.01, "AdamW decay (not on biases and norms)", 0, 1),
    Hyperparameter("freeze_embeddings", int, 0, "1 = do not train the embeddings", 0, 1),
    Hyperparameter(
        "freeze_layers", int, 0, "N > 0: also freeze the embeddings and the first N layers", 0, local=3
    ),
    Hyperparameter(
        "lexical_head",
        int,
        1,
        "1 = also fit the TF-IDF lexical head on every training row and blend it in",
        0,
        1,
    ),
    Hyperparameter(
        "lexical_c", float, 3.0, "inverse L2 strength of the lexical head", 0, exclusive_minimum=True
    ),
    Hyperparameter("lexical_min_df", int, 2, "n-grams seen in fewer rows are dropped", 1),
    Hyperparameter(
        "blend_min_weight",
        float,
        0.5,
        "least weight of the transformer in the blend (validation picks at least this): the lexical "
        "head's n-grams age faster than the transformer, which a validation split from the training "
        "period cannot see (docs/retraining.md)",
        0,
        1,
    ),
    Hyperparameter(
        "warm_start",
        int,
        1,
        "1 = a retrain (champion channel) continues from the champion's weights when it has the same "
        "labels and base model and ships its torch weights; else, and with 0, from base_model",
        0,
        1,
    ),
    Hyperparameter("evals_per_epoch", int, 1, "validation passes per epoch", 1, local=2),
    Hyperparameter("save_steps", int, 0, "also checkpoint every N steps (0 = per evaluation)", 0),
    Hyperparameter("logging_steps", int, 50, "steps between train_loss lines", 1),
    Hyperparameter("num_threads", int, 0, "CPU threads for torch, 0 = torch default", 0),
    Hyperparameter(
        "serving_runtime",
        str,
        "auto",
        "runtime of the archive written to the model dir: auto = the fastest that passes the fidelity "
        "gate (onnx-int8, onnx-fp32, torch); none = the plain trained model, no code/",
        choices=("auto", "none", *SERVING_RUNTIMES),
        local="none",
    ),
    Hyperparameter("max_test_samples", int, 0, "test rows to score, 0 = all", 0),
    Hyperparameter(
        "trusted_labellers",
        str,
        "",
        "comma-separated labeller ids whose rows of a retrain's recent channel form the trusted slice",
    ),
)

BY_NAME: Final[dict[str, Hyperparameter]] = {h.name: h for h in HYPERPARAMETERS}


def default(name: str) -> Any:
    """The SageMaker job's default (train.py's flag default)."""
    return BY_NAME[name].default


def local_default(name: str) -> Any:
    """``textclf train``'s default: the CPU profile's value, else the job's."""
    spec = BY_NAME[name]
    return spec.default if spec.local is None else spec.local


def field_bounds(name: str, *, whole: bool = False, zero_by_omission: bool = False) -> dict[str, float]:
    """Pydantic ``Field`` keyword arguments (``gt``/``ge``/``le``) for ``name``'s bounds.

    ``whole``: the field takes integers only (the API's whole epochs), so ``> m`` becomes
    ``>= floor(m) + 1``. ``zero_by_omission``: the field spells "0 = all" by being omitted, so
    its smallest value is 1.
    """
    spec = BY_NAME[name]
    bounds: dict[str, float] = {}
    low = spec.minimum
    if low is not None:
        if whole and spec.exclusive_minimum:
            bounds["ge"] = math.floor(low) + 1
        else:
            bounds["gt" if spec.exclusive_minimum else "ge"] = low
    if zero_by_omission and bounds.get("ge") == 0:
        bounds["ge"] = 1
    if spec.maximum is not None:
        bounds["le"] = spec.maximum
    return bounds


def problems(values: dict[str, Any]) -> list[str]:
    """One line per value out of its bounds (names this module does not know are not checked)."""
    found = (BY_NAME[name].problem(value) for name, value in values.items() if name in BY_NAME)
    return [line for line in found if line is not None]
