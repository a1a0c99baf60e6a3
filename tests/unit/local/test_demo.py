"""``make demo`` refuses what would fail later before any slow step runs."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from textclf.demo import Demo, DemoOptions, run_demo
from textclf.errors import UserError


def test_a_missing_data_file_is_refused_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEXTCLF_ARTIFACTS", str(tmp_path / "artifacts"))
    steps: list[list[str]] = []
    monkeypatch.setattr(Demo, "step", lambda self, number, args, what: steps.append(args))
    with pytest.raises(UserError, match=r"DATA=.*missing\.zip: no such file"):
        # run_demo checks that its ports are free first (and closes them): port 0 lets the OS
        # pick free ones, so no other test or process can make this one fail.
        run_demo(DemoOptions(data=str(tmp_path / "missing.zip"), port=0, endpoint_port=0))
    assert steps == []  # refused before any step (data, eda, train...) ran
    assert not (tmp_path / "artifacts" / "data").exists()


def test_a_busy_api_port_is_refused_before_the_pipeline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEXTCLF_ARTIFACTS", str(tmp_path / "artifacts"))
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        busy = holder.getsockname()[1]
        with pytest.raises(UserError, match=rf"API port 127.0.0.1:{busy} is already in use.*--port"):
            run_demo(DemoOptions(data=None, port=busy, endpoint_port=0))
    assert not (tmp_path / "artifacts").exists()
