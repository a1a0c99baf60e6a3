from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.helpers.labelled_data import labelled_rows, write_rows
from textclf.cli import main
from textclf.data.checksum import folder_files, sha256_file
from textclf.data.options import InputOptions
from textclf.data.prepare import Prepared, prepare
from textclf.data.s3 import parse_s3_uri, upload_dataset
from textclf.data.samples import raw_line, write_raw_corpus
from textclf.errors import UserError

BUCKET = "textclf-test"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


@pytest.fixture
def prepared(tmp_path: Path) -> Prepared:
    lines = [raw_line(i, f"headline {i}", category="btem"[i % 4], story=f"s{i % 40}") for i in range(1, 201)]
    source = write_raw_corpus(tmp_path / "NewsAggregatorDataset.zip", lines)
    return prepare(str(source), tmp_path / "data", progress=False)


def _keys(client: Any) -> set[str]:
    return {obj["Key"] for obj in client.list_objects_v2(Bucket=BUCKET).get("Contents", [])}


def test_upload_is_content_addressed_with_pointer(s3: Any, prepared: Prepared) -> None:
    location = parse_s3_uri(f"s3://{BUCKET}/datasets/")
    pointer = upload_dataset(prepared.out, prepared.manifest, prepared.source.path, location)
    digest = prepared.manifest["dataset_sha256"]
    base = f"datasets/{digest[:12]}"
    expected = {f"{base}/raw/NewsAggregatorDataset.zip", f"{base}/labels.json", f"{base}/manifest.json"}
    for split in ("train", "validation", "test"):
        expected |= {f"{base}/{split}/data.parquet", f"{base}/{split}/labels.json"}
    assert _keys(s3) == expected | {"datasets/latest.json"}
    stored = json.loads(s3.get_object(Bucket=BUCKET, Key="datasets/latest.json")["Body"].read())
    assert stored == pointer
    assert set(stored) == {"uri", "sha256", "created"}
    assert stored["uri"] == f"s3://{BUCKET}/{base}/"
    assert stored["sha256"] == digest
    body = s3.get_object(Bucket=BUCKET, Key=f"{base}/train/data.parquet")["Body"].read()
    assert body == (prepared.out / "train" / "data.parquet").read_bytes()
    raw = s3.get_object(Bucket=BUCKET, Key=f"{base}/raw/NewsAggregatorDataset.zip")["Body"].read()
    assert raw == prepared.source.path.read_bytes()


def test_second_upload_only_moves_the_pointer(s3: Any, prepared: Prepared) -> None:
    location = parse_s3_uri(f"s3://{BUCKET}/ds")
    upload_dataset(prepared.out, prepared.manifest, prepared.source.path, location)
    base = f"ds/{prepared.manifest['dataset_sha256'][:12]}"
    s3.delete_object(Bucket=BUCKET, Key=f"{base}/test/labels.json")
    s3.delete_object(Bucket=BUCKET, Key="ds/latest.json")
    upload_dataset(prepared.out, prepared.manifest, prepared.source.path, location)
    keys = _keys(s3)
    assert "ds/latest.json" in keys
    assert f"{base}/test/labels.json" not in keys  # complete upload (manifest present) is not redone


def test_bucket_root_prefix(s3: Any, prepared: Prepared) -> None:
    pointer = upload_dataset(
        prepared.out, prepared.manifest, prepared.source.path, parse_s3_uri(f"s3://{BUCKET}")
    )
    assert "latest.json" in _keys(s3)
    assert pointer["uri"] == f"s3://{BUCKET}/{prepared.manifest['dataset_sha256'][:12]}/"


def test_missing_bucket_is_a_user_error(s3: Any, prepared: Prepared) -> None:
    with pytest.raises(UserError, match="NoSuchBucket"):
        upload_dataset(prepared.out, prepared.manifest, prepared.source.path, parse_s3_uri("s3://nope/x"))


