"""A SageMaker-compatible inference endpoint on loopback (``textclf serve-endpoint``).

Two faces, one model:
- the **container contract** SageMaker hosting uses inside an instance: ``GET /ping`` and
  ``POST /invocations`` (errors are the container's own 4xx/5xx);
- the **SageMaker Runtime API** ``POST /endpoints/{name}/invocations`` that boto3's
  ``sagemaker-runtime`` client calls, so an unchanged client reaches this server through
  ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME``. Errors use the runtime's shapes: a model that
  refuses the payload answers ``424`` + ``x-amzn-ErrorType: ModelError`` (botocore raises
  ``ModelError`` with ``OriginalStatusCode``/``OriginalMessage``), an unknown endpoint name
  ``400 ValidationError`` "Endpoint X of account Y not found.", a full queue ``503``
  ``ServiceUnavailable`` with ``Retry-After``.

Requests are parsed with the model's own ``input_fn`` in the event loop (cheap JSON), then the
texts go through the micro-batcher (``batcher.MicroBatcher``) to ``predict_texts`` on the single
inference thread, and the reply is rendered by ``output_fn`` — so the bytes are exactly what
the packaged ``inference.py`` produces on SageMaker.

With a capture configuration (its endpoint config's ``DataCaptureConfig``), each answered
invocation is offered to a ``capture.CaptureWriter``, which samples it and writes SageMaker's
capture files from a thread of its own: the request pays for an append to a bounded buffer.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio.to_thread
from starlette.types import ASGIApp, Receive, Scope, Send

from textclf import config
from textclf.errors import UserError
from textclf.serving import LOCAL_ACCOUNT_ID, local_session
from textclf.serving.batcher import BatcherClosedError, MicroBatcher, QueueFullError
from textclf.serving.capture import CaptureConfig, CaptureWriter, Store, s3_store
from textclf.serving.model_store import import_inference, inference_script, resolve_model_dir
from textclf.serving.servers import ServerThread, read_body
from textclf.threads import physical_cores

log = logging.getLogger(__name__)

#: SageMaker real-time InvokeEndpoint payload limit.
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
#: Parsing/serialising bodies above this size moves off the event loop.
_INLINE_BYTES = 64 * 1024
VARIANT_NAME = "AllTraffic"
DEFAULT_ENDPOINT_NAME = "textclf"


def serving_threads() -> int:
    """Intra-op threads for the one inference thread: the physical cores this process may use."""
    return physical_cores()


def configure_threads(threads: int) -> None:
    """Thread counts for the model, set before it loads.

    ``inference.py`` reads ``TEXTCLF_INTRA_OP_THREADS`` for both torch and ONNX Runtime (unless the
    user set ``TEXTCLF_NUM_THREADS``). One inter-op thread: a single inference thread runs one
    graph at a time, so a second pool would only compete for the same cores.
    """
    os.environ["TEXTCLF_INTRA_OP_THREADS"] = str(threads)
    try:
        import torch
    except ImportError:  # an ONNX-only environment
        return
    # RuntimeError: already set, or parallel work already ran in this process.
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)


class BadPayloadError(ValueError):
    """The model refused the request (``input_fn`` raised a ValueError)."""


@dataclass
class ServingModel:
    """A loaded artefact: its ``inference`` module and the object ``model_fn`` returned."""

    model_dir: Path
    module: ModuleType
    model: Any
    #: The version this model answers as when the host says so (SageMaker's TEXTCLF_MODEL_VERSION).
    version_override: str | None = None

    @classmethod
    def load(cls, model: Path, version: str | None = None, sha256: str | None = None) -> ServingModel:
        model_dir = resolve_model_dir(model, sha256)
        module = import_inference(inference_script(model_dir))
        started = time.perf_counter()
        loaded = module.model_fn(str(model_dir))
        log.info("model_fn(%s) took %.2f s", model_dir, time.perf_counter() - started)
        return cls(model_dir=model_dir, module=module, model=loaded, version_override=version)

    def texts(self, body: bytes, content_type: str) -> list[str]:
        """The texts of a request, via the model's ``input_fn`` (its validation, its messages)."""
        try:
            texts = self.module.input_fn(body, content_type)
        except ValueError as exc:
            raise BadPayloadError(str(exc)) from exc
        if not isinstance(texts, list):
            raise TypeError(
                f"input_fn returned {type(texts).__name__}, not the list of texts DESIGN.md names"
            )
        return texts

    @property
    def labels(self) -> list[str]:
        """The label set the model answers with (class-id order)."""
        return [str(label) for label in getattr(self.model, "labels", [])]

    @property
    def version(self) -> str:
        if self.version_override:
            return self.version_override
        return str(getattr(self.model, "model_version", "unversioned"))

    def predict(self, texts: list[str]) -> list[Any]:
        return list(self.module.predict_texts(self.model, texts))

    def explain(self, texts: list[str], accept: str) -> bytes:
        """The rendered answer to an explain request (``input_fn`` marked it): ``predict_fn`` then
        ``output_fn``, as the toolkit runs them, with the version the host says it serves."""
        explanation = dict(self.module.predict_fn(texts, self.model))
        explanation["model_version"] = self.version
        try:
            rendered = self.module.output_fn(explanation, accept)
        except ValueError as exc:
            raise BadPayloadError(str(exc)) from exc
        return rendered.encode("utf-8") if isinstance(rendered, str) else bytes(rendered)

    def render(self, predictions: Sequence[Any], accept: str) -> bytes:
        """The reply body: ``output_fn`` of what ``predict_fn`` returns for these predictions."""
        try:
            # predict_fn's reply, batched here: the served label set rides with every answer.
            body = {
                "predictions": list(predictions),
                "labels": list(self.model.labels),
                "model_version": self.version,
            }
            rendered = self.module.output_fn(body, accept)
        except ValueError as exc:
            raise BadPayloadError(str(exc)) from exc
        return rendered.encode("utf-8") if isinstance(rendered, str) else bytes(rendered)


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()


