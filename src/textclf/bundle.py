"""What ships to SageMaker: ``model.tar.gz``'s ``code/`` and the training source bundle
(``sourcedir.tar.gz``).

Serving (``code/`` of every archive, whether ``textclf package`` or the training job builds it):
``inference.py`` and the helpers it imports from its own folder.

Training (``sourcedir.tar.gz``, what ``textclf upload-source`` uploads and the local control plane
seeds): every file of ``model/`` -- the folder is the list -- plus the modules of this package that
the shipped code imports, found by following its imports (the job builds the same serving archive
``textclf package`` builds: ONNX export, fusion, int8 quantisation, fidelity gate, metrics). Those
modules import only the standard library, numpy, torch, transformers, onnx and onnxruntime
(``requirements.txt`` asks the training container for the last two), so the bundle is self-contained.
"""

from __future__ import annotations

import ast
import gzip
import io
import tarfile
from pathlib import Path
from typing import Final

from textclf import config
from textclf.errors import UserError

#: ``model/`` files copied into ``code/`` of every serving archive.
SERVING_CODE: Final[tuple[str, ...]] = ("inference.py", "lexical.py", "truncation.py")


def package_root() -> Path:
    """``src/`` of a checkout, or the bundle root inside a training job (both hold ``textclf/``)."""
    return Path(__file__).resolve().parents[1]


def shipped_model_files() -> list[str]:
    """Every file of ``model/`` (caches and hidden files aside): the bundle's root."""
    code = config.model_code_dir()
    return sorted(
        p.name for p in code.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix != ".pyc"
    )


def _textclf_imports(path: Path) -> set[str]:
    """Modules of this package ``path`` imports, at any depth (a lazy import runs in the job too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "textclf"}
        elif (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and (node.module or "").split(".")[0] == "textclf"
        ):
            # ``from textclf.packaging import build`` names a module or a name: both are tried.
            found |= {str(node.module)} | {f"{node.module}.{a.name}" for a in node.names}
    return found


def shipped_package_modules() -> list[str]:
    """The modules of this package the shipped ``model/`` code needs, relative to ``src/``:
    what it imports, with their packages' ``__init__.py`` and their own imports, transitively."""
    root = package_root()
    todo = [
        name
        for f in shipped_model_files()
        if f.endswith(".py")
        for name in _textclf_imports(config.model_code_dir() / f)
    ]
    files: set[Path] = set()
    while todo:
        parts = todo.pop().split(".")
        for depth in range(1, len(parts) + 1):
            base = root.joinpath(*parts[:depth])
            for candidate in (base.with_suffix(".py"), base / "__init__.py"):
                if candidate.is_file() and candidate not in files:
                    files.add(candidate)
                    todo += _textclf_imports(candidate)
    return sorted(str(f.relative_to(root)) for f in files)


def source_bundle_files() -> list[tuple[str, Path]]:
    """``(name in the archive, file here)`` for every file of the training source bundle."""
    code = config.model_code_dir()
    root = package_root()
    files = [(name, code / name) for name in shipped_model_files()]
    files += [(name, root / name) for name in shipped_package_modules()]
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
