"""``textclf data --since/--until`` and the news corpus' time split (--time-column TIMESTAMP)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers.labelled_data import labelled_rows, write_rows
from textclf.cli import main
from textclf.data import read_split
from textclf.data.options import InputOptions, TimeRange
from textclf.data.prepare import prepare
from textclf.data.samples import raw_line, write_raw_corpus
from textclf.data.split import SPLITS
from textclf.errors import UserError

TIMED = InputOptions(text_columns=("title",), label_column="label", time_column="time")
CATEGORIES = ("b", "t", "e", "m")


def _ms(day: str) -> int:
    return int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp() * 1000)


def _news(path: Path) -> Path:
    """40 stories of 3 headlines, one story a day from 2014-03-10, labels in turn."""
    lines = []
    for story in range(40):
        day = _ms("2014-03-10") + story * 86_400_000
        for k in range(3):
            lines.append(
                raw_line(
                    story * 3 + k,
                    f"story {story} headline {k} about {CATEGORIES[story % 4]} topic{story}",
                    CATEGORIES[story % 4],
                    f"s{story:02d}",
                    timestamp=day + k * 3_600_000,
                )
            )
    return write_raw_corpus(path, lines)


def test_since_until_keep_the_rows_in_between(tmp_path: Path) -> None:
    rows = labelled_rows(["a", "b", "c"], 40)  # an hour a row from 2024-01-01T00:00Z: 120 rows
    between = TimeRange.parse("2024-01-02", "2024-01-05T12:00")
    m = prepare(
        str(write_rows(tmp_path / "t.csv", rows)),
        tmp_path / "out",
        options=TIMED,
        progress=False,
        rows_between=between,
    ).manifest
    assert m["rows_between"] == {"since": "2024-01-02T00:00:00Z", "until": "2024-01-05T12:00:00Z"}
    assert m["recipe"]["rows_between"] == m["rows_between"]
    assert m["rows"]["written"] == 84  # 24 + 24 + 24 + 12 hours
    every = pd.concat([read_split(tmp_path / "out" / name) for name in SPLITS])
    assert every["timestamp"].min() == _ms("2024-01-02")
    assert every["timestamp"].max() == _ms("2024-01-05T11:00")


def test_generic_data_needs_a_time_column_for_a_range(tmp_path: Path) -> None:
    source = write_rows(tmp_path / "t.csv", labelled_rows(["a", "b"], 20))
    options = InputOptions(text_columns=("title",), label_column="label")
    with pytest.raises(UserError, match="--since/--until need --time-column"):
        prepare(str(source), tmp_path / "out", options=options, rows_between=TimeRange(until=1))


def test_news_until_and_time_split_keep_stories_whole(tmp_path: Path) -> None:
    out = tmp_path / "out"
    code = main(
        [
            "data",
            "--source",
            str(_news(tmp_path / "news.csv")),
            "--out",
            str(out),
            "--until",
            "2014-04-10",  # 31 of the 40 days
            "--time-column",
            "TIMESTAMP",
            "--min-rows-per-label",
            "1",
        ]
    )
    assert code == 0
    frames = {name: read_split(out / name) for name in SPLITS}
    assert sum(len(f) for f in frames.values()) == 31 * 3
    stories = {name: set(f["story"]) for name, f in frames.items()}
    assert not stories["train"] & stories["test"] and not stories["validation"] & stories["test"]
    # The past trains, the newest stories test.
    assert frames["train"]["timestamp"].max() < frames["validation"]["timestamp"].min()
    assert frames["validation"]["timestamp"].max() < frames["test"]["timestamp"].min()
    assert frames["test"]["timestamp"].max() < _ms("2014-04-10")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["--since", "2015-01-01"],
            "no rows from 2015-01-01T00:00:00Z until the end; the data spans 2014-03-10",
        ),
        (["--since", "2014-05-01", "--until", "2014-04-01"], "must be before --until"),
        (["--until", "soon"], "--until 'soon' is not a date"),
        (["--time-column", "STORY"], "--time-column cannot apply (but --time-column TIMESTAMP)"),
    ],
)
def test_a_bad_or_empty_range_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    out = tmp_path / "out"
    assert main(["data", "--source", str(_news(tmp_path / "news.csv")), "--out", str(out), *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out.exists()
