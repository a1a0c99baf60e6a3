"""The local stack as real processes on free loopback ports, always stopped after the tests.

``textclf serve-endpoint`` serves a tiny packaged model; ``textclf serve --endpoint-url`` runs the
API and the control plane against it. Separate processes, as a user runs them: the tests see
only HTTP, and the endpoint can be stopped and started again to watch ``/health`` follow it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.tiny_model import make_tiny_model_dir
from textclf.serving.net import bind_socket

ENDPOINT_NAME = "textclf-it"
START_TIMEOUT_S = 180.0  # cold imports of torch/transformers on a busy 2-core machine


def package_tiny_model(model_dir: Path, out: Path) -> Path:
    """``model.tar.gz`` built by ``textclf package`` (torch runtime: no fidelity data needed)."""
    from textclf.packaging import build_package

    return build_package(model_dir, out, runtime="torch", echo=lambda _line: None).out


class Server:
    """A ``textclf`` sub-command as a child process with its output in a log file.

    Each flag of ``listen`` (``--fd``, ``--endpoint-fd``) gets a loopback socket bound here on a
    port the OS picks and handed to the child: the port is known before the child starts and
    nobody can take it in between. A restart binds the same ports again (the one moment a port
    is free is between this process's own stop and start).
    """

    def __init__(
        self,
        name: str,
        args: list[str],
        env: dict[str, str],
        log: Path,
        listen: tuple[str, ...] = (),
        *,
        own_group: bool = False,
    ) -> None:
        self.name = name
        #: A process group of its own (with the training jobs it starts), so kill() takes them all.
        self.own_group = own_group
        self.args = args
        self.env = env
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.ports = {flag: 0 for flag in listen}
        self._sockets = self._bind()

    def _bind(self) -> dict[str, socket.socket]:
        sockets = {
            flag: bind_socket("127.0.0.1", port, what=self.name, flag=flag)
            for flag, port in self.ports.items()
        }
        self.ports = {flag: int(sock.getsockname()[1]) for flag, sock in sockets.items()}
        return sockets

    def url(self, flag: str = "--fd") -> str:
        return f"http://127.0.0.1:{self.ports[flag]}"

    def start(self) -> None:
        sockets = self._sockets or self._bind()
        handed = [arg for flag, sock in sockets.items() for arg in (flag, str(sock.fileno()))]
        try:
            with self.log.open("ab") as fh:
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "textclf", *self.args, *handed],
                    env=self.env,
                    stdout=fh,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    pass_fds=[sock.fileno() for sock in sockets.values()],
                    start_new_session=self.own_group,
                )
        finally:
            for sock in sockets.values():
                sock.close()  # the child has its copies; ours would outlive it
            self._sockets = {}

    def wait_ready(self, url: str, ok: int = 200) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                if httpx.get(url, timeout=2).status_code == ok:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"{self.name} not ready at {url} after {START_TIMEOUT_S:.0f} s:\n{self.tail()}")

    def stop(self) -> int | None:
        """Ctrl-C (SIGINT) first, as a user would; kill only if it does not stop in time."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            return None

    def kill(self) -> None:
        """SIGKILL to the whole process group: a crash, nothing runs on the way out."""
        assert self.proc is not None and self.own_group
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


#: The x-api-key the test stacks are started with; ``KEY`` is the header to send it in.
API_KEY = "integration-test-key"
KEY = {"x-api-key": API_KEY}
#: ... and the labellers' key (POST /feedback).
LABELLER_KEY = "integration-labeller-key"


class LocalStackProcesses:
    def __init__(self, root: Path, archive: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(
            TEXTCLF_ARTIFACTS=str(root / "artifacts"),  # no processed data: nothing of the user's is read
            TEXTCLF_CACHE=str(root / "cache"),
            PYTHONUNBUFFERED="1",
            TEXTCLF_API_KEY=API_KEY,
            TEXTCLF_LABELLER_KEY=LABELLER_KEY,
        )
        self.endpoint = Server(
            "textclf serve-endpoint",
            ["serve-endpoint", "--model", str(archive), "--endpoint-name", ENDPOINT_NAME, "--threads", "1"],
            env,
            root / "endpoint.log",
            listen=("--fd",),
        )
        self.endpoint_url = self.endpoint.url()
        #: Where the stack writes its state file (``textclf replay`` and ``--local`` commands read it).
        self.artifacts = root / "artifacts"
        self.api = Server(
            "textclf serve",
            # A second labeller: `textclf replay --poison-rate` posts as it.
            [
                "serve",
                "--endpoint-url",
                self.endpoint_url,
                "--endpoint-name",
                ENDPOINT_NAME,
                "--labellers",
                "2",
            ],
            env,
            root / "serve.log",
            listen=("--fd",),
        )
        self.api_url = self.api.url()

    def start(self) -> None:
        # Both at once: the API's watcher marks the endpoint InService once its /ping answers.
        self.endpoint.start()
        self.api.start()
        self.endpoint.wait_ready(f"{self.endpoint_url}/ping")
        self.api.wait_ready(f"{self.api_url}/health")

    def stop(self) -> None:
        self.api.stop()
        self.endpoint.stop()


@pytest.fixture(scope="session")
def tiny_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tiny-model")
    model_dir = make_tiny_model_dir(root / "model", trained=True)
    return package_tiny_model(model_dir, root / "model.tar.gz")


@pytest.fixture(scope="session")
def local_stack(
    tiny_archive: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalStackProcesses]:
    """One stack for every module that uses it (test_local_stack, test_attacks, test_playground:
    one xdist worker takes them together, tests/helpers/scheduling.py). Each test leaves it as it
    found it: the one that stops the endpoint starts it again in a ``finally``."""
    stack = LocalStackProcesses(tmp_path_factory.mktemp("stack"), tiny_archive)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