def _json_reply(status: int, payload: dict[str, Any], *headers: tuple[str, str]) -> Reply:
    return Reply(status, json.dumps(payload).encode(), (("content-type", "application/json"), *headers))


class LocalEndpoint:
    """The ASGI app around a ``ServingModel`` and its ``MicroBatcher``.

    Plain ASGI rather than a framework: three fixed routes, and on two cores Starlette's
    request/response/routing objects measured 0.07 ms of CPU per request against 0.05 ms for
    the whole plain path — a fifth of everything the server spends on a batched request.
    """

    def __init__(
        self,
        model: ServingModel,
        batcher: MicroBatcher,
        *,
        endpoint_name: str,
        batching: BatchingOptions | None = None,
        capture: CaptureWriter | None = None,
        capture_store: Store | None = None,
    ) -> None:
        self.model = model
        self.batcher = batcher
        self.endpoint_name = endpoint_name
        self.batching = batching or BatchingOptions()
        #: Where capture files go when a rollout enables capture (None: the S3 the rollout names).
        self.capture_store = capture_store
        self.capture = capture
        self._swap_lock = threading.Lock()
        self._explain_slot = threading.Lock()

    @property
    def app(self) -> ASGIApp:
        return self

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan is off; websockets are not served
            return
        path: str = scope["path"]
        method: str = scope["method"]
        if path == "/ping":
            reply = self.ping() if method in ("GET", "HEAD") else _json_reply(405, {"message": "use GET"})
        elif path == "/invocations":
            reply = await self.container_invocations(scope, receive) if method == "POST" else _POST_ONLY
        elif path == ADMIN_MODEL_PATH:
            if method == "POST":
                reply = await self.admin_model(receive, _headers(scope))
            else:
                reply = self.served() if method == "GET" else _json_reply(405, {"message": "use GET or POST"})
        elif path.startswith(_RUNTIME_PREFIX) and path.endswith(_RUNTIME_SUFFIX):
            name = path[len(_RUNTIME_PREFIX) : -len(_RUNTIME_SUFFIX)]
            if not name or "/" in name:
                reply = _json_reply(404, {"message": f"no route {path}"})
            elif method != "POST":
                reply = _POST_ONLY
            else:
                reply = await self.runtime_invocations(name, scope, receive)
        else:
            reply = _json_reply(404, {"message": f"no route {path}"})
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers]
        headers.append((b"content-length", str(len(reply.body)).encode()))
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": reply.body})

    # -- container contract ----------------------------------------------------------------

    def ping(self) -> Reply:
        return Reply(200 if self.batcher.alive else 503)

    async def container_invocations(self, scope: Scope, receive: Receive) -> Reply:
        status, body, message = await self._invoke(scope, receive)
        if status == 200:
            return Reply(200, body, (("content-type", "application/json"),))
        retry = (("Retry-After", "1"),) if status == 503 else ()
        return _json_reply(status, {"code": status, "message": message}, *retry)

    # -- hosting: the model behind the endpoint is replaced without dropping a request ------

    def served(self) -> Reply:
        """``GET /admin/model``: what serves now (the local stack records its label set)."""
        model = self.model
        capture = self.capture
        return _json_reply(
            200,
            {
                "model_version": model.version,
                "model_dir": str(model.model_dir),
                "labels": model.labels,
                "capture": None if capture is None else vars(capture.stats),
            },
        )

    async def admin_model(self, receive: Receive, headers: dict[str, str]) -> Reply:
        """``POST /admin/model {"model": path, "version": str, "sha256": hex, "capture":
        DataCaptureConfig | null, "s3_endpoint_url": url}``: what the local control plane calls
        for CreateEndpoint/UpdateEndpoint (SageMaker's blue/green fleet swap, on one host)."""
        body = await read_body(receive, headers.get("content-length"), 64 * 1024)
        try:
            request = json.loads(body or b"")
            path, version, sha256 = Path(str(request["model"])), request.get("version"), request.get("sha256")
            capture = CaptureConfig.from_data_capture_config(request.get("capture"))
            store_url = request.get("s3_endpoint_url")
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
            return _json_reply(
                400,
                {
                    "message": 'send {"model": "<archive or folder>", "version": "<name>", '
                    '"sha256": "<hex>", "capture": <DataCaptureConfig or null>, "s3_endpoint_url": "<url>"}'
                },
            )
        try:
            await anyio.to_thread.run_sync(
                self.swap,
                path,
                None if version is None else str(version),
                None if sha256 is None else str(sha256),
                capture,
                None if store_url is None else str(store_url),
            )
        except UserError as exc:
            return _json_reply(400, {"message": str(exc)})
        except Exception:
            log.exception("loading %s failed; the previous model keeps serving", path)
            failed = f"loading {path} failed (see the endpoint log); the previous model keeps serving"
            return _json_reply(500, {"message": failed})
        return _json_reply(200, {"model_version": self.model.version, "model_dir": str(self.model.model_dir)})

    def swap(
        self,
        model_path: Path,
        version: str | None,
        sha256: str | None = None,
        capture: CaptureConfig | None = None,
        s3_endpoint_url: str | None = None,
    ) -> None:
        """Load ``model_path`` beside the serving model, warm it, switch traffic, drain the old one.
        With ``sha256``, an archive whose bytes differ is refused and the old model keeps serving.
        ``capture`` is the new config's capture (None: off)."""
        with self._swap_lock:
            model = ServingModel.load(model_path, version, sha256)
            batcher = start_batcher(model, self.batching)
            old = self.batcher
            # One assignment each: a request reads the pair at its start (see _invoke).
            self.model, self.batcher = model, batcher
            log.info(
                "endpoint %r now serves %s (version %s)", self.endpoint_name, model.model_dir, model.version
            )
            old.drain()
            self.set_capture(capture, s3_endpoint_url)

    def set_capture(self, config: CaptureConfig | None, s3_endpoint_url: str | None = None) -> None:
        """Capture as ``config`` says from now on. The same config keeps its writer (and its
        buffer); another one starts a writer and flushes and stops the old one."""
        old = self.capture
        if old is not None and old.config == config:
            return
        store = self.capture_store
        if config is not None and store is None and s3_endpoint_url:
            store = s3_store(_s3_client(s3_endpoint_url))
        if config is not None and store is None:
            log.warning("endpoint %r: capture asked for, but it has nowhere to write", self.endpoint_name)
        if config is not None and store is not None:
            self.capture = CaptureWriter(
                config, store, endpoint_name=self.endpoint_name, variant=VARIANT_NAME
            )
            self.capture.start()
        else:
            self.capture = None
        if old is not None:
            old.close()

    # -- SageMaker Runtime API -------------------------------------------------------------

    async def runtime_invocations(self, name: str, scope: Scope, receive: Receive) -> Reply:
        request_id = ("x-amzn-RequestId", str(uuid.uuid4()))
        if name != self.endpoint_name:
            return _runtime_error(
                400,
                "ValidationError",
                f"Endpoint {name} of account {LOCAL_ACCOUNT_ID} not found.",
                request_id,
            )
        status, body, message = await self._invoke(scope, receive)
        if status == 200:
            return Reply(
                200,
                body,
                (
                    ("content-type", "application/json"),
                    request_id,
                    ("x-Amzn-Invoked-Production-Variant", VARIANT_NAME),
                ),
            )
        if status == 503:
            return _runtime_error(503, "ServiceUnavailable", message, request_id, ("Retry-After", "1"))
        if status == 413:
            return _runtime_error(413, "ValidationError", message, request_id)
        # The container answered an error: SageMaker wraps it as ModelError (HTTP 424).
        log_stream = f"arn:aws:logs:local:{LOCAL_ACCOUNT_ID}:log-group:/aws/sagemaker/Endpoints/{name}"
        side = "client" if status < 500 else "server"
        payload = {
            "ErrorCode": f"{side.upper()}_ERROR_FROM_MODEL",
            "LogStreamArn": log_stream,
            "Message": (
                f'Received {side} error ({status}) from primary with message "{message}". '
                "See the local endpoint log for more information."
            ),
            "OriginalMessage": message,
            "OriginalStatusCode": status,
        }
        return _json_reply(424, payload, request_id, ("x-amzn-ErrorType", "ModelError"))

    # -- shared path -----------------------------------------------------------------------

    async def _invoke(self, scope: Scope, receive: Receive) -> tuple[int, bytes, str]:
        """(status, body, error message) of one invocation."""
        headers = _headers(scope)
        body = await read_body(receive, headers.get("content-length"), MAX_PAYLOAD_BYTES)
        if body is None:
            return 413, b"", f"request payload exceeds {MAX_PAYLOAD_BYTES} bytes"
        content_type = headers.get("content-type", "application/json")
        accept = headers.get("accept", "application/json")
        model, batcher = self.model, self.batcher
        try:
            if len(body) > _INLINE_BYTES:
                texts = await anyio.to_thread.run_sync(model.texts, body, content_type)
            else:
                texts = model.texts(body, content_type)
            if getattr(texts, "explain", False):
                reply = await self._explain(model, texts, accept)
            else:
                try:
                    predictions = await batcher.predict(texts)
                except BatcherClosedError:
                    if batcher is self.batcher:
                        raise
                    # The model was swapped between reading the pair and queueing: use the new one.
                    model, batcher = self.model, self.batcher
                    predictions = await batcher.predict(texts)
                reply = model.render(predictions, accept)
            capture = self.capture
            if capture is not None:
                capture.offer(body, content_type, reply, "application/json", headers.get(_INFERENCE_ID))
            return 200, reply, ""
        except BadPayloadError as exc:
            return 400, b"", str(exc)
        except (QueueFullError, BatcherClosedError) as exc:
            return 503, b"", str(exc)
        except Exception:
            # The traceback is ours to read in the log; the caller learns only that it was not them.
            incident = uuid.uuid4().hex[:12]
            log.exception("inference failed (incident %s)", incident)
            return 500, b"", f"the model failed on this request (incident {incident} in the endpoint log)"

    async def _explain(self, model: ServingModel, texts: list[str], accept: str) -> bytes:
        """One explanation at a time, beside the batcher: its work is bounded (max_length + 1 rows
        in one forward pass), and a second request while one runs is told to retry (503) instead
        of queueing behind it."""
        if not self._explain_slot.acquire(blocking=False):
            raise QueueFullError("an explanation is being computed; retry in a moment")
        try:
            return await anyio.to_thread.run_sync(model.explain, texts, accept)
        finally:
            self._explain_slot.release()


