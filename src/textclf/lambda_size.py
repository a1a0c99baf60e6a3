"""What each Lambda function ships and how long its handler takes to import (``textclf lambda-size``).

Read from a ``sam build`` output directory, so the figures are those of what ``sam deploy`` would
upload:

- size: the function's build directory plus the layers it names, unpacked (the sum of the files'
  sizes: what counts against Lambda's 250 MB unzipped limit). Deterministic for given pins.
- cold import: ``import <handler module>`` in a fresh python3.12, median of ``runs``, with only what
  the deployed function would have on ``sys.path`` -- the build directory, each layer's ``python/``
  and the runtime's boto3 -- plus the stdlib, nothing from any virtualenv (``-S -E``). ``-B`` keeps
  the interpreter from writing bytecode, as Lambda's read-only file system does, so every run pays
  what a cold start pays. The environment is the one Lambda sets (``LAMBDA_TASK_ROOT``, region,
  function name, X-Ray's variables of active tracing) merged with the function's variables from
  the template: powertools takes its Lambda paths. The figure is the handler module's import
  whole: powertools, pydantic (the schemas' models), boto3 and botocore (``textclf_api.aws``,
  whose clients are made on first use, not at import).

The runtime's boto3 is stood in for by the dev environment's own boto3, botocore and their
dependencies, copied once into ``<build dir>/../runtime-boto3-<version>`` and compiled for the
target interpreter (the runtime ships its bytecode too).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from textclf.errors import UserError
from textclf.local.template import LocalResources, function_environment, functions, load_template

#: What the Lambda python3.12 runtime provides besides the stdlib: boto3 and its dependencies.
RUNTIME_PACKAGES: Final[tuple[str, ...]] = (
    "boto3",
    "botocore",
    "s3transfer",
    "jmespath",
    "dateutil",
    "six",
    "urllib3",
)
MB: Final = 1_000_000
REGION: Final = "us-east-1"

# Runs in the measured interpreter: argv = [module, *sys.path entries]; prints wall and CPU ms.
_IMPORT_SNIPPET: Final = """
import importlib, sys, time
sys.path[0:0] = sys.argv[2:]
wall, cpu = time.perf_counter(), time.process_time()
importlib.import_module(sys.argv[1])
print((time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000)
"""


@dataclass(frozen=True)
class FunctionBuild:
    """One function as ``sam build`` left it."""

    name: str
    handler_module: str
    code_dir: Path
    layer_dirs: tuple[Path, ...]
    environment: dict[str, str]


@dataclass(frozen=True)
class FunctionFigures:
    name: str
    code_bytes: int
    layer_bytes: int
    import_ms: tuple[float, ...]  # wall clock per run; empty when not measured
    # CPU time of the same runs: what the import costs a CPU of its own (on a busy machine the wall
    # clock also counts waiting for one).
    import_cpu_ms: tuple[float, ...] = ()

    @property
    def total_bytes(self) -> int:
        return self.code_bytes + self.layer_bytes

    @property
    def import_median_ms(self) -> float | None:
        return statistics.median(self.import_ms) if self.import_ms else None

    @property
    def import_cpu_median_ms(self) -> float | None:
        return statistics.median(self.import_cpu_ms) if self.import_cpu_ms else None


def tree_bytes(root: Path) -> int:
    """Unpacked size of a directory: the sum of its regular files' sizes (links not followed)."""
    total = 0
    for folder, _dirs, files in os.walk(root):
        for name in files:
            path = Path(folder) / name
            if path.is_file() and not path.is_symlink():
                total += path.stat().st_size
    return total


def _layer_ids(template: Mapping[str, Any], props: Mapping[str, Any], function: str) -> list[str]:
    layers = props.get("Layers", template.get("Globals", {}).get("Function", {}).get("Layers")) or []
    found = []
    for layer in layers:
        if not (isinstance(layer, dict) and set(layer) == {"Ref"}):
            raise UserError(f"{function}: layer {layer!r} is not built by sam build here; cannot measure it")
        found.append(str(layer["Ref"]))
    return found


def read_build(build_dir: Path) -> list[FunctionBuild]:
    """Every ``AWS::Serverless::Function`` of the built template, with its code and layer folders."""
    template = load_template(build_dir / "template.yaml")
    local = LocalResources(
        REGION, "123456789012", "measure-bucket", "arn:aws:iam::123456789012:role/measure", {}
    )
    resources = template["Resources"]
    builds = []
    for spec in functions(template):
        props = resources[spec.name].get("Properties", {}) or {}
        code_dir = build_dir / spec.name
        layer_dirs = []
        for layer in _layer_ids(template, props, spec.name):
            layer_dir = build_dir / layer
            if (
                resources.get(layer, {}).get("Type") != "AWS::Serverless::LayerVersion"
                or not layer_dir.is_dir()
            ):
                raise UserError(f"{spec.name}: layer {layer} has no build folder in {build_dir}")
            layer_dirs.append(layer_dir)
        if not code_dir.is_dir():
            raise UserError(
                f"{spec.name} has no build folder in {build_dir}: run sam build (make lambda-size)"
            )
        builds.append(
            FunctionBuild(
                name=spec.name,
                handler_module=spec.handler.rsplit(".", 1)[0],
                code_dir=code_dir,
                layer_dirs=tuple(layer_dirs),
                environment=function_environment(template, spec.name, local),
            )
        )
    if not builds:
        raise UserError(f"{build_dir / 'template.yaml'} declares no functions")
    return builds


def runtime_site(cache_root: Path, python: str) -> Path:
    """The runtime's boto3 stand-in: the dev environment's boto3 closure, compiled for ``python``."""
    version = importlib.metadata.version("boto3")
    site = cache_root / f"runtime-boto3-{version}"
    marker = site / ".complete"
    if marker.exists():
        return site
    shutil.rmtree(site, ignore_errors=True)
    site.mkdir(parents=True)
    for package in RUNTIME_PACKAGES:
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            raise UserError(f"{package} is not installed here: it stands in for the Lambda runtime's")
        origin = Path(spec.origin)
        if spec.submodule_search_locations:  # a package: copy its folder
            shutil.copytree(
                origin.parent, site / origin.parent.name, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy2(origin, site / origin.name)
    subprocess.run([python, "-m", "compileall", "-q", "-j", "0", str(site)], check=True, capture_output=True)
    marker.touch()
    return site


def lambda_environment(build: FunctionBuild) -> dict[str, str]:
    """What Lambda sets before the handler's module is imported, plus the function's variables."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "LAMBDA_TASK_ROOT": str(build.code_dir),
        "AWS_LAMBDA_FUNCTION_NAME": build.name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "AWS_XRAY_DAEMON_ADDRESS": "169.254.79.129:2000",
        "_HANDLER": f"{build.handler_module}.lambda_handler",
    }
    env.update(build.environment)
    return env


def time_import(
    build: FunctionBuild, python: str, runtime: Path, runs: int
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Wall-clock and CPU milliseconds to import the handler module, one fresh interpreter per run."""
    paths = [str(build.code_dir), *(str(layer / "python") for layer in build.layer_dirs), str(runtime)]
    env = lambda_environment(build)
    wall: list[float] = []
    cpu: list[float] = []
    for _ in range(runs):
        done = subprocess.run(
            [python, "-B", "-S", "-E", "-c", _IMPORT_SNIPPET, build.handler_module, *paths],
            capture_output=True,
            text=True,
            env=env,
            cwd=build.code_dir,
            check=False,
        )
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise UserError(f"{build.name}: importing {build.handler_module} failed: {tail[0]}")
        wall_ms, cpu_ms = done.stdout.split()[-2:]
        wall.append(float(wall_ms))
        cpu.append(float(cpu_ms))
    return tuple(wall), tuple(cpu)


def measure(build_dir: Path, *, python: str | None, runs: int) -> list[FunctionFigures]:
    """Sizes of every function (always) and, with ``python``, its cold handler import."""
    builds = read_build(build_dir)
    runtime = runtime_site(build_dir.parent, python) if python else None
    figures = []
    for build in builds:
        timings = time_import(build, python, runtime, runs) if python and runtime else ((), ())
        figures.append(
            FunctionFigures(
                name=build.name,
                code_bytes=tree_bytes(build.code_dir),
                layer_bytes=sum(tree_bytes(layer) for layer in build.layer_dirs),
                import_ms=timings[0],
                import_cpu_ms=timings[1],
            )
        )
    return figures


def python_version(python: str) -> str:
    code = "import sys; print(sys.version.split()[0])"
    return subprocess.run([python, "-c", code], check=True, capture_output=True, text=True).stdout.strip()


def render(figures: Sequence[FunctionFigures]) -> str:
    """One line per function: MB are 10^6 bytes; import medians (wall, CPU) and wall range in ms."""
    head = f"{'function':<18} {'code MB':>8} {'layers MB':>10} {'total MB':>9}"
    timed = any(fig.import_ms for fig in figures)
    lines = [f"{head} {'import ms':>10} {'CPU ms':>7} {'min-max ms':>12}" if timed else head]
    for fig in figures:
        line = f"{fig.name:<18} {fig.code_bytes / MB:8.2f} {fig.layer_bytes / MB:10.2f}"
        line += f" {fig.total_bytes / MB:9.2f}"
        median, cpu = fig.import_median_ms, fig.import_cpu_median_ms
        if median is not None and cpu is not None:
            line += f" {median:10.0f} {cpu:7.0f} {min(fig.import_ms):6.0f}-{max(fig.import_ms):<6.0f}"
        lines.append(line)
    return "\n".join(lines)


def as_json(figures: Sequence[FunctionFigures], machine: Mapping[str, Any]) -> str:
    return json.dumps(
        {
            "machine": dict(machine),
            "functions": [
                {
                    "name": fig.name,
                    "code_bytes": fig.code_bytes,
                    "layer_bytes": fig.layer_bytes,
                    "total_bytes": fig.total_bytes,
                    "import_ms": list(fig.import_ms),
                    "import_cpu_ms": list(fig.import_cpu_ms),
                    "import_cpu_median_ms": fig.import_cpu_median_ms,
                    "import_median_ms": fig.import_median_ms,
                }
                for fig in figures
            ],
        },
        indent=2,
    )