@pytest.mark.parametrize("uri", ["bucket/prefix", "s3://", "s3:///prefix", "https://b.s3.amazonaws.com/x"])
def test_bad_uris(uri: str) -> None:
    with pytest.raises(UserError, match="--s3-uri"):
        parse_s3_uri(uri)


def test_cli_uploads(s3: Any, prepared: Prepared, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["data", "--source", str(prepared.source.path), "--out", str(prepared.out)]
    assert main([*argv, "--s3-uri", f"s3://{BUCKET}/datasets"]) == 0
    out = capsys.readouterr().out
    assert "reused (up to date)" in out
    assert f"pointer s3://{BUCKET}/datasets/latest.json" in out
    assert "datasets/latest.json" in _keys(s3)


# -- --source s3://: a raw file (or a save_to_disk folder) already in the bucket ---------------------


def test_source_from_s3_object_and_folder(s3: Any, tmp_path: Path) -> None:
    rows = labelled_rows(["spam", "ham"], 20)
    s3.upload_file(str(write_rows(tmp_path / "local.csv", rows)), BUCKET, "raw/mail.csv")
    for path in folder_files(write_rows(tmp_path / "hf", rows, "hf")):
        s3.upload_file(str(path), BUCKET, f"raw/mail_hf/{path.name}")
    options = InputOptions(text_columns=("title", "body"), label_column="label")
    kwargs: dict[str, Any] = {"progress": False, "options": options, "s3_client": s3}
    csv_result = prepare(f"s3://{BUCKET}/raw/mail.csv", tmp_path / "csv", **kwargs)
    assert csv_result.manifest["source"]["origin"] == f"s3://{BUCKET}/raw/mail.csv"
    assert csv_result.manifest["source"]["name"] == "mail.csv"
    assert csv_result.manifest["source"]["sha256"] == sha256_file(tmp_path / "local.csv")
    assert csv_result.manifest["labels"] == ["ham", "spam"]
    assert prepare(f"s3://{BUCKET}/raw/mail.csv", tmp_path / "csv", **kwargs).reused
    for uri in (f"s3://{BUCKET}/raw/mail_hf", f"s3://{BUCKET}/raw/mail_hf/"):
        hf = prepare(uri, tmp_path / "hf-out", force=True, **kwargs)
        assert hf.manifest["input"]["format"] == "hf"
        assert hf.manifest["files"] == csv_result.manifest["files"]
    with pytest.raises(UserError, match=rf"--source s3://{BUCKET}/raw/nope.csv: no such object or folder"):
        prepare(f"s3://{BUCKET}/raw/nope.csv", tmp_path / "x", **kwargs)
    with pytest.raises(UserError, match="NoSuchBucket"):
        prepare("s3://no-such-bucket/raw/mail.csv", tmp_path / "x", **kwargs)
    with pytest.raises(UserError, match="not the bucket"):
        prepare(f"s3://{BUCKET}", tmp_path / "x", **kwargs)
    assert not (tmp_path / "x").exists()


def test_cli_prepares_an_s3_source_and_uploads_the_folder_raw(s3: Any, tmp_path: Path) -> None:
    for path in folder_files(write_rows(tmp_path / "hf", labelled_rows(["a", "b"], 15), "hf")):
        s3.upload_file(str(path), BUCKET, f"in/ds/{path.name}")
    out = tmp_path / "out"
    argv = ["data", "--source", f"s3://{BUCKET}/in/ds", "--out", str(out), "--text-column", "title"]
    assert main([*argv, "--label-column", "label"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source"]["name"] == "ds" and manifest["input"]["format"] == "hf"
    options = InputOptions(text_columns=("title",), label_column="label")
    prepared = prepare(f"s3://{BUCKET}/in/ds", out, progress=False, options=options, s3_client=s3)
    assert prepared.reused and prepared.source.path.is_dir()
    upload_dataset(out, manifest, prepared.source.path, parse_s3_uri(f"s3://{BUCKET}/datasets"))
    base = f"datasets/{manifest['dataset_sha256'][:12]}"
    assert {f"{base}/raw/ds/{name}" for name in ("state.json", "dataset_info.json")} <= _keys(s3)
