"""One source for each hyperparameter: train.py's flags, the API's TrainRequest and ``textclf train``
all read ``model/hyperparameters.py`` (the Lambda through its byte-identical copy)."""

from __future__ import annotations

from dataclasses import astuple, fields
from pathlib import Path
from types import ModuleType

import pytest
from textclf_api import hyperparameters as lambda_copy
from textclf_api.schemas import TrainRequest

from textclf import config, training
from textclf.errors import UserError

OWNER = config.model_code_dir() / "hyperparameters.py"
HP = lambda_copy.HYPERPARAMETERS
#: TrainRequest fields that are train.py hyperparameters (the rest describe the job: instances, spot).
API_FIELDS = ("epochs", "learning_rate", "batch_size", "max_length", "max_train_samples")


def test_the_lambda_copy_is_byte_identical() -> None:
    copy = Path(lambda_copy.__file__)
    assert copy.read_bytes() == OWNER.read_bytes(), (
        f"{copy} differs from {OWNER}: edit model/hyperparameters.py only, then `make hyperparameters`"
    )


def test_train_py_flags_are_the_hyperparameters(train_module: ModuleType) -> None:
    args = vars(train_module.parse_args([]))
    assert {h.name: args[h.name] for h in HP} == {h.name: h.default for h in HP}
    for h in HP:
        assert type(args[h.name]) is h.type, h.name
        shipped = train_module.hyperparameters.BY_NAME[h.name]  # the file train.py loads beside it
        assert astuple(shipped) == astuple(h), h.name


@pytest.mark.parametrize(
    "spec", [h for h in HP if h.minimum is not None or h.maximum is not None], ids=lambda h: h.name
)
def test_train_py_refuses_what_the_bounds_refuse(
    train_module: ModuleType, spec: lambda_copy.Hyperparameter, capsys: pytest.CaptureFixture[str]
) -> None:
    outside: list[float] = []
    if spec.minimum is not None:
        outside.append(spec.minimum if spec.exclusive_minimum else spec.minimum - 1)
    if spec.maximum is not None:
        outside.append(spec.maximum + 1)
    for value in outside:
        flag = str(spec.type(value))
        with pytest.raises(SystemExit):
            train_module.parse_args([f"--{spec.name}", flag])
        assert f"--{spec.name} must be" in capsys.readouterr().err
    if spec.maximum is not None:
        inside = spec.maximum  # bounds are inclusive at the top
    else:
        assert spec.minimum is not None
        inside = spec.minimum + 1 if spec.exclusive_minimum else spec.minimum
    assert getattr(train_module.parse_args([f"--{spec.name}", str(spec.type(inside))]), spec.name) == inside


def test_the_api_defaults_and_bounds_are_the_hyperparameters() -> None:
    request = TrainRequest()
    schema = TrainRequest.model_json_schema()["properties"]
    for name in API_FIELDS:
        spec = lambda_copy.BY_NAME[name]
        if getattr(request, name) is not None:  # omitted max_length / max_train_samples: train.py decides
            assert getattr(request, name) == spec.default, name
        prop = schema[name] if "anyOf" not in schema[name] else schema[name]["anyOf"][0]
        if spec.maximum is not None:
            assert prop["maximum"] == spec.maximum, name
        low = prop.get("minimum", prop.get("exclusiveMinimum"))
        assert low is not None and low >= (spec.minimum or 0), name
    # Where the API narrows (whole epochs; "all rows" by omission), it still refuses nothing train.py
    # would run from the API's own range, and its smallest value is train.py's smallest of that type.
    assert schema["epochs"]["minimum"] == 1 and lambda_copy.BY_NAME["epochs"].exclusive_minimum
    assert schema["learning_rate"]["exclusiveMinimum"] == lambda_copy.BY_NAME["learning_rate"].minimum


def test_textclf_train_defaults_are_the_local_profile() -> None:
    settings = training.TrainSettings(base_model="m")
    for f in fields(settings):
        if f.name in lambda_copy.BY_NAME and f.name != "base_model":
            assert getattr(settings, f.name) == lambda_copy.local_default(f.name), f.name
    # Every flag textclf train passes is one train.py knows.
    assert set(settings.hyperparameters()) <= set(lambda_copy.BY_NAME)


def test_textclf_train_refuses_out_of_bounds_settings_before_it_starts() -> None:
    with pytest.raises(UserError, match=r"--max-length must be >= 8"):
        training.TrainSettings(base_model="m", max_length=4)
    with pytest.raises(UserError, match=r"--serving-runtime must be one of"):
        training.TrainSettings(base_model="m", serving_runtime="tflite")
