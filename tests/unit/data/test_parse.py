from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from textclf.data.parse import COLUMNS, parse_bytes, parse_file, parse_lines
from textclf.data.samples import raw_line, write_raw_corpus
from textclf.data.text import normalize_whitespace
from textclf.errors import UserError
from textclf.labels import CATEGORY_TO_LABEL


def _parse(lines: list[str], ending: str = "\n") -> tuple[list[str], dict[str, int], int]:
    result = parse_bytes("".join(line + ending for line in lines).encode())
    return result.frame["text"].tolist(), result.skipped, result.rows_read


def test_quotes_in_titles_are_kept_verbatim() -> None:
    titles = [
        '"Frozen" tops box office again',
        'MtGox "fraud evidence" hacked',
        'Unbalanced "quote that a CSV reader would run into the next line',
        "Next line after the open quote",
        '""',
    ]
    lines = [raw_line(i, t, story=f"s{i}") for i, t in enumerate(titles, start=1)]
    texts, skipped, read = _parse(lines)
    assert texts == titles
    assert skipped == {}
    assert read == len(titles)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("1\tonly\tseven\tfields\tb\tstory\thost", "field_count"),
        (raw_line(1, "nine fields") + "\textra", "field_count"),
        ("no tabs at all", "field_count"),
        (raw_line("abc", "bad id"), "bad_id"),
        (raw_line("1.5", "fractional id"), "bad_id"),
        (raw_line("-3", "negative id"), "bad_id"),
        (raw_line("", "empty id"), "bad_id"),
        (raw_line(1, "bad category", category="x"), "bad_category"),
        (raw_line(1, "upper-case category", category="B"), "bad_category"),
        (raw_line(1, "empty category", category=""), "bad_category"),
        (raw_line(1, "   "), "blank_title"),
        (raw_line(1, ""), "blank_title"),
        (raw_line(1, "no story", story=" "), "blank_story"),
        (raw_line(1, "bad timestamp", timestamp="yesterday"), "bad_timestamp"),
        (raw_line(1, "float timestamp", timestamp="1394470370698.5"), "bad_timestamp"),
        (raw_line(1, "full-width digits", timestamp="\uff11\uff12\uff13"), "bad_timestamp"),
        ("   ", "empty_line"),
    ],
)
def test_each_malformed_row_is_skipped_with_its_reason(line: str, reason: str) -> None:
    good = [raw_line(10, "good one", story="g1"), raw_line(11, "good two", story="g2")]
    result = parse_bytes(("\n".join([good[0], line, good[1]]) + "\n").encode())
    assert result.skipped == {reason: 1}
    assert result.examples == {reason: [2]}
    assert result.frame["id"].tolist() == [10, 11]
    assert result.rows_read == 3


def test_mixed_file_counts_every_reason_and_never_raises() -> None:
    lines = [
        raw_line(1, "ok"),
        raw_line("x", "bad id"),
        raw_line(2, "bad cat", category="z"),
        "",
        raw_line(3, "ok too", category="m"),
        raw_line(3, "duplicate id", category="m"),
        "1\t2",
    ]
    result = parse_bytes(("\n".join(lines) + "\n").encode())
    assert result.rows_read == 7
    assert result.rows_valid == 2
    assert result.skipped == {
        "empty_line": 1,
        "field_count": 1,
        "bad_id": 1,
        "bad_category": 1,
        "duplicate_id": 1,
    }
    assert result.rows_skipped + result.rows_valid == result.rows_read


def test_invalid_utf8_skips_only_that_line() -> None:
    data = (raw_line(1, "fine") + "\n").encode() + b"2\tbad \xff byte\tu\tp\tb\ts\th\t1\n"
    data += (raw_line(3, "also fine") + "\n").encode()
    result = parse_bytes(data)
    assert result.skipped == {"bad_encoding": 1}
    assert result.frame["id"].tolist() == [1, 3]


