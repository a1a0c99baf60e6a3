"""Trusted model artifacts: a model archive is code, so only bytes that were checked are served.

``code/inference.py`` inside ``model.tar.gz`` runs in the serving container, so whoever can write
the archive can run code on the endpoint. The training role writes ``training-output/``; the
serving role may read only ``models/``. When a training job completes, :func:`admit` reads its
archive once, hashing every byte (SHA-256) and reading the two files that decide how it may be
served (``textclf_meta.json`` also names the label set the model answers with, which the deploy
gate compares with the serving model's), then copies it server-side into
``models/<sha256[:16]>/model.tar.gz`` asking S3 for the
copy's own SHA-256 -- equal to the one computed while reading, or the source changed in between
and nothing is admitted. The hash goes into the model package's metadata, and :func:`verify`
checks S3's checksum of the admitted copy against it before every CreateModel (a rollout or a
rollback months later), without downloading it again.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

from botocore.exceptions import ClientError

from textclf_api import aws

MODELS_PREFIX: Final = "models"
ARCHIVE_NAME: Final = "model.tar.gz"
#: Metadata keys of a model package (CustomerMetadataProperties) written here and read by verify.
SHA256_KEY: Final = "sha256"
OFFLINE_KEY: Final = "offline"
#: The label set in class-id order: its SHA-256 (exact, for comparing) and the readable list, which
#: is shortened when it does not fit a metadata value (at most 256 characters).
LABELS_SHA256_KEY: Final = "labels_sha256"
LABELS_KEY: Final = "labels"
#: Beside each admitted archive: ``{"labels": [...]}``, its whole label set (the metadata above
#: may be shortened), which the deploy function publishes when the archive starts serving.
LABELS_FILE: Final = "labels.json"
#: Beside each admitted archive too: its ``baseline.json`` (written by the training job into the
#: archive root), which the monitor compares production with; absent for an archive without one.
BASELINE_FILE: Final = "baseline.json"
_METADATA_VALUE_MAX = 256
#: Files read from the stream: they decide whether the container needs the network at start.
_REQUIREMENTS = "code/requirements.txt"
_META = "textclf_meta.json"
_SMALL_FILE = 1024 * 1024
#: The baseline's vocabulary sketch is 128 KiB of bits (175 KB base64): room for larger sketches.
_BASELINE_MAX = 8 * 1024 * 1024
_CHUNK = 1024 * 1024


class ArtifactError(Exception):
    """The archive cannot be trusted or read; the message says why (it goes into the job's record)."""


@dataclass(frozen=True)
class LabelSet:
    """A model's label set as a model package records it: ``sha256`` tells two sets (or two orders
    of one set) apart exactly, ``shown`` is the JSON list for people (shortened past 256 chars)."""

    sha256: str
    shown: str

    @classmethod
    def of(cls, labels: Sequence[str]) -> LabelSet:
        text = json.dumps(list(labels), ensure_ascii=False)
        if len(text) > _METADATA_VALUE_MAX:
            tail = f", ... ({len(labels)} labels)]"
            shown = text[: _METADATA_VALUE_MAX - len(tail)] + tail
        else:
            shown = text
        return cls(hashlib.sha256(text.encode("utf-8")).hexdigest(), shown)

    @classmethod
    def recorded(cls, metadata: dict[str, str]) -> LabelSet | None:
        """The set a package's metadata records; None for a package registered before it did."""
        digest = metadata.get(LABELS_SHA256_KEY)
        return cls(digest, metadata.get(LABELS_KEY, "?")) if digest else None

    def metadata(self) -> dict[str, str]:
        return {LABELS_SHA256_KEY: self.sha256, LABELS_KEY: self.shown}


@dataclass(frozen=True)
class Influence:
    """One feedback labeller as a retrain saw them (``textclf_meta.json`` ``retraining``): their
    training rows, how many the champion answered confidently, and the share of those whose label
    contradicts that answer."""

    rows: int
    confident: int
    disagreement: float


def _influence(meta: dict[str, Any]) -> dict[str, Influence]:
    section = (meta.get("retraining") or {}).get("labellers") if isinstance(meta, dict) else None
    out: dict[str, Influence] = {}
    if not isinstance(section, dict):
        return out
    for name, entry in section.items():
        try:
            out[str(name)] = Influence(
                int(entry["rows"]), int(entry["confident"]), float(entry["disagreement"])
            )
        except (KeyError, TypeError, ValueError):
            continue  # a figure the job could not compute is not a reason to refuse the archive
    return out


@dataclass(frozen=True)
class Artifact:
    uri: str
    sha256: str
    #: True when ``code/`` installs nothing from an index (no requirements, or vendored wheels
    #: with ``--no-index``): the model can then run with network isolation.
    offline: bool
    runtime: str | None = None
    #: What the model answers with, from ``textclf_meta.json``; None when the archive names none.
    labels: LabelSet | None = None
    #: The same labels in class-id order, whole.
    label_names: tuple[str, ...] | None = None
    #: A retrain's feedback labellers and how much they contradict the champion (by name).
    influence: dict[str, Influence] = field(default_factory=dict)
    #: The archive's ``baseline.json`` bytes, when it has one.
    baseline: bytes | None = field(default=None, repr=False)

    def metadata(self) -> dict[str, str]:
        recorded = {SHA256_KEY: self.sha256, OFFLINE_KEY: "true" if self.offline else "false"}
        return recorded | (self.labels.metadata() if self.labels else {})


class _GunzipHashingReader(io.RawIOBase):
    """The decompressed bytes of a gzip byte stream, read once: the compressed bytes are hashed
    as they arrive and inflated in the same pass (tarfile reads the result as a plain tar stream).
    ``drain`` reads to the end of the stream and checks the gzip trailer was there: tarfile stops
    at the end-of-archive blocks, so an archive cut after its last member would otherwise pass."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.digest = hashlib.sha256()
        self.size = 0
        self._gzip = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def _next_chunk(self) -> bool:
        """Hash and inflate the next compressed chunk; False at the end of the compressed stream."""
        raw = self._stream.read(_CHUNK)
        if not raw:
            return False
        self.digest.update(raw)
        self.size += len(raw)
        # Only called once the previous chunk's output is used up (readinto) or no longer wanted.
        self._pending = memoryview(self._gzip.decompress(raw) if not self._gzip.eof else b"")
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            if self._gzip.eof or not self._next_chunk():
                return 0
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def drain(self) -> None:
        """Hash the rest (tar padding, gzip trailer); what it inflates to is not needed."""
        while self._next_chunk():
            pass
        self._pending = memoryview(b"")
        if not self._gzip.eof:
            raise ArtifactError("the model artifact is truncated (its gzip stream does not end)")


def split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise ArtifactError(f"the model artifact {uri!r} is not an s3://bucket/key URI")
    bucket, key = uri[5:].split("/", 1)
    return bucket, key


def admitted_key(sha256: str, prefix: str = MODELS_PREFIX) -> str:
    """``<prefix>/<sha256[:16]>/model.tar.gz``: where an admitted archive lives, named by its bytes."""
    return "/".join(part for part in (prefix.strip("/"), sha256[:16], ARCHIVE_NAME) if part)


def read_archive(stream: Any) -> tuple[str, int, dict[str, bytes]]:
    """(sha256 hex, size, the small files this module reads) of a ``model.tar.gz`` byte stream."""
    reader = _GunzipHashingReader(stream)
    found: dict[str, bytes] = {}
    try:
        # "r|": a plain tar stream -- the reader has already inflated it (one decompression).
        with tarfile.open(fileobj=io.BufferedReader(reader, _CHUNK), mode="r|") as tar:
            for member in tar:
                name = member.name.removeprefix("./")
                limit = _BASELINE_MAX if name == BASELINE_FILE else _SMALL_FILE
                if name in (_REQUIREMENTS, _META, BASELINE_FILE) and member.isfile() and member.size <= limit:
                    handle = tar.extractfile(member)
                    found[name] = handle.read() if handle is not None else b""
        reader.drain()  # the gzip trailer and tar padding after the last member count too
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise ArtifactError(f"the model artifact is not a readable model.tar.gz ({exc})") from exc
    return reader.digest.hexdigest(), reader.size, found


def is_offline(requirements: bytes | None) -> bool:
    if requirements is None:
        return True
    lines = [ln.split("#", 1)[0].strip() for ln in requirements.decode("utf-8", "replace").splitlines()]
    wanted = [ln for ln in lines if ln]
    return not wanted or "--no-index" in wanted


def inspect(stream: Any, uri: str) -> Artifact:
    """Hash and inspect the archive bytes of ``stream`` (found at ``uri``): what admission records."""
    sha256, _size, files = read_archive(stream)
    if _META not in files:
        raise ArtifactError(f"the model artifact has no {_META}: it was not written by train.py")
    try:
        meta = json.loads(files[_META])
        runtime = meta.get("runtime")
    except (ValueError, AttributeError) as exc:
        raise ArtifactError(f"the model artifact's {_META} is not a JSON object") from exc
    return Artifact(
        uri=uri,
        sha256=sha256,
        offline=is_offline(files.get(_REQUIREMENTS)),
        runtime=str(runtime) if runtime else None,
        labels=_label_set(meta.get("labels")),
        label_names=tuple(meta["labels"]) if meta.get("labels") is not None else None,
        influence=_influence(meta),
        baseline=files.get(BASELINE_FILE),
    )


def _label_set(labels: Any) -> LabelSet | None:
    if labels is None:
        return None
    if (
        not isinstance(labels, list)
        or not all(isinstance(name, str) and name for name in labels)
        or len(set(labels)) != len(labels)
    ):
        raise ArtifactError(f"the model artifact's {_META} labels must be a list of distinct label names")
    return LabelSet.of(labels)


def admit(
    source_uri: str,
    bucket: str,
    *,
    s3: Any = None,
    read: Artifact | None = None,
    prefix: str = MODELS_PREFIX,
) -> Artifact:
    """Hash and inspect ``source_uri``, then copy it to ``<prefix>/`` under its hash (see module doc).

    ``read``: what the caller already learnt reading these bytes (``textclf deploy`` inspects its
    download); the copy's checksum must still equal its hash. ``s3`` defaults to the function's.
    """
    src_bucket, src_key = split_s3_uri(source_uri)
    s3 = s3 or aws.artifact_s3()
    if read is None:
        read = inspect(s3.get_object(Bucket=src_bucket, Key=src_key)["Body"], source_uri)
    key = admitted_key(read.sha256, prefix)
    copied = s3.copy_object(
        Bucket=bucket,
        Key=key,
        CopySource={"Bucket": src_bucket, "Key": src_key},
        ChecksumAlgorithm="SHA256",
        MetadataDirective="COPY",
    )
    checksum = (copied.get("CopyObjectResult") or {}).get("ChecksumSHA256")
    if checksum != b64_sha256(read.sha256):
        # Someone rewrote the source between the read and the copy: admit nothing.
        s3.delete_object(Bucket=bucket, Key=key)
        raise ArtifactError("the model artifact changed while it was being admitted; not served")
    record_labels(s3, bucket, key, read.label_names)
    record_baseline(s3, bucket, key, read.baseline)
    return replace(read, uri=f"s3://{bucket}/{key}")


def beside(archive_key: str, name: str) -> str:
    """The key of the file ``name`` beside the archive at ``archive_key``."""
    folder = archive_key.rsplit("/", 1)[0] if "/" in archive_key else ""
    return f"{folder}/{name}" if folder else name


def labels_key(archive_key: str) -> str:
    """The key of the label file beside the archive at ``archive_key``."""
    return beside(archive_key, LABELS_FILE)


def record_baseline(s3: Any, bucket: str, archive_key: str, baseline: bytes | None) -> None:
    """Write the archive's ``baseline.json`` beside it (nothing when the archive has none)."""
    if baseline is not None:
        s3.put_object(
            Bucket=bucket,
            Key=beside(archive_key, BASELINE_FILE),
            Body=baseline,
            ContentType="application/json",
        )


def recorded_baseline(s3: Any, model_data: str) -> dict[str, Any] | None:
    """The baseline recorded beside the archive ``model_data``; None when there is none."""
    bucket, key = split_s3_uri(model_data)
    try:
        found = json.loads(s3.get_object(Bucket=bucket, Key=beside(key, BASELINE_FILE))["Body"].read())
    except ClientError as exc:
        if aws.error_code(exc) in ("NoSuchKey", "404", "NotFound"):
            return None
        raise
    return found if isinstance(found, dict) else None


def record_labels(s3: Any, bucket: str, archive_key: str, names: Sequence[str] | None) -> None:
    """Write the archive's whole label set beside it (nothing when the archive names none)."""
    if names is not None:
        body = json.dumps({"labels": list(names)}, ensure_ascii=False).encode("utf-8")
        s3.put_object(Bucket=bucket, Key=labels_key(archive_key), Body=body, ContentType="application/json")


def recorded_labels(s3: Any, model_data: str) -> list[str] | None:
    """The label set recorded beside the archive ``model_data``; None when there is none (an
    archive admitted before label files were written, or one that names no labels)."""
    bucket, key = split_s3_uri(model_data)
    try:
        found = json.loads(s3.get_object(Bucket=bucket, Key=labels_key(key))["Body"].read())
    except ClientError as exc:
        if aws.error_code(exc) in ("NoSuchKey", "404", "NotFound"):
            return None
        raise
    labels = found.get("labels") if isinstance(found, dict) else None
    return [str(label) for label in labels] if isinstance(labels, list) else None


def holds(s3: Any, bucket: str, key: str, sha256: str) -> bool:
    """Whether S3's own SHA-256 of ``bucket/key`` is ``sha256`` (False when S3 has none for it)."""
    head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    return bool(head.get("ChecksumSHA256") == b64_sha256(sha256))


def verify(model_data: str, metadata: dict[str, str], *, s3: Any = None, prefix: str = MODELS_PREFIX) -> None:
    """Raise :class:`ArtifactError` unless ``model_data`` is an admitted copy (under ``prefix``) whose
    S3 SHA-256 is the one recorded at admission. ``s3`` defaults to the function's."""
    expected = metadata.get(SHA256_KEY)
    if not expected:
        raise ArtifactError(
            "the model package records no sha256: only versions registered by the deploy loop are served"
        )
    bucket, key = split_s3_uri(model_data)
    if key != admitted_key(expected, prefix):
        raise ArtifactError(f"the model package points outside {prefix}/: not an admitted artifact")
    if not holds(s3 or aws.s3(), bucket, key, expected):
        raise ArtifactError(
            f"{model_data} no longer has the sha256 recorded when it was admitted; not served"
        )


def b64_sha256(sha256_hex: str) -> str:
    """A hex SHA-256 the way S3 writes checksums (base64 of the digest)."""
    return base64.b64encode(bytes.fromhex(sha256_hex)).decode("ascii")
