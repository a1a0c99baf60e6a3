"""ONNX Runtime wheels for the SageMaker Hugging Face inference DLC, vendored into ``code/wheels``.

The DLC has no onnxruntime, and it pip-installs ``code/requirements.txt`` at every container
start (aws/sagemaker-inference-toolkit ``model_server._install_requirements``:
``python -m pip install -r /opt/ml/model/code/requirements.txt``; a failure stops the container).
From an index that needs outbound network, which endpoints with network isolation or in a VPC
without NAT do not have, and it slows every cold start. So the wheels travel in the archive and
the requirements file says::

    --no-index
    --find-links wheels
    onnxruntime==X.Y.Z

pip resolves a relative ``--find-links`` inside a requirements file against the file's own
directory when that path exists (``pip/_internal/req/req_file.py``), so this works whatever the
container's working directory is. numpy and packaging (onnxruntime's other dependencies) are
already in the DLC (torch and transformers need them); flatbuffers and protobuf are vendored.
"""

from __future__ import annotations

import importlib.metadata
import logging
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from textclf.errors import UserError

log = logging.getLogger(__name__)

#: The inference DLC this targets: huggingface-pytorch-inference:2.6.0-transformers5.5.3-*-py312
#: (Ubuntu 22.04, glibc 2.35, x86_64).
DLC_PYTHON = "3.12"
DLC_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
#: Vendored distributions: onnxruntime and the dependencies the DLC may lack.
VENDORED = ("onnxruntime", "flatbuffers", "protobuf")
WHEELS_DIR = "wheels"


@dataclass(frozen=True)
class Requirements:
    """``code/requirements.txt`` text and the wheel files that go beside it."""

    text: str
    wheels: tuple[Path, ...]

    @property
    def vendored(self) -> bool:
        return bool(self.wheels)


def pinned() -> dict[str, str]:
    """``{distribution: version}`` as installed here: the archive serves what packaging tested."""
    return {name: importlib.metadata.version(name) for name in VENDORED}


def default_cache_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("textclf")) / "wheels" / f"cp{DLC_PYTHON.replace('.', '')}-x86_64"


def _normalise(name: str) -> str:
    return name.lower().replace("-", "_")


def find_wheels(directory: Path, versions: dict[str, str]) -> list[Path] | None:
    """The wheel of every pinned distribution in ``directory``, or None if any is missing."""
    found: list[Path] = []
    for name, version in versions.items():
        prefix = f"{_normalise(name)}-{version}-"
        matches = sorted(p for p in directory.glob("*.whl") if p.name.lower().startswith(prefix))
        if not matches:
            return None
        found.append(matches[0])
    return found


def download_wheels(directory: Path, versions: dict[str, str]) -> list[Path]:
    """``pip download`` the pinned wheels for the DLC's Python and platform into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
    cmd += ["--implementation", "cp", "--python-version", DLC_PYTHON]
    for platform in DLC_PLATFORMS:
        cmd += ["--platform", platform]
    cmd += ["--dest", str(directory)]
    cmd += [f"{name}=={version}" for name, version in versions.items()]
    log.info("downloading wheels for the inference container: %s", " ".join(cmd))
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise UserError(f"could not download the onnxruntime wheels for Python {DLC_PYTHON}: {tail[0]}")
    wheels = find_wheels(directory, versions)
    if wheels is None:
        raise UserError(f"pip download finished but the wheels for {versions} are not in {directory}")
    return wheels


def onnx_requirements(mode: str, wheel_dir: Path | None = None) -> Requirements:
    """Requirements for an ONNX runtime archive.

    ``mode``: ``yes`` vendors the wheels (from ``wheel_dir``, else the cache, downloading what
    is missing) or fails; ``no`` lists ``onnxruntime==X`` for the container to install from
    PyPI at start (needs outbound network); ``auto`` vendors when it can and otherwise falls back
    to ``no`` with a warning.
    """
    versions = pinned()
    index_text = (
        "# onnxruntime from PyPI at container start: needs outbound network (no network\n"
        "# isolation, NAT in a VPC). Package with --vendor-wheels yes to ship the wheels instead.\n"
        f"onnxruntime=={versions['onnxruntime']}\n"
    )
    if mode == "no":
        return Requirements(index_text, ())
    directory = wheel_dir or default_cache_dir()
    wheels = find_wheels(directory, versions) if directory.is_dir() else None
    if wheels is None:
        if wheel_dir is not None and mode == "yes":
            raise UserError(f"{wheel_dir} lacks the wheels for {versions} (Python {DLC_PYTHON}, x86_64)")
        try:
            wheels = download_wheels(directory, versions)
        except UserError as exc:
            if mode == "yes":
                raise
            log.warning("%s; the archive will install onnxruntime from PyPI at container start", exc)
            return Requirements(index_text, ())
    text = (
        "# onnxruntime for textclf's inference.py, installed from the wheels vendored beside this\n"
        "# file: no network needed at container start. pip resolves the relative --find-links\n"
        "# against this file's directory.\n"
        "--no-index\n"
        f"--find-links {WHEELS_DIR}\n"
        f"onnxruntime=={versions['onnxruntime']}\n"
    )
    return Requirements(text, tuple(wheels))


TORCH_REQUIREMENTS = (
    "# Nothing to install: the Hugging Face inference DLC has torch, transformers and numpy,\n"
    "# all that inference.py needs for the torch runtime.\n"
)
