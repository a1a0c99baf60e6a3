"""The lexical head: TF-IDF word 1-2 grams + a linear layer, blended with the transformer.

Why it exists: on a CPU budget the transformer sees ~32k of the ~290k training headlines,
while a linear model over n-grams fits all of them in seconds. The two make different mistakes
(on the validation split each is right on ~89%, and at least one of them on ~94%), so a
product of the two experts' probabilities is ~2 points more accurate than either alone.

Shipped beside ``train.py`` (training source bundle) and ``inference.py`` (``code/`` of
``model.tar.gz``): the featuriser the head was fitted with is, by construction, the one that
serves it. numpy only at import; ``fit`` imports torch (training containers have it).

Files in the model directory (both or neither):

* ``lexical_vocab.txt``: one n-gram per line, the line number is its feature index;
* ``lexical_head.npz``: ``idf [V]``, ``weight [V, labels]``, ``bias [labels]`` (float32) and
  ``blend [2]`` = (transformer weight ``w``, temperature ``t``).

Blend: ``p = softmax(t * (w * log p_transformer + (1 - w) * log p_lexical))``; ``w`` and ``t``
are chosen on the validation split when training (``w = 1`` is the transformer alone).
"""

from __future__ import annotations

import itertools
import math
import re
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

VOCAB_FILE = "lexical_vocab.txt"
HEAD_FILE = "lexical_head.npz"
# Words of two or more word characters (scikit-learn's TfidfVectorizer default pattern).
_WORD = re.compile(r"(?u)\b\w\w+\b")
_LOG_FLOOR = 1e-12


def ngrams(text: str) -> list[str]:
    """Lower-cased words and adjacent word pairs of ``text``."""
    words = _WORD.findall(text.lower())
    return words + [f"{a} {b}" for a, b in itertools.pairwise(words)]


@dataclass
class Features:
    """Rows of L2-normalised sublinear TF-IDF features as CSR arrays."""

    indptr: np.ndarray  # int64 [rows + 1]
    indices: np.ndarray  # int64 [nnz]
    values: np.ndarray  # float32 [nnz]

    @property
    def rows(self) -> int:
        return len(self.indptr) - 1


class Vectorizer:
    """n-gram -> column map plus inverse document frequencies."""

    def __init__(self, vocab: Sequence[str], idf: np.ndarray) -> None:
        if len(vocab) != len(idf):
            raise ValueError(f"lexical head: {len(vocab)} n-grams but {len(idf)} idf values")
        self.vocab = list(vocab)
        self.index = {term: i for i, term in enumerate(self.vocab)}
        self.idf = np.asarray(idf, dtype=np.float32)

    @classmethod
    def fit(cls, texts: Iterable[str], min_df: int = 2) -> Vectorizer:
        """Keep n-grams found in at least ``min_df`` texts; smooth idf = ln((1 + n) / (1 + df)) + 1."""
        df: Counter[str] = Counter()
        n = 0
        for text in texts:
            df.update(set(ngrams(text)))
            n += 1
        vocab = sorted(term for term, count in df.items() if count >= min_df)
        idf = np.array([math.log((1 + n) / (1 + df[t])) + 1.0 for t in vocab], dtype=np.float32)
        return cls(vocab, idf)

    def transform(self, texts: Sequence[str]) -> Features:
        indptr = np.zeros(len(texts) + 1, dtype=np.int64)
        indices: list[int] = []
        values: list[float] = []
        for row, text in enumerate(texts):
            counts = Counter(i for i in map(self.index.get, ngrams(text)) if i is not None)
            cols = list(counts)
            # Sublinear term frequency: a word said twice is not twice the evidence.
            weights = np.array([1.0 + math.log(counts[c]) for c in cols], dtype=np.float32)
            weights *= self.idf[np.array(cols, dtype=np.int64)]
            norm = float(np.sqrt(np.dot(weights, weights)))
            indices.extend(cols)
            values.extend((weights / norm).tolist() if norm > 0 else weights.tolist())
            indptr[row + 1] = len(indices)
        return Features(indptr, np.asarray(indices, dtype=np.int64), np.asarray(values, dtype=np.float32))


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def blend(probs: np.ndarray, lexical_logits: np.ndarray, weight: float, temperature: float) -> np.ndarray:
    """Product of experts of the transformer's probabilities and the head's logits, renormalised."""
    mixed = weight * np.log(np.maximum(probs, _LOG_FLOOR)) + (1.0 - weight) * _log_softmax(lexical_logits)
    return np.exp(_log_softmax(temperature * mixed))


