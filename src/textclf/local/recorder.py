"""The control plane's memory: every change moto accepts is stored before the caller hears of it,
and a fresh moto is given it all back on start.

A WSGI layer in front of moto's app sees each request; after a mutating one that moto answered
with a 2xx (and before that answer goes out, so an acknowledged change is a stored one):

- **S3**: the buckets are compared with the store by ETag; new or changed objects are read back
  and stored (body as a blob, with content type, metadata and SHA-256 checksum), removed ones
  dropped. Multipart parts change nothing until the upload completes.
- **DynamoDB**: the tables are scanned and stored whole (deployment records, idempotency keys:
  small tables, and a scan sees the result of conditional writes as moto decided them).
- **SageMaker** (what moto answers: models, endpoint configs, the Model Registry): the request
  itself is journaled and replayed in order on start -- the same calls give the same package
  versions and ARNs. Training jobs and endpoints are the local SageMaker's and stored by it.

Why snapshots of state for S3 and DynamoDB but a journal for SageMaker: replaying a DynamoDB
conditional write later could decide differently (powertools' idempotency conditions compare
with the time), while moto's SageMaker calls have no such conditions and its registry assigns
version numbers in call order, which only a replay reproduces.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

import httpx

from textclf.local.state import StateStore

log = logging.getLogger(__name__)

_READS = ("Describe", "List", "Search", "Get", "Query", "Scan", "BatchGet", "Invoke")
_DYNAMODB_WRITES = frozenset(
    {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems", "ExecuteStatement"}
)

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class Recorder:
    """WSGI middleware around moto's app; ``recording`` is off while the stack seeds and restores."""

    def __init__(self, app: WSGIApp, store: StateStore, client: Callable[[str], Any]) -> None:
        self.app = app
        self.store = store
        self.client = client
        self.recording = False
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not self.recording or environ.get("REQUEST_METHOD") in ("GET", "HEAD", "OPTIONS"):
            return self.app(environ, start_response)
        target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
        service, _, operation = target.partition(".")
        body = b""
        if service == "SageMaker":
            # JSON with a Content-Length (botocore): read here, handed on unchanged.
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length else b""
            environ["wsgi.input"] = io.BytesIO(body)
        statuses: list[str] = []

        def capture(status: str, headers: Any, exc_info: Any = None) -> Any:
            statuses.append(status)
            return start_response(status, headers, exc_info)

        result = self.app(environ, capture)
        try:
            chunks = list(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        if statuses and statuses[0].startswith("2"):
            self._after(service, operation, environ, body)
        return chunks

    def _after(self, service: str, operation: str, environ: dict[str, Any], body: bytes) -> None:
        if service == "SageMaker":
            if not operation.startswith(_READS):
                self.store.add_call(f"{service}.{operation}", body)
        elif service.startswith("DynamoDB"):
            if operation in _DYNAMODB_WRITES:
                self.sync_tables()
        elif "/s3/" in str(environ.get("HTTP_AUTHORIZATION", "")):
            query = str(environ.get("QUERY_STRING", ""))
            if not ("uploadId=" in query and environ.get("REQUEST_METHOD") == "PUT"):  # a part
                self.sync_buckets()

    # -- state -> store --------------------------------------------------------------------

    def sync_all(self) -> None:
        self.sync_buckets()
        self.sync_tables()

    def sync_buckets(self) -> None:
        s3 = self.client("s3")
        with self._lock:
            for bucket in [b["Name"] for b in s3.list_buckets().get("Buckets", [])]:
                stored = self.store.s3_etags(bucket)
                seen: set[str] = set()
                for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                    for obj in page.get("Contents", []):
                        key = obj["Key"]
                        seen.add(key)
                        if stored.get(key) != obj["ETag"]:
                            self._store_object(s3, bucket, key)
                gone = [key for key in stored if key not in seen]
                if gone:
                    self.store.delete_objects(bucket, gone)

    def _store_object(self, s3: Any, bucket: str, key: str) -> None:
        reply = s3.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        body = reply["Body"].read()
        head: dict[str, Any] = {
            "ContentType": reply.get("ContentType"),
            "Metadata": reply.get("Metadata") or {},
        }
        checksum = reply.get("ChecksumSHA256")
        if checksum and "-" not in checksum:  # a whole-object checksum a new PUT recomputes
            head["ChecksumSHA256"] = checksum
        self.store.put_object(bucket, key, reply["ETag"], body, head)

    def sync_tables(self) -> None:
        dynamodb = self.client("dynamodb")
        with self._lock:
            for table in dynamodb.list_tables().get("TableNames", []):
                schema = dynamodb.describe_table(TableName=table)["Table"]["KeySchema"]
                names = [k["AttributeName"] for k in schema]
                items: dict[str, dict[str, Any]] = {}
                for page in dynamodb.get_paginator("scan").paginate(TableName=table):
                    for item in page.get("Items", []):
                        items[repr([item.get(n) for n in names])] = item
                self.store.replace_table(table, items)

    # -- store -> a fresh moto -------------------------------------------------------------

    def restore(
        self, moto_url: str, region: str, *, keep: frozenset[tuple[str, str]] = frozenset()
    ) -> dict[str, int]:
        """Put the stored state into moto (recording off); ``keep``: (bucket, key) of objects the
        seed just wrote that stay as seeded (the checkout's source bundle, the ``--model`` archive)."""
        assert not self.recording
        counts = {"objects": 0, "items": 0, "calls": 0}
        s3 = self.client("s3")
        for obj in self.store.objects():
            if (obj.bucket, obj.key) in keep:
                continue
            extra: dict[str, Any] = {"Metadata": obj.head.get("Metadata") or {}}
            if obj.head.get("ContentType"):
                extra["ContentType"] = obj.head["ContentType"]
            if obj.head.get("ChecksumSHA256"):
                extra["ChecksumAlgorithm"] = "SHA256"
            s3.put_object(Bucket=obj.bucket, Key=obj.key, Body=self.store.blob(obj.sha256), **extra)
            counts["objects"] += 1
        dynamodb = self.client("dynamodb")
        for table, item in self.store.items():
            dynamodb.put_item(TableName=table, Item=item)
            counts["items"] += 1
        # The calls as botocore sent them; moto takes the region from the credential scope.
        auth = f"AWS4-HMAC-SHA256 Credential=testing/20250101/{region}/sagemaker/aws4_request"
        with httpx.Client(timeout=60, trust_env=False) as http:
            for target, body in self.store.calls():
                reply = http.post(
                    f"{moto_url}/",
                    content=body,
                    headers={
                        "X-Amz-Target": target,
                        "Content-Type": "application/x-amz-json-1.1",
                        "Authorization": auth,
                    },
                )
                if reply.status_code >= 300:
                    # The seed made it already (the group, the stack's own model): nothing to redo.
                    log.debug("replayed %s: %d %s", target, reply.status_code, reply.text[:200])
                counts["calls"] += 1
        return counts
