"""``textclf upload-source``: the SageMaker source bundle, built and uploaded (moto)."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from textclf import config, training
from textclf.bundle import build_source_bundle, shipped_model_files, shipped_package_modules
from textclf.cli import main
from textclf.errors import UserError

pytestmark = pytest.mark.heavy  # real models, exports, servers or tools: not in `make unit`


def run_in(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, *args], cwd=folder, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return proc


def test_bundle_holds_the_training_code_at_its_root(tmp_path: Path) -> None:
    bundle = build_source_bundle(tmp_path / "sourcedir.tar.gz")
    with tarfile.open(bundle) as tar:
        names = tar.getnames()
        # Every file of model/ (the folder is the list) and the package modules it imports.
        model_files = sorted(p.name for p in config.model_code_dir().glob("*.*") if p.is_file())
        assert shipped_model_files() == model_files
        assert sorted(names) == sorted([*model_files, *shipped_package_modules()])
        assert {"textclf/packaging/build.py", "textclf/packaging/quantize.py"} <= set(names)
        for name in model_files:
            member = tar.extractfile(name)
            assert member is not None
            assert member.read() == (config.model_code_dir() / name).read_bytes()
        tar.extractall(tmp_path / "unpacked", filter="data")
    # Self-contained: the packaging code it ships is imported from the bundle itself, as in the
    # container. (Its train.py trains from its own folder in test_loop: the local SageMaker
    # unpacks this bundle and runs it, as the toolkit does. A `train.py --help` here cost ~9 s of
    # CPU, importing torch and transformers, to show less.)
    probe = (
        "import textclf.packaging.build as b, textclf.evaluation.metrics as m; print(b.__file__, m.__file__)"
    )
    proc = run_in(tmp_path / "unpacked", "-c", probe)
    for path in proc.stdout.split():
        assert Path(path).is_relative_to(tmp_path / "unpacked"), path
    # Deterministic: same code, same bytes.
    again = build_source_bundle(tmp_path / "again.tar.gz")
    assert again.read_bytes() == bundle.read_bytes()


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://b/code/", ("b", "code/sourcedir.tar.gz")),
        ("s3://b/code", ("b", "code/sourcedir.tar.gz")),
        ("s3://b", ("b", "sourcedir.tar.gz")),
        ("s3://b/x/custom.tar.gz", ("b", "x/custom.tar.gz")),
    ],
)
def test_key_from_uri(uri: str, expected: tuple[str, str]) -> None:
    assert training.source_bundle_key(uri) == expected


def test_bad_uri_is_a_user_error() -> None:
    with pytest.raises(UserError, match=r"--s3-uri must look like s3://bucket/prefix/, got 'bucket/code'"):
        training.source_bundle_key("bucket/code")


@mock_aws
def test_upload_to_s3(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="textclf-test")
    assert main(["upload-source", "--s3-uri", "s3://textclf-test/code/"]) == 0
    assert "s3://textclf-test/code/sourcedir.tar.gz" in capsys.readouterr().out
    body = s3.get_object(Bucket="textclf-test", Key="code/sourcedir.tar.gz")["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        assert "train.py" in tar.getnames()
    # A missing bucket is reported as one line, not a traceback.
    assert main(["upload-source", "--s3-uri", "s3://no-such-bucket/code/"]) == 2
    assert "failed" in capsys.readouterr().err
