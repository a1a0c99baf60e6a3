"""``textclf package``: a trained model directory -> ``model.tar.gz`` for SageMaker (and the local endpoint).

Archive layout (docs/DESIGN.md "Serving artefact")::

    textclf_meta.json      runtime, max_length, labels, fidelity figures, packaging provenance
    config.json            id2label
    tokenizer files
    model.safetensors      torch runtime only
    model.onnx             ONNX runtimes only (fp32 export, or its int8 dynamic quantisation)
    metrics.json ...       the other top-level files of the model directory
    lexical_*              the lexical head (TF-IDF vocabulary and weights), when trained
    code/inference.py      model/inference.py
    code/lexical.py        model/lexical.py (inference.py imports it from its own folder)
    code/requirements.txt  empty for torch; onnxruntime for ONNX (vendored wheels in code/wheels)

Nothing is written unless every step succeeds: the archive is assembled in a temporary
directory, and written to a temporary name that replaces ``out`` only at the end.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from textclf import __version__
from textclf.bundle import SERVING_CODE
from textclf.errors import UserError
from textclf.hashing import sha256_file, write_checksum
from textclf.packaging import cascade as choose_cascade
from textclf.packaging import fidelity, wheels
from textclf.packaging.runtime import inference_script, load_model

log = logging.getLogger(__name__)

RUNTIMES = ("torch", "onnx-fp32", "onnx-int8")
DEFAULT_RUNTIME = "onnx-int8"
#: Tried in this order when the fastest runtime that passes the gate is wanted.
RUNTIMES_FASTEST_FIRST = ("onnx-int8", "onnx-fp32", "torch")
META_FILE = "textclf_meta.json"
ONNX_FILE = "model.onnx"
CODE_DIR = "code"
VENDOR_MODES = ("auto", "yes", "no")
#: Torch weight files: an ONNX archive serves model.onnx and would only carry them as dead weight.
_TORCH_WEIGHTS = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")
#: gzip level 6: weights barely compress, and level 9 costs several times the time for <1%.
_GZIP_LEVEL = 6


@dataclass
class PackageResult:
    """What ``build_package`` produced (or found up to date)."""

    out: Path
    runtime: str
    reused: bool
    size_bytes: int
    meta: dict[str, Any]
    fidelity: fidelity.FidelityReport | None = None
    timings_s: dict[str, float] = field(default_factory=dict)


def _top_level_files(directory: Path) -> list[Path]:
    # Top-level only: sub-directories of a training output are checkpoints and logs, not model.
    return sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith("."))


def check_model_dir(model_dir: Path) -> dict[str, Any]:
    """The model directory's ``textclf_meta.json``, after checking it is a trained model directory."""
    if not model_dir.is_dir():
        raise UserError(
            f"model directory {model_dir} does not exist: run `textclf train` first (or pass --model)"
        )
    for required in ("config.json", META_FILE):
        if not (model_dir / required).is_file():
            raise UserError(f"{model_dir} is not a textclf model directory: {required} is missing")
    meta = json.loads((model_dir / META_FILE).read_text(encoding="utf-8"))
    if not isinstance(meta, dict):
        raise UserError(f"{model_dir / META_FILE} is not a JSON object")
    return meta