class LexicalHead:
    """A fitted vectoriser and linear layer, with the blend weights chosen on validation data."""

    def __init__(
        self, vectorizer: Vectorizer, weight: np.ndarray, bias: np.ndarray, blend: tuple[float, float]
    ) -> None:
        if weight.shape != (len(vectorizer.vocab), len(bias)):
            raise ValueError(f"lexical head: weight shape {weight.shape} does not match the vocabulary")
        self.vectorizer = vectorizer
        self.weight = np.asarray(weight, dtype=np.float32)
        self.bias = np.asarray(bias, dtype=np.float32)
        self.blend_weight, self.temperature = float(blend[0]), float(blend[1])

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        feats = self.vectorizer.transform(texts)
        # CSR x dense in numpy: scale each feature's weight row, then sum the rows per text.
        contrib = self.weight[feats.indices].astype(np.float64) * feats.values[:, None]
        row_of = np.repeat(np.arange(feats.rows), np.diff(feats.indptr))
        out = np.empty((feats.rows, len(self.bias)), dtype=np.float64)
        for k in range(len(self.bias)):
            out[:, k] = self.bias[k] + np.bincount(row_of, weights=contrib[:, k], minlength=feats.rows)
        return out

    def contributions(self, text: str, label: int) -> list[tuple[str, float]]:
        """Each n-gram of ``text`` the head knows, with how far it moves the logit of ``label``
        past the mean logit of the other labels (feature value x weight difference), largest
        first: positive pushes toward ``label``, negative toward another."""
        feats = self.vectorizer.transform([text])
        rows = self.weight[feats.indices].astype(np.float64)
        others = np.delete(rows, label, axis=1).mean(axis=1) if rows.shape[1] > 1 else 0.0
        effect = feats.values.astype(np.float64) * (rows[:, label] - others)
        pairs = [
            (self.vectorizer.vocab[int(i)], float(e)) for i, e in zip(feats.indices, effect, strict=True)
        ]
        return sorted(pairs, key=lambda pair: -pair[1])

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """The head alone: a TF-IDF + logistic-regression classifier (the evaluation baseline)."""
        return np.exp(_log_softmax(self.logits(texts)))

    def combine(self, probs: np.ndarray, texts: Sequence[str]) -> np.ndarray:
        """The blended class probabilities for ``texts`` given the transformer's ``probs``."""
        return blend(probs, self.logits(texts), self.blend_weight, self.temperature)

    def save(self, model_dir: Path) -> None:
        (model_dir / VOCAB_FILE).write_text("\n".join(self.vectorizer.vocab) + "\n", encoding="utf-8")
        np.savez_compressed(
            model_dir / HEAD_FILE,
            idf=self.vectorizer.idf,
            weight=self.weight,
            bias=self.bias,
            blend=np.array([self.blend_weight, self.temperature], dtype=np.float64),
        )

    @classmethod
    def load(cls, model_dir: Path) -> LexicalHead | None:
        """The head saved in ``model_dir``, or ``None`` for a transformer-only model."""
        vocab_file, head_file = model_dir / VOCAB_FILE, model_dir / HEAD_FILE
        if not vocab_file.is_file() and not head_file.is_file():
            return None
        if not (vocab_file.is_file() and head_file.is_file()):
            raise FileNotFoundError(f"{model_dir} has only one of {VOCAB_FILE} and {HEAD_FILE}")
        vocab = vocab_file.read_text(encoding="utf-8").split("\n")[:-1]
        with np.load(head_file, allow_pickle=False) as arrays:
            blend_params = arrays["blend"]
            return cls(
                Vectorizer(vocab, arrays["idf"]),
                arrays["weight"],
                arrays["bias"],
                (float(blend_params[0]), float(blend_params[1])),
            )


