"""Fidelity gate, archive reuse and wheel vendoring of ``textclf package``."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tarfile
from pathlib import Path
from typing import Any

import onnx
import pandas as pd
import pytest
from onnx import numpy_helper

from tests.helpers.tiny_model import PROBE_HEADLINES
from textclf import config
from textclf.cli import main
from textclf.errors import UserError
from textclf.packaging import (
    FidelityError,
    FidelityReport,
    build_package,
    load_inference_module,
    load_model,
    onnx_export,
    quantize,
    read_archive_meta,
)
from textclf.packaging.fidelity import Thresholds, sample_validation
from textclf.packaging.wheels import pinned

pytestmark = pytest.mark.heavy  # real models, exports, servers or tools: not in `make unit`


def _swap_first_two_classes(onnx_path: Path) -> None:
    """Swap rows 0 and 1 of the final classifier layer: labels 0 and 1 trade places."""
    model = onnx.load(str(onnx_path))
    last = next(n for n in model.graph.node if "logits" in n.output)
    by_name = {init.name: init for init in model.graph.initializer}
    for name in last.input[1:]:
        array = numpy_helper.to_array(by_name[name]).copy()
        array[[0, 1]] = array[[1, 0]]
        by_name[name].CopyFrom(numpy_helper.from_array(array, name))
    onnx.save(model, str(onnx_path))


@pytest.fixture
def corrupting_export(monkeypatch: pytest.MonkeyPatch) -> None:
    real = onnx_export.export_onnx

    def export_then_corrupt(model_dir: Path, out: Path, *, opset: int = onnx_export.OPSET) -> list[str]:
        names = real(model_dir, out, opset=opset)
        _swap_first_two_classes(out)
        return names

    monkeypatch.setattr(onnx_export, "export_onnx", export_then_corrupt)


@pytest.mark.parametrize("runtime", ["onnx-fp32", "onnx-int8"])
def test_gate_refuses_a_corrupted_model_and_writes_nothing(
    runtime: str, corrupting_export: None, tiny_model: Path, validation_split: Path, tmp_path: Path
) -> None:
    out = tmp_path / "package" / "model.tar.gz"
    with pytest.raises(FidelityError) as err:
        build_package(
            tiny_model,
            out,
            runtime=runtime,
            validation_data=validation_split,
            vendor="no",
            echo=lambda _: None,
        )
    message = str(err.value)
    assert f"refusing to package {runtime}: accuracy drops" in message
    assert "macro-F1 drops" in message and "may be up to" in message and "calibration error rises" in message
    assert "Nothing was written" in message
    assert not out.exists()
    assert not out.parent.exists() or not list(out.parent.iterdir())


def test_cli_exits_2_with_a_clear_message(
    corrupting_export: None,
    tiny_model: Path,
    validation_split: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "model.tar.gz"
    argv = [
        "package",
        "--model",
        str(tiny_model),
        "--out",
        str(out),
        "--validation-data",
        str(validation_split),
    ]
    assert main([*argv, "--vendor-wheels", "no"]) == 2
    last_line = capsys.readouterr().err.strip().splitlines()[-1]
    assert last_line.startswith("textclf package: error: refusing to package onnx-int8: accuracy drops")
    assert not out.exists()


def test_thresholds_are_what_decides(packages: dict[str, Path]) -> None:
    """The recorded figures of a healthy int8 model fail once the bar is set above them."""
    meta = read_archive_meta(packages["onnx-int8"])
    assert meta is not None
    fid = meta["fidelity"]
    assert fid["rows"] == 72 and fid["accuracy_drop"] <= fid["max_accuracy_drop"]
    # Probability differences are non-zero for int8, so the report is measured, not assumed.
    assert fid["max_abs_prob_diff"] > 0
    report = FidelityReport(**{k: v for k, v in fid.items() if k != "passed"})
    assert report.passed
    worse = report.__dict__ | {"accuracy_drop": 0.004, "accuracy_candidate": 0.5, "ece_increase": 0.02}
    strict = FidelityReport(**worse)
    assert strict.failures() == [
        f"accuracy drops 0.40 points, {strict.accuracy_reference:.2%} -> 50.00% (at most 0.20 allowed)",
        f"calibration error rises 0.0200, {strict.ece_reference:.4f} -> {strict.ece_candidate:.4f} "
        "(at most 0.0100 allowed)",
    ]
    # Agreement alone decides nothing any more: a report at 90% agreement with no loss passes.
    assert FidelityReport(**(report.__dict__ | {"agreement": 0.9})).passed


def test_missing_validation_data_is_a_user_error(tiny_model: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"validation data .* does not exist"):
        build_package(tiny_model, tmp_path / "m.tar.gz", validation_data=tmp_path / "nope", vendor="no")
    with pytest.raises(UserError, match="not a textclf model directory"):
        build_package(tmp_path, tmp_path / "m.tar.gz", runtime="torch")


def test_sample_is_deterministic(validation_split: Path) -> None:
    texts, labels, total = sample_validation(validation_split, sample_size=10, seed=0)
    assert total == 72 and len(texts) == len(labels) == 10
    assert sample_validation(validation_split, sample_size=10, seed=0)[0] == texts
    assert sample_validation(validation_split, sample_size=10, seed=1)[0] != texts
    assert len(sample_validation(validation_split, sample_size=1000)[0]) == 72


def test_reuse_and_force(tiny_model: Path, validation_split: Path, tmp_path: Path) -> None:
    out = tmp_path / "model.tar.gz"
    lines: list[str] = []

    def build(**kwargs: object) -> bool:
        result = build_package(
            tiny_model,
            out,
            runtime="onnx-fp32",
            validation_data=validation_split,
            vendor="no",
            echo=lines.append,
            **kwargs,  # type: ignore[arg-type]
        )
        return result.reused

    assert build() is False
    first = out.stat().st_mtime_ns
    assert build() is True
    assert out.stat().st_mtime_ns == first
    assert any("is up to date" in line for line in lines)
    assert build(force=True) is False
    assert build(thresholds=Thresholds(max_ece_increase=0.02)) is False, "changed settings must rebuild"
    meta = read_archive_meta(out)
    assert meta is not None and meta["fidelity"]["max_ece_increase"] == 0.02


def test_vendored_wheels_travel_in_code_wheels(
    tiny_model: Path, validation_split: Path, tmp_path: Path
) -> None:
    wheel_dir = tmp_path / "wheels"
    wheel_dir.mkdir()
    names = [f"{name.replace('-', '_')}-{version}-py3-none-any.whl" for name, version in pinned().items()]
    for name in names:
        (wheel_dir / name).write_bytes(b"stand-in wheel")
    out = tmp_path / "model.tar.gz"
    build_package(
        tiny_model,
        out,
        runtime="onnx-fp32",
        validation_data=validation_split,
        vendor="yes",
        wheel_dir=wheel_dir,
        echo=lambda _: None,
    )
    with tarfile.open(out, "r:gz") as tar:
        members = set(tar.getnames())
        requirements = tar.extractfile("code/requirements.txt").read().decode()  # type: ignore[union-attr]
    assert {f"code/wheels/{name}" for name in names} <= members
    lines = [line for line in requirements.splitlines() if line and not line.startswith("#")]
    assert lines == ["--no-index", "--find-links wheels", f"onnxruntime=={pinned()['onnxruntime']}"]
    meta = read_archive_meta(out)
    assert meta is not None and sorted(meta["packaging"]["vendored_wheels"]) == sorted(names)

    (wheel_dir / names[0]).unlink()
    with pytest.raises(UserError, match="lacks the wheels"):
        build_package(
            tiny_model,
            tmp_path / "other.tar.gz",
            runtime="onnx-fp32",
            validation_data=validation_split,
            vendor="yes",
            wheel_dir=wheel_dir,
            echo=lambda _: None,
        )


def test_cli_package_torch_needs_no_validation_data(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "package" / "model.tar.gz"
    argv = ["package", "--model", str(tiny_model), "--out", str(out), "--runtime", "torch"]
    assert main([*argv, "--validation-data", str(tmp_path / "absent")]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    meta = read_archive_meta(out)
    assert meta is not None and meta["runtime"] == "torch" and meta["fidelity"] is None


# ------------------------------------------------------------------------------------------------
# The training job's fallback: a refused int8 leaves fp32 (or torch) to ship
# ------------------------------------------------------------------------------------------------


def _collapse_to_the_first_class(onnx_path: Path) -> None:
    """Push every logit of class 0 far up: the quantised model answers class 0 whatever the text
    -- what saturated int8 activations do to a classifier -- with no label swapped."""
    model = onnx.load(str(onnx_path))
    last = next(n for n in model.graph.node if "logits" in n.output)
    by_name = {init.name: init for init in model.graph.initializer}
    (bias_name,) = [name for name in last.input if name in by_name]
    bias = numpy_helper.to_array(by_name[bias_name]).copy()
    bias[0] += 50.0
    by_name[bias_name].CopyFrom(numpy_helper.from_array(bias, bias_name))
    onnx.save(model, str(onnx_path))


@pytest.fixture
def collapsing_int8(monkeypatch: pytest.MonkeyPatch) -> None:
    real = quantize.quantize_int8

    def quantize_then_collapse(src: Path, dst: Path, **kwargs: Any) -> None:
        real(src, dst, **kwargs)
        _collapse_to_the_first_class(dst)

    monkeypatch.setattr(quantize, "quantize_int8", quantize_then_collapse)


def _package_as_the_job_does(
    tiny_model: Path, validation_split: Path, dest: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """The training job's own packaging step (``--serving_runtime auto``: ``job_outputs.py`` as
    ``model/train.py`` imports it), loaded by path as the SageMaker toolkit runs it; the
    textclf_meta.json it leaves in the model dir."""

    # train.py points TEXTCLF_MODEL_CODE at itself with setdefault; monkeypatch undoes it.
    monkeypatch.setenv("TEXTCLF_MODEL_CODE", str(config.model_code_dir()))
    spec = importlib.util.spec_from_file_location(
        "textclf_train_fallback", config.model_code_dir() / "train.py"
    )
    assert spec is not None and spec.loader is not None
    train = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, train)
    spec.loader.exec_module(train)
    dest.mkdir(parents=True)
    valid = pd.read_parquet(validation_split)
    package = train.job_outputs.package_for_serving
    package(argparse.Namespace(serving_runtime="auto"), tiny_model, dest, valid)
    meta: dict[str, Any] = json.loads((dest / "textclf_meta.json").read_text(encoding="utf-8"))
    return meta


def _op_types(onnx_path: Path) -> set[str]:
    return {node.op_type for node in onnx.load(str(onnx_path)).graph.node}


def test_a_refused_int8_makes_the_job_ship_fp32(  # noqa: PLR0917 - fixtures
    collapsing_int8: None,
    tiny_model: Path,
    validation_split: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    dest = tmp_path / "model"
    meta = _package_as_the_job_does(tiny_model, validation_split, dest, monkeypatch)
    out = capsys.readouterr().out
    assert "train.py: package: onnx-int8 refused: refusing to package onnx-int8: accuracy drops" in out
    assert f"train.py: serving archive in {dest}: runtime onnx-fp32" in out
    assert meta["runtime"] == "onnx-fp32"
    (refused,) = meta["packaging"]["runtimes_refused"]
    assert refused.startswith("onnx-int8: refusing to package onnx-int8: accuracy drops")
    assert meta["fidelity"]["passed"] is True
    # What ships is the fp32 graph (no int8 operators left over from the refused attempt), and it
    # answers as the trained model does.
    ops = _op_types(dest / "model.onnx")
    assert "MatMulInteger" not in ops and "DynamicQuantizeLinear" not in ops
    inference = load_inference_module()
    headlines = list(PROBE_HEADLINES.values())
    shipped = inference.predict_texts(load_model(dest), headlines)
    trained = inference.predict_texts(load_model(tiny_model, "torch"), headlines)
    assert [p["label"] for p in shipped] == [p["label"] for p in trained] == list(PROBE_HEADLINES)


def test_when_every_onnx_runtime_is_refused_the_job_ships_torch(
    corrupting_export: None,
    tiny_model: Path,
    validation_split: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dest = tmp_path / "model"
    meta = _package_as_the_job_does(tiny_model, validation_split, dest, monkeypatch)
    assert meta["runtime"] == "torch"
    assert [r.split(":")[0] for r in meta["packaging"]["runtimes_refused"]] == ["onnx-int8", "onnx-fp32"]
    assert meta["fidelity"] is None
    assert not (dest / "model.onnx").exists()
