"""How a text longer than ``max_length`` tokens is cut: the one rule training and serving share.

``fine_tune.py`` (training) and ``inference.py`` (serving, ``code/`` of every archive) both turn
texts into token ids with :func:`encode`, so a model is served exactly the ids it was trained
on. The mode is the ``truncation`` hyperparameter; the training job records it in
``textclf_meta.json`` (``"truncation"``), where ``inference.py`` reads it back.

* ``head``: the first tokens (the tokenizer's own ``truncation=True``; headlines, titles);
* ``tail``: the last tokens (texts whose conclusion carries the label);
* ``head+tail``: the first :data:`HEAD_SHARE` of the budget and the rest from the end. Sun et
  al. 2019, "How to Fine-Tune BERT for Text Classification?" (arXiv:1905.05583, section 5.3.1)
  kept the first 128 and the last 382 of 512 tokens and beat head-only and tail-only on long
  reviews (IMDb) and news (Sogou); the same share is used at any ``max_length``.

Special tokens ([CLS], [SEP], ``<s>`` ...) are always kept; only the text's own tokens are cut,
so the budget is ``max_length`` minus the specials the tokenizer adds. Standard library only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

MODES: Final = ("head", "tail", "head+tail")
DEFAULT: Final = "head"
#: Share of the text-token budget taken from the start in ``head+tail`` (Sun et al.: 128 of 510).
HEAD_SHARE: Final = 128 / 510


def split_budget(n: int, budget: int, mode: str) -> tuple[int, int]:
    """``(first, last)``: of ``n`` text tokens keep the first ``first`` and the last ``last``
    (``first + last <= budget``; all of them when they fit)."""
    if mode not in MODES:
        raise ValueError(f"unknown truncation {mode!r}; expected one of {', '.join(MODES)}")
    budget = max(budget, 0)
    if n <= budget:
        return n, 0
    if mode == "head":
        return budget, 0
    if mode == "tail":
        return 0, budget
    first = round(budget * HEAD_SHARE)
    return first, budget - first


def kept_positions(special_mask: Sequence[int], max_length: int, mode: str) -> list[int]:
    """Positions of an untruncated encoding (``special_mask``: 1 for a special token) that the
    model sees: every special token and the text tokens :func:`split_budget` keeps, in order."""
    text = [i for i, special in enumerate(special_mask) if not special]
    first, last = split_budget(len(text), max_length - (len(special_mask) - len(text)), mode)
    dropped = set(text[first : len(text) - last])
    return [i for i in range(len(special_mask)) if i not in dropped]


def encode(tokenizer: Any, texts: Sequence[str], max_length: int, mode: str = DEFAULT) -> dict[str, Any]:
    """The tokenizer's fields (``input_ids``, ``attention_mask``, ...) of each text, cut to at most
    ``max_length`` tokens by ``mode``; no padding."""
    if mode not in MODES:
        raise ValueError(f"unknown truncation {mode!r}; expected one of {', '.join(MODES)}")
    if mode == "head":
        # The tokenizer's own truncation keeps exactly the head, without a second pass in Python.
        return dict(tokenizer(list(texts), truncation=True, max_length=max_length, padding=False))
    # verbose=False: an untruncated text longer than the tokenizer's model_max_length is expected.
    full = dict(
        tokenizer(
            list(texts), truncation=False, padding=False, return_special_tokens_mask=True, verbose=False
        )
    )
    masks = full.pop("special_tokens_mask")
    for row, mask in enumerate(masks):
        if len(mask) > max_length:
            keep = kept_positions(mask, max_length, mode)
            for values in full.values():
                values[row] = [values[row][i] for i in keep]
    return full
