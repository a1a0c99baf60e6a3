"""Every refusal of ``textclf data``: one line naming the fix, exit 2, and ``--out`` untouched."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.labelled_data import labelled_rows, write_rows
from textclf.data.options import Checks, InputOptions
from textclf.data.prepare import prepare
from textclf.data.samples import raw_line, write_raw_corpus
from textclf.errors import UserError

TEXT = InputOptions(text_columns=("title",), label_column="label")


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in folder.rglob("*")
        if p.is_file()
    }


def _rows_with(change: Callable[[list[dict[str, Any]]], Any], labels: list[str] | None = None) -> Any:
    rows = labelled_rows(labels or ["a", "b", "c"], 20)
    change(rows)
    return rows


def _one_label(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        row["label"] = "a"


def _rare(rows: list[dict[str, Any]]) -> None:
    rows[:] = [row for row in rows if row["label"] != "c" or row["group"] == "c-g0"]  # 5 rows of c


def _blank_labels(rows: list[dict[str, Any]]) -> None:
    for row in rows[:3]:
        row["label"] = ""


def _conflict(rows: list[dict[str, Any]]) -> None:
    rows[1]["title"] = rows[0]["title"]


def _same_time(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        row["time"] = "2024-05-01"


CASES: list[tuple[str, Any, InputOptions, Checks, str]] = [
    (
        "one-label",
        _rows_with(_one_label),
        TEXT,
        Checks(),
        r"holds 1 label \(only 'a'\); a classifier needs at least 2",
    ),
    (
        "rare-label",
        _rows_with(_rare),
        TEXT,
        Checks(),
        r"1 label of 'label' has fewer than 10 rows: 'c' \(5\); .* or lower --min-rows-per-label",
    ),
    (
        "bad-rows",
        _rows_with(_blank_labels),
        TEXT,
        Checks(),
        r"3 of 60 rows are unusable \(blank_label 3; e.g. lines 2, 3, 4\), "
        r"over --max-bad-rows 1% \(0 rows\).* --max-bad-rows 3$",
    ),
    (
        "conflicts",
        _rows_with(_conflict),
        TEXT,
        Checks(),
        r"1 text carries conflicting labels \(2 rows; e.g. 'a title 0': a 1, b 1\): pass --conflicts drop .*"
        r"--conflicts keep",
    ),
    (
        "unknown-column",
        _rows_with(lambda rows: None),
        InputOptions(text_columns=("title", "summary"), label_column="category"),
        Checks(),
        r"no such column: --text-column 'summary', --label-column 'category' \(its columns: 'id', 'title', "
        r"'body', 'label', 'group', 'time'\)",
    ),
    (
        "no-label-column",
        _rows_with(lambda rows: None),
        InputOptions(text_columns=("title",)),
        Checks(),
        r"a csv file needs --label-column \(its columns: 'id', 'title'",
    ),
    (
        "no-columns",
        _rows_with(lambda rows: None),
        InputOptions(),
        Checks(),
        r"a csv file needs --text-column and --label-column \(its columns: 'id'",
    ),
    (
        "one-time",
        _rows_with(_same_time),
        InputOptions(text_columns=("title",), label_column="label", time_column="time"),
        Checks(),
        r"--time-column 'time': too few distinct times to give validation and test any rows",
    ),
]


@pytest.mark.parametrize(
    ("rows", "options", "checks", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_refused_with_one_line_and_out_untouched(
    tmp_path: Path, rows: Any, options: InputOptions, checks: Checks, message: str
) -> None:
    out = tmp_path / "out"
    good = write_rows(tmp_path / "good.csv", labelled_rows(["a", "b"], 20))
    prepare(str(good), out, progress=False, options=TEXT)
    before = _snapshot(out)
    source = write_rows(tmp_path / "bad.csv", rows)
    with pytest.raises(UserError, match=message) as refused:
        prepare(str(source), out, progress=False, options=options, checks=checks, force=True)
    assert "\n" not in str(refused.value)
    assert _snapshot(out) == before
    # A fresh --out is not even created.
    with pytest.raises(UserError):
        prepare(str(source), tmp_path / "fresh", progress=False, options=options, checks=checks)
    assert not (tmp_path / "fresh").exists()


def test_malformed_files_and_flags_are_refused(tmp_path: Path) -> None:
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("title,label\ncaf\xe9,a\n".encode("latin-1"))
    with pytest.raises(UserError, match=r"latin1\.csv is not UTF-8 text \(byte 15\); save it as UTF-8"):
        prepare(str(latin1), tmp_path / "o", progress=False, options=TEXT)
    twice = tmp_path / "twice.csv"
    twice.write_text("title,label,title\nx,a,y\n")
    with pytest.raises(UserError, match=r"the header names 'title' more than once"):
        prepare(str(twice), tmp_path / "o", progress=False, options=TEXT)
    news = write_raw_corpus(tmp_path / "newsCorpora.csv", [raw_line(1, "A headline")])
    with pytest.raises(
        UserError, match=r"is the news corpus .*, so --text-column, --label-column cannot apply"
    ):
        prepare(str(news), tmp_path / "o", progress=False, options=TEXT)
    with pytest.raises(UserError, match=r"--label-column 'title' is also a --text-column"):
        InputOptions(text_columns=("title",), label_column="title")
    with pytest.raises(UserError, match=r"--max-bad-rows must be a row count \(e.g. 50\) or a percentage"):
        Checks(max_bad_rows="lots")
    with pytest.raises(UserError, match=r"--max-bad-rows must be at most 100%"):
        Checks(max_bad_rows="150%")
    with pytest.raises(UserError, match=r"--min-rows-per-label must be >= 1"):
        Checks(min_rows_per_label=0)
    assert not (tmp_path / "o").exists()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "textclf", "data", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=os.environ.copy(),
    )


def test_the_real_cli_refuses_with_exit_2_and_writes_nothing(tmp_path: Path) -> None:
    rows = _rows_with(_rare)
    rows[1]["title"] = rows[0]["title"]
    source = str(write_rows(tmp_path / "tickets.csv", rows))
    out = tmp_path / "out"
    cases = [
        (
            ["--text-column", "title", "--label-column", "priority"],
            "no such column: --label-column 'priority'",
        ),
        (["--text-column", "title", "--label-column", "label"], "1 text carries conflicting labels"),
        (
            ["--text-column", "title", "--label-column", "label", "--conflicts", "drop"],
            "1 label of 'label' has fewer than 10 rows: 'c' (5)",
        ),
    ]
    for flags, message in cases:
        proc = _cli("--source", source, "--out", str(out), *flags)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.startswith("textclf data: error: ") and proc.stderr.count("\n") == 1, proc.stderr
        assert message in proc.stderr
        assert proc.stdout == ""
        assert not out.exists()
