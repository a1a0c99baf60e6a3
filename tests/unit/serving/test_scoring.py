"""``textclf predict``: every input format, in order, the endpoint's answers, malformed rows named."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from tests.helpers.tiny_model import PROBE_HEADLINES
from textclf.cli import main
from textclf.labels import LABELS
from textclf.packaging import load_inference_module, load_model

pytestmark = pytest.mark.heavy  # a real (tiny) model

HEADLINES = list(PROBE_HEADLINES.values()) * 3  # 12 rows, repeated: order must be kept


def _corpus_line(i: int, title: str) -> str:
    return "\t".join([str(i + 1), title, "http://x", "pub", "b", f"story{i}", "x.com", "1394470370698"])


def _write(path: Path, fmt: str) -> Path:
    if fmt == "corpus":
        path.write_text("".join(_corpus_line(i, t) + "\n" for i, t in enumerate(HEADLINES)), encoding="utf-8")
    elif fmt == "zip":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr(
                "newsCorpora.csv", "".join(_corpus_line(i, t) + "\n" for i, t in enumerate(HEADLINES))
            )
    elif fmt == "csv":
        rows = ['"id","title"'] + [f'{i},"{t}"' for i, t in enumerate(HEADLINES)]
        path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    elif fmt == "tsv":
        path.write_text("text\tsource\n" + "".join(f"{t}\tfeed\n" for t in HEADLINES), encoding="utf-8")
    elif fmt == "jsonl":
        lines = [json.dumps({"text": t}) if i % 2 else json.dumps(t) for i, t in enumerate(HEADLINES)]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    else:
        path.write_text("\n".join(HEADLINES) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("fmt", "name"),
    [
        ("corpus", "newsCorpora.csv"),
        # The raw corpus under any name: its layout is sniffed, not taken from the extension.
        ("corpus", "newsCorpora.tsv"),
        ("corpus", "newsCorpora.txt"),
        ("corpus", "newsCorpora"),
        ("zip", "NewsAggregatorDataset.zip"),
        ("csv", "headlines.csv"),
        ("tsv", "headlines.tsv"),
        ("jsonl", "headlines.jsonl"),
        ("lines", "headlines.txt"),
    ],
)
def test_every_format_gives_the_endpoints_answers_in_order(
    fmt: str, name: str, tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _write(tmp_path / name, fmt)
    out = tmp_path / "scores.jsonl"
    assert main(["predict", "--input", str(source), "--output", str(out), "--model", str(tiny_model)]) == 0
    answers = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(answers) == len(HEADLINES)
    expected = load_inference_module().predict_texts(load_model(tiny_model, "torch"), HEADLINES)
    for got, want in zip(answers, expected, strict=True):
        assert set(got) == {"label", "score", "scores", "model_version"}
        assert got["label"] == want["label"] and got["label"] in LABELS
        assert got["score"] == pytest.approx(want["score"], abs=1e-6)
    assert f"scored {len(HEADLINES)} rows" in capsys.readouterr().err


def test_a_malformed_row_stops_the_run_naming_its_line_and_writes_nothing(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "newsCorpora.csv"
    lines = [_corpus_line(i, t) for i, t in enumerate(HEADLINES)]
    lines[4] = "5\tonly three\tfields"
    lines[7] = _corpus_line(7, "   ")
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "scores.jsonl"
    argv = [
        "predict",
        "--input",
        str(source),
        "--output",
        str(out),
        "--model",
        str(tiny_model),
        "--format",
        "corpus",
    ]
    assert main(argv) == 2
    assert "line 5: 3 tab-separated fields, expected 8" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob(".scores.jsonl*"))
    # --skip-bad-rows counts and skips them; the others keep their order.
    assert main([*argv, "--skip-bad-rows"]) == 0
    answers = out.read_text(encoding="utf-8").splitlines()
    assert len(answers) == len(HEADLINES) - 2
    assert "skipped 2 malformed rows (lines [5, 8]" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "fmt", "message"),
    [
        ('{"text": "ok"}\nnot json\n', "jsonl", "line 2: not JSON"),
        ('{"title": "ok"}\n{"body": "no text"}\n', "jsonl", "line 2: the headline is missing or blank"),
        ("name,value\na,b\n", "csv", "has no text or title column\n"),
        # The raw corpus read as a table (--format tsv): the message names the format it is in.
        (
            _corpus_line(0, "stocks rally") + "\n",
            "tsv",
            "has no text or title column; this looks like the raw newsCorpora file: pass --format corpus",
        ),
        ("x" * 20_001 + "\n", "lines", "line 1: the text has 20001 characters; at most 20000"),
    ],
)
def test_bad_inputs_are_one_line_errors(  # noqa: PLR0917 - parametrised
    content: str, fmt: str, message: str, tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "input.dat"
    source.write_text(content, encoding="utf-8")
    argv = [
        "predict",
        "--input",
        str(source),
        "--output",
        str(tmp_path / "o.jsonl"),
        "--model",
        str(tiny_model),
    ]
    assert main([*argv, "--format", fmt]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_unknown_names_and_s3_are_refused_clearly(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "input.dat"
    source.write_text("a headline\n", encoding="utf-8")
    assert (
        main(["predict", "--input", str(source), "--output", str(tmp_path / "o"), "--model", str(tiny_model)])
        == 2
    )
    assert "cannot tell the format of input.dat; pass --format" in capsys.readouterr().err
    # s3:// means a Batch Transform job: both ends must be in S3 (the job reads and writes there).
    assert main(["predict", "--input", str(source), "--output", "s3://bucket/out/"]) == 2
    assert "--input must be an s3://bucket/key URI for a Batch Transform job" in capsys.readouterr().err
    assert main(["predict", "--input", "s3://bucket/in.jsonl", "--output", "s3://"]) == 2
    assert "--output must be an s3://bucket/key URI" in capsys.readouterr().err