def stage_runtime(model_dir: Path, runtime: str, dest: Path) -> Path:
    """Lay out ``model_dir`` for ``runtime`` in ``dest`` (no ``code/``); return ``dest``.

    The result loads with ``inference.model_fn(dest)``: :func:`textclf.packaging.load_model`.
    The benchmark uses this to get every runtime from one trained model.
    """
    from textclf.packaging.onnx_export import OPSET, export_onnx
    from textclf.packaging.optimise import fused_ops
    from textclf.packaging.quantize import PER_CHANNEL, QUANTIZED_OPS, quantize_int8

    if runtime not in RUNTIMES:
        raise UserError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
    meta = check_model_dir(model_dir)
    dest.mkdir(parents=True, exist_ok=True)
    for path in _top_level_files(model_dir):
        if path.name in (META_FILE, ONNX_FILE):
            continue
        if runtime != "torch" and path.name.endswith(_TORCH_WEIGHTS):
            continue
        shutil.copy2(path, dest / path.name)
    # A staged runtime is a new artefact: its gate figures and cascade are decided by assemble,
    # never inherited from the folder it was staged from (an extracted archive has both).
    meta = {k: v for k, v in meta.items() if k not in ("fidelity", "cascade")} | {"runtime": runtime}
    if runtime != "torch":
        with tempfile.TemporaryDirectory(prefix="textclf-export-") as tmp:
            fp32 = Path(tmp) / "model.fp32.onnx"
            inputs = export_onnx(model_dir, fp32, opset=OPSET)
            fused = fused_ops(fp32)
            if runtime == "onnx-int8":
                quantize_int8(fp32, dest / ONNX_FILE)
            else:
                shutil.move(fp32, dest / ONNX_FILE)
        meta["onnx"] = {
            "file": ONNX_FILE,
            "opset": OPSET,
            "inputs": inputs,
            "fused_ops": fused,
            "quantization": (
                {
                    "method": "dynamic",
                    "weight_type": "int8",
                    "per_channel": PER_CHANNEL,
                    "op_types": list(QUANTIZED_OPS),
                }
                if runtime == "onnx-int8"
                else None
            ),
        }
    (dest / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return dest


def add_code(
    dest: Path, runtime: str, vendor: str = "auto", wheel_dir: Path | None = None
) -> wheels.Requirements:
    """Write ``code/inference.py`` and ``code/requirements.txt`` (+ ``code/wheels``) into ``dest``."""
    code = dest / CODE_DIR
    code.mkdir(parents=True, exist_ok=True)
    script = inference_script()
    if not script.is_file():
        raise UserError(f"{script} does not exist (TEXTCLF_MODEL_CODE points elsewhere?)")
    for name in SERVING_CODE:
        shutil.copy2(script.with_name(name), code / name)
    if runtime == "torch":
        requirements = wheels.Requirements(wheels.TORCH_REQUIREMENTS, ())
    else:
        requirements = wheels.onnx_requirements(vendor, wheel_dir)
    (code / "requirements.txt").write_text(requirements.text, encoding="utf-8")
    if requirements.wheels:
        (code / wheels.WHEELS_DIR).mkdir(exist_ok=True)
        for wheel in requirements.wheels:
            shutil.copy2(wheel, code / wheels.WHEELS_DIR / wheel.name)
    return requirements


def _data_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file())
    return [path]


def fingerprint(model_dir: Path, settings: dict[str, Any], validation: Path | None) -> str:
    """Hash of everything the archive depends on: model files, code, data, settings, versions."""
    import importlib.metadata

    parts: dict[str, Any] = {
        "settings": settings,
        "model": {p.name: sha256_file(p) for p in _top_level_files(model_dir)},
        **{name: sha256_file(inference_script().with_name(name)) for name in SERVING_CODE},
        # The export/fusion/quantisation code shapes the graph: a change there rebuilds archives.
        "packaging_code": {p.name: sha256_file(p) for p in sorted(Path(__file__).parent.glob("*.py"))},
        "textclf": __version__,
        "versions": {
            name: importlib.metadata.version(name)
            for name in ("torch", "transformers", "onnx", "onnxruntime")
        },
    }
    if validation is not None:
        parts["validation"] = {
            str(p.relative_to(validation) if p != validation else p.name): sha256_file(p)
            for p in _data_files(validation)
        }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def read_archive_meta(archive: Path) -> dict[str, Any] | None:
    """``textclf_meta.json`` of an existing archive, or None if it is missing or unreadable."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            member = tar.extractfile(META_FILE)
            if member is None:
                return None
            data = json.loads(member.read().decode("utf-8"))
    except (OSError, KeyError, tarfile.TarError, ValueError):
        return None
    return data if isinstance(data, dict) else None


#: Tokenizer files of which an archive needs at least one.
_TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json")


def check_archive(archive: Path) -> dict[str, Any]:
    """The ``textclf_meta.json`` of ``archive`` after checking it can serve; UserError naming every
    missing piece otherwise. What ``textclf deploy`` runs before any SageMaker call: an archive
    without ``code/inference.py`` would load with the DLC's default handler and fail every request."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            names = {m.name.removeprefix("./") for m in tar.getmembers() if m.isfile()}
            member = tar.extractfile(META_FILE) if META_FILE in names else None
            meta = json.loads(member.read().decode("utf-8")) if member is not None else None
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise UserError(f"{archive} is not a readable model.tar.gz: {exc}") from exc
    except ValueError as exc:
        raise UserError(f"{archive}: {META_FILE} is not JSON ({exc})") from exc
    problems: list[str] = []
    if not isinstance(meta, dict):
        problems.append(f"no {META_FILE} (not a textclf archive)")
        meta = {}
    runtime = meta.get("runtime")
    if meta and runtime not in RUNTIMES:
        problems.append(f"runtime {runtime!r} is not one of {', '.join(RUNTIMES)}")
    wanted = ["config.json", *(f"{CODE_DIR}/{name}" for name in (*SERVING_CODE, "requirements.txt"))]
    wanted.append(ONNX_FILE if str(runtime).startswith("onnx") else "model.safetensors")
    problems += [f"{name} is missing" for name in wanted if name not in names]
    if not names & set(_TOKENIZER_FILES):
        problems.append(f"no tokenizer ({' or '.join(_TOKENIZER_FILES)})")
    if len(names & {"lexical_vocab.txt", "lexical_head.npz"}) == 1:
        problems.append("only one of lexical_vocab.txt and lexical_head.npz")
    if problems:
        raise UserError(f"{archive} cannot serve: " + "; ".join(problems))
    return meta