ADMIN_MODEL_PATH = "/admin/model"
#: InvokeEndpoint's ``InferenceId`` (botocore sends it in this header; ASGI names are lower case).
_INFERENCE_ID = "x-amzn-sagemaker-inference-id"
_RUNTIME_PREFIX = "/endpoints/"
_RUNTIME_SUFFIX = "/invocations"
_POST_ONLY = _json_reply(405, {"message": "use POST"})


def _headers(scope: Scope) -> dict[str, str]:
    # ASGI header names are lower-case bytes; the last value wins, as for a single-value header.
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}


def _s3_client(url: str) -> Any:
    """An S3 client for the local control plane at ``url``."""
    from botocore.config import Config

    config = Config(connect_timeout=2, read_timeout=10, retries={"max_attempts": 2})
    return local_session("us-east-1").client("s3", endpoint_url=url, config=config)


def _runtime_error(status: int, error_type: str, message: str, *headers: tuple[str, str]) -> Reply:
    return _json_reply(status, {"message": message}, *headers, ("x-amzn-ErrorType", error_type))


@dataclass(frozen=True)
class BatchingOptions:
    max_batch_size: int = 32
    max_wait_ms: float = 2.0
    max_queue_texts: int = 512
    threads: int | None = None  # intra-op threads; None = serving_threads()


