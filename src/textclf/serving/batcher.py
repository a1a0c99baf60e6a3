"""Micro-batching: concurrent requests share one model call.

A transformer on CPU costs about the same for 1 text as for 16 short ones, so serving each
request alone wastes most of the machine. Requests are queued; one inference thread takes up
to ``max_batch_size`` texts at a time (waiting at most ``max_wait_ms`` for more to arrive),
runs ``predict`` once on them, and hands every request exactly its own results, in its own
order. ``inference.predict_texts`` sorts each batch by token length before padding (the
tokenizer knows lengths better than character counts), so the batcher does not sort again.

Design points:
- One inference thread: the model's kernels are already multi-threaded (intra-op threads =
  cores); two concurrent calls would only fight over the same cores.
- The asyncio side never blocks: ``predict()`` enqueues under a short lock and awaits a
  future that the worker completes (one loop wake-up per batch); the event loop keeps
  accepting and parsing requests.
- Bounded queue (counted in texts, the unit of work): when full, ``QueueFullError`` is raised
  immediately so the server answers 503 at once instead of letting memory and latency grow.
- Requests larger than a batch are split across batches, in FIFO order, so one big request
  can neither exceed the batch bound nor starve the others.
- The wait for more texts only happens when the previous batch held several requests, i.e.
  when there is evidence of concurrency; a lone client never pays ``max_wait_ms``.
- If a batch fails, each request in it is retried alone, so one poisonous input fails only
  its own request.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

#: ``predict(texts) -> results``: one result per text, in order (``inference.predict_texts``).
PredictFn = Callable[[list[str]], Sequence[Any]]


class QueueFullError(Exception):
    """The queue holds ``max_queue_texts`` already: the caller should answer 503 now."""


class BatcherClosedError(Exception):
    """The batcher is stopping or stopped; no more work is accepted."""


@dataclass(eq=False)
class _Request:
    texts: list[str]
    # An asyncio future (with its loop) for predict(), a concurrent one for submit().
    future: asyncio.Future[list[Any]] | concurrent.futures.Future[list[Any]]
    loop: asyncio.AbstractEventLoop | None = None
    results: list[Any] = field(default_factory=list)
    taken: int = 0  # texts handed to batches so far (a request may span several batches)
    done: int = 0  # texts with results

    def __post_init__(self) -> None:
        self.results = [None] * len(self.texts)

    def start(self) -> bool:
        """Called when the first text is taken; False if the client already gave up."""
        if self.loop is None:
            assert isinstance(self.future, concurrent.futures.Future)
            return self.future.set_running_or_notify_cancel()
        # Reading an asyncio future's state from another thread is a benign race: a request
        # cancelled just after this check is computed, and its result is dropped in _settle.
        return not self.future.cancelled()


@dataclass(frozen=True)
class _Slice:
    request: _Request
    start: int
    stop: int


@dataclass
class BatcherStats:
    """Counters for logs and tests: how well batching works under the current load."""

    batches: int = 0
    texts: int = 0
    rejected: int = 0


class MicroBatcher:
    """Gathers texts from concurrent requests into bounded batches for one inference thread."""

    def __init__(
        self,
        predict: PredictFn,
        *,
        max_batch_size: int = 32,
        max_wait_ms: float = 2.0,
        max_queue_texts: int = 512,
        name: str = "textclf-batcher",
    ) -> None:
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        if max_queue_texts < max_batch_size:
            raise ValueError("max_queue_texts must hold at least one full batch")
        if max_wait_ms < 0:
            raise ValueError("max_wait_ms must be >= 0")
        self._predict = predict
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000.0
        self.max_queue_texts = max_queue_texts
        self._queue: deque[_Request] = deque()
        self._queued_texts = 0  # texts not yet taken into a batch
        self._cond = threading.Condition()
        self._closed = False
        self._draining = False
        self._last_batch_requests = 1
        self.stats = BatcherStats()
        self._thread = threading.Thread(target=self._worker, name=name, daemon=True)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> MicroBatcher:
        self._thread.start()
        return self

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._closed

    def close(self, timeout: float = 10.0) -> None:
        """Stop accepting work, fail what is still queued, and wait for the running batch."""
        with self._cond:
            self._closed = True
            pending = list(self._queue)
            self._queue.clear()
            self._queued_texts = 0
            self._cond.notify_all()
        _complete([(request, BatcherClosedError("the endpoint is shutting down")) for request in pending])
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def drain(self, timeout: float = 60.0) -> None:
        """Refuse new work, let everything already queued finish, then stop: what a model swap
        does to the outgoing model, so no accepted request is dropped."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._draining = True
            while self._queue and time.monotonic() < deadline:
                # The worker takes from the queue without notifying; a short wait bounds the lag.
                self._cond.wait(0.02)
        self.close(max(0.0, deadline - time.monotonic()))

    # -- submission ------------------------------------------------------------------------

    def submit(self, texts: Sequence[str]) -> concurrent.futures.Future[list[Any]]:
        """Thread-safe: queue ``texts``; the future resolves to their results, in order."""
        future: concurrent.futures.Future[list[Any]] = concurrent.futures.Future()
        if not texts:
            future.set_result([])
            return future
        self._enqueue(_Request(list(texts), future))
        return future

    async def predict(self, texts: Sequence[str]) -> list[Any]:
        """Asyncio entry point: never blocks the event loop (enqueue + await a future).

        The worker completes all of a batch's asyncio futures with one wake-up of their loop
        (``call_soon_threadsafe`` per batch, not per request), which matters at thousands of
        requests per second on two cores.
        """
        if not texts:
            return []
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Any]] = loop.create_future()
        self._enqueue(_Request(list(texts), future, loop))
        return await future

    def _enqueue(self, request: _Request) -> None:
        with self._cond:
            if self._closed or self._draining:
                raise BatcherClosedError("the endpoint is shutting down")
            if self._queued_texts + len(request.texts) > self.max_queue_texts:
                self.stats.rejected += 1
                raise QueueFullError(
                    f"the endpoint is at capacity ({self._queued_texts} texts queued, "
                    f"limit {self.max_queue_texts}); retry shortly"
                )
            self._queue.append(request)
            self._queued_texts += len(request.texts)
            self._cond.notify()

    @property
    def queued_texts(self) -> int:
        return self._queued_texts

    # -- worker ----------------------------------------------------------------------------

    def _take(self, room: int) -> list[_Slice]:
        """Move up to ``room`` texts from the queue head into slices (caller holds the lock)."""
        slices: list[_Slice] = []
        while room > 0 and self._queue:
            request = self._queue[0]
            if request.taken == 0 and not request.start():
                # The client went away before any of its texts ran: skip the work.
                self._queue.popleft()
                self._queued_texts -= len(request.texts)
                continue
            start = request.taken
            stop = min(len(request.texts), start + room)
            slices.append(_Slice(request, start, stop))
            request.taken = stop
            room -= stop - start
            self._queued_texts -= stop - start
            if stop == len(request.texts):
                self._queue.popleft()
        return slices

    def _next_batch(self) -> list[_Slice] | None:
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            batch = self._take(self.max_batch_size)
            size = sum(s.stop - s.start for s in batch)
            if size < self.max_batch_size and self._last_batch_requests > 1 and self.max_wait_s > 0:
                deadline = time.monotonic() + self.max_wait_s
                while size < self.max_batch_size and not self._closed:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    if not self._queue:
                        self._cond.wait(remaining)
                        continue
                    more = self._take(self.max_batch_size - size)
                    batch.extend(more)
                    size += sum(s.stop - s.start for s in more)
            self._last_batch_requests = len({id(s.request) for s in batch})
            return batch

    def _worker(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            if batch:
                self._run(batch)

    def _run(self, batch: list[_Slice]) -> None:
        texts = [text for s in batch for text in s.request.texts[s.start : s.stop]]
        try:
            results = list(self._predict(texts))
            if len(results) != len(texts):
                raise RuntimeError(f"predict returned {len(results)} results for {len(texts)} texts")
        except Exception as exc:
            if len(batch) == 1:
                _complete([(batch[0].request, exc)])
                return
            log.warning("a batch of %d requests failed (%r); retrying each request alone", len(batch), exc)
            for piece in batch:
                self._run([piece])
            return
        self._record(len(texts))
        finished: list[tuple[_Request, list[Any] | BaseException]] = []
        offset = 0
        for s in batch:
            n = s.stop - s.start
            request = s.request
            request.results[s.start : s.stop] = results[offset : offset + n]
            offset += n
            request.done += n
            if request.done == len(request.texts):
                finished.append((request, request.results))
        _complete(finished)

    def _record(self, size: int) -> None:
        self.stats.batches += 1
        self.stats.texts += size


def _complete(outcomes: list[tuple[_Request, list[Any] | BaseException]]) -> None:
    """Resolve futures with results or exceptions; one wake-up per event loop involved."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Any, list[Any] | BaseException]]] = {}
    for request, outcome in outcomes:
        if request.loop is None:
            _settle([(request.future, outcome)])
        else:
            by_loop.setdefault(request.loop, []).append((request.future, outcome))
    for loop, items in by_loop.items():
        # RuntimeError: the loop is closed (server gone); nobody waits for these any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle, items)


def _settle(items: list[tuple[Any, list[Any] | BaseException]]) -> None:
    for future, outcome in items:
        if future.done():  # cancelled by its client, or already failed
            continue
        # InvalidStateError: a concurrent future cancelled between the check and the set.
        with contextlib.suppress(concurrent.futures.InvalidStateError, asyncio.InvalidStateError):
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
