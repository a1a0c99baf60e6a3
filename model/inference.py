"""Serving handlers for the textclf headline classifier (Hugging Face inference toolkit contract).

The SageMaker Hugging Face inference DLC imports this file from ``/opt/ml/model/code`` and calls
``model_fn`` once per worker, then ``input_fn`` -> ``predict_fn`` -> ``output_fn`` per request.
The toolkit passes a trailing ``context`` argument when the function declares one, so every
handler accepts an optional ``context``. The local endpoint (``textclf serve-endpoint``) loads this
same file by path and calls ``model_fn`` and ``predict_texts`` from its micro-batcher.

Self-contained on purpose (stdlib + numpy + the transformers tokenizer + torch *or* onnxruntime,
imported lazily for the runtime the archive holds, + ``lexical.py`` and ``truncation.py`` shipped
beside this file): it runs inside the stock DLC, which has no textclf package.

Files read from the model directory:
- ``textclf_meta.json``: ``runtime`` (``torch`` | ``onnx-fp32`` | ``onnx-int8``), ``max_length`` and
  ``truncation`` (how longer texts are cut, ``truncation.py``; ``head`` when absent);
- ``config.json``: ``id2label`` (the label order; nothing here hard-codes labels);
- tokenizer files; ``model.safetensors`` (torch) or ``model.onnx`` (ONNX runtimes);
- ``lexical_vocab.txt`` + ``lexical_head.npz`` when the model has a lexical head (lexical.py).

Request: ``{"inputs": "headline"}`` or ``{"inputs": ["headline", ...]}`` as ``application/json``.
Response: ``{"predictions": [{"label": str, "score": float, "scores": {label: float}}, ...],
"labels": [str, ...], "model_version": str}``, one prediction per input, in input order;
``labels`` is the served label set in class-id order (``config.json``'s ``id2label``), which the
API checks every answer against -- exactly the API's ``POST /predict`` 200 body.
Bad payloads raise :class:`PayloadError` (a ``ValueError``) with a message naming what is wrong;
the toolkit answers any handler exception with HTTP 400.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

META_FILE = "textclf_meta.json"
ONNX_FILE = "model.onnx"
RUNTIMES = ("torch", "onnx-fp32", "onnx-int8")
JSON_CONTENT_TYPE = "application/json"
#: Batch Transform's record format (SplitType Line): one JSON headline per line in, one JSON
#: answer per line out (AssembleWith Line puts them back in input order).
JSONLINES_CONTENT_TYPE = "application/jsonlines"
#: Most lines in one JSON Lines request: a 1 MB mini-batch (MaxPayloadInMB) of headlines holds
#: about 10,000; a bigger one is refused rather than held in memory.
MAX_LINES = int(os.environ.get("TEXTCLF_MAX_LINES", "20000"))
#: Fields a JSON Lines record may carry its headline in (the same as ``textclf predict`` reads).
LINE_TEXT_FIELDS = ("text", "title", "inputs")
MODEL_VERSION_ENV = "TEXTCLF_MODEL_VERSION"
#: "off" serves every headline through the transformer even when the archive has a cascade.
CASCADE_ENV = "TEXTCLF_CASCADE"

#: Longest accepted input in characters: the API's own limit (textclf_api.schemas.MAX_TEXT_CHARS).
#: Tokens past ``max_length`` are cut anyway; this bound only stops huge strings from costing
#: tokenizer time and memory.
MAX_TEXT_CHARS = int(os.environ.get("TEXTCLF_MAX_TEXT_CHARS", "20000"))
#: Most inputs in one request. Larger than the API's 64 so direct endpoint clients (bench, batch
#: scoring) can send bigger batches, small enough that one request cannot hold a worker for long.
MAX_INPUTS = int(os.environ.get("TEXTCLF_MAX_INPUTS", "256"))
#: Rows per forward pass. Inputs are sorted by token length first, so padding stays small.
#: 8, not 32: scoring 32 headlines as four passes of 8 ran 1.5x faster than one pass of 32 on a
#: 2-core EPYC (ONNX fp32 260 vs 172 headlines/s, int8 373 vs 236; 4 and 16 were in between):
#: activations of a small pass stay in cache, and each pass pads only to its own longest row.
BATCH_SIZE = int(os.environ.get("TEXTCLF_BATCH_SIZE", "8"))


def _load_sibling(name: str) -> ModuleType:
    """Import ``name``.py from this file's folder (``code/`` in the archive, ``model/`` here).

    By path, not by ``sys.path``: the toolkit, the local endpoint and tests load this file from
    different folders, and each copy must use the helper shipped beside it.
    """
    path = Path(__file__).resolve().with_name(f"{name}.py")
    key = f"{__name__}_{name}"
    if key in sys.modules:
        return sys.modules[key]
    spec = importlib.util.spec_from_file_location(key, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


lexical = _load_sibling("lexical")
truncation = _load_sibling("truncation")


class PayloadError(ValueError):
    """The request payload is malformed; the message says what is wrong and where."""


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def num_threads() -> int:
    """Intra-op threads: ``TEXTCLF_NUM_THREADS`` (alias ``TEXTCLF_INTRA_OP_THREADS``), else the
    cores this process may run on.

    Set deliberately because both torch and onnxruntime otherwise guess from the host's core
    count, which over-subscribes a container limited by affinity or cgroups. One thread pool
    per process: with several model-server workers, lower this to cores / workers (the deploy
    function runs the DLC with a worker per vCPU and ``TEXTCLF_NUM_THREADS=1``).
    """
    # TEXTCLF_INTRA_OP_THREADS is what the local endpoint (textclf serve-endpoint) sets.
    for name in ("TEXTCLF_NUM_THREADS", "TEXTCLF_INTRA_OP_THREADS"):
        override = os.environ.get(name, "").strip()
        if override:
            value = int(override)
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {override!r}")
            return value
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS has no sched_getaffinity
        return max(1, os.cpu_count() or 1)


@dataclass
class Classifier:
    """A loaded model: tokenizer, label order and a logits function over padded id arrays."""

    runtime: str
    labels: list[str]
    max_length: int
    tokenizer: Any
    input_names: tuple[str, ...]
    #: Maps {input name: int64 array [batch, seq]} to float logits [batch, labels].
    forward: Callable[[dict[str, np.ndarray]], np.ndarray]
    pad_token_id: int
    batch_size: int = BATCH_SIZE
    meta: dict[str, Any] = field(default_factory=dict)
    #: The TF-IDF head blended into the transformer's probabilities (lexical.py), if trained.
    lexical_head: Any = None
    #: Reported with every answer (see :func:`model_version`).
    model_version: str = "unversioned"
    #: Lexical-head confidence at or above which the transformer is skipped for a headline (the
    #: confidence cascade; ``textclf_meta.json`` "cascade", chosen on validation). None: off.
    cascade_threshold: float | None = None
    #: How texts longer than ``max_length`` are cut (``truncation.MODES``), as in training.
    truncation: str = "head"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{path.name} is missing from the model directory {path.parent}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object")
    return data


def _labels_from_config(config: dict[str, Any]) -> list[str]:
    id2label = config.get("id2label")
    if not isinstance(id2label, dict) or not id2label:
        raise ValueError("config.json has no id2label: the model was not saved with its label map")
    # JSON object keys are strings: {"0": "business", ...}.
    by_id = {int(k): str(v) for k, v in id2label.items()}
    if sorted(by_id) != list(range(len(by_id))):
        raise ValueError(f"config.json id2label ids must be 0..n-1, got {sorted(by_id)}")
    return [by_id[i] for i in range(len(by_id))]


def _torch_forward(
    model_dir: Path, threads: int
) -> tuple[Callable[[dict[str, np.ndarray]], np.ndarray], list[str]]:
    import inspect

    import torch
    from transformers import AutoModelForSequenceClassification

    torch.set_num_threads(threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    # safetensors only: weights are data; a pickled .bin in an archive could run code on load.
    model = (
        AutoModelForSequenceClassification.from_pretrained(str(model_dir), use_safetensors=True)
        .to(device)
        .eval()
    )
    accepted = list(inspect.signature(model.forward).parameters)

    def forward(batch: dict[str, np.ndarray]) -> np.ndarray:
        with torch.inference_mode():
            tensors = {k: torch.from_numpy(v).to(device) for k, v in batch.items()}
            logits = model(**tensors).logits
        return logits.float().cpu().numpy()

    return forward, accepted


def _onnx_forward(
    model_dir: Path, threads: int
) -> tuple[Callable[[dict[str, np.ndarray]], np.ndarray], list[str]]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    # One graph, run sequentially: inter-op parallelism only adds a second pool competing for
    # the same cores.
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if os.environ.get("TEXTCLF_ORT_SPIN", "1") == "0":
        # Idle intra-op threads spin for a while after each run; on a server that also
        # tokenizes and parses HTTP on the same cores this can be turned off.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    path = model_dir / ONNX_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{ONNX_FILE} is missing from {model_dir}: package with textclf package")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    output_name = session.get_outputs()[0].name

    def forward(batch: dict[str, np.ndarray]) -> np.ndarray:
        return np.asarray(session.run([output_name], batch)[0], dtype=np.float32)

    return forward, [i.name for i in session.get_inputs()]


def model_version(meta: dict[str, Any]) -> str:
    """The version this model answers as: ``TEXTCLF_MODEL_VERSION`` (the registry version the deploy
    function sets on the SageMaker Model), else the archive's packaging fingerprint."""
    override = os.environ.get(MODEL_VERSION_ENV, "").strip()
    if override:
        return override
    fingerprint = (meta.get("packaging") or {}).get("fingerprint")
    return f"sha256:{fingerprint[:12]}" if isinstance(fingerprint, str) and fingerprint else "unversioned"


