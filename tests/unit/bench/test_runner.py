"""Runner pieces that need no server: ONNX export caching, config checks, request bodies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import textclf.packaging
from textclf.bench.runner import BenchConfig, check_inputs, invocation_bodies, prepare_onnx_dirs
from textclf.errors import UserError

pytestmark = pytest.mark.heavy  # real models, exports, servers or tools: not in `make unit`


def _model_dir(path: Path, weights: bytes) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text("{}")
    (path / "model.safetensors").write_bytes(weights)
    return path


def test_onnx_exports_are_cached_by_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def fake_stage(model_dir: Path, runtime: str, dest: Path) -> Path:
        calls.append(runtime)
        dest.mkdir(parents=True, exist_ok=True)
        (dest / "model.onnx").write_bytes(b"onnx")
        return dest

    monkeypatch.setattr(textclf.packaging, "stage_runtime", fake_stage)
    model = _model_dir(tmp_path / "model", b"weights-1")
    cfg = BenchConfig(model_dir=model, package=tmp_path / "p", data=tmp_path / "d", out=tmp_path / "out")

    dirs = prepare_onnx_dirs(cfg)
    assert calls == ["onnx-fp32", "onnx-int8"]
    assert dirs == {r: tmp_path / "out" / "runtimes" / r for r in ("onnx-fp32", "onnx-int8")}
    prepare_onnx_dirs(cfg)
    assert calls == ["onnx-fp32", "onnx-int8"]  # reused

    _model_dir(model, b"weights-2")  # retrained: exports are stale
    prepare_onnx_dirs(cfg)
    assert calls == ["onnx-fp32", "onnx-int8"] * 2

    given = tmp_path / "mine"
    cfg.onnx_dirs = {"onnx-int8": given}
    assert prepare_onnx_dirs(cfg)["onnx-int8"] == given
    assert len(calls) == 4  # fp32 still cached, int8 given: nothing exported


def test_check_inputs_names_what_is_missing(tmp_path: Path) -> None:
    data = tmp_path / "test"
    data.mkdir()
    model = _model_dir(tmp_path / "model", b"w")
    cfg = BenchConfig(model_dir=model, package=tmp_path / "none.tar.gz", data=data, out=tmp_path / "o")
    with pytest.raises(UserError, match="textclf package"):
        check_inputs(cfg)
    cfg.levels = ("model",)
    check_inputs(cfg)
    cfg.model_dir = tmp_path / "nothing"
    with pytest.raises(UserError, match="no trained model"):
        check_inputs(cfg)
    cfg.levels = ("soak",)
    cfg.package = model
    with pytest.raises(UserError, match="--soak"):
        check_inputs(cfg)


def test_invocation_bodies_are_the_endpoint_and_api_payloads() -> None:
    assert [json.loads(b) for b in invocation_bodies(['Fed "holds"', "é"])] == [
        {"inputs": 'Fed "holds"'},
        {"inputs": "é"},
    ]
    assert json.loads(invocation_bodies(["x"], key="text")[0]) == {"text": "x"}


def _archive(path: Path, meta: dict[str, object] | None) -> Path:
    import io
    import tarfile

    with tarfile.open(path, "w:gz") as tar:
        if meta is not None:
            data = json.dumps(meta).encode()
            info = tarfile.TarInfo("textclf_meta.json")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_the_cascade_row_uses_the_threshold_the_package_serves_with(tmp_path: Path) -> None:
    from textclf.bench.runner import packaged_cascade_threshold

    with_cascade = _archive(tmp_path / "a.tar.gz", {"runtime": "onnx-int8", "cascade": {"threshold": 0.74}})
    assert packaged_cascade_threshold(with_cascade) == 0.74
    assert packaged_cascade_threshold(_archive(tmp_path / "b.tar.gz", {"cascade": None})) is None
    assert packaged_cascade_threshold(_archive(tmp_path / "c.tar.gz", None)) is None
    assert packaged_cascade_threshold(tmp_path / "absent.tar.gz") is None
