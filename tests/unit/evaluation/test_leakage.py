"""The random-row-split leakage demonstration on a small real dataset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from textclf.cli import main
from textclf.errors import UserError
from textclf.evaluation.leakage import leakage_demo


def test_row_split_tests_on_stories_it_trained_on(tiny_data: Path, tmp_path: Path) -> None:
    result = leakage_demo(tiny_data, tmp_path)
    story, row = result["story_split"], result["row_split"]
    assert story["test_rows_whose_story_is_in_train"] == 0.0  # the honest split
    # <= 6 headlines per story: almost every row-split test headline has a sibling in train.
    assert row["test_rows_whose_story_is_in_train"] > 0.8
    assert row["train_rows"] + row["test_rows"] < story["train_rows"] + story["test_rows"] + 100
    assert result["accuracy_overstatement"] == pytest.approx(row["accuracy"] - story["accuracy"])
    saved = json.loads((tmp_path / "leakage.json").read_text())
    assert saved["story_split"]["accuracy"] == story["accuracy"]


def test_cli_prints_both_splits(tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["leakage", "--data", str(tiny_data), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "STORY split" in out and "ROW split" in out and "overstates accuracy" in out


def test_needs_a_processed_dataset(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="textclf data"):
        leakage_demo(tmp_path)