def add_endpoint_arguments(parser: argparse.ArgumentParser) -> None:
    """Model and batching flags shared by ``serve-endpoint`` and ``serve``."""
    defaults = BatchingOptions()
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        help="model.tar.gz from `textclf package`, or a model folder "
        "(default: <artifacts>/package/model.tar.gz)",
    )
    parser.add_argument(
        "--endpoint-name",
        default=DEFAULT_ENDPOINT_NAME,
        help=f"SageMaker endpoint name the runtime path answers to (default {DEFAULT_ENDPOINT_NAME})",
    )
    parser.add_argument(
        "--max-batch-size",
        type=int,
        default=defaults.max_batch_size,
        help=f"most texts per model call (default {defaults.max_batch_size})",
    )
    parser.add_argument(
        "--max-wait-ms",
        type=float,
        default=defaults.max_wait_ms,
        help=f"longest wait for a batch to fill under load (default {defaults.max_wait_ms})",
    )
    parser.add_argument(
        "--max-queue",
        type=int,
        default=defaults.max_queue_texts,
        help=f"queued texts beyond which requests get 503 at once (default {defaults.max_queue_texts})",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="intra-op threads (default: physical cores available)"
    )


def batching_from_args(args: argparse.Namespace) -> BatchingOptions:
    if args.max_batch_size < 1 or args.max_wait_ms < 0 or args.max_queue < args.max_batch_size:
        raise UserError(
            "--max-batch-size must be >= 1, --max-wait-ms >= 0 and --max-queue >= --max-batch-size"
        )
    if args.threads is not None and args.threads < 1:
        raise UserError("--threads must be >= 1")
    return BatchingOptions(args.max_batch_size, args.max_wait_ms, args.max_queue, args.threads)


