"""``textclf replay``: its calendar and sampler, and the whole command against a stack that fails
every other request (a tiny http.server): failures counted, never fatal, every figure in
replay.json recomputable from answers.jsonl, poison labels from the second labeller's key."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.helpers.tiny_model import make_tiny_model_dir
from textclf.cli import main
from textclf.data.samples import raw_line, write_raw_corpus
from textclf.errors import UserError
from textclf.labels import LABELS
from textclf.replay.run import parse_delay
from textclf.replay.windows import parse_day, sample_window, windows

CATEGORIES = ("b", "t", "e", "m")


def _ms(day: str) -> int:
    return int(parse_day("--start", day).timestamp() * 1000)


def test_month_and_week_windows_cover_the_range() -> None:
    months = windows(parse_day("--start", "2014-04-15"), parse_day("--end", "2014-07-01"), "month")
    assert [(w.name, w.start.day, w.end.month) for w in months] == [
        ("2014-04", 15, 5),
        ("2014-05", 1, 6),
        ("2014-06", 1, 7),
    ]
    weeks = windows(parse_day("--start", "2014-04-01"), parse_day("--end", "2014-04-20"), "week")
    assert [w.name for w in weeks] == ["2014-04-01", "2014-04-08", "2014-04-15"]
    assert weeks[-1].end == datetime(2014, 4, 20, tzinfo=UTC)
    with pytest.raises(UserError, match="must be before --end"):
        windows(parse_day("--start", "2014-05-01"), parse_day("--end", "2014-05-01"), "month")


def test_sampler_spreads_over_stories_seeded_and_in_time_order() -> None:
    # One story of 300 headlines, 30 stories of 2: a plain random sample would be mostly the big one.
    rows = [("big", i) for i in range(300)] + [
        (f"s{j}", 300 + 2 * j + k) for j in range(30) for k in range(2)
    ]
    frame = pd.DataFrame(
        {
            "id": [i for _, i in rows],
            "story": [s for s, _ in rows],
            "timestamp": [1_000 * (len(rows) - i) for _, i in rows],
            "text": [f"t{i}" for _, i in rows],
        }
    )
    sample = sample_window(frame, 40, seed=3)
    per_story = Counter(sample["story"])
    assert len(sample) == 40 and len(per_story) == 31 and per_story["big"] <= 2
    assert sample["timestamp"].is_monotonic_increasing
    shuffled = frame.sample(frac=1.0, random_state=1)
    assert sample_window(shuffled, 40, seed=3)["id"].tolist() == sample["id"].tolist()
    assert sample_window(frame, 40, seed=4)["id"].tolist() != sample["id"].tolist()
    assert len(sample_window(frame, 10_000, seed=3)) == len(frame)


def test_feedback_delay_takes_headlines_or_seconds() -> None:
    assert parse_delay("200") == (200.0, "headlines")
    assert parse_delay("30s") == (30.0, "seconds")
    for bad in ("-1", "1.5", "soon"):
        with pytest.raises(UserError, match="--feedback-delay"):
            parse_delay(bad)


class _FlakyStack(BaseHTTPRequestHandler):
    """POST /predict: every other request 502; POST /feedback: every third 502, and its first
    request 503 (retried once, then served); no GET /monitor."""

    calls: Counter[str]
    feedback: list[tuple[str, list[dict[str, str]]]]
    refused: Counter[str]

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._send(404, {"message": "no such route"})

    def do_POST(self) -> None:
        route = self.path.strip("/")
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.calls[route] += 1
        if route == "feedback" and self.calls[route] == 1:
            self._send(503, {"message": "try again"})  # retried after its Retry-After
            return
        if self.calls[route] % (2 if route == "predict" else 3) == 0:
            self.refused[route] += 1
            self._send(502, {"message": "broken"})
            return
        if route == "feedback":
            self.feedback.append((self.headers["x-api-key"], body["items"]))
            self._send(200, {"accepted": len(body["items"])})
            return
        predictions = [
            {
                "prediction_id": f"{self.calls[route]:032x}-{i}",
                "label": "business",
                "score": 1.0,
                "scores": {},
            }
            for i, _ in enumerate(body["texts"])
        ]
        self._send(200, {"predictions": predictions, "labels": list(LABELS), "model_version": "7"})


@pytest.fixture
def flaky_stack() -> Iterator[tuple[str, type[_FlakyStack]]]:
    handler = type("Handler", (_FlakyStack,), {"calls": Counter(), "feedback": [], "refused": Counter()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def _corpus(path: Path) -> Path:
    lines = []
    for story in range(60):
        for k in range(5):
            day = _ms("2014-04-01") + (story % 12) * 5 * 86_400_000 + k * 3_600_000  # April and May
            category = CATEGORIES[story % 4]
            lines.append(
                raw_line(story * 5 + k, f"s{story} h{k} {category}", category, f"st{story}", timestamp=day)
            )
    return write_raw_corpus(path, lines)


def test_replay_counts_failures_and_its_figures_recompute_from_answers(
    tmp_path: Path, flaky_stack: tuple[str, type[_FlakyStack]], capsys: pytest.CaptureFixture[str]
) -> None:
    url, server = flaky_stack
    model = make_tiny_model_dir(tmp_path / "model")
    out = tmp_path / "replay"
    argv = ["replay", "--data", str(_corpus(tmp_path / "news.csv")), "--model", str(model), "--out", str(out)]
    argv += ["--start", "2014-04-01", "--end", "2014-06-01", "--feedback-rate", "0.5"]
    argv += ["--rows-per-window", "150"]
    argv += ["--poison-rate", "0.5", "--poison-windows", "2014-05", "--feedback-delay", "20", "--json"]
    argv += ["--api-url", url, "--api-key", "p", "--labeller-key", "honest", "--poison-key", "evil"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    report = json.loads((out / "replay.json").read_text())
    assert summary == report
    answers = [json.loads(line) for line in (out / "answers.jsonl").read_text().splitlines()]

    # Every failed request counted (none fatal): what the server refused is what the report says.
    assert report["failed_requests"] == sum(server.refused.values()) > 0
    assert report["failures"] == dict(server.refused)
    assert report["retried_requests"] == {"feedback": 1}
    assert sum(w["failed_requests"] for w in report["windows"]) + 0 <= report["failed_requests"]
    assert report["retrains"] is None and report["monitor"] is False  # no control plane, no monitor

    # Each window's figures, recomputed from answers.jsonl by hand.
    assert [w["window"] for w in report["windows"]] == ["2014-04", "2014-05"]
    for window in report["windows"]:
        mine = [a for a in answers if a["window"] == window["window"]]
        answered = [a for a in mine if a["served_label"] is not None]
        assert window["rows"] == len(mine) == 150 and 0 < window["answered"] == len(answered) < 150
        for name in ("served", "frozen"):
            right = sum(a[f"{name}_label"] == a["true_label"] for a in answered)
            assert window[f"{name}_accuracy"] == round(right / len(answered), 4)
        assert window["versions_served"] == {"7": len(answered)}
        assert window["feedback_labels"] == sum(a["feedback"] is not None for a in mine)
    assert len({a["id"] for a in answers}) == 300

    # Honest labels are true and sent with the labeller's key; poison is wrong, from the second key,
    # only in the poisoned window, and only for answered headlines.
    by_id = {a["prediction_id"]: a for a in answers if a["prediction_id"]}
    sent = {
        key: [item for k, items in server.feedback if k == key for item in items]
        for key in ("honest", "evil")
    }
    assert sent["honest"] and sent["evil"]
    assert all(item["label"] == by_id[item["prediction_id"]]["true_label"] for item in sent["honest"])
    for item in sent["evil"]:
        answer = by_id[item["prediction_id"]]
        assert answer["window"] == "2014-05" and item["label"] == answer["poison"] != answer["true_label"]
    assert all(a["poison"] is None for a in answers if a["window"] == "2014-04")
    assert (out / "replay.png").stat().st_size > 0


def test_replay_refuses_poison_without_a_second_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = make_tiny_model_dir(tmp_path / "model")
    argv = ["replay", "--data", str(_corpus(tmp_path / "news.csv")), "--model", str(model)]
    argv += ["--poison-rate", "1", "--poison-windows", "2014-06", "--api-url", "http://127.0.0.1:9"]
    argv += ["--labeller-key", "x"]
    assert main(argv) == 2
    assert "--poison-rate needs a second labeller key" in capsys.readouterr().err


def test_settle_waits_for_a_monitor_run_that_saw_the_windows_last_labels() -> None:
    """A report whose window ended before the last label was posted (a run that began before it)
    does not count; the next one does, and then no job is moving."""
    from datetime import UTC, datetime

    from textclf.replay.client import ReplayClient

    def report(minute: int) -> str:
        return json.dumps({
            "window": {"start": "2026-12-04T19:00:00Z", "end": f"2026-12-04T20:{minute}:00Z"},
            "labellers": [{"labeller": "honest", "flagged": False},
                          {"labeller": f"m{minute}", "flagged": True}],
        })  # fmt: skip

    client = ReplayClient.__new__(ReplayClient)
    reports = iter([report(32), report(32), report(33)])
    client.monitor = lambda: next(reports)  # type: ignore[method-assign]
    client.busy = lambda since: []  # type: ignore[method-assign]
    slept: list[float] = []
    settled = client.settle(
        datetime(2026, 12, 4, tzinfo=UTC),
        datetime(2026, 12, 4, 20, 32, 50, tzinfo=UTC),
        timeout_s=60,
        poll_s=1,
        sleep=slept.append,
    )
    assert settled["monitor_ran"] is True and not settled["timed_out"]
    assert settled["flagged_labellers"] == ["m33"]  # what the run that saw every label flagged
    assert len(slept) == 2  # once for the stale report, once for the alarm's event after the new one
    # After the last window: only the jobs still moving are awaited, no monitor run.
    moving = iter([["j6"], ["j6"], []])
    client.busy = lambda since: next(moving)  # type: ignore[method-assign]
    client.monitor = lambda: pytest.fail("finish waits for no monitor run")  # type: ignore[method-assign]
    finished = client.finish(datetime(2026, 12, 4, tzinfo=UTC), timeout_s=60, poll_s=1, sleep=slept.append)
    assert (finished["waited_for"], finished["timed_out"], len(slept)) == (["j6"], False, 4)
    client.busy = lambda since: []  # type: ignore[method-assign]
    client.monitor = lambda: None  # type: ignore[method-assign]  # a stack without a monitor
    assert client.settle(datetime(2026, 12, 4, tzinfo=UTC), datetime.now(UTC), timeout_s=5, poll_s=1,
                         sleep=slept.append)["monitor_ran"] is None  # fmt: skip


def test_the_summary_names_refusals_and_the_labellers_the_monitor_flagged() -> None:
    from textclf.replay.report import render

    def window(name: str, flagged: list[str] | None) -> dict[str, Any]:
        return {"window": name, "rows": 10, "served_accuracy": 0.8, "frozen_accuracy": 0.7,
                "oracle_accuracy": None, "failed_requests": 0, "feedback_labels": 3, "poison_labels": 0,
                "versions_served": {"1": 10}, "settle": {"flagged_labellers": flagged}}  # fmt: skip

    def retrain(version: str, outcome: str, reason: str, **gate_metrics: float) -> dict[str, Any]:
        return {"job": f"j{version}", "reason": "labels", "version": version, "outcome": outcome,
                "outcome_reason": reason, "gate_metrics": gate_metrics}  # fmt: skip

    report = {
        "windows": [window("2014-05", []), window("2014-06", ["evil"]), window("2014-07", None)],
        "retrains": [
            retrain("2", "deployed", "serving on c2"),
            retrain("3", "rejected", "moved by: evil", test_accuracy=0.9, champion_test_accuracy=0.91,
                    recent_accuracy=0.7, champion_recent_accuracy=0.8, trusted_accuracy=0.85),
        ],
        "monitor": True, "failed_requests": 0, "retried_requests": {}, "alarms": [],
        "served_minus_frozen_last_two": 10.0,
    }  # fmt: skip
    lines = render(report).splitlines()
    assert "  j2  reason labels  -> deployed  version 2" in lines
    # The figures the gate compared (a challenger's without its champion's is left out).
    assert (
        "  j3  reason labels  -> rejected  version 3  (recent 0.7000 vs champion 0.8000, "
        "test 0.9000 vs champion 0.9100): moved by: evil"
    ) in lines
    assert "labellers the monitor flagged: evil (2014-06)" in lines


def test_retrains_carry_what_the_gate_compared_and_why() -> None:
    from datetime import UTC, datetime

    from textclf.replay.client import ReplayClient

    client = ReplayClient.__new__(ReplayClient)
    hyper = {"retrain_reason": '"labels"', "feedback_until": '"2026-12-04T20:00:00Z"'}
    jobs = [{"TrainingJobName": "j3", "TrainingJobStatus": "Completed", "HyperParameters": hyper,
             "CreationTime": datetime(2026, 12, 4, tzinfo=UTC)}]  # fmt: skip
    client.training_jobs = lambda since: jobs  # type: ignore[method-assign]
    client.train_status = lambda job: {  # type: ignore[method-assign]
        "metrics": {"test_accuracy": 0.9, "champion_test_accuracy": 0.91, "train_loss": 0.3, "epoch": 1.0},
        "deployment": {"model_version": "3", "status": "rejected", "reason": "test split ... moved by: evil"},
    }
    (retrain,) = client.retrains(datetime(2026, 12, 4, tzinfo=UTC)) or []
    assert retrain["gate_metrics"] == {"test_accuracy": 0.9, "champion_test_accuracy": 0.91}
    assert (retrain["reason"], retrain["outcome"], retrain["version"]) == ("labels", "rejected", "3")
    assert retrain["outcome_reason"] == "test split ... moved by: evil"
    assert retrain["feedback_until"] == "2026-12-04T20:00:00Z"
