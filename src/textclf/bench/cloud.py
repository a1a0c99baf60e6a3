"""The bench's cloud level: the packaged archive served the way the deployed endpoint serves it.

Real-time endpoints run textclf's inference image by default (template ``InferenceServer``):
:func:`textclf_image_server` runs its entrypoint (``textclf.serving.container``) as the container
does. The Hugging Face inference DLC serves serverless endpoints, ``InferenceServer=dlc`` and
rollouts while the stack's image repository is empty: multi-model-server's Java front end hands
each request to the toolkit's handler in a Python worker, which calls the archive's
``code/inference.py``. ``make dlc-venv`` installs that stack from PyPI into ``.venv-dlc``;
:func:`dlc_server` starts it as the container's entrypoint does (``dlc_serve.py``), with the
container environment the deploy function gives every model (``deployment.BASE_ENVIRONMENT``,
read from there) and the archive unpacked where ``SAGEMAKER_BASE_DIR`` says ``/opt/ml`` is.
The level runs it beside the local endpoint (``textclf serve-endpoint``), same run, same
headlines, concurrency levels interleaved.

Two limits of multi-model-server shape this: the toolkit refuses to start when another MMS runs
on the machine (it finds its server by scanning every process), and MMS keeps its worker sockets
in ``/tmp``. So one DLC server per run; other DLC settings (``--dlc-env``) are other runs.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import socket
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textclf.bench.servers import ServerProcess
from textclf.errors import UserError

if TYPE_CHECKING:
    from textclf.bench.runner import BenchConfig

log = logging.getLogger(__name__)

#: The cloud level's names of the two servers the template can deploy (``InferenceServer``):
#: the DLC's (MMS + the HF toolkit's handler) and textclf's image (docker/Dockerfile, whose
#: ``serve`` is ``textclf.serving.container``: the local endpoint's server).
DLC_SERVER = "cloud-dlc"
TEXTCLF_SERVER = "cloud-textclf"
CLOUD_SERVERS = {"dlc": DLC_SERVER, "textclf": TEXTCLF_SERVER}
#: The local endpoint's name in the cloud level's table: it is not what the cloud runs.
LOCAL_SERVER = "local-endpoint"
DEFAULT_DLC_VENV = Path(".venv-dlc")
#: MMS loads the model in its worker after the front end answers; a cold start on a loaded
#: 2-core machine (JVM, pip check of code/requirements.txt, torch import) takes tens of seconds.
DLC_STARTUP_S = 240.0
LAUNCHER = Path(__file__).with_name("dlc_serve.py")


def dlc_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def skip_reason(venv: Path) -> str | None:
    """Why the cloud level cannot run here (one line), or None."""
    if not dlc_python(venv).is_file():
        return f"no DLC virtualenv at {venv} (make dlc-venv)"
    if shutil.which("java") is None:
        return "no Java runtime on PATH (multi-model-server is Java: apt-get install default-jre-headless)"
    return None


def deploy_environment() -> dict[str, str]:
    """The container variables the deploy function gives every model of an instance endpoint
    (its one owner)."""
    from textclf_api.logic.deployment import container_environment

    return container_environment("RealTime")


def parse_env_overrides(pairs: list[str]) -> dict[str, str]:
    """``KEY=VALUE`` strings (``--dlc-env``) as a dict; a malformed one is a one-line error."""
    env: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip() or any(c.isspace() for c in key.strip()):
            raise UserError(f"--dlc-env takes KEY=VALUE, not {pair!r}")
        env[key.strip()] = value
    return env


def unpack_archive(package: Path, base_dir: Path) -> Path:
    """``package`` (model.tar.gz or a model folder) as ``<base_dir>/model``, as SageMaker unpacks
    ModelDataUrl into ``/opt/ml/model``; a fresh copy each run (the container starts clean)."""
    model_dir = base_dir / "model"
    if model_dir.exists():
        shutil.rmtree(model_dir)
    if package.is_dir():
        shutil.copytree(package, model_dir)
    else:
        model_dir.mkdir(parents=True)
        with tarfile.open(package, "r:gz") as tar:
            tar.extractall(model_dir, filter="data")
    if not (model_dir / "code" / "inference.py").is_file():
        raise UserError(f"{package}: no code/inference.py, so the DLC would serve its default pipeline")
    return model_dir


def dlc_environment(
    venv: Path, base_dir: Path, port: int, overrides: Mapping[str, str], host: str
) -> dict[str, str]:
    """The DLC process's environment: the deploy function's variables, then ``overrides``, and
    what moves the container's fixed places here (``/opt/ml``, port 8080, ``/tmp``)."""
    bind = f"http://{host}:{port}"
    tmp = base_dir / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        # The image has its interpreter's bin first on PATH: the toolkit runs `multi-model-server`.
        "PATH": f"{venv.resolve() / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        **deploy_environment(),
        **overrides,
        "SAGEMAKER_BASE_DIR": str(base_dir),
        "SAGEMAKER_BIND_TO_PORT": str(port),
        # MMS_* override its config (enable_envvars_config=true): loopback, not 0.0.0.0.
        "MMS_INFERENCE_ADDRESS": bind,
        "MMS_MANAGEMENT_ADDRESS": bind,
        "TMPDIR": str(tmp),
        # MMS's log4j2 writes relative to its working directory unless told where.
        "LOG_LOCATION": str(base_dir.parent / "mms-logs"),
        "METRICS_LOCATION": str(base_dir.parent / "mms-logs"),
        "PYTHONPATH": "",
    }


