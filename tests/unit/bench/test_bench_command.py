"""Smoke run of ``textclf bench`` with a tiny model and tiny durations (figures not meaningful)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.helpers.tiny_model import KEYWORD_HEADLINES, make_tiny_model_dir
from textclf.cli import main
from textclf.data.parse import SCHEMA
from textclf.labels import CATEGORY_TO_LABEL, LABELS

pytestmark = [pytest.mark.integration, pytest.mark.heavy]

LABEL_TO_CATEGORY = {label: cat for cat, label in CATEGORY_TO_LABEL.items()}


def write_split(path: Path) -> Path:
    rows = [(text, label) for label, texts in KEYWORD_HEADLINES.items() for text in texts]
    n = len(rows)
    table = pa.Table.from_pydict(
        {
            "id": list(range(n)),
            "text": [t for t, _ in rows],
            "label": [lab for _, lab in rows],
            "category": [LABEL_TO_CATEGORY[lab] for _, lab in rows],
            "story": [f"story-{i}" for i in range(n)],
            "publisher": ["p"] * n,
            "hostname": ["h"] * n,
            "timestamp": [0] * n,
            "source_id": [None] * n,  # the news preset has none
        },
        schema=SCHEMA,
    )
    path.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path / "data.parquet")
    return path


def with_lexical_head(model_dir: Path) -> Path:
    """The tiny model with a lexical head fitted on its keyword headlines (what train.py adds)."""
    from textclf.packaging.runtime import load_inference_module

    lexical = load_inference_module().lexical
    rows = [(text, label) for label, texts in KEYWORD_HEADLINES.items() for text in texts]
    y = np.array([LABELS.index(label) for _, label in rows])
    vectorizer, weight, bias = lexical.fit([t for t, _ in rows], y, len(LABELS), min_df=1)
    lexical.LexicalHead(vectorizer, weight, bias, (0.5, 1.0)).save(model_dir)
    return model_dir


def package_with_cascade(model_dir: Path, dest: Path) -> Path:
    """A package folder recording a cascade threshold, as `textclf package` writes it into the
    archive: the bench then adds its int8 + cascade row and the cascade-off endpoint."""
    shutil.copytree(model_dir, dest)
    meta_file = dest / "textclf_meta.json"
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    meta["cascade"] = {"threshold": 0.6}
    meta_file.write_text(json.dumps(meta), encoding="utf-8")
    return dest


def test_bench_smoke_all_levels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # One intra-op thread everywhere (this process and the servers it starts): a tiny model
    # gains nothing from more, and CI shares its cores.
    monkeypatch.setenv("TEXTCLF_NUM_THREADS", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    model = with_lexical_head(make_tiny_model_dir(tmp_path / "model", trained=True))
    package = package_with_cascade(model, tmp_path / "package")
    data = write_split(tmp_path / "data" / "test")
    out = tmp_path / "bench"
    code = main(
        [
            "bench",
            "--quick",
            "--model", str(model),
            "--package", str(package),  # the endpoint serves a model folder as well as an archive
            "--data", str(data),
            "--out", str(out),
            "--duration", "0.5",
            "--warmup", "0.2",
            "--concurrency", "1,4",
            "--single-calls", "10",
            "--batch-calls", "2",
            "--soak", "1",
            "--capture",
        ]
    )  # fmt: skip
    assert code == 0
    stdout = capsys.readouterr().out
    assert "Targets (the model and the endpoint; the served configuration)" in stdout

    results = json.loads((out / "bench.json").read_text())
    names = [r["name"] for r in results["model"]["runtimes"]]
    assert names == ["pipeline", "torch", "onnx-fp32", "onnx-int8", "onnx-int8+cascade"]
    accuracy = results["model"]["accuracy"]
    assert accuracy["n"] == 24 and not accuracy["sampled"]  # --quick samples 500: the whole tiny split
    assert (
        set(accuracy["accuracy"])
        == set(accuracy["macro_f1"])
        == {"onnx-fp32", "onnx-int8", "onnx-int8+cascade"}
    )
    # ONNX exports are cached by the weights' digest for the next run.
    assert (out / "runtimes" / "onnx-int8" / "model.onnx").is_file()
    sweep = results["model"]["sub_batch"]
    assert set(sweep) == {"onnx-fp32", "onnx-int8"}
    for rates in sweep.values():
        assert set(rates) == {"4", "8", "16", "32"} and min(rates.values()) > 0
    ceiling = results["model"]["ceiling"]
    assert ceiling["gemm_gflops_fp32"] > 0 and ceiling["ceiling_headlines_per_s_fp32"] > 0
    assert "passes of 8" in stdout and "Compute ceiling" in stdout
    for runtime in results["model"]["runtimes"]:
        assert runtime["single"]["count"] == 10
        assert runtime["batch_headlines"] == 64
        assert runtime["single"]["p50_ms"] > 0

    runs = results["endpoint_level"]
    assert [(r["server"], r["concurrency"]) for r in runs] == [
        ("endpoint", 1), ("endpoint-capture", 1), ("endpoint-no-cascade", 1), ("baseline", 1),
        ("endpoint", 4), ("endpoint-capture", 4), ("endpoint-no-cascade", 4), ("baseline", 4),
    ]  # fmt: skip
    # Every invocation the capturing endpoint answered is in its capture files (warm-up included).
    answered = sum(r["ok"] for r in runs if r["server"] == "endpoint-capture")
    assert results["capture"]["lines"] >= answered > 0
    assert "throughput with / without c=1" in stdout
    for run in runs:
        assert run["ok"] > 0, run
        assert run["error_count"] == 0, run
        assert run["peak_rss_bytes"] > 50 * 1024 * 1024  # a process with torch loaded
        assert run["stopped_by"] == "duration"

    (api,) = results["api_level"]
    assert api["ok"] > 0 and api["error_count"] == 0
    assert api["first_call_ms"] > 0  # the cold first call, timed apart from the window

    soak = results["soak"]
    assert soak["duration_s"] == 1.0 and soak["errors"] == 0
    assert len(soak["rss_series"]) >= 2 and soak["peak_rss_bytes"] > 0

    assert {c["status"] for c in results["targets"]} <= {"pass", "FAIL", "n/a"}
    for plot in ("model_latency_cdf.png", "latency_cdf.png", "throughput.png", "soak_rss.png"):
        assert (out / plot).read_bytes().startswith(b"\x89PNG")
    assert (out / "bench.txt").read_text() in stdout


def test_bench_refuses_missing_inputs_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", "--quick", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert code == 2
    assert "no test split" in capsys.readouterr().err
