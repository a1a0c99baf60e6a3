"""``textclf data`` on datasets it has never seen: every input layout, any label set, the splits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.helpers.labelled_data import labelled_rows, write_hf_folder, write_rows
from textclf.cli import main
from textclf.data import read_split
from textclf.data.options import Checks, InputOptions
from textclf.data.parse import COLUMNS, SCHEMA
from textclf.data.prepare import Prepared, prepare
from textclf.data.split import SPLITS
from textclf.errors import UserError

TEXT_AND_LABEL = InputOptions(text_columns=("title", "body"), label_column="label")


def _prepare(source: Path, out: Path, options: InputOptions = TEXT_AND_LABEL, **kwargs: Any) -> Prepared:
    return prepare(str(source), out, progress=False, options=options, **kwargs)


def _splits(out: Path) -> dict[str, pd.DataFrame]:
    return {name: read_split(out / name) for name in SPLITS}


def test_binary_csv_stratified_split_and_manifest(tmp_path: Path) -> None:
    rows = labelled_rows(["pos", "neg"], [200, 40])
    result = _prepare(write_rows(tmp_path / "reviews.csv", rows), tmp_path / "out")
    m = result.manifest
    assert m["format_version"] == 2
    assert m["labels"] == ["neg", "pos"]  # sorted by str, not by first appearance
    assert json.loads((tmp_path / "out" / "labels.json").read_text()) == ["neg", "pos"]
    assert m["label_counts"] == {"neg": 40, "pos": 200}
    assert m["split_method"] == "stratified"
    assert m["input"] == {
        "format": "csv",
        "preset": None,
        "text_columns": ["title", "body"],
        "text_separator": " | ",
        "label_column": "label",
        "group_column": None,
        "time_column": None,
        "id_column": None,
    }
    assert m["checks"] == {"min_rows_per_label": 10, "max_bad_rows": "1%", "conflicts": "refuse"}
    assert m["rows"] == {
        "read": 240,
        "valid": 240,
        "skipped": 0,
        "conflicts_dropped": 0,
        "duplicates_dropped": 0,
        "written": 240,
    }
    frames = _splits(tmp_path / "out")
    for name, frame in frames.items():
        assert pq.read_table(tmp_path / "out" / name / "data.parquet").schema.equals(SCHEMA)
        assert list(frame.columns) == list(COLUMNS)
        # Stratified: each split keeps the 5:1 balance.
        assert frame["label"].value_counts().to_dict() == m["counts"][name]["labels"]
        assert (frame["story"] == frame["id"].astype(str)).all()
        assert frame[["category", "publisher", "hostname", "timestamp", "source_id"]].isna().all().all()
    assert m["counts"]["test"]["labels"] == {"neg": 4, "pos": 20}
    assert m["counts"]["validation"]["labels"] == {"neg": 4, "pos": 20}
    every = pd.concat(frames.values()).sort_values("id")
    # id = the row's position in the file; text = title | whitespace-normalised body.
    assert every["id"].tolist() == list(range(240))
    first = rows[0]
    assert every["text"].iloc[0] == f"{first['title']} | {' '.join(first['body'].split())}"


@pytest.mark.parametrize(
    ("labels", "suffix"),
    [
        (["red", "green", "blue"], ".jsonl"),
        ([f"c{i}" for i in range(1, 13)], ".tsv"),
    ],
    ids=["3-labels-jsonl", "12-labels-tsv"],
)
def test_many_labels_and_rare_ones_reach_every_split(tmp_path: Path, labels: list[str], suffix: str) -> None:
    # The last label has exactly --min-rows-per-label rows: still one in validation and in test.
    rows = labelled_rows(labels, [30] * (len(labels) - 1) + [10])
    m = _prepare(write_rows(tmp_path / f"data{suffix}", rows), tmp_path / "out").manifest
    assert m["labels"] == sorted(labels, key=str)  # c1, c10, c11, c12, c2, ...
    assert m["input"]["format"] == suffix.strip(".")
    for name in SPLITS:
        assert all(m["counts"][name]["labels"][label] > 0 for label in labels), name
    assert m["counts"]["test"]["labels"][labels[-1]] == 1


def test_long_multi_paragraph_non_ascii_texts_and_labels(tmp_path: Path) -> None:
    labels = ["économie", "日本", "sport ⚽"]
    rows = labelled_rows(labels, 12, paragraphs=6, words=60)
    for row in rows:
        row["body"] = f"Ünïcödé  «guillemets»\t{row['body']}\n\n— fin"
    options = InputOptions(text_columns=("title", "body"), text_separator=" // ", label_column="label")
    m = _prepare(write_rows(tmp_path / "long.csv", rows), tmp_path / "out", options=options).manifest
    assert m["labels"] == sorted(labels)
    labels_file = (tmp_path / "out" / "labels.json").read_text(encoding="utf-8")
    assert json.loads(labels_file) == sorted(labels) and "日本" in labels_file  # readable UTF-8
    every = pd.concat(_splits(tmp_path / "out").values()).sort_values("id")
    text = every["text"].iloc[0]
    assert text.startswith(f"{rows[0]['title']} // Ünïcödé «guillemets» ")
    assert text.endswith("— fin") and "\n" not in text
    assert len(text.split()) > 300


def test_time_column_trains_on_the_past(tmp_path: Path) -> None:
    rows = labelled_rows(["a", "b", "c"], 40)
    # Shuffle the file order: the split must follow the times, not the rows.
    rows = rows[::7] + [r for i, r in enumerate(rows) if i % 7]
    options = InputOptions(text_columns=("title",), label_column="label", time_column="time", id_column="id")
    m = _prepare(write_rows(tmp_path / "t.jsonl", rows), tmp_path / "out", options=options).manifest
    assert m["split_method"] == "time" and m["recipe"]["split"] == "time"
    counts = m["counts"]
    assert counts["train"]["last_timestamp"] < counts["validation"]["first_timestamp"]
    assert counts["validation"]["last_timestamp"] < counts["test"]["first_timestamp"]
    assert [counts[name]["rows"] for name in SPLITS] == [96, 12, 12]
    test = read_split(tmp_path / "out" / "test")
    newest = sorted(rows, key=lambda r: r["time"])[-12:]
    assert set(test["source_id"]) == {r["id"] for r in newest}
    assert (
        pd.Timestamp(int(test["timestamp"].max()), unit="ms", tz="UTC").isoformat()
        == "2024-01-05T23:00:00+00:00"
    )


def test_group_column_keeps_groups_whole(tmp_path: Path) -> None:
    rows = labelled_rows(["x", "y", "z"], 60)
    options = InputOptions(text_columns=("body",), label_column="label", group_column="group")
    m = _prepare(write_rows(tmp_path / "g.parquet", rows), tmp_path / "out", options=options).manifest
    assert m["split_method"] == "group"
    groups = {name: set(frame["story"]) for name, frame in _splits(tmp_path / "out").items()}
    assert not groups["train"] & groups["validation"]
    assert not groups["train"] & groups["test"]
    assert not groups["validation"] & groups["test"]
    assert all(groups[name] for name in SPLITS)
    assert m["counts"]["train"]["stories"] == len(groups["train"])


def test_time_and_group_columns_deal_groups_by_their_first_time(tmp_path: Path) -> None:
    rows = labelled_rows(["x", "y"], 50)
    options = InputOptions(
        text_columns=("body",), label_column="label", group_column="group", time_column="time"
    )
    _prepare(write_rows(tmp_path / "tg.csv", rows), tmp_path / "out", options=options)
    frames = _splits(tmp_path / "out")
    starts = {name: frame.groupby("story")["timestamp"].min() for name, frame in frames.items()}
    assert (
        starts["train"].max()
        < starts["validation"].min()
        <= starts["validation"].max()
        < starts["test"].min()
    )
    groups = [set(frame["story"]) for frame in frames.values()]
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])


@pytest.mark.parametrize("fmt", ["tsv", "jsonl", "json", "parquet", "hf", "zip"])
def test_every_layout_gives_the_same_splits_as_csv(tmp_path: Path, fmt: str) -> None:
    rows = labelled_rows(["one", "two", "three"], 20)
    csv_files = _prepare(write_rows(tmp_path / "d.csv", rows), tmp_path / "from-csv").manifest["files"]
    name = {"hf": "d_hf", "json": "d.json"}.get(fmt, f"d.{fmt}")
    m = _prepare(write_rows(tmp_path / name, rows, fmt), tmp_path / f"from-{fmt}").manifest
    assert m["input"]["format"] == {"json": "jsonl", "zip": "csv"}.get(fmt, fmt)
    assert m["files"] == csv_files


def test_hf_dataset_dict_and_class_label_names(tmp_path: Path) -> None:
    rows = labelled_rows(["neg", "pos"], 30)
    folder = tmp_path / "imdb_like"
    write_hf_folder(folder / "train", rows[:40], class_label="label")
    write_hf_folder(folder / "test", rows[40:], class_label="label")
    (folder / "dataset_dict.json").write_text(json.dumps({"splits": ["train", "test"]}))
    m = _prepare(folder, tmp_path / "out").manifest
    # ClassLabel ids are read as their names; both splits are read, then split again.
    assert m["labels"] == ["neg", "pos"] and m["label_counts"] == {"neg": 30, "pos": 30}
    assert m["rows"]["read"] == 60 and m["input"]["format"] == "hf"
    assert m["source"]["bytes"] > 0 and m["source"]["name"] == "imdb_like"


def test_bad_rows_under_the_limit_are_skipped_and_counted(tmp_path: Path) -> None:
    rows: list[Any] = labelled_rows(["a", "b"], 100)
    rows[3]["title"] = 42  # not text
    rows[5]["title"] = "   "  # blank
    rows[7]["label"] = None
    rows[9]["label"] = ["a"]  # not a label
    rows[11]["id"] = rows[10]["id"]  # repeated id
    lines = [json.dumps(row) for row in rows]
    lines[20] = "{not json"
    lines[22] = '"a bare string"'
    source = tmp_path / "messy.jsonl"
    source.write_text("\n".join(lines) + "\n\n", encoding="utf-8")
    options = InputOptions(text_columns=("title",), label_column="label", id_column="id")
    m = _prepare(source, tmp_path / "out", options=options, checks=Checks(max_bad_rows="7")).manifest
    assert m["skipped"] == {
        "bad_json": 1,
        "not_object": 1,
        "non_text": 1,
        "blank_text": 1,
        "bad_label": 1,
        "blank_label": 1,
        "duplicate_id": 1,
    }
    assert m["skipped_example_lines"]["non_text"] == [4] and m["skipped_example_lines"]["bad_json"] == [21]
    assert m["rows"]["read"] == 200 and m["rows"]["valid"] == 193
    every = pd.concat(_splits(tmp_path / "out").values())
    assert 3 not in set(every["id"]) and 199 in set(every["id"])  # ids stay the file's row positions


def test_conflicting_labels_drop_or_keep(tmp_path: Path) -> None:
    rows = labelled_rows(["a", "b"], 30)
    for i in (1, 3):
        rows[i]["title"] = rows[0]["title"]  # rows 0 (a), 1 (b), 3 (b) now share one text
    source = write_rows(tmp_path / "c.csv", rows)
    options = InputOptions(text_columns=("title",), label_column="label")
    dropped = _prepare(source, tmp_path / "drop", options=options, checks=Checks(conflicts="drop")).manifest
    assert dropped["conflicts"] == {"texts": 1, "rows": 3, "dropped": 3}
    assert dropped["rows"]["conflicts_dropped"] == 3 and dropped["rows"]["written"] == 57
    kept = _prepare(source, tmp_path / "keep", options=options, checks=Checks(conflicts="keep")).manifest
    assert kept["conflicts"] == {"texts": 1, "rows": 3, "dropped": 0}
    # Kept, the (text, b) repeat is dropped before the stratified split: it cannot reach two splits.
    assert kept["duplicates_before_split"] == 1 and kept["rows"]["written"] == 59


def test_recipe_covers_every_option(tmp_path: Path) -> None:
    source = write_rows(tmp_path / "r.csv", labelled_rows(["a", "b"], 20))
    out = tmp_path / "out"
    assert not _prepare(source, out).reused
    assert _prepare(source, out).reused
    changes: list[dict[str, Any]] = [
        {"options": InputOptions(text_columns=("title", "body"), text_separator=" / ", label_column="label")},
        {"options": InputOptions(text_columns=("body",), label_column="label")},
        {"options": InputOptions(text_columns=("title", "body"), label_column="label", group_column="group")},
        {"options": InputOptions(text_columns=("title", "body"), label_column="label", time_column="time")},
        {"options": InputOptions(text_columns=("title", "body"), label_column="label", id_column="id")},
        {"checks": Checks(min_rows_per_label=5)},
        {"checks": Checks(max_bad_rows="3")},
        {"checks": Checks(conflicts="drop")},
    ]
    for change in changes:
        assert not _prepare(source, out, **change).reused, change
        assert _prepare(source, out, **change).reused, change


def test_read_split_reads_raw_files_with_the_same_options(tmp_path: Path) -> None:
    rows = labelled_rows(["a", "b"], 10)
    rows[2]["title"] = ""
    frame = read_split(
        write_rows(tmp_path / "raw.tsv", rows),
        options=InputOptions(text_columns=("title",), label_column="label"),
    )
    assert list(frame.columns) == list(COLUMNS) and len(frame) == 19  # the blank row is skipped
    assert frame["text"].iloc[0] == rows[0]["title"]
    hf = read_split(write_rows(tmp_path / "hf", rows, "hf"), options=TEXT_AND_LABEL)
    assert len(hf) == 20  # a blank title beside a body is not a blank text
    assert hf["text"].iloc[2] == " ".join(rows[2]["body"].split())
    # A split written before source_id existed (FORMAT_VERSION 1) still reads, with null ids.
    old = pa.Table.from_pandas(frame.drop(columns="source_id"), preserve_index=False)
    pq.write_table(old, tmp_path / "v1.parquet")
    pd.testing.assert_frame_equal(read_split(tmp_path / "v1.parquet"), frame)


def test_cli_reads_any_file_and_prints_every_label(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labels = [f"topic_{i:02d}" for i in range(12)]
    source = write_rows(tmp_path / "t.csv", labelled_rows(labels, 12))
    argv = ["data", "--source", str(source), "--out", str(tmp_path / "out"), "--text-column", "title,body"]
    assert main([*argv, "--label-column", "label", "--group-column", "group", "--id-column", "id"]) == 0
    printed = capsys.readouterr().out
    assert "split (group)" in printed and "labels (12)" in printed
    for label in labels:
        assert f"\n{label} " in printed
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert m["input"]["text_columns"] == ["title", "body"] and m["input"]["id_column"] == "id"


def test_time_values_in_every_spelling() -> None:
    from datetime import date, datetime

    from textclf.data.generic import parse_times

    noon = 1_700_000_000_000  # 2023-11-14T22:13:20Z
    values = [
        "2023-11-14T22:13:20Z",
        "2023-11-14T23:13:20+01:00",
        "2023-11-14 22:13:20",  # naive: UTC
        noon // 1000,  # epoch seconds
        noon,  # epoch milliseconds
        str(noon // 1000),
        f"{noon / 1000:.3f}",
        datetime(2023, 11, 14, 22, 13, 20),
        date(2023, 11, 14),
        "yesterday",
        "",
        None,
        True,
        float("nan"),
    ]
    day = noon - (22 * 3600 + 13 * 60 + 20) * 1000
    assert parse_times(values) == [noon] * 8 + [day] + [None] * 5


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl"])
def test_predict_reads_the_text_columns_as_training_did(tmp_path: Path, suffix: str) -> None:
    from textclf.scoring import BadRowError, iter_rows

    rows: list[Any] = labelled_rows(["a", "b"], 10, paragraphs=3)
    source = write_rows(tmp_path / f"docs{suffix}", rows)
    options = InputOptions(text_columns=("title", "body"), text_separator=" ~ ", label_column="label")
    _prepare(source, tmp_path / "out", options=options)
    trained = pd.concat(_splits(tmp_path / "out").values()).sort_values("id")["text"].tolist()
    fmt = suffix.strip(".")
    scored = [text() for _, text in iter_rows(source, fmt, ("title", "body"), " ~ ")]
    assert scored == trained
    with pytest.raises(UserError, match=r"no such column: --text-column 'summary'|--text-column applies"):
        next(iter_rows(source, "lines" if fmt == "jsonl" else fmt, ("summary",), " ~ "))
    if fmt == "jsonl":
        rows[0]["body"] = 7
        _, text = next(iter_rows(write_rows(tmp_path / "bad.jsonl", rows), fmt, ("title", "body"), " ~ "))
        with pytest.raises(BadRowError, match="line 1: a --text-column cell is not text"):
            text()