def fit(
    texts: Sequence[str],
    labels: np.ndarray,
    num_labels: int,
    *,
    c: float = 3.0,
    min_df: int = 2,
    max_iter: int = 150,
) -> tuple[Vectorizer, np.ndarray, np.ndarray]:
    """Multinomial logistic regression on TF-IDF features (L2, strength 1 / C as in scikit-learn).

    Full-batch L-BFGS on a sparse matrix: the objective is convex and the whole training split
    fits in memory, so a few dozen seconds on a CPU reach what scikit-learn's solver reaches.
    """
    import torch

    vectorizer = Vectorizer.fit(texts, min_df=min_df)
    feats = vectorizer.transform(texts)
    n, v = feats.rows, len(vectorizer.vocab)
    csr = (torch.from_numpy(feats.indptr), torch.from_numpy(feats.indices), torch.from_numpy(feats.values))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "sparse CSR support is in beta"
        x = torch.sparse_csr_tensor(*csr, (n, v))
        # The gradient needs x^T; a transposed CSR copy multiplies ~10x faster than autograd
        # through a COO product, so the gradient is written out by hand.
        xt = x.t().to_sparse_csr()
    onehot = torch.nn.functional.one_hot(torch.from_numpy(np.array(labels, dtype=np.int64)), num_labels)
    weight = torch.zeros(v, num_labels, requires_grad=True)
    bias = torch.zeros(num_labels, requires_grad=True)
    # scikit-learn minimises C * sum(loss) + |W|^2 / 2; divided by C * n this is the mean loss
    # plus |W|^2 / (2 C n). The bias is not penalised.
    l2 = 1.0 / (2.0 * c * n)
    optimizer = torch.optim.LBFGS(
        [weight, bias], lr=1.0, max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe"
    )

    def closure() -> Any:
        with torch.no_grad():
            log_p = torch.log_softmax(x @ weight + bias, dim=1)
            loss = -(log_p * onehot).sum() / n + l2 * weight.pow(2).sum()
            residual = (log_p.exp() - onehot) / n
            weight.grad = xt @ residual + 2.0 * l2 * weight
            bias.grad = residual.sum(0)
        return loss

    optimizer.step(closure)
    return vectorizer, weight.detach().numpy().copy(), bias.detach().numpy().copy()


def choose_blend(
    probs: np.ndarray, lexical_logits: np.ndarray, labels: np.ndarray, min_weight: float = 0.0
) -> tuple[float, float, dict[str, float]]:
    """The blend weight (at least ``min_weight``) with the best validation accuracy, then the
    temperature with the best log loss.

    Ties in accuracy go to the larger transformer weight. Returns ``(w, t, scores)``.
    """
    best: tuple[float, float] | None = None
    weight = 1.0
    grid = np.round(np.linspace(0.0, 1.0, 21), 2)
    for w in grid[grid >= min_weight - 1e-9]:
        acc = float(np.mean(blend(probs, lexical_logits, float(w), 1.0).argmax(1) == labels))
        key = (acc, float(w))
        if best is None or key > best:
            best, weight = key, float(w)
    temperature, best_nll = 1.0, math.inf
    for t in np.round(np.arange(0.5, 3.01, 0.1), 2):
        p = blend(probs, lexical_logits, weight, float(t))
        nll = float(-np.mean(np.log(np.maximum(p[np.arange(len(labels)), labels], _LOG_FLOOR))))
        if nll < best_nll:
            temperature, best_nll = float(t), nll
    blended = blend(probs, lexical_logits, weight, temperature)
    scores = {
        "transformer_accuracy": float(np.mean(probs.argmax(1) == labels)),
        "lexical_accuracy": float(np.mean(lexical_logits.argmax(1) == labels)),
        "blend_accuracy": float(np.mean(blended.argmax(1) == labels)),
        "blend_log_loss": best_nll,
    }
    return weight, temperature, scores