def test_crlf_lines_parse_like_lf() -> None:
    lines = [raw_line(1, "Title one", story="a"), raw_line(2, '"Quoted" two', category="e", story="b")]
    lf = parse_bytes(("\n".join(lines) + "\n").encode()).frame
    crlf_result = parse_bytes(("\r\n".join(lines) + "\r\n").encode())
    assert crlf_result.skipped == {}
    assert crlf_result.frame.equals(lf)
    assert crlf_result.frame["timestamp"].tolist() == [1394470370698] * 2


def test_empty_input_and_missing_final_newline() -> None:
    empty = parse_bytes(b"")
    assert empty.rows_read == 0
    assert empty.skipped == {}
    assert list(empty.frame.columns) == list(COLUMNS)
    no_final_newline = parse_bytes(raw_line(1, "last line").encode())
    assert no_final_newline.rows_read == 1
    assert no_final_newline.frame["text"].tolist() == ["last line"]
    # A blank line at the very end (beyond the final newline) is a real empty line.
    trailing_blank = parse_bytes((raw_line(1, "x") + "\n\n").encode())
    assert trailing_blank.skipped == {"empty_line": 1}
    assert trailing_blank.rows_read == 2
    # Many blank lines (more than the examples kept per reason) are all counted, the final LF not.
    blanks = parse_bytes((raw_line(1, "x") + "\n" * 9 + raw_line(2, "y") + "\n").encode())
    assert blanks.skipped == {"empty_line": 8}
    assert blanks.rows_read == 10
    assert blanks.examples["empty_line"] == [2, 3, 4, 5, 6]


def test_whitespace_is_normalised_and_columns_typed() -> None:
    line = raw_line(7, "  Apple\u00a0 unveils   iPhone \x0b 6  ", category="t", publisher="  Pub  Name ")
    result = parse_lines([line])
    row = result.frame.iloc[0]
    assert row["text"] == "Apple unveils iPhone 6"
    assert row["publisher"] == "Pub Name"
    assert row["label"] == CATEGORY_TO_LABEL["t"]
    assert row["category"] == "t"
    assert str(result.frame["id"].dtype) == "int64"
    assert str(result.frame["timestamp"].dtype) == "int64"
    assert normalize_whitespace("\ta\n b\r") == "a b"


def test_every_category_maps_to_its_canonical_label() -> None:
    lines = [raw_line(i, f"t{i}", category=c, story=f"s{i}") for i, c in enumerate("btem")]
    frame = parse_lines(lines).frame
    assert dict(zip(frame["category"], frame["label"], strict=True)) == CATEGORY_TO_LABEL


@pytest.mark.parametrize("name", ["corpus.csv", "corpus.tsv", "corpus.zip", "CORPUS.ZIP"])
def test_parse_file_reads_every_supported_container(tmp_path: Path, name: str) -> None:
    lines = [raw_line(1, '"A" headline', story="a"), raw_line(2, "Another", category="m", story="b")]
    result = parse_file(write_raw_corpus(tmp_path / name, lines))
    assert result.frame["text"].tolist() == ['"A" headline', "Another"]


def test_parse_file_rejects_bad_containers(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such file"):
        parse_file(tmp_path / "missing.csv")
    not_zip = tmp_path / "fake.zip"
    not_zip.write_bytes(b"not a zip")
    with pytest.raises(UserError, match="not a readable zip"):
        parse_file(not_zip)
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("readme.txt", "x")
        archive.writestr("a.csv", "x")
        archive.writestr("b.csv", "y")
    with pytest.raises(UserError, match=r"no newsCorpora\.csv"):
        parse_file(other)
    wrong = tmp_path / "data.json"
    wrong.write_text("{}")
    with pytest.raises(UserError, match=r"\.zip, \.csv or \.tsv"):
        parse_file(wrong)


def test_real_rows_parse_cleanly_and_keep_their_quotes(real_rows_sample: tuple[str, ...]) -> None:
    result = parse_lines(real_rows_sample)
    assert result.skipped == {}
    assert result.rows_valid == len(real_rows_sample)
    raw_titles = [line.split("\t")[1] for line in real_rows_sample]
    assert result.frame["text"].tolist() == [normalize_whitespace(t) for t in raw_titles]
    assert set(result.frame["label"]) == set(CATEGORY_TO_LABEL.values())