def dlc_server(cfg: BenchConfig, host: str) -> ServerProcess:
    """The DLC's model server serving ``cfg.package`` (not started)."""
    base_dir = (cfg.out / "cloud" / "ml").resolve()
    argv = [str(dlc_python(cfg.dlc_venv)), str(LAUNCHER), str(base_dir.parent / "mms.properties")]

    def environment(port: int) -> dict[str, str]:
        return dlc_environment(cfg.dlc_venv, base_dir, port, cfg.dlc_env, host)

    return _container_server(cfg, DLC_SERVER, argv, base_dir, host=host, environment=environment)


def _container_server(
    cfg: BenchConfig,
    name: str,
    argv: list[str],
    base_dir: Path,
    *,
    host: str,
    environment: Callable[[int], Mapping[str, str]],
) -> ServerProcess:
    """A server run as its container would run it: the archive unpacked as ``<base_dir>/model``
    (``/opt/ml/model``), on a port it binds itself, with ``environment(port)``."""
    unpack_archive(cfg.package, base_dir)
    port = free_port_below_32768(host)
    return ServerProcess(
        name,
        argv,
        host,
        port,
        ready_path="/ping",
        log_path=cfg.out / "logs" / f"{name}.log",
        env=environment(port),
        startup_timeout_s=DLC_STARTUP_S,
    )


def free_port_below_32768(host: str) -> int:
    """A free port MMS accepts: it binds the port itself (found free here, handed over by
    number), and MMS 1.1.11 refuses ports above 32767 ("Invalid port number"), where the
    kernel's ephemeral range lies."""
    rng = random.Random()
    for _ in range(100):
        candidate = rng.randint(20000, 32767)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((host, candidate))
            except OSError:
                continue
        return candidate
    raise UserError(f"no free port on {host} between 20000 and 32767 for the DLC's model server")


def textclf_image_server(cfg: BenchConfig, host: str) -> ServerProcess:
    """textclf's inference image's ``serve`` serving ``cfg.package``, run as its container runs
    it (the archive unpacked as /opt/ml/model, the deploy function's variables), on loopback."""
    from textclf.bench.servers import python_module_argv
    from textclf.serving.container import HOST_ENV

    base_dir = (cfg.out / "cloud-textclf" / "ml").resolve()

    def environment(port: int) -> dict[str, str]:
        return {
            **os.environ,
            **deploy_environment(),
            "SAGEMAKER_BASE_DIR": str(base_dir),
            "SAGEMAKER_BIND_TO_PORT": str(port),
            HOST_ENV: host,
        }

    argv = python_module_argv("textclf.serving.container", "serve")
    return _container_server(cfg, TEXTCLF_SERVER, argv, base_dir, host=host, environment=environment)


def wait_answers(server: ServerProcess, body: bytes, timeout_s: float = DLC_STARTUP_S) -> None:
    """Until ``POST /invocations`` answers 200: MMS answers /ping before its worker has loaded
    the model, and the first requests would otherwise count as errors."""
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        request = urllib.request.Request(
            server.base_url + "/invocations",
            data=body,
            headers={"content-type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:
                json.loads(reply.read())
            if workers_ready(server):
                return
            last = "a worker is still loading the model"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}: {exc.read()[:200]!r}"
        except (OSError, ValueError) as exc:
            last = str(exc)
        time.sleep(1.0)
    raise UserError(f"{server.name} did not answer POST /invocations within {timeout_s:.0f} s: {last}")


def workers_ready(server: ServerProcess) -> bool:
    """Every MMS worker of the model READY (its management API, on the same port here): with
    several workers, the first answers while the others still load the model."""
    try:
        with urllib.request.urlopen(server.base_url + "/models/model", timeout=10) as reply:
            described = json.loads(reply.read())
    except (OSError, ValueError):
        return True  # no management API to ask: the answered invocation is all there is
    models = described if isinstance(described, list) else [described]
    workers = [w for m in models if isinstance(m, dict) for w in m.get("workers") or []]
    return all(isinstance(w, dict) and w.get("status") == "READY" for w in workers)


def settings_line(cfg: BenchConfig, names: list[str]) -> dict[str, Any]:
    """What the cloud servers ran with, for bench.json and the table's caption."""
    return {"names": names, "deploy_environment": deploy_environment(), "overrides": dict(cfg.dlc_env)}
