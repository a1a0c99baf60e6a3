"""A stand-in for the local EventBridge: records what the local SageMaker would publish."""

from __future__ import annotations

from typing import Any


class RecordingBus:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def put(self, detail_type: str, detail: dict[str, Any], resources: Any = ()) -> dict[str, Any]:
        self.events.append((detail_type, detail))
        return {}
