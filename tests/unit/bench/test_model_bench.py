"""Model-level timing and accuracy with stand-in runtimes (no model needed)."""

from __future__ import annotations

import pytest

from textclf.bench.model_bench import Runtime, measure_accuracy, time_runtimes

pytestmark = pytest.mark.heavy  # real models, exports, servers or tools: not in `make unit`


def _runtime(name: str, calls: list[tuple[str, int]], answer: str = "business") -> Runtime:
    def predict(texts: list[str]) -> list[str]:
        calls.append((name, len(texts)))
        return [answer if "stock" in t else "health" for t in texts]

    return Runtime(name, predict, predict, 0.0, "stand-in")


def test_time_runtimes_makes_exactly_the_requested_calls_interleaved() -> None:
    calls: list[tuple[str, int]] = []
    runtimes = [_runtime("a", calls), _runtime("b", calls)]
    timings = time_runtimes(
        runtimes, ["stock up", "flu"], single_calls=7, batch_calls=3, batch_size=4, rounds=3, warmup_calls=2
    )
    for timing in timings:
        assert timing.single.count == 7
        assert timing.batch_headlines == 12
        assert timing.batch_throughput > 0
    measured = calls[2 * (2 + 1) :]  # after warm-up: 2 single + 1 batch call per runtime
    # Interleaved: runtime a's first round, then b's, then a again.
    names = [n for n, _ in measured]
    first_switch = names.index("b")
    assert "a" in names[first_switch:]
    assert sum(1 for n, size in measured if n == "a" and size == 4) == 3


def test_measure_accuracy_and_agreement() -> None:
    calls: list[tuple[str, int]] = []
    texts = ["stock falls", "flu spreads", "stock rises", "measles"]
    labels = ["business", "health", "business", "business"]
    fp32 = _runtime("onnx-fp32", calls)
    int8 = _runtime("onnx-int8", calls, answer="entertainment")
    result = measure_accuracy([fp32, int8], texts, labels, sampled=True, batch_size=3)
    assert result.accuracy == {"onnx-fp32": pytest.approx(0.75), "onnx-int8": pytest.approx(0.25)}
    assert result.agreement == pytest.approx(0.5)  # they differ on the two "stock" headlines
    assert result.n == 4 and result.sampled
    assert sorted(size for _, size in calls if _ == "onnx-fp32") == [1, 3]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="no headlines to time"):
        time_runtimes([], [], single_calls=1, batch_calls=0)
    with pytest.raises(ValueError, match="texts and labels differ in length"):
        measure_accuracy([], ["a"], [], sampled=False)
