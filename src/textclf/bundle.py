"""What ships to SageMaker: the one list of files in ``model.tar.gz``'s ``code/`` and in the
training source bundle (``sourcedir.tar.gz``).

Serving (``code/`` of every archive, whether ``textclf package`` or the training job builds it):
``inference.py`` and the helpers it imports from its own folder.

Training (``sourcedir.tar.gz``, what ``textclf upload-source`` uploads and the local control plane
seeds): ``train.py`` and its helpers from ``model/``, plus the part of this package that packages
and evaluates a model (ONNX export, fusion, int8 quantisation, fidelity gate, metrics), so the job
builds the same archive ``textclf package`` builds. Those modules import only the standard
library, numpy, torch, transformers, onnx and onnxruntime (``requirements.txt`` asks the training
container for the last two), so the bundle is self-contained.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path
from typing import Final

from textclf import config
from textclf.errors import UserError

#: ``model/`` files copied into ``code/`` of every serving archive.
SERVING_CODE: Final[tuple[str, ...]] = ("inference.py", "lexical.py")
#: ``model/`` files at the root of the training source bundle (train.py packages with inference.py).
TRAINING_CODE: Final[tuple[str, ...]] = ("train.py", "lexical.py", "inference.py", "requirements.txt")
#: Modules of this package shipped in the source bundle, relative to ``src/``.
PACKAGE_MODULES: Final[tuple[str, ...]] = (
    "textclf/__init__.py",
    "textclf/bundle.py",
    "textclf/config.py",
    "textclf/errors.py",
    "textclf/hashing.py",
    "textclf/evaluation/__init__.py",
    "textclf/evaluation/metrics.py",
    "textclf/packaging/__init__.py",
    "textclf/packaging/build.py",
    "textclf/packaging/cascade.py",
    "textclf/packaging/fidelity.py",
    "textclf/packaging/onnx_export.py",
    "textclf/packaging/optimise.py",
    "textclf/packaging/quantize.py",
    "textclf/packaging/quiet.py",
    "textclf/packaging/runtime.py",
    "textclf/packaging/wheels.py",
)


def package_root() -> Path:
    """``src/`` of a checkout, or the bundle root inside a training job (both hold ``textclf/``)."""
    return Path(__file__).resolve().parents[1]


def source_bundle_files() -> list[tuple[str, Path]]:
    """``(name in the archive, file here)`` for every file of the training source bundle."""
    code = config.model_code_dir()
    root = package_root()
    files = [(name, code / name) for name in TRAINING_CODE]
    files += [(name, root / name) for name in PACKAGE_MODULES]
    missing = [str(path) for _, path in files if not path.is_file()]
    if missing:
        raise UserError(f"the training source bundle lacks {', '.join(missing)}")
    return files


def source_bundle_bytes() -> bytes:
    """``sourcedir.tar.gz``: fixed metadata (mtime 0, root owner, mode 644), so an unchanged tree
    gives byte-identical bytes and a re-upload is visibly a no-op."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, path in source_bundle_files():
            data = path.read_bytes()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


def build_source_bundle(dest: Path) -> Path:
    """Write :func:`source_bundle_bytes` to ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(source_bundle_bytes())
    return dest
