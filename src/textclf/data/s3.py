"""Upload a prepared dataset to S3 under a content-addressed prefix and move the pointer; fetch
an ``s3://`` source (``textclf data --source s3://bucket/key``) into the local cache.

``s3://B/P/<sha12>/{raw,train,validation,test}/...`` never changes once written (its name is
its content's hash), so training jobs can cite it; ``s3://B/P/latest.json`` is the one mutable
object, read by the trigger-training Lambda to find its channels.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textclf.data.checksum import folder_files
from textclf.data.split import SPLITS
from textclf.errors import UserError

log = logging.getLogger(__name__)

POINTER = "latest.json"


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str  # no leading/trailing slash; "" for the bucket root

    def key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def uri(self, *parts: str) -> str:
        return f"s3://{self.bucket}/{self.key(*parts)}"

    @property
    def pointer_uri(self) -> str:
        return self.uri(POINTER)


def parse_s3_uri(uri: str, flag: str = "--s3-uri") -> S3Location:
    if not uri.startswith("s3://"):
        raise UserError(f"{flag} must look like s3://bucket/prefix, got {uri!r}")
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    if not bucket:
        raise UserError(f"{flag} has no bucket: {uri!r}")
    return S3Location(bucket=bucket, prefix=prefix.strip("/"))


def _s3_error(uri: str, exc: Exception) -> UserError:
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return UserError(f"--source {uri}: {err.get('Code')} {err.get('Message', '')}".strip())
    return UserError(f"--source {uri}: {exc}")


def _download(client: Any, bucket: str, key: str, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        client.download_file(bucket, key, str(part))
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, dest)


def fetch_s3(uri: str, cache_dir: Path, *, client: Any = None) -> Path:
    """Copy ``s3://bucket/key`` (an object, or every object under a folder-like prefix: a
    datasets save_to_disk folder) into ``cache_dir``; returns the local file or folder.

    Copied again on every run: the object may have changed, and the recipe is keyed on the
    copy's sha256, so an unchanged object still reuses the prepared output.
    """
    import boto3
    from boto3.exceptions import S3TransferFailedError
    from botocore.exceptions import BotoCoreError, ClientError

    location = parse_s3_uri(uri, "--source")
    if not location.prefix:
        raise UserError(f"--source {uri}: name an object or a folder in the bucket, not the bucket")
    s3 = client if client is not None else boto3.client("s3")
    name = location.prefix.rsplit("/", 1)[-1]
    dest = cache_dir / f"{hashlib.sha256(uri.rstrip('/').encode()).hexdigest()[:12]}-{name}"
    try:
        if not uri.endswith("/") and _exists(s3, location.bucket, location.prefix):
            _download(s3, location.bucket, location.prefix, dest)
            return dest
        folder = location.prefix + "/"
        keys = [
            obj["Key"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=location.bucket, Prefix=folder)
            for obj in page.get("Contents", [])
            if not obj["Key"].endswith("/")
        ]
        if not keys:
            raise UserError(f"--source {uri}: no such object or folder in s3://{location.bucket}")
        staging = dest.with_name(dest.name + ".part")
        shutil.rmtree(staging, ignore_errors=True)
        for key in keys:
            _download(s3, location.bucket, key, staging / key[len(folder) :])
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(staging, dest)
    except (ClientError, BotoCoreError, S3TransferFailedError) as exc:
        raise _s3_error(uri, exc) from exc
    return dest


def _exists(client: Any, bucket: str, key: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True


def upload_dataset(
    out: Path,
    manifest: dict[str, Any],
    raw_file: Path,
    location: S3Location,
    *,
    training_defaults: dict[str, Any] | None = None,
    client: Any = None,
) -> dict[str, Any]:
    """Upload raw + processed files under ``<prefix>/<sha12>/`` and write ``<prefix>/latest.json``.

    Returns the pointer written; ``training_defaults`` (``textclf.eda.training_defaults``) rides in
    it for the training Lambda. The dataset's own manifest goes up last, so its presence
    marks a complete upload and a re-run skips straight to the pointer.
    """
    import boto3
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import BotoCoreError, ClientError

    digest = str(manifest["dataset_sha256"])
    base = digest[:12]
    s3 = client if client is not None else boto3.client("s3")
    raw = f"raw/{manifest['source']['name']}"
    if raw_file.is_dir():  # a datasets save_to_disk folder goes up file by file
        files = [(f, f"{raw}/{f.relative_to(raw_file).as_posix()}") for f in folder_files(raw_file)]
    else:
        files = [(raw_file, raw)]
    files += [(out / "labels.json", "labels.json")]
    for split in SPLITS:
        files += [(out / split / "data.parquet", f"{split}/data.parquet")]
        files += [(out / split / "labels.json", f"{split}/labels.json")]
    pointer: dict[str, Any] = {
        "uri": location.uri(base) + "/",
        "sha256": digest,
        "created": str(manifest["created"]),
    }
    if training_defaults:
        # Read by the training Lambda: a job started without max_length uses this one.
        pointer["training_defaults"] = training_defaults
    try:
        if _exists(s3, location.bucket, location.key(base, "manifest.json")):
            log.info("%s already uploaded; only moving the pointer", pointer["uri"])
        else:
            for path, rel in files:
                log.info("upload %s -> %s", path, location.uri(base, rel))
                s3.upload_file(str(path), location.bucket, location.key(base, rel))
            s3.put_object(
                Bucket=location.bucket,
                Key=location.key(base, "manifest.json"),
                Body=json.dumps(manifest, indent=2).encode(),
                ContentType="application/json",
            )
        s3.put_object(
            Bucket=location.bucket,
            Key=location.key(POINTER),
            Body=json.dumps(pointer).encode(),
            ContentType="application/json",
        )
    except ClientError as exc:
        err = exc.response.get("Error", {})
        raise UserError(
            f"S3 upload to s3://{location.bucket} failed: {err.get('Code')} {err.get('Message', '')}".strip()
        ) from exc
    except (BotoCoreError, S3UploadFailedError) as exc:  # no credentials, no endpoint, ...
        raise UserError(f"S3 upload to s3://{location.bucket} failed: {exc}") from exc
    return pointer
