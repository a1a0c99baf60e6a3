from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from textclf.data import download
from textclf.data.checksum import read_sidecar, sha256_file, sidecar_path
from textclf.data.download import cache_path_for, fetch_url, resolve_source
from textclf.data.prepare import prepare
from textclf.data.samples import raw_line, write_raw_corpus
from textclf.errors import UserError


class FileServer:
    """Serves ``files`` (path -> bytes) on 127.0.0.1 and counts GETs per path."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.hits: Counter[str] = Counter()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits[self.path] += 1
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"


@pytest.fixture
def server() -> Iterator[FileServer]:
    srv = FileServer()
    srv.thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


@pytest.fixture
def archive(tmp_path: Path) -> bytes:
    lines = [raw_line(i, f"headline {i}", category="btem"[i % 4], story=f"s{i % 20}") for i in range(1, 101)]
    return write_raw_corpus(tmp_path / "a.zip", lines).read_bytes()


def test_download_progress_sidecar_and_cache_hit(
    server: FileServer, archive: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.files["/static/news.zip"] = archive
    url = server.url("/static/news.zip")
    cache = tmp_path / "cache"
    first = fetch_url(url, cache_dir=cache, progress=True)
    progress = capsys.readouterr().err
    assert "download news.zip" in progress and "100%" in progress
    assert not first.cached
    assert first.path == cache_path_for(url, cache)
    assert first.path.read_bytes() == archive
    assert first.sha256 == sha256_file(first.path) == read_sidecar(first.path)
    assert not list(cache.glob("*.part"))

    second = fetch_url(url, cache_dir=cache, progress=True)
    assert second.cached and second.sha256 == first.sha256
    assert server.hits["/static/news.zip"] == 1


def test_corrupt_cache_is_detected_and_fetched_again(
    server: FileServer, archive: bytes, tmp_path: Path
) -> None:
    server.files["/n.zip"] = archive
    url = server.url("/n.zip")
    cached = fetch_url(url, cache_dir=tmp_path, progress=False).path
    cached.write_bytes(archive[:-10])  # truncated on disk after the fact
    again = fetch_url(url, cache_dir=tmp_path, progress=False)
    assert not again.cached and again.path.read_bytes() == archive
    assert server.hits["/n.zip"] == 2
    sidecar_path(cached).unlink()  # no sidecar: cannot be trusted either
    fetch_url(url, cache_dir=tmp_path, progress=False)
    assert server.hits["/n.zip"] == 3


def test_checksum_pin(server: FileServer, archive: bytes, tmp_path: Path) -> None:
    import hashlib

    server.files["/n.zip"] = archive
    url = server.url("/n.zip")
    wrong = "0" * 64
    with pytest.raises(UserError, match=f"checksum mismatch for {url}: expected sha256 {wrong}"):
        fetch_url(url, cache_dir=tmp_path, sha256=wrong, progress=False)
    assert not cache_path_for(url, tmp_path).exists()  # a bad file is not left in the cache
    right = hashlib.sha256(archive).hexdigest()
    assert fetch_url(url, cache_dir=tmp_path, sha256=right, progress=False).sha256 == right
    # A cached file that does not match a (new) pin is fetched again, then rejected.
    server.files["/n.zip"] = archive + b"\0"
    with pytest.raises(UserError, match="checksum mismatch"):
        fetch_url(url, cache_dir=tmp_path, sha256=right[::-1], progress=False)


def test_http_error_and_not_a_zip(server: FileServer, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="HTTP 404"):
        fetch_url(server.url("/missing.zip"), cache_dir=tmp_path, progress=False)
    server.files["/page.zip"] = b"<html>maintenance</html>"
    with pytest.raises(UserError, match="not a complete zip"):
        fetch_url(server.url("/page.zip"), cache_dir=tmp_path, progress=False)
    assert not cache_path_for(server.url("/page.zip"), tmp_path).exists()


def test_no_network_fails_fast_with_a_hint(tmp_path: Path) -> None:
    # Bound, never listening: connections are refused, and no other process can take the port.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        started = time.monotonic()
        with pytest.raises(UserError, match=r"no network.*--source"):
            url = f"http://127.0.0.1:{closed.getsockname()[1]}/news.zip"
            fetch_url(url, cache_dir=tmp_path, progress=False)
    # A refused connection is immediate; 5 s only catches retries with backoff (minutes).
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (requests.exceptions.ConnectTimeout, "cannot reach example.invalid .no network"),
        (requests.exceptions.ReadTimeout, "download timed out"),
    ],
)
def test_timeouts_become_user_errors(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, error: type[Exception], message: str
) -> None:
    seen: dict[str, object] = {}

    def fake_get(url: str, **kwargs: object) -> None:
        seen.update(kwargs)
        raise error("timed out")

    monkeypatch.setattr(download.requests, "get", fake_get)
    with pytest.raises(UserError, match=message):
        fetch_url("http://example.invalid/x.zip", cache_dir=tmp_path, progress=False)
    # Connecting must be bounded by a short timeout so an offline run ends in seconds.
    timeout = seen["timeout"]
    assert isinstance(timeout, tuple) and timeout[0] <= 10


def test_resolve_local_source_and_pin(tmp_path: Path) -> None:
    path = write_raw_corpus(tmp_path / "c.csv", [raw_line(1, "x")])
    src = resolve_source(str(path))
    assert src.sha256 == sha256_file(path) and src.path == path.resolve()
    with pytest.raises(UserError, match="checksum mismatch"):
        resolve_source(str(path), sha256="f" * 64)


def test_prepare_from_url_uses_the_url_name(server: FileServer, archive: bytes, tmp_path: Path) -> None:
    server.files["/static/public/359/news+aggregator.zip"] = archive
    url = server.url("/static/public/359/news+aggregator.zip")
    result = prepare(url, tmp_path / "data", cache_dir=tmp_path / "cache", progress=False)
    assert result.manifest["source"]["origin"] == url
    assert result.manifest["source"]["name"] == "news+aggregator.zip"
    assert result.manifest["rows"]["valid"] == 100
    # Re-run: served from the cache and the output reused.
    assert prepare(url, tmp_path / "data", cache_dir=tmp_path / "cache", progress=False).reused
    assert server.hits["/static/public/359/news+aggregator.zip"] == 1