def load_classifier(model_dir: str | Path, runtime: str | None = None) -> Classifier:
    """Load the model in ``model_dir`` for ``runtime`` (default: the one ``textclf_meta.json`` names)."""
    from transformers import AutoTokenizer

    model_dir = Path(model_dir)
    meta = _read_json(model_dir / META_FILE)
    config = _read_json(model_dir / "config.json")
    runtime = runtime or str(meta.get("runtime", "torch"))
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r} in {META_FILE}; expected one of {', '.join(RUNTIMES)}")
    max_length = int(meta.get("max_length", 0))
    if max_length < 2:
        raise ValueError(f"{META_FILE} must give max_length >= 2, got {meta.get('max_length')!r}")
    labels = _labels_from_config(config)
    # Archives from before the option cut the head, as the tokenizer does by default.
    cut = str(meta.get("truncation", truncation.DEFAULT))
    if cut not in truncation.MODES:
        raise ValueError(
            f"unknown truncation {cut!r} in {META_FILE}; expected one of {', '.join(truncation.MODES)}"
        )
    # Always from_pretrained(dir): transformers 5 tokenizer classes ignore vocab_file=.
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    threads = num_threads()
    if runtime == "torch":
        forward, accepted = _torch_forward(model_dir, threads)
    else:
        forward, accepted = _onnx_forward(model_dir, threads)
    # Feed exactly the inputs both the tokenizer produces and the graph takes (DistilBERT has no
    # token_type_ids; an ONNX graph declares its inputs by name).
    input_names = tuple(n for n in tokenizer.model_input_names if n in accepted)
    if "input_ids" not in input_names:
        raise ValueError(f"model in {model_dir} does not take input_ids (takes {accepted})")
    pad_id = tokenizer.pad_token_id
    head = lexical.LexicalHead.load(model_dir)
    if head is not None and head.weight.shape[1] != len(labels):
        raise ValueError(f"lexical head has {head.weight.shape[1]} labels, config.json {len(labels)}")
    logger.info(
        "textclf model loaded: runtime=%s labels=%d max_length=%d truncation=%s threads=%d inputs=%s "
        "lexical_head=%s",
        runtime,
        len(labels),
        max_length,
        cut,
        threads,
        ",".join(input_names),
        "none" if head is None else f"{len(head.vectorizer.vocab)} n-grams, w={head.blend_weight}",
    )
    return Classifier(
        runtime=runtime,
        labels=labels,
        max_length=max_length,
        tokenizer=tokenizer,
        input_names=input_names,
        forward=forward,
        pad_token_id=int(pad_id) if pad_id is not None else 0,
        meta=meta,
        lexical_head=head,
        model_version=model_version(meta),
        cascade_threshold=cascade_threshold(meta) if head is not None else None,
        truncation=cut,
    )


