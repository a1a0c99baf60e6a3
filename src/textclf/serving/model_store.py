"""Open a serving artefact the way a SageMaker inference container does.

``model.tar.gz`` is extracted once into a cache folder named after its SHA-256 (a re-packaged
archive gets a new folder; the same archive is reused across restarts), then
``code/inference.py`` is imported from that folder *by path* (``textclf.packaging.runtime``)
with ``code/`` first on ``sys.path`` (what the Hugging Face inference toolkit does with
``/opt/ml/model/code``), and the endpoint calls ``model_fn(model_dir)`` exactly once.

A plain model folder (``textclf train`` output, or an extracted archive) is accepted too; when it
has no ``code/inference.py`` the repository's ``model/inference.py`` serves it.
"""

from __future__ import annotations

import gzip
import logging
import os
import shutil
import sys
import tarfile
import tempfile
import zlib
from pathlib import Path
from types import ModuleType

from textclf import config
from textclf.errors import UserError
from textclf.hashing import recorded_checksum, sha256_file

log = logging.getLogger(__name__)

INFERENCE_MODULE = "inference.py"


def cache_dir() -> Path:
    """Where extracted archives live (``TEXTCLF_CACHE``, default: the user's cache folder)."""
    override = os.environ.get("TEXTCLF_CACHE")
    if override:
        return Path(override).resolve()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("textclf")) / "models"


def extract_archive(archive: Path, *, cache: Path | None = None, expected_sha256: str | None = None) -> Path:
    """Extract ``archive`` into ``<cache>/<sha256[:16]>`` (once) and return that folder.

    The archive is code (``code/inference.py`` runs here), so its bytes are checked first: against
    ``expected_sha256``, else against the digest ``textclf package`` recorded beside it
    (``model.tar.gz.sha256``), when there is one. A corrupt or truncated archive is refused with
    one line, never a traceback.
    """
    digest = sha256_file(archive)
    expected = (expected_sha256 or recorded_checksum(archive) or "").lower()
    if expected and digest != expected:
        raise UserError(
            f"{archive} does not match its recorded sha256 ({expected[:16]}..., the file is "
            f"{digest[:16]}...): it changed after it was packaged; not served"
        )
    root = cache or cache_dir()
    target = root / digest[:16]
    if (target / ".complete").exists():
        log.info("model archive %s already extracted in %s", archive, target)
        return target
    try:
        is_tar = tarfile.is_tarfile(archive)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise UserError(f"{archive} is corrupt or truncated ({exc}); package or download it again") from exc
    if not is_tar:
        raise UserError(f"{archive} is not a tar archive (expected model.tar.gz from `textclf package`)")
    root.mkdir(parents=True, exist_ok=True)
    # Extract beside the target and rename: a crash mid-way never leaves a half folder that
    # a later start would take for a complete one.
    staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=root))
    try:
        try:
            _extract(archive, staging)
        except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
            raise UserError(
                f"{archive} is corrupt or truncated ({exc}); package or download it again"
            ) from exc
        (staging / ".complete").write_text(str(archive.resolve()) + "\n", encoding="utf-8")
        try:
            staging.rename(target)
        except OSError:
            # Another process extracted the same archive meanwhile: use theirs.
            if not (target / ".complete").exists():
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    log.info("extracted %s into %s", archive, target)
    return target


def _extract(archive: Path, dest: Path) -> None:
    """Extract ``archive`` into ``dest`` in one pass. A gzip archive is then read on to its end:
    tar stops at its end-of-archive blocks and never reaches the gzip trailer, so an archive cut
    there would otherwise pass. The "data" filter refuses absolute paths, "..", devices and links
    out of the folder."""
    with archive.open("rb") as head:
        gzipped = head.read(2) == b"\x1f\x8b"
    if not gzipped:
        with tarfile.open(archive, "r:") as tar:
            tar.extractall(dest, filter="data")
        return
    with gzip.open(archive, "rb") as stream:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            tar.extractall(dest, filter="data")
        while stream.read(1 << 20):  # padding and the trailer: EOFError when it is missing
            pass


def require_model(model: Path) -> None:
    """Refuse a model path that does not exist, before anything is started for it."""
    if not model.exists():
        raise UserError(
            f"no model at {model}: run `textclf package` (or `make demo`) first, or pass --model "
            "<model.tar.gz or model folder>"
        )


def resolve_model_dir(model: Path, expected_sha256: str | None = None) -> Path:
    """A model folder ready to serve: ``model`` itself, or its extraction when it is an archive."""
    require_model(model)
    if model.is_dir():
        if not (model / "config.json").exists():
            raise UserError(f"{model} is not a model folder (no config.json)")
        return model.resolve()
    return extract_archive(model.resolve(), expected_sha256=expected_sha256)


def inference_script(model_dir: Path) -> Path:
    """``code/inference.py`` of the artefact, else the repository's ``model/inference.py``."""
    packaged = model_dir / "code" / INFERENCE_MODULE
    if packaged.exists():
        return packaged
    fallback = config.model_code_dir() / INFERENCE_MODULE
    if not fallback.exists():
        raise UserError(f"{model_dir} has no code/{INFERENCE_MODULE} and {fallback} does not exist")
    log.info("%s has no code/%s: serving it with %s", model_dir, INFERENCE_MODULE, fallback)
    return fallback


def import_inference(script: Path) -> ModuleType:
    """Import ``script`` by path with its folder first on sys.path, as the container does."""
    from textclf.packaging.runtime import load_inference_module

    code_dir = str(script.parent)
    if code_dir not in sys.path:
        # Helpers next to inference.py import as top-level modules, as in the container.
        sys.path.insert(0, code_dir)
    module = load_inference_module(script)
    for required in ("model_fn", "input_fn", "output_fn", "predict_texts"):
        if not callable(getattr(module, required, None)):
            raise UserError(f"{script} defines no {required}(); it does not follow docs/DESIGN.md")
    return module
