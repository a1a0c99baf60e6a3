"""The bench's cloud level without the DLC's model server: how it would be started, when it is
skipped, and what the report says of it.

The DLC run itself (multi-model-server's JVM, a worker with torch, 30-60 s to start on two
cores) is a benchmark command, `textclf bench --levels cloud` after `make dlc-venv`, not a test:
CI would build a 1.4 GB virtualenv for it, and the suite runs with zero skips.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from textclf_api.logic.deployment import container_environment
from textclf_api.settings import DEFAULT_INFERENCE_SERVER

from textclf.bench import cloud, report
from textclf.bench.runner import BenchConfig, run_cloud_level
from textclf.bench.servers import process_tree_cpu_seconds, process_tree_rss
from textclf.errors import UserError


def _archive(tmp_path: Path, with_code: bool = True) -> Path:
    src = tmp_path / "src"
    (src / "code").mkdir(parents=True, exist_ok=True)
    (src / "config.json").write_text("{}")
    if with_code:
        (src / "code" / "inference.py").write_text("# model_fn, input_fn, predict_fn, output_fn\n")
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in src.rglob("*"):
            tar.add(path, arcname=str(path.relative_to(src)))
    return archive


def test_the_level_runs_the_templates_default_server_unless_asked_for_the_dlc_or_both() -> None:
    from textclf.cli import build_parser
    from textclf.commands.bench import config_from_args

    def servers(*flags: str) -> tuple[str, ...]:
        cfg = config_from_args(build_parser().parse_args(["bench", "--levels", "cloud", *flags]))
        return tuple(cfg.inference_servers)

    # textclf's own image, as template.yaml deploys by default (test_template pins the two equal).
    assert servers() == (DEFAULT_INFERENCE_SERVER,) == ("textclf",)
    assert BenchConfig(Path(), Path(), Path(), Path()).inference_servers == (DEFAULT_INFERENCE_SERVER,)
    assert servers("--inference-server", "dlc") == ("dlc",)
    assert servers("--inference-server", "both") == ("dlc", "textclf")


def test_without_the_dlc_virtualenv_the_level_says_why_in_one_line(tmp_path: Path) -> None:
    cfg = BenchConfig(
        model_dir=tmp_path, package=_archive(tmp_path), data=tmp_path, out=tmp_path / "out",
        dlc_venv=tmp_path / "no-venv", inference_servers=("dlc",),
    )  # fmt: skip
    result = run_cloud_level(cfg, [b'{"inputs": "a"}'])
    assert result == {"skipped": f"no DLC virtualenv at {tmp_path / 'no-venv'} (make dlc-venv)"}
    text = report.render_table({"cloud_level": result})
    assert f"Cloud level skipped: no DLC virtualenv at {tmp_path / 'no-venv'} (make dlc-venv)" in text
    assert not (tmp_path / "out").exists()  # nothing started, nothing unpacked


def test_the_dlc_runs_with_the_deploy_functions_environment_moved_off_the_containers_places(
    tmp_path: Path,
) -> None:
    venv = tmp_path / "venv"
    env = cloud.dlc_environment(
        venv, tmp_path / "ml", 23456, {"SAGEMAKER_MODEL_SERVER_WORKERS": "2"}, "127.0.0.1"
    )
    # Every variable the deploy function sets, read from it; an override wins over it.
    assert env["SAGEMAKER_MODEL_SERVER_WORKERS"] == "2"
    for key, value in container_environment("RealTime").items():
        assert env[key] == value
    assert env["SAGEMAKER_BASE_DIR"] == str(tmp_path / "ml")
    assert env["SAGEMAKER_BIND_TO_PORT"] == "23456"
    assert env["MMS_INFERENCE_ADDRESS"] == env["MMS_MANAGEMENT_ADDRESS"] == "http://127.0.0.1:23456"
    assert env["PATH"].split(os.pathsep)[0] == str(venv.resolve() / "bin")
    assert env["PYTHONPATH"] == ""  # textclf's own source never leaks into the DLC's interpreter
    assert Path(env["TMPDIR"]).is_dir()


def test_overrides_are_key_value_pairs() -> None:
    assert cloud.parse_env_overrides(["A=1", "MMS_JOB_QUEUE_SIZE=1000", "B="]) == {
        "A": "1",
        "MMS_JOB_QUEUE_SIZE": "1000",
        "B": "",
    }
    for bad in ("A", "=1", "A B=1"):
        with pytest.raises(UserError, match="--dlc-env takes KEY=VALUE"):
            cloud.parse_env_overrides([bad])


def test_the_archive_is_unpacked_fresh_where_sagemaker_puts_it(tmp_path: Path) -> None:
    base = tmp_path / "ml"
    model = cloud.unpack_archive(_archive(tmp_path), base)
    assert model == base / "model"
    assert (model / "code" / "inference.py").is_file()
    (model / "stale").write_text("left by an earlier run")
    cloud.unpack_archive(_archive(tmp_path), base)
    assert not (model / "stale").exists()
    with pytest.raises(UserError, match=r"no code/inference\.py"):
        cloud.unpack_archive(_archive(tmp_path / "bare", with_code=False), tmp_path / "ml2")


def test_the_port_is_one_multi_model_server_accepts() -> None:
    port = cloud.free_port_below_32768("127.0.0.1")
    assert 20000 <= port <= 32767


def test_a_servers_memory_and_cpu_include_its_sessions_orphans(tmp_path: Path) -> None:
    # The DLC's launcher starts the JVM through a process that exits: the JVM is no descendant.
    pid_file = tmp_path / "orphan.pid"
    # The orphan touches 64 MB and spends 0.4 s of CPU, then says who it is.
    orphan_code = (
        "import os, time\nx = bytearray(64 << 20)\n"
        "while time.process_time() < 0.4: pass\n"
        f"open({str(pid_file)!r} + '.tmp', 'w').write(str(os.getpid()))\n"
        f"os.rename({str(pid_file)!r} + '.tmp', {str(pid_file)!r})\ntime.sleep(30)"
    )
    script = f"import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', {orphan_code!r}])\n"
    # The leader's child starts the orphan and exits; the leader stays.
    starter = (
        f"import subprocess, sys, time\nsubprocess.run([sys.executable, '-c', {script!r}])\ntime.sleep(30)"
    )
    leader = subprocess.Popen([sys.executable, "-c", starter], start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while not pid_file.exists():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        orphan = int(pid_file.read_text())
        assert psutil.Process(orphan).ppid() != leader.pid  # no descendant of the leader's
        assert process_tree_rss(leader.pid) > 64 << 20
        assert process_tree_cpu_seconds(leader.pid) >= 0.4
    finally:
        os.killpg(leader.pid, 9)
        leader.wait()
    with pytest.raises(ProcessLookupError):
        for _ in range(100):
            os.kill(orphan, 0)
            time.sleep(0.05)


def _run(server: str, rps: float, p99: float, errors: dict[str, int] | None = None) -> dict[str, Any]:
    return {
        "server": server,
        "concurrency": 64,
        "throughput_rps": rps,
        "latency": {"p50_ms": p99 / 2, "p99_ms": p99},
        "error_count": sum((errors or {}).values()),
        "errors": errors or {},
        "peak_rss_bytes": 400 * report.MB,
        "server_cpu_ms_per_request": 1.0,
        "client_cpu_fraction": 0.05,
    }


def test_the_cloud_level_is_judged_against_the_local_endpoint_of_the_same_run() -> None:
    results: dict[str, Any] = {
        "config": {"duration_s": 15.0},
        "cloud_level": {
            "servers": {"deploy_environment": container_environment("RealTime"), "overrides": {}},
            "runs": [
                _run(cloud.LOCAL_SERVER, 2000.0, 40.0),
                _run(cloud.DLC_SERVER, 900.0, 150.0, {"http_503": 12}),
            ],
        },
    }
    checks = {c["target"]: c for c in report.check_targets(results)}
    ratio = checks["cloud (dlc) / local endpoint headlines/s at concurrency 64"]
    assert ratio["measured"] == pytest.approx(0.45) and ratio["status"] == "FAIL"
    assert checks["cloud (dlc) p99 at concurrency 64 (ms)"]["status"] == "FAIL"
    assert checks["cloud (dlc) errors (all levels)"]["measured"] == 12
    text = report.render_table(results)
    assert "multi-model-server 1.1.11 + sagemaker-huggingface-inference-toolkit 2.6.0" in text
    assert "http_503 x12" in text
    # CPU per request beside the local endpoint's, for runs without errors only.
    results["cloud_level"]["runs"].append(
        {**_run(cloud.TEXTCLF_SERVER, 1900.0, 45.0), "server_cpu_ms_per_request": 1.1}
    )
    assert report.cpu_share_line(report.cloud_runs(results)).endswith(
        ": cloud-textclf 1.10x at concurrency 64"
    )
    # The cost per million is the cloud path's, at a rate served without errors only.
    cost = next(line for line in text.splitlines() if line.startswith("Cloud path: Cost per million"))
    assert "local-endpoint $" in cost and "cloud-dlc" not in cost

    results["cloud_level"]["runs"][1] = _run(cloud.DLC_SERVER, 1800.0, 55.0)
    assert {c["status"] for c in report.cloud_targets(results)} == {"pass"}
    assert json.loads(json.dumps(results)) == results  # bench.json round trip