def cascade_threshold(meta: dict[str, Any]) -> float | None:
    """The archive's cascade threshold, unless ``TEXTCLF_CASCADE=off`` (or it has none)."""
    if os.environ.get(CASCADE_ENV, "on").strip().lower() in ("off", "0", "false", "no"):
        return None
    cascade = meta.get("cascade")
    threshold = cascade.get("threshold") if isinstance(cascade, dict) else None
    return float(threshold) if isinstance(threshold, int | float) else None


# --------------------------------------------------------------------------------------------
# Prediction
# --------------------------------------------------------------------------------------------


def _softmax(logits: np.ndarray) -> np.ndarray:
    # float64 and max-shift: exact enough that every probability lies in [0, 1] and rows sum to 1.
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _pad(rows: Sequence[Sequence[int]], pad_value: int) -> np.ndarray:
    width = max(len(r) for r in rows)
    out = np.full((len(rows), width), pad_value, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def encode(model: Classifier, texts: Sequence[str]) -> dict[str, Any]:
    """The model's input fields for ``texts``, unpadded: cut to the ``max_length`` it was trained
    with, the way it was trained (``truncation.py``, the function train.py tokenises with)."""
    return truncation.encode(model.tokenizer, texts, model.max_length, model.truncation)


def predict_proba(
    model: Classifier, texts: Sequence[str], *, lexical: bool = True, cascade: bool = True
) -> np.ndarray:
    """Class probabilities ``[len(texts), labels]`` in input order (no payload validation).

    ``lexical=False`` leaves the lexical head out: ``textclf evaluate`` reports the transformer
    alone beside the served blend. With a cascade (``model.cascade_threshold``; ``cascade=False``
    ignores it), the lexical head answers the headlines it is sure of -- at ~100,000 headlines/s --
    and only the rest go through the transformer (and the blend), in batches of their own.
    """
    if not texts:
        return np.zeros((0, len(model.labels)), dtype=np.float64)
    if cascade and lexical and model.cascade_threshold is not None and model.lexical_head is not None:
        lexical_probs = model.lexical_head.probabilities(texts)
        unsure = np.flatnonzero(lexical_probs.max(axis=1) < model.cascade_threshold)
        if len(unsure):
            lexical_probs[unsure] = predict_proba(model, [texts[int(i)] for i in unsure], cascade=False)
        return lexical_probs
    encoded = encode(model, texts)
    lengths = [len(ids) for ids in encoded["input_ids"]]
    # Longest first, so similar lengths share a batch and padding is minimal; results are put
    # back in input order below.
    order = sorted(range(len(texts)), key=lambda i: -lengths[i])
    probs = np.empty((len(texts), len(model.labels)), dtype=np.float64)
    for start in range(0, len(order), model.batch_size):
        idx = order[start : start + model.batch_size]
        batch: dict[str, np.ndarray] = {}
        for name in model.input_names:
            column = encoded[name]
            pad_value = model.pad_token_id if name == "input_ids" else 0
            batch[name] = _pad([column[i] for i in idx], pad_value)
        probs[idx] = _softmax(model.forward(batch))
    if lexical and model.lexical_head is not None:
        probs = model.lexical_head.combine(probs, texts)
    return probs


def predict_texts(model: Classifier, texts: Sequence[str]) -> list[dict[str, Any]]:
    """One ``{"label", "score", "scores"}`` dict per text, in input order."""
    probs = predict_proba(model, texts)
    out: list[dict[str, Any]] = []
    for row in probs:
        best = int(row.argmax())
        out.append(
            {
                "label": model.labels[best],
                "score": float(row[best]),
                "scores": {label: float(p) for label, p in zip(model.labels, row, strict=True)},
            }
        )
    return out


# --------------------------------------------------------------------------------------------
# Explanation
# --------------------------------------------------------------------------------------------

#: What the attributions are, said in every explanation.
ATTRIBUTION_METHOD = (
    "occlusion: how much the transformer's log-odds of the label drop when the token is left "
    "out of the headline (one extra forward row per token)"
)
#: N-grams listed on each side.
TOP_NGRAMS = 8


class ExplainInputs(list[str]):
    """``input_fn``'s answer to ``{"inputs": "headline", "explain": true}``: still the list of
    texts the contract names (one), marked so ``predict_fn`` explains it instead."""

    explain = True


def explain(model: Classifier, text: str) -> dict[str, Any]:
    """The served answer for ``text`` and why: the tokens the transformer saw, each token's
    occlusion attribution toward the answered label, and the lexical head's n-grams for and
    against it.

    Occlusion rather than gradients or attention: it needs only forward passes, so it explains
    every runtime an archive serves (ONNX int8 keeps no gradients or attention maps), and it
    measures the served transformer itself. Cost: one batch of n + 1 rows for n tokens -- about
    the price of one extra batched prediction.
    """
    probs = predict_proba(model, [text])[0]
    best = int(probs.argmax())
    tokens, attributions = _occlusion(model, text, best)
    head = model.lexical_head
    answer: dict[str, Any] = {
        "label": model.labels[best],
        "score": float(probs[best]),
        "scores": {label: float(p) for label, p in zip(model.labels, probs, strict=True)},
        "labels": list(model.labels),
        "model_version": model.model_version,
        "answered_by": _answered_by(model, text),
        "tokens": tokens,
        "attributions": attributions,
        "attribution_method": ATTRIBUTION_METHOD,
        "lexical": None,
    }
    if head is not None:
        pairs = head.contributions(text, best)
        answer["lexical"] = {
            "toward": [{"ngram": g, "weight": w} for g, w in pairs[:TOP_NGRAMS] if w > 0],
            "against": [{"ngram": g, "weight": w} for g, w in reversed(pairs[-TOP_NGRAMS:]) if w < 0],
        }
    return answer


def _answered_by(model: Classifier, text: str) -> str:
    head = model.lexical_head
    if head is None:
        return "transformer"
    if model.cascade_threshold is not None and head.probabilities([text]).max() >= model.cascade_threshold:
        return "lexical head (confident: the cascade skipped the transformer)"
    return "transformer blended with the lexical head"


def _occlusion(model: Classifier, text: str, label: int) -> tuple[list[dict[str, Any]], list[float]]:
    tokenizer = model.tokenizer
    full = tokenizer([text], truncation=False, return_special_tokens_mask=True, verbose=False)
    every = list(full["input_ids"][0])
    # What the model sees, cut as predict_proba cuts it; the other pieces are shown after it.
    seen = truncation.kept_positions(full["special_tokens_mask"][0], model.max_length, model.truncation)
    ids = [every[i] for i in seen]
    dropped = [every[i] for i in sorted(set(range(len(every))) - set(seen))]
    special = set(tokenizer.all_special_ids)
    content = [i for i, token in enumerate(ids) if token not in special]
    # Row 0 is the headline; row k leaves out its k-th content token (padded back to length).
    rows = [ids] + [ids[:i] + ids[i + 1 :] + [model.pad_token_id] for i in content]
    batch = {}
    for name in model.input_names:
        if name == "input_ids":
            batch[name] = np.asarray(rows, dtype=np.int64)
        elif name == "attention_mask":
            short = [1] * (len(ids) - 1) + [0]
            batch[name] = np.asarray([[1] * len(ids)] + [short] * len(content), dtype=np.int64)
        else:
            batch[name] = np.zeros((len(rows), len(ids)), dtype=np.int64)
    logits = model.forward(batch).astype(np.float64)
    # Log-odds, not probabilities: a confident model's probability hardly moves (0.9999 ->
    # 0.999) while its log-odds drop by 2.3 -- the evidence a token carried stays visible.
    # From the logits (label minus log-sum-exp of the others), so nothing saturates.
    others = np.delete(logits, label, axis=1)
    top = others.max(axis=1)
    log_odds = logits[:, label] - (top + np.log(np.exp(others - top[:, None]).sum(axis=1)))
    attributions = [0.0] * len(ids)
    for row, i in enumerate(content, start=1):
        attributions[i] = float(log_odds[0] - log_odds[row])
    pieces = tokenizer.convert_ids_to_tokens(ids)
    tokens = [
        {"text": piece, "special": token in special, "truncated": False}
        for piece, token in zip(pieces, ids, strict=True)
    ]
    # Pieces cut to fit max_length: shown, never seen by the model (their attribution is 0).
    for piece in tokenizer.convert_ids_to_tokens(dropped):
        tokens.append({"text": piece, "special": False, "truncated": True})
        attributions.append(0.0)
    return tokens, attributions


# --------------------------------------------------------------------------------------------
# Payload validation
# --------------------------------------------------------------------------------------------


#: Deepest nesting a body may have ({"inputs": [...]} nests 2 levels). Measured before parsing:
#: ``json`` recurses per level and a 20 KB ``[[[[...`` body would exhaust the recursion limit.
MAX_JSON_DEPTH = 32
# A whole string literal (its brackets do not nest); an unterminated one runs to the end in one
# match, so the depth scan stays linear on any input.
_JSON_STRINGS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\Z)', re.DOTALL)
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")


