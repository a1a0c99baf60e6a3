"""A server process's life: block until SIGINT or SIGTERM, and keep library chatter quiet.

Kept apart from the local stack (``textclf.local.stack`` re-exports them) because the SageMaker
inference image's ``serve`` (``textclf.serving.container``) needs these and none of the stack.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


@contextmanager
def stop_signals() -> Iterator[None]:
    """Ctrl-C (SIGINT) and SIGTERM both stop the servers cleanly (raise KeyboardInterrupt).

    SIGINT is set explicitly because a process started in the background by a non-interactive
    shell (``make demo`` helpers, ``cmd &`` in scripts) inherits SIGINT *ignored*, and Python
    keeps it ignored; process managers send SIGTERM.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def quiet_libraries(verbose: bool) -> None:
    """Keep per-request INFO lines of the HTTP/AWS client libraries (a /ping every 0.5 s, "found
    credentials" per client) out of the console unless ``-v`` asks for them."""
    if not verbose:
        for name in ("httpx", "httpcore", "botocore", "boto3", "urllib3"):
            logging.getLogger(name).setLevel(logging.WARNING)


def serve_forever(stop: threading.Event | None = None) -> None:
    """Block the main thread until Ctrl-C / SIGTERM (or ``stop`` is set)."""
    stop = stop or threading.Event()
    while not stop.wait(0.5):
        pass
