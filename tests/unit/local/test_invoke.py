"""``textclf invoke``: a template function run with an event file, as `sam local invoke` does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from textclf import config

pytestmark = pytest.mark.heavy  # real models, exports, servers or tools: not in `make unit`

EVENTS = config.REPO_ROOT / "events"


def invoke(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    base |= {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}
    return subprocess.run(
        [sys.executable, "-m", "textclf", "invoke", *args],
        env=base | (env or {}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_an_api_event_runs_through_the_templates_handler() -> None:
    done = invoke("PredictFunction", "--event", str(EVENTS / "predict_invalid_not_json.json"))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout[done.stdout.index('{\n  "statusCode"') :])
    assert result["statusCode"] == 400
    assert json.loads(result["body"])["error"] == "BadRequest"


def test_an_eventbridge_event_reaches_the_deploy_function_with_env_vars(tmp_path: Path) -> None:
    env_vars = tmp_path / "env.json"
    env_vars.write_text(json.dumps({"DeployFunction": {"TRAINING_JOB_PREFIX": "another-team"}}))
    event = EVENTS / "eventbridge" / "training_job_completed.json"
    done = invoke("DeployFunction", "-e", str(event), "--env-vars", str(env_vars))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout[done.stdout.rindex('{\n  "action"') :])
    assert result["action"] == "ignored"
    assert "another-team-*" in result["reason"]


def test_mistakes_are_one_line_errors(tmp_path: Path) -> None:
    unknown = invoke("NoSuchFunction", "--event", str(EVENTS / "health.json"))
    assert unknown.returncode == 2 and "has no function 'NoSuchFunction'" in unknown.stderr
    assert "DeployFunction" in unknown.stderr
    missing = invoke("HealthFunction", "--event", str(tmp_path / "nope.json"))
    assert missing.returncode == 2 and "No such file" in missing.stderr
    local = invoke(
        "HealthFunction",
        "--event",
        str(EVENTS / "health.json"),
        "--local",
        env={"TEXTCLF_ARTIFACTS": str(tmp_path)},
    )
    assert local.returncode == 2 and "no running local stack" in local.stderr