def default_model_path(model: Path | None) -> Path:
    return model if model is not None else config.artifacts_dir() / "package" / "model.tar.gz"


class RunningEndpoint:
    """A loaded model, its batcher and its uvicorn server; ``stop()`` ends all three."""

    def __init__(self, app: LocalEndpoint, server: ServerThread) -> None:
        self.app = app
        self.server = server

    @property
    def model(self) -> ServingModel:
        return self.app.model  # the current one: a swap replaces it

    @property
    def batcher(self) -> MicroBatcher:
        return self.app.batcher

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        self.server.stop()
        self.batcher.close()
        self.app.set_capture(None)  # what is buffered is written before the process goes
        stats = self.batcher.stats
        if stats.batches:
            log.info(
                "endpoint served %d texts in %d model calls (%.1f per call); %d refused (full queue)",
                stats.texts,
                stats.batches,
                stats.texts / stats.batches,
                stats.rejected,
            )


def start_batcher(model: ServingModel, batching: BatchingOptions) -> MicroBatcher:
    """The model's micro-batcher, started and warmed by one call before it takes traffic: first-call
    costs (allocations, kernel selection) are not a client's latency, and a model that cannot
    predict fails here, not on the first request."""
    batcher = MicroBatcher(
        model.predict,
        max_batch_size=batching.max_batch_size,
        max_wait_ms=batching.max_wait_ms,
        max_queue_texts=batching.max_queue_texts,
    ).start()
    try:
        batcher.submit(["warm-up headline"]).result(timeout=120)
    except BaseException:
        batcher.close()
        raise
    return batcher


def start_endpoint(
    model_path: Path,
    sock: socket.socket,
    *,
    endpoint_name: str,
    batching: BatchingOptions,
    version: str | None = None,
    sha256: str | None = None,
    capture: CaptureConfig | None = None,
    capture_store: Store | None = None,
) -> RunningEndpoint:
    """Load ``model_path`` and serve it on the already bound ``sock`` (as ``version``, checked
    against ``sha256`` when given: what a rollout would have loaded), capturing as ``capture``
    says into ``capture_store``."""
    # A missing or broken archive fails here, before torch is even imported.
    model_dir = resolve_model_dir(model_path, sha256)
    threads = batching.threads or serving_threads()
    configure_threads(threads)
    model = ServingModel.load(model_dir, version)
    batcher = start_batcher(model, batching)
    app = LocalEndpoint(
        model, batcher, endpoint_name=endpoint_name, batching=batching, capture_store=capture_store
    )
    app.set_capture(capture)
    server = ServerThread(app.app, sock, name="endpoint")
    try:
        server.start()
    except BaseException:
        batcher.close()
        app.set_capture(None)
        raise
    log.info(
        "endpoint %r serving %s on %s (%d intra-op threads, batches <= %d texts, wait <= %.1f ms)",
        endpoint_name,
        model.model_dir,
        server.url,
        threads,
        batching.max_batch_size,
        batching.max_wait_ms,
    )
    return RunningEndpoint(app, server)
