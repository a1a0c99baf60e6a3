from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from textclf.cli import main
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