def _json_depth(text: str) -> int:
    opens = text.count("[") + text.count("{")
    if opens <= MAX_JSON_DEPTH:
        return opens
    depth = deepest = 0
    for char in _NOT_BRACKETS.sub("", _JSON_STRINGS.sub("", text)):
        depth += 1 if char in "[{" else -1
        deepest = max(deepest, depth)
        if deepest > MAX_JSON_DEPTH:
            break
    return deepest


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise PayloadError(f"body repeats the key {key[:40]!r}; send each field once")
        document[key] = value
    return document


def _not_json(name: str) -> Any:
    raise PayloadError(f"body contains {name}, which is not valid JSON")


def _utf8_text(input_data: Any) -> str:
    """The body as text: bytes must be valid UTF-8."""
    if isinstance(input_data, bytes | bytearray):
        try:
            return bytes(input_data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PayloadError(f"body is not valid UTF-8 (byte {exc.start})") from exc
    if not isinstance(input_data, str):
        raise PayloadError(f"body must be text, got {type(input_data).__name__}")
    return input_data


def parse_json(input_data: Any) -> Any:
    """The body as strict UTF-8 JSON: bounded depth, no duplicate keys, no NaN/Infinity.

    The same rules as the API's pre-check (``textclf_api.jsonbody``; this file ships
    self-contained, ``tests/unit/api/test_hostile.py`` holds both to one table), so a body the API
    passes on is one this endpoint reads the same way.
    """
    input_data = _utf8_text(input_data)
    if input_data.startswith("\ufeff"):
        raise PayloadError("body starts with a byte-order mark; send UTF-8 JSON without one")
    if _json_depth(input_data) > MAX_JSON_DEPTH:
        raise PayloadError(f"body nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        document = json.loads(input_data, object_pairs_hook=_unique_keys, parse_constant=_not_json)
    except json.JSONDecodeError as exc:
        raise PayloadError(
            f"body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    except PayloadError:
        raise
    except ValueError as exc:  # an integer literal longer than Python converts (4,300 digits)
        raise PayloadError("body holds a number too large to read") from exc
    try:
        # A "\ud800" escape decodes to half a surrogate pair, which no UTF-8 text can hold.
        json.dumps(document, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise PayloadError("body holds an unpaired surrogate escape (\\ud800-\\udfff)") from exc
    return document


def validate_texts(inputs: Any) -> list[str]:
    """``inputs`` as a non-empty list of non-blank strings within the length bounds."""
    if isinstance(inputs, str):
        texts = [inputs]
        where = ["inputs"]
    elif isinstance(inputs, list):
        if not inputs:
            raise PayloadError("'inputs' is an empty list: send at least one headline")
        if len(inputs) > MAX_INPUTS:
            raise PayloadError(f"'inputs' has {len(inputs)} items; at most {MAX_INPUTS} per request")
        texts = inputs
        where = [f"inputs[{i}]" for i in range(len(inputs))]
    else:
        raise PayloadError(f"'inputs' must be a string or a list of strings, got {_type_name(inputs)}")
    for name, text in zip(where, texts, strict=True):
        if not isinstance(text, str):
            raise PayloadError(f"{name} must be a string, got {_type_name(text)}")
        if not text.strip():
            raise PayloadError(f"{name} is blank: send a non-empty headline")
        if len(text) > MAX_TEXT_CHARS:
            raise PayloadError(f"{name} has {len(text)} characters; at most {MAX_TEXT_CHARS}")
    return list(texts)


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "a list", bool: "a boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _media_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


# --------------------------------------------------------------------------------------------
# Toolkit handlers
# --------------------------------------------------------------------------------------------


def model_fn(model_dir: str, context: Any = None) -> Classifier:
    """Load the runtime named in the archive's ``textclf_meta.json``."""
    return load_classifier(model_dir)


def input_fn(input_data: str | bytes | bytearray, content_type: str | None, context: Any = None) -> list[str]:
    """Parse ``{"inputs": str | [str, ...]}`` (``application/json``, also when no type is sent)
    or JSON Lines (``application/jsonlines``) into a list of headlines."""
    media = _media_type(content_type)
    if media == JSONLINES_CONTENT_TYPE:
        return parse_json_lines(input_data)
    if media not in ("", JSON_CONTENT_TYPE):
        raise PayloadError(
            f"unsupported content type {content_type!r}: send {JSON_CONTENT_TYPE} or {JSONLINES_CONTENT_TYPE}"
        )
    payload = parse_json(input_data)
    if not isinstance(payload, dict):
        raise PayloadError(f'body must be a JSON object like {{"inputs": [...]}}, got {_type_name(payload)}')
    if "inputs" not in payload:
        raise PayloadError('body has no \'inputs\' field: send {"inputs": "headline"} or a list of headlines')
    extra = sorted(set(payload) - {"inputs", "explain"})
    if extra:
        raise PayloadError(
            f"unknown field(s) {', '.join(map(repr, extra))}: only 'inputs' (and 'explain') are accepted"
        )
    explain_flag = payload.get("explain", False)
    if not isinstance(explain_flag, bool):
        raise PayloadError(f"'explain' must be true or false, got {_type_name(explain_flag)}")
    texts = validate_texts(payload["inputs"])
    if not explain_flag:
        return texts
    if not isinstance(payload["inputs"], str):
        raise PayloadError("'explain' takes one headline: send 'inputs' as a string")
    return ExplainInputs(texts)


def parse_json_lines(input_data: str | bytes | bytearray) -> list[str]:
    """One headline per non-blank line: a JSON string or an object with one of
    ``LINE_TEXT_FIELDS``; each line is read with ``parse_json``'s rules and named when wrong."""
    texts: list[str] = []
    for number, line in enumerate(_utf8_text(input_data).splitlines(), start=1):
        if not line.strip():
            continue
        if len(texts) == MAX_LINES:
            raise PayloadError(f"more than {MAX_LINES} lines in one request: send smaller mini-batches")
        try:
            texts.extend(validate_texts(_line_text(parse_json(line))))
        except PayloadError as exc:
            raise PayloadError(f"line {number}: {exc}") from exc
    if not texts:
        raise PayloadError("no lines: send one JSON headline per line")
    return texts


def _line_text(record: Any) -> str:
    if isinstance(record, str):
        return record
    if isinstance(record, dict):
        found = [name for name in LINE_TEXT_FIELDS if name in record]
        if len(found) == 1 and isinstance(record[found[0]], str):
            return str(record[found[0]])
    fields = ", ".join(repr(f) for f in LINE_TEXT_FIELDS)
    raise PayloadError(f"each line must be a JSON string or an object with one string field of {fields}")


def predict_fn(data: list[str], model: Classifier, context: Any = None) -> dict[str, Any]:
    """``{"predictions": [...], "model_version": ...}`` for the texts ``input_fn`` returned, or the
    explanation of the one headline of an explain request."""
    if isinstance(data, ExplainInputs):
        return explain(model, data[0])
    return {
        "predictions": predict_texts(model, data),
        # The served label set in class-id order: the API checks each answer against it.
        "labels": list(model.labels),
        "model_version": model.model_version,
    }


def output_fn(prediction: dict[str, Any], accept: str | None, context: Any = None) -> str:
    """JSON (``*/*`` and no Accept mean JSON), or JSON Lines: one answer per line, each with the
    model version, in input order (what Batch Transform asks for with ``Accept``)."""
    media = _media_type(accept)
    if media == JSONLINES_CONTENT_TYPE:
        version = prediction["model_version"]
        return "".join(
            json.dumps({**row, "model_version": version}, ensure_ascii=False) + "\n"
            for row in prediction["predictions"]
        )
    if media not in ("", "*/*", JSON_CONTENT_TYPE):
        raise PayloadError(
            f"unsupported Accept {accept!r}: this endpoint answers {JSON_CONTENT_TYPE} "
            f"or {JSONLINES_CONTENT_TYPE}"
        )
    return json.dumps(prediction, ensure_ascii=False)
