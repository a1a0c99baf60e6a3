"""Servers under test as separate processes, with their memory sampled from outside.

Each server runs in its own process so that the load generator's CPU time is not the
server's and the RSS we report is the server's alone (its children included: a server may
fork workers or run the endpoint as a child).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import psutil

from textclf.bench.loadgen import ensure_loopback
from textclf.errors import UserError


def _process_tree(pid: int) -> list[psutil.Process]:
    """``pid``, all its descendants and the rest of its session; empty once it is gone.

    Servers start in a session of their own (``ServerProcess.launch``), and the session is what
    counts: the DLC's model server starts its Java front end through a launcher that exits, so
    the JVM, which does the serving, is no descendant of the process started here.
    """
    leader = False
    try:
        root = psutil.Process(pid)
        family = {p.pid: p for p in [root, *root.children(recursive=True)]}
    except psutil.NoSuchProcess:
        return []
    with contextlib.suppress(OSError):
        leader = os.getsid(pid) == pid
    if leader:  # ``pid`` leads a session of its own: add the session's orphans
        for proc in psutil.process_iter():
            with contextlib.suppress(OSError, psutil.Error):
                if proc.pid not in family and os.getsid(proc.pid) == pid:
                    family[proc.pid] = proc
    return list(family.values())


def process_tree_rss(pid: int) -> int:
    """RSS in bytes of ``pid`` plus all its descendants (0 once it is gone)."""
    total = 0
    for proc in _process_tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += proc.memory_info().rss
    return total


def process_tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by ``pid`` and its live descendants (0 once gone)."""
    total = 0.0
    for proc in _process_tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


@dataclass
class RssSampler:
    """Background thread recording a process tree's RSS every ``interval_s`` seconds."""

    pid: int
    interval_s: float = 0.25
    samples: list[tuple[float, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _t0: float = field(default=0.0, repr=False)

    def start(self) -> RssSampler:
        self._t0 = time.perf_counter()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"rss-{self.pid}", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.perf_counter() - self._t0, process_tree_rss(self.pid)))
            self._stop.wait(self.interval_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.samples.append((time.perf_counter() - self._t0, process_tree_rss(self.pid)))

    @property
    def peak_bytes(self) -> int:
        return max((rss for _, rss in self.samples), default=0)

    def __enter__(self) -> RssSampler:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def http_get_status(host: str, port: int, path: str, timeout_s: float = 2.0) -> int | None:
    """Status of ``GET path``, or None when nothing answers yet."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


@dataclass
class ServerProcess:
    """A server started as a child process; always stopped on ``__exit__`` (also on errors).

    ``ready_path`` is polled with GET until it answers with a status in ``ready_statuses``.
    ``sockets`` are listening sockets bound here and handed to the child as ``FLAG <fd>``: the
    port is known before the child starts and nobody can take it in between (no find-then-bind).
    """

    name: str
    argv: Sequence[str]
    host: str
    port: int
    ready_path: str = "/ping"
    ready_statuses: tuple[int, ...] = (200,)
    log_path: Path | None = None
    env: Mapping[str, str] | None = None
    startup_timeout_s: float = 120.0
    sockets: Sequence[tuple[str, socket.socket]] = ()
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _log: Any = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError(f"{self.name} is not running")
        return self.proc.pid

    def start(self) -> ServerProcess:
        """Launch and wait until ready (stopping the process if it never gets ready)."""
        self.launch()
        return self.wait_ready()

    def launch(self) -> ServerProcess:
        """Start the process without waiting: several servers can then load their models at once."""
        ensure_loopback(self.host)
        if (
            not self.sockets
            and http_get_status(self.host, self.port, self.ready_path, timeout_s=0.5) is not None
        ):
            raise UserError(f"port {self.port} on {self.host} is busy: cannot start {self.name} there")
        env = dict(os.environ)
        if self.env:
            env.update(self.env)
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_path.open("wb")
        # A new session gives the server its own process group, so stop() can signal the server
        # and any workers it forked without touching anything else.
        handed = [arg for flag, sock in self.sockets for arg in (flag, str(sock.fileno()))]
        try:
            self.proc = subprocess.Popen(
                [*self.argv, *handed],
                stdout=self._log if self._log is not None else subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                pass_fds=[sock.fileno() for _, sock in self.sockets],
            )
        finally:
            # The child holds its copies now; ours would keep the port open after it exits.
            for _, sock in self.sockets:
                sock.close()
        return self

    def wait_ready(self) -> ServerProcess:
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise UserError(
                    f"{self.name} exited with code {self.proc.returncode} before it was ready"
                    f"{self._log_hint()}"
                )
            status = http_get_status(self.host, self.port, self.ready_path)
            if status in self.ready_statuses:
                return
            time.sleep(0.2)
        raise UserError(f"{self.name} was not ready within {self.startup_timeout_s:.0f} s{self._log_hint()}")

    def _log_hint(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        if self._log is not None:
            self._log.flush()
        tail = self.log_path.read_text(errors="replace").strip().splitlines()[-5:]
        return f" (log {self.log_path}: {' | '.join(tail)})" if tail else f" (log {self.log_path})"

    def stop(self, timeout_s: float = 15.0) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            # SIGINT first: uvicorn treats it as Ctrl-C and shuts down gracefully.
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, sig)
                try:
                    proc.wait(timeout=timeout_s if sig != signal.SIGKILL else 5)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def python_module_argv(module: str, *args: str) -> list[str]:
    """``python -m module args...`` with this interpreter (the same virtualenv)."""
    return [sys.executable, "-m", module, *args]


def listening(host: str, what: str) -> tuple[socket.socket, int]:
    """A loopback socket on a port the OS picks, listening, to hand to a server process."""
    from textclf.serving.net import bind_socket

    sock = bind_socket(host, 0, what=what, flag="--port")
    return sock, int(sock.getsockname()[1])
