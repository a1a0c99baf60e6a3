"""Micro-batcher: correctness under concurrency, bounds, fast rejection, failure isolation."""

from __future__ import annotations

import asyncio
import concurrent.futures
import random
import threading
import time
from collections.abc import Iterator, Sequence

import pytest

from textclf.serving.batcher import BatcherClosedError, MicroBatcher, QueueFullError


class RecordingPredict:
    """predict(texts) -> ["<text>!"...]; records each call, optionally slow or gated."""

    def __init__(self, delay_s: float = 0.0, gate: threading.Event | None = None) -> None:
        self.calls: list[list[str]] = []
        self.delay_s = delay_s
        self.gate = gate
        self.entered = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, texts: list[str]) -> list[str]:
        with self._lock:
            self.calls.append(list(texts))
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(10), "test gate never opened"
        if self.delay_s:
            time.sleep(self.delay_s)
        if any(t.startswith("poison") for t in texts):
            raise ValueError("poisoned batch")
        return [f"{t}!" for t in texts]


@pytest.fixture
def make_batcher() -> Iterator[object]:
    made: list[MicroBatcher] = []

    def make(predict: RecordingPredict, **kwargs: float) -> MicroBatcher:
        batcher = MicroBatcher(predict, **kwargs).start()  # type: ignore[arg-type]
        made.append(batcher)
        return batcher

    yield make
    for batcher in made:
        batcher.close()


def _requests(n: int, seed: int = 0) -> list[list[str]]:
    rng = random.Random(seed)
    return [
        [f"req{i}-text{j}-" + "x" * rng.randint(0, 40) for j in range(rng.randint(1, 9))] for i in range(n)
    ]


def test_concurrent_requests_get_their_own_results_in_order(make_batcher) -> None:
    predict = RecordingPredict(delay_s=0.003)
    batcher = make_batcher(predict, max_batch_size=16, max_wait_ms=2, max_queue_texts=4096)
    requests = _requests(120)

    async def main() -> list[list[str]]:
        return await asyncio.gather(*(batcher.predict(texts) for texts in requests))

    results = asyncio.run(main())

    for texts, result in zip(requests, results, strict=True):
        assert result == [f"{t}!" for t in texts]
    # Batching really happened, and never above the bound.
    assert len(predict.calls) < len(requests)
    assert max(len(call) for call in predict.calls) <= 16
    assert max(len({t.split("-")[0] for t in call}) for call in predict.calls) > 1
    # Every text went through the model exactly once.
    assert sorted(t for call in predict.calls for t in call) == sorted(t for r in requests for t in r)


def test_threads_submitting_at_once_get_their_own_results(make_batcher) -> None:
    predict = RecordingPredict(delay_s=0.002)
    batcher = make_batcher(predict, max_batch_size=8, max_wait_ms=1, max_queue_texts=4096)
    requests = _requests(80, seed=1)
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        futures = [pool.submit(lambda t=texts: batcher.submit(t).result(timeout=10)) for texts in requests]
        results = [f.result() for f in futures]
    for texts, result in zip(requests, results, strict=True):
        assert result == [f"{t}!" for t in texts]
    assert max(len(call) for call in predict.calls) <= 8


def test_a_request_larger_than_a_batch_is_split_and_reassembled(make_batcher) -> None:
    predict = RecordingPredict()
    batcher = make_batcher(predict, max_batch_size=32, max_wait_ms=0, max_queue_texts=256)
    texts = [f"t{i}" for i in range(100)]
    assert batcher.submit(texts).result(timeout=10) == [f"t{i}!" for i in range(100)]
    assert [len(call) for call in predict.calls] == [32, 32, 32, 4]


def test_full_queue_is_refused_at_once_and_the_queued_work_still_completes(make_batcher) -> None:
    gate = threading.Event()
    predict = RecordingPredict(gate=gate)
    batcher = make_batcher(predict, max_batch_size=4, max_wait_ms=0, max_queue_texts=8)
    running = batcher.submit(["a1", "a2", "a3", "a4"])  # taken by the worker, blocked on the gate
    assert predict.entered.wait(5)
    queued = [batcher.submit([f"b{i}", f"c{i}"]) for i in range(4)]  # 8 texts: the queue is full

    # In another thread, so a submit that waited for room could not block the test: it would
    # wait for the gate, which only opens after the check below.
    refused: list[BaseException] = []

    def one_too_many() -> None:
        try:
            batcher.submit(["one too many"])
        except QueueFullError as exc:
            refused.append(exc)

    thread = threading.Thread(target=one_too_many)
    thread.start()
    thread.join(10)
    assert not thread.is_alive() and not gate.is_set()
    assert len(refused) == 1 and "capacity" in str(refused[0])
    assert batcher.stats.rejected == 1

    gate.set()
    assert running.result(timeout=5) == ["a1!", "a2!", "a3!", "a4!"]
    for i, future in enumerate(queued):
        assert future.result(timeout=5) == [f"b{i}!", f"c{i}!"]
    # Room again once the queue drained.
    assert batcher.submit(["later"]).result(timeout=5) == ["later!"]


