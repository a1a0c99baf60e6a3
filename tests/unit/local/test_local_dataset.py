"""The local stack's dataset: the channels and pointer it seeds carry the processed data's own
label set (its labels.json), never a compiled one, and with no data it invents none."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from textclf.errors import UserError
from textclf.local.control_plane import DATASET_PREFIX, ControlPlane, Seed
from textclf.local.stack import _training_defaults, check_training_defaults, labeller_keys

BUCKET = "textclf-local-test"
LABELS = ["negative", "neutral", "positive"]  # a dataset that is not the news corpus


def processed(root: Path) -> Path:
    """The files `textclf data` writes, as far as the seeding reads them."""
    (root / "manifest.json").parent.mkdir(parents=True)
    (root / "manifest.json").write_text(json.dumps({"labels": LABELS}), encoding="utf-8")
    for folder in (root, root / "train", root / "validation", root / "test"):
        folder.mkdir(exist_ok=True)
        (folder / "labels.json").write_text(json.dumps(LABELS), encoding="utf-8")
    return root


def test_training_defaults_take_the_datas_labels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEXTCLF_ARTIFACTS", str(tmp_path / "artifacts"))
    data = processed(tmp_path / "data")
    assert _training_defaults(data) is None  # no EDA yet: nothing to default
    eda = tmp_path / "artifacts" / "eda" / "eda.json"
    eda.parent.mkdir(parents=True)
    eda.write_text(json.dumps({"max_length": 48}), encoding="utf-8")
    assert _training_defaults(data) == {"max_length": 48, "labels": LABELS}
    assert _training_defaults(None) == {"max_length": 48}  # no data: no label set made up


def test_a_training_budget_joins_the_defaults_and_wins_over_the_eda(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEXTCLF_ARTIFACTS", str(tmp_path / "artifacts"))
    budget: dict[str, object] = {"epochs": 1, "max_train_samples": 8000, "max_length": 32}
    assert _training_defaults(None, budget) == budget  # no EDA: the budget alone
    eda = tmp_path / "artifacts" / "eda" / "eda.json"
    eda.parent.mkdir(parents=True)
    eda.write_text(json.dumps({"max_length": 48}), encoding="utf-8")
    assert _training_defaults(None, budget) == budget
    assert _training_defaults(None, {"epochs": 2}) == {"max_length": 48, "epochs": 2}


@pytest.mark.parametrize(
    ("budget", "message"),
    [
        ({"epoch": 1}, "--train-default epoch: not a train.py hyperparameter"),
        ({"base_model": "x"}, "--train-default base_model"),
        ({"max_length": 4}, "--train-default max_length=4: --max_length must be >= 8"),
        ({"epochs": -1}, "training_defaults.epochs=-1: --epochs must be > 0"),
    ],
)
def test_a_budget_train_py_would_refuse_is_refused_at_start(budget: dict[str, object], message: str) -> None:
    with pytest.raises(UserError, match=message):
        check_training_defaults(budget)
    check_training_defaults({"epochs": 1, "serving_runtime": "torch", "max_length": 32})


def test_every_labeller_key_is_its_own_labeller() -> None:
    env = {"LABELLER_API_KEY_IDS": "local-LabellerApiKey"}
    assert labeller_keys(env, "k1", ("k2", "k3")) == {
        "local-LabellerApiKey": "k1",
        "local-LabellerApiKey-2": "k2",
        "local-LabellerApiKey-3": "k3",
    }


def local_seed(data_dir: Path | None = None, **extra: Any) -> Seed:
    return Seed(
        region="us-east-1",
        bucket=BUCKET,
        role_name="textclf-local-role",
        endpoint_name="textclf-local",
        data_dir=data_dir,
        model_archive=None,
        **extra,
    )


def seeded(tmp_path: Path, data_dir: Path | None) -> dict[str, Any]:
    """What the control plane holds under the dataset prefix after seeding: key -> JSON."""
    plane = ControlPlane("us-east-1")
    plane.start()
    try:
        plane.seed(local_seed(data_dir))
        s3 = plane.client("s3")
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
        return {
            key: json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
            for key in keys
            if key.endswith(".json")
        }
    finally:
        plane.stop()


def test_the_channels_hold_the_datas_labels_and_none_without_data(tmp_path: Path) -> None:
    with_data = seeded(tmp_path, processed(tmp_path / "data"))
    for channel in ("train", "validation", "test"):
        assert with_data[f"{DATASET_PREFIX}/{channel}/labels.json"] == LABELS
    assert with_data["datasets/latest.json"]["uri"] == f"s3://{BUCKET}/{DATASET_PREFIX}/"
    # No processed data: the pointer alone; the job's train.py says that labels.json is missing.
    without = seeded(tmp_path, None)
    assert [key for key in without if key.startswith(f"{DATASET_PREFIX}/")] == []
    assert without["datasets/latest.json"]["uri"] == f"s3://{BUCKET}/{DATASET_PREFIX}/"


def test_the_seeded_inference_repository_holds_the_image_local_rollouts_pin() -> None:
    """The local SageMaker serves every model with textclf's server: the stack's repository holds
    an image standing for it, so the deploy function picks it as in AWS (no DLC fallback)."""
    from textclf_api.logic.inference_image import served_image
    from textclf_api.settings import Settings

    plane = ControlPlane("us-east-1")
    plane.start()
    try:
        repository = "textclf-local-inference-repository"
        plane.seed(local_seed(inference_repository=repository))
        ecr = plane.client("ecr")
        (image,) = ecr.describe_images(repositoryName=repository)["imageDetails"]
        uri = f"{image['registryId']}.dkr.ecr.us-east-1.amazonaws.com/{repository}"
        settings = Settings.from_env({"INFERENCE_REPOSITORY_URI": uri})
        served = served_image(settings, "the-dlc", ecr)
        assert (served.uri, served.fallback) == (f"{uri}@{image['imageDigest']}", "")
    finally:
        plane.stop()
