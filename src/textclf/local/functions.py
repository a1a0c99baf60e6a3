"""One Lambda function on this machine: its handler, imported on first use (the Lambda init phase),
and one event at a time (one warm execution environment).

A powertools resolver keeps the current event on a module-level object, so one handler module must
never run two events at once -- exactly like one Lambda execution environment. The local API
(``api``) and the local EventBridge (``events``) invoke handlers through this class.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from typing import Any

Handler = Callable[[dict[str, Any], Any], Any]


class LocalFunction:
    def __init__(self, name: str, handler_path: str, timeout_s: float, memory_mb: int) -> None:
        self.name = name
        self.handler_path = handler_path
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self.lock = threading.Lock()
        self._handler: Handler | None = None

    def handler(self) -> Handler:
        if self._handler is None:
            module_name, _, attribute = self.handler_path.rpartition(".")
            module = importlib.import_module(module_name)
            self._handler = getattr(module, attribute)
        return self._handler

    def invoke(self, event: dict[str, Any], context: Any) -> Any:
        with self.lock:
            return self.handler()(event, context)
