"""textclf.lambda_size on a hand-made sam build: what it counts, and what the import sees."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from textclf.errors import UserError
from textclf.lambda_size import lambda_environment, measure, read_build, render, time_import, tree_bytes

TEMPLATE = """\
Globals:
  Function:
    Runtime: python3.12
    Layers:
      - Ref: DepsLayer
    Environment:
      Variables:
        SERVICE: !Ref Service
Parameters:
  Service:
    Type: String
    Default: textclf-api
Resources:
  DepsLayer:
    Type: AWS::Serverless::LayerVersion
    Properties:
      ContentUri: DepsLayer
  AppFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: AppFunction
      Handler: app.handler.lambda_handler
"""


def fake_build(root: Path, handler_source: str) -> Path:
    build = root / "build"
    (build / "AppFunction" / "app").mkdir(parents=True)
    (build / "AppFunction" / "app" / "__init__.py").write_text("")
    (build / "AppFunction" / "app" / "handler.py").write_text(handler_source)
    (build / "DepsLayer" / "python").mkdir(parents=True)
    (build / "DepsLayer" / "python" / "dep.py").write_text("VALUE = 1\n" + "#" * 990 + "\n")
    (build / "template.yaml").write_text(TEMPLATE)
    return build


def test_sizes_are_the_code_plus_the_layers_it_names(tmp_path: Path) -> None:
    build = fake_build(tmp_path, "import dep\n")
    (figure,) = measure(build, python=None, runs=1)
    assert figure.name == "AppFunction"
    assert figure.code_bytes == tree_bytes(build / "AppFunction") == len("import dep\n")
    assert figure.layer_bytes == 1001
    assert figure.total_bytes == figure.code_bytes + 1001
    assert figure.import_ms == () and figure.import_median_ms is None
    table = render([figure])
    assert "AppFunction" in table and "import ms" not in table  # sizes only: no empty columns


def test_the_import_sees_the_code_the_layer_and_the_runtime_only(tmp_path: Path) -> None:
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    (runtime / "boto_stand_in.py").write_text("")
    source = "import os, sys\nimport dep, boto_stand_in\nassert os.environ['SERVICE'] == 'textclf-api'\n"
    (build_fn,) = read_build(fake_build(tmp_path, source))
    assert lambda_environment(build_fn)["LAMBDA_TASK_ROOT"] == str(build_fn.code_dir)
    wall, cpu = time_import(build_fn, sys.executable, runtime, runs=3)
    assert len(wall) == len(cpu) == 3 and all(t > 0 for t in wall + cpu)


def test_a_package_from_the_dev_environment_is_not_visible(tmp_path: Path) -> None:
    (build_fn,) = read_build(fake_build(tmp_path, "import yaml\n"))  # installed here, not in the build
    with pytest.raises(UserError, match=r"importing app\.handler failed: ModuleNotFoundError"):
        time_import(build_fn, sys.executable, tmp_path, runs=1)


def test_a_layer_given_by_arn_cannot_be_measured(tmp_path: Path) -> None:
    build = fake_build(tmp_path, "")
    template = (build / "template.yaml").read_text()
    arn = "arn:aws:lambda:us-east-1:017000801446:layer:AWSLambdaPowertoolsPythonV3-python312-x86_64:1"
    (build / "template.yaml").write_text(template.replace("- Ref: DepsLayer", f"- {arn}"))
    with pytest.raises(UserError, match="not built by sam build here"):
        read_build(build)
