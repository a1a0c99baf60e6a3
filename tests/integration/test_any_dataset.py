"""A labelled CSV the project has never seen goes through the user's commands, as subprocesses:
``textclf data --source FILE --text-column text --label-column category`` → ``eda`` → ``train`` →
``package`` → ``evaluate`` → ``serve-endpoint``, and the endpoint answers with the file's own five
labels. Nothing in the code names them: they come from the data, end to end.

The documents are multi-paragraph and non-ASCII, longer than the model's ``max_length``, so the
run also takes ``--truncation head+tail`` through training, the archive and serving. A tiny
encoder stands in for all-MiniLM-L6-v2 (seconds instead of minutes); the lexical head, fitted on
every training row as by default, is what makes the answers right.
"""

from __future__ import annotations

import csv
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.helpers.tiny_model import make_tiny_model_dir

from .conftest import Server

pytestmark = pytest.mark.heavy

LABELS = ("billing", "hardware_fault", "login_problem", "shipping_delay", "feature_request")
# Words only documents of one label use; the rest of each document is shared filler.
CUES = {
    "billing": ["invoice", "refund", "charged", "payment", "receipt"],
    "hardware_fault": ["overheats", "cracked", "battery", "fan", "screen"],
    "login_problem": ["password", "locked", "two-factor", "sign-in", "token"],
    "shipping_delay": ["courier", "parcel", "tracking", "warehouse", "delivery"],
    "feature_request": ["wish", "roadmap", "suggestion", "export", "dark-mode"],
}
FILLER_TEXT = (
    "Hello team, I am writing about my account. Merci for the quick answers last time; the café "
    "downstairs still has the best Wi-Fi. Please read the details below and get back to me."
)
FILLER = FILLER_TEXT.split(" ")


def document(label: str, rng: random.Random) -> str:
    paragraphs = []
    for _ in range(3):
        words = [rng.choice(FILLER) for _ in range(rng.randint(40, 70))]
        for _ in range(4):
            words.insert(rng.randrange(len(words)), rng.choice(CUES[label]))
        paragraphs.append(" ".join(words))
    return "\n\n".join(paragraphs)


def write_csv(path: Path, rows_per_label: int = 24) -> None:
    rng = random.Random(7)
    rows = [(label, document(label, rng)) for label in LABELS for _ in range(rows_per_label)]
    rng.shuffle(rows)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "text", "category"])
        for i, (label, text) in enumerate(rows):
            writer.writerow([f"ticket-{i:04d}", text, label])


def textclf(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "textclf", *args],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"textclf {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_a_five_label_csv_from_data_to_endpoint(tmp_path: Path) -> None:
    source = tmp_path / "tickets.csv"
    write_csv(source)
    artifacts = tmp_path / "artifacts"
    env = {**os.environ, "TEXTCLF_ARTIFACTS": str(artifacts), "PYTHONUNBUFFERED": "1"}
    base = make_tiny_model_dir(tmp_path / "base", labels=sorted(LABELS))

    printed = textclf(
        env, "data", "--source", str(source), "--text-column", "text", "--label-column", "category"
    )
    assert "labels (5)" in printed
    manifest = json.loads((artifacts / "data" / "manifest.json").read_text())
    assert manifest["labels"] == sorted(LABELS)
    assert manifest["split_method"] == "stratified"

    textclf(env, "eda")
    eda = json.loads((artifacts / "eda" / "eda.json").read_text())
    assert set(json.dumps(eda).split('"')) >= set(LABELS)

    textclf(
        env, "train", "--base-model", str(base), "--max-length", "32", "--truncation", "head+tail",
        "--epochs", "1", "--threads", "1",
    )  # fmt: skip
    config = json.loads((artifacts / "model" / "config.json").read_text())
    assert [config["id2label"][str(i)] for i in range(5)] == sorted(LABELS)

    textclf(env, "package")
    archive = artifacts / "package" / "model.tar.gz"
    assert archive.is_file()

    textclf(env, "evaluate", "--model", str(artifacts / "model"), "--data", str(artifacts / "data" / "test"))
    evaluation = json.loads((artifacts / "eval" / "evaluation.json").read_text())
    assert evaluation["model"]["accuracy"] >= 0.9, evaluation["model"]

    endpoint = Server("textclf serve-endpoint", ["serve-endpoint", "--model", str(archive), "--threads", "1"],
                      env, tmp_path / "endpoint.log", listen=("--fd",))  # fmt: skip
    endpoint.start()
    try:
        endpoint.wait_ready(f"{endpoint.url()}/ping")
        rng = random.Random(99)
        texts = {label: document(label, rng) for label in LABELS}
        reply = httpx.post(f"{endpoint.url()}/invocations", json={"inputs": list(texts.values())}, timeout=60)
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["labels"] == sorted(LABELS)
        assert [p["label"] for p in body["predictions"]] == list(texts)
        assert all(set(p["scores"]) == set(LABELS) for p in body["predictions"])
    finally:
        endpoint.stop()