def test_a_failing_request_does_not_fail_the_others_in_its_batch(make_batcher) -> None:
    gate = threading.Event()
    predict = RecordingPredict(gate=gate)
    batcher = make_batcher(predict, max_batch_size=32, max_wait_ms=0, max_queue_texts=256)
    blocker = batcher.submit(["first"])
    assert predict.entered.wait(5)
    # Queued behind the blocker, so these three land in one batch together.
    good1 = batcher.submit(["good one"])
    bad = batcher.submit(["poison pill", "innocent bystander"])
    good2 = batcher.submit(["good two"])
    gate.set()
    assert blocker.result(timeout=5) == ["first!"]
    assert good1.result(timeout=5) == ["good one!"]
    assert good2.result(timeout=5) == ["good two!"]
    with pytest.raises(ValueError, match="poisoned"):
        bad.result(timeout=5)
    assert ["good one", "poison pill", "innocent bystander", "good two"] in predict.calls


def test_a_lone_client_does_not_pay_the_batch_wait(make_batcher) -> None:
    predict = RecordingPredict()
    # A 60 s wait: a request that paid it would run into result()'s 10 s timeout and fail.
    batcher = make_batcher(predict, max_batch_size=32, max_wait_ms=60_000, max_queue_texts=256)
    for i in range(5):
        assert batcher.submit([f"solo {i}"]).result(timeout=10) == [f"solo {i}!"]


def test_under_load_the_worker_waits_to_fill_batches(make_batcher) -> None:
    predict = RecordingPredict(delay_s=0.002)
    batcher = make_batcher(predict, max_batch_size=64, max_wait_ms=50, max_queue_texts=1024)

    def client(k: int) -> None:
        for i in range(10):
            assert batcher.submit([f"c{k}-{i}"]).result(timeout=10) == [f"c{k}-{i}!"]

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    sizes = [len(call) for call in predict.calls]
    assert sum(sizes) == 80
    # Eight closed-loop clients: once concurrency is seen, batches gather several clients.
    assert max(sizes) >= 4
    assert len(sizes) < 40


def test_cancelled_requests_are_skipped(make_batcher) -> None:
    gate = threading.Event()
    predict = RecordingPredict(gate=gate)
    batcher = make_batcher(predict, max_batch_size=8, max_wait_ms=0, max_queue_texts=64)

    async def main() -> list[str]:
        first = asyncio.ensure_future(batcher.predict(["running"]))
        while not predict.entered.is_set():
            await asyncio.sleep(0.001)
        doomed = asyncio.ensure_future(batcher.predict(["never computed"]))
        kept = asyncio.ensure_future(batcher.predict(["kept"]))
        await asyncio.sleep(0.01)
        doomed.cancel()  # the client went away while queued
        await asyncio.sleep(0.01)  # let the cancellation reach the queued request
        gate.set()
        await first
        return await kept

    assert asyncio.run(main()) == ["kept!"]
    assert all("never computed" not in call for call in predict.calls)
    assert batcher.queued_texts == 0


def test_close_fails_queued_requests_and_refuses_new_ones(make_batcher) -> None:
    gate = threading.Event()
    predict = RecordingPredict(gate=gate)
    batcher = make_batcher(predict, max_batch_size=2, max_wait_ms=0, max_queue_texts=16)
    running = batcher.submit(["r1"])
    assert predict.entered.wait(5)
    queued = batcher.submit(["q1"])
    closer = threading.Thread(target=batcher.close)
    closer.start()
    with pytest.raises(BatcherClosedError):
        queued.result(timeout=5)
    gate.set()
    closer.join(5)
    assert running.result(timeout=5) == ["r1!"]
    assert not batcher.alive
    with pytest.raises(BatcherClosedError):
        batcher.submit(["after close"])


def test_wrong_result_count_is_an_error_not_a_mismatch(make_batcher) -> None:
    def short(texts: Sequence[str]) -> list[str]:
        return ["only one"]

    batcher = make_batcher(short, max_batch_size=8, max_wait_ms=0, max_queue_texts=64)
    with pytest.raises(RuntimeError, match="1 results for 2 texts"):
        batcher.submit(["a", "b"]).result(timeout=5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_batch_size": 0}, "max_batch_size must be at least 1"),
        ({"max_batch_size": 8, "max_queue_texts": 4}, "max_queue_texts must hold at least one full batch"),
        ({"max_wait_ms": -1}, "max_wait_ms must be >= 0"),
    ],
)
def test_bad_bounds_are_rejected(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MicroBatcher(RecordingPredict(), **kwargs)  # type: ignore[arg-type]