def _normalised(info: tarfile.TarInfo) -> tarfile.TarInfo:
    # Owner names of the packaging machine mean nothing in the container; keep the archive neutral.
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def write_archive(staging: Path, out: Path) -> None:
    """Tar+gzip ``staging`` into ``out`` atomically; ``textclf_meta.json`` first for quick reads."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    files = sorted(p for p in staging.rglob("*") if p.is_file())
    files.sort(key=lambda p: p.relative_to(staging).as_posix() != META_FILE)
    try:
        with tarfile.open(tmp, "w:gz", compresslevel=_GZIP_LEVEL) as tar:
            for path in files:
                tar.add(path, arcname=path.relative_to(staging).as_posix(), filter=_normalised)
        digest = sha256_file(tmp)
        os.replace(tmp, out)
        # The archive is code the endpoint runs: whoever serves it checks these bytes (model_store).
        write_checksum(out, digest)
    finally:
        tmp.unlink(missing_ok=True)


@dataclass(frozen=True)
class ValidationSample:
    """Labelled validation headlines the fidelity gate compares runtimes on."""

    texts: list[str]
    labels: list[str]
    rows_available: int
    source: str
    seed: int = fidelity.SAMPLE_SEED


def assemble(
    model_dir: Path,
    dest: Path,
    *,
    runtime: str,
    sample: ValidationSample | None,
    thresholds: fidelity.Thresholds | None = None,
    cascade: bool = True,
    vendor: str = "auto",
    wheel_dir: Path | None = None,
    packaging: dict[str, Any] | None = None,
    echo: Callable[[str], None] = print,
    timings: dict[str, float] | None = None,
) -> tuple[dict[str, Any], fidelity.FidelityReport | None]:
    """Lay out the serving archive's contents for ``runtime`` in ``dest``: model files, ``code/``
    and ``textclf_meta.json`` with the fidelity figures and provenance.

    ONNX runtimes must pass the fidelity gate on ``sample`` (FidelityError otherwise; ``dest`` is
    then incomplete and the caller discards it). ``textclf package`` tars ``dest``; the training
    job assembles straight into ``SM_MODEL_DIR``, which SageMaker tars.
    """
    timings = {} if timings is None else timings
    started = time.perf_counter()
    steps = {"torch": "copy", "onnx-fp32": "ONNX export", "onnx-int8": "ONNX export + int8 quantisation"}
    echo(f"staging {runtime} from {model_dir} ({steps[runtime]})")
    stage_runtime(model_dir, runtime, dest)
    timings["stage_s"] = time.perf_counter() - started
    log.info("staged in %.1f s", timings["stage_s"])

    report: fidelity.FidelityReport | None = None
    cascade_record: dict[str, Any] | None = None
    if runtime != "torch":
        if sample is None:
            raise UserError(f"--runtime {runtime} needs validation data for its fidelity check")
        started = time.perf_counter()
        echo(
            f"fidelity check: {runtime} vs torch on {len(sample.texts)} of {sample.rows_available} "
            f"rows of {sample.source}"
        )
        candidate = load_model(dest)
        comparison = fidelity.compare(
            load_model(model_dir, "torch"),
            candidate,
            sample.texts,
            sample.labels,
            data=sample.source,
            rows_available=sample.rows_available,
            sample_seed=sample.seed,
            thresholds=thresholds,
        )
        report = comparison.report
        timings["fidelity_s"] = time.perf_counter() - started
        echo(report.summary())
        fidelity.check(report)
        if cascade and candidate.lexical_head is not None:
            cascade_record = choose_cascade.choose(
                comparison.candidate_probabilities,
                candidate.lexical_head.probabilities(sample.texts),
                comparison.gold,
                candidate.labels,
            )
            echo(choose_cascade.summary(cascade_record))

    requirements = add_code(dest, runtime, vendor, wheel_dir)
    if runtime != "torch" and not requirements.vendored:
        echo(
            "warning: onnxruntime wheels not vendored; the container will pip-install onnxruntime "
            "from PyPI at start (needs outbound network)"
        )
    meta = json.loads((dest / META_FILE).read_text(encoding="utf-8"))
    meta["fidelity"] = report.to_dict() if report else None
    meta["cascade"] = cascade_record
    meta["packaging"] = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "textclf": __version__,
        "source_model": str(model_dir),
        "vendored_wheels": sorted(p.name for p in requirements.wheels),
        **(packaging or {}),
    }
    (dest / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return meta, report


def assemble_fastest(
    model_dir: Path,
    dest: Path,
    *,
    runtimes: tuple[str, ...] = RUNTIMES_FASTEST_FIRST,
    sample: ValidationSample | None,
    echo: Callable[[str], None] = print,
    **options: Any,
) -> tuple[dict[str, Any], fidelity.FidelityReport | None]:
    """:func:`assemble` the first of ``runtimes`` that passes its gate (and whose tools are installed).

    What the training job uses: int8 when it is as good as torch, else fp32, else torch.
    """
    failures: list[str] = []
    for runtime in runtimes:
        if runtime != "torch" and (sample is None or not onnx_tools_available()):
            why = "no validation sample" if sample is None else "onnx/onnxruntime not installed"
            failures.append(f"{runtime}: {why}")
            continue
        if dest.exists():
            shutil.rmtree(dest)
        try:
            meta, report = assemble(model_dir, dest, runtime=runtime, sample=sample, echo=echo, **options)
        except fidelity.FidelityError as exc:
            echo(f"{runtime} refused: {exc}")
            failures.append(f"{runtime}: {exc}")
            continue
        meta["packaging"]["runtimes_refused"] = failures
        (dest / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        return meta, report
    raise UserError("no runtime could be packaged: " + "; ".join(failures))


def onnx_tools_available() -> bool:
    """onnx and onnxruntime are importable (the training image gets them from requirements.txt)."""
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxruntime"))


def build_package(
    model_dir: Path,
    out: Path,
    *,
    runtime: str = DEFAULT_RUNTIME,
    validation_data: Path | None = None,
    thresholds: fidelity.Thresholds | None = None,
    cascade: bool = True,
    sample_size: int = fidelity.SAMPLE_SIZE,
    seed: int = fidelity.SAMPLE_SEED,
    vendor: str = "auto",
    wheel_dir: Path | None = None,
    force: bool = False,
    echo: Callable[[str], None] = print,
) -> PackageResult:
    """Build (or reuse) ``out`` for ``runtime``; ONNX runtimes must pass the fidelity gate."""
    if runtime not in RUNTIMES:
        raise UserError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
    if vendor not in VENDOR_MODES:
        raise UserError(f"--vendor-wheels must be one of {', '.join(VENDOR_MODES)}")
    thresholds = thresholds or fidelity.Thresholds()
    thresholds.check()
    if sample_size < 1:
        raise UserError(f"--fidelity-rows must be >= 1, got {sample_size}")
    check_model_dir(model_dir)
    # The per-file "Loading weights" bars of transformers only clutter this command's output.
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    needs_data = runtime != "torch"
    if needs_data:
        if validation_data is None:
            raise UserError(f"--runtime {runtime} needs --validation-data for its fidelity check")
        if not validation_data.exists():
            raise UserError(
                f"validation data {validation_data} does not exist: run textclf data, or pass "
                f"--validation-data (the {runtime} fidelity check needs it)"
            )
    settings = {
        "runtime": runtime,
        **asdict(thresholds),
        "cascade": cascade,
        "sample_size": sample_size,
        "seed": seed,
        "vendor": vendor,
    }
    print_fp = fingerprint(model_dir, settings, validation_data if needs_data else None)
    if out.exists() and not force:
        existing = read_archive_meta(out)
        if existing and existing.get("packaging", {}).get("fingerprint") == print_fp:
            echo(f"{out} is up to date (same model, code, data and settings); --force rebuilds it")
            recorded = existing.get("fidelity")
            if recorded:
                echo(
                    f"fidelity (recorded): accuracy {recorded['accuracy_reference']:.2%} -> "
                    f"{recorded['accuracy_candidate']:.2%}, agreement {recorded['agreement']:.2%}"
                )
            return PackageResult(out, runtime, True, out.stat().st_size, existing)

    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="textclf-package-") as tmp:
        staging = Path(tmp) / "model"
        sample: ValidationSample | None = None
        if needs_data:
            assert validation_data is not None  # checked above
            texts, labels, total = fidelity.sample_validation(validation_data, sample_size, seed)
            sample = ValidationSample(texts, labels, total, str(validation_data), seed)
        meta, report = assemble(
            model_dir,
            staging,
            runtime=runtime,
            sample=sample,
            thresholds=thresholds,
            cascade=cascade,
            vendor=vendor,
            wheel_dir=wheel_dir,
            packaging={"fingerprint": print_fp, "settings": settings},
            echo=echo,
            timings=timings,
        )
        started = time.perf_counter()
        write_archive(staging, out)
        timings["archive_s"] = time.perf_counter() - started
    size = out.stat().st_size
    echo(f"wrote {out} ({size / 1e6:.1f} MB, runtime {runtime})")
    return PackageResult(out, runtime, False, size, meta, report, timings)
