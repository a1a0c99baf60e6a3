"""``model/inference.py`` request/response handling, without a model: validation and messages."""

from __future__ import annotations

import inspect
import json
from types import ModuleType
from typing import Any

import pytest

from textclf.packaging import load_inference_module


@pytest.fixture(scope="module")
def inference() -> ModuleType:
    return load_inference_module()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "not valid JSON"),
        (b'{"inputs": ["a"', "not valid JSON"),
        (b"\xff\xfe{}", "not valid UTF-8"),
        (b'["a headline"]', "must be a JSON object"),
        (b'"a headline"', "must be a JSON object"),
        (b"{}", "no 'inputs' field"),
        (b'{"text": "a headline"}', "no 'inputs' field"),
        (b'{"inputs": "a", "parameters": {}}', "unknown field(s) 'parameters'"),
        (b'{"inputs": 3}', "'inputs' must be a string or a list of strings, got int"),
        (b'{"inputs": null}', "got null"),
        (b'{"inputs": {"text": "a"}}', "got an object"),
        (b'{"inputs": []}', "'inputs' is an empty list"),
        (b'{"inputs": ["ok", 7]}', "inputs[1] must be a string, got int"),
        (b'{"inputs": ["ok", ["nested"]]}', "inputs[1] must be a string, got a list"),
        (b'{"inputs": ""}', "inputs is blank"),
        (b'{"inputs": ["ok", "  \\t\\n"]}', "inputs[1] is blank"),
    ],
)
def test_bad_payloads_raise_payload_error_naming_the_problem(
    inference: ModuleType, body: bytes, message: str
) -> None:
    with pytest.raises(inference.PayloadError) as err:
        inference.input_fn(body, "application/json")
    assert message in str(err.value)
    # A ValueError: the local endpoint maps it to a 4xx, the toolkit answers 400.
    assert isinstance(err.value, ValueError)


def test_too_long_text_and_too_many_inputs(inference: ModuleType) -> None:
    long_text = "x" * (inference.MAX_TEXT_CHARS + 1)
    with pytest.raises(inference.PayloadError, match=rf"inputs\[1\] has {len(long_text)} characters"):
        inference.input_fn(json.dumps({"inputs": ["fine", long_text]}), "application/json")
    # Exactly at the bound is accepted.
    assert inference.input_fn(json.dumps({"inputs": "y" * inference.MAX_TEXT_CHARS}), None) == [
        "y" * inference.MAX_TEXT_CHARS
    ]
    many = ["headline"] * (inference.MAX_INPUTS + 1)
    with pytest.raises(inference.PayloadError, match=f"at most {inference.MAX_INPUTS} per request"):
        inference.input_fn(json.dumps({"inputs": many}), "application/json")


def test_content_types(inference: ModuleType) -> None:
    body = json.dumps({"inputs": ["Fed raises rates", "Apple unveils iPhone"]})
    expected = ["Fed raises rates", "Apple unveils iPhone"]
    # The toolkit hands over str for UTF-8 types and bytes otherwise; parameters are ignored.
    assert inference.input_fn(body, "application/json") == expected
    assert inference.input_fn(body.encode(), "Application/JSON; charset=utf-8") == expected
    assert inference.input_fn(bytearray(body.encode()), "application/json") == expected
    with pytest.raises(inference.PayloadError, match="unsupported content type 'text/csv'"):
        inference.input_fn("Fed raises rates", "text/csv")


def test_single_string_becomes_one_input_and_text_is_kept_verbatim(inference: ModuleType) -> None:
    assert inference.input_fn('{"inputs": "  Caf\\u00e9 owners rally  "}', "application/json") == [
        "  Café owners rally  "
    ]


def test_output_fn_serialises_json_and_refuses_other_accept(inference: ModuleType) -> None:
    prediction = {
        "predictions": [{"label": "health", "score": 0.9, "scores": {"health": 0.9, "business": 0.1}}]
    }
    for accept in (None, "", "*/*", "application/json", "application/json; charset=utf-8"):
        assert json.loads(inference.output_fn(prediction, accept)) == prediction
    with pytest.raises(inference.PayloadError, match="unsupported Accept 'text/csv'"):
        inference.output_fn(prediction, "text/csv")


def test_handler_signatures_let_the_toolkit_pass_context(inference: ModuleType) -> None:
    # sagemaker-huggingface-inference-toolkit handler_service.function_extra_arg passes the
    # context only when a user function has as many parameters as its default
    # (load(model_dir, context), preprocess(data, content_type, context), ...).
    expected = {"model_fn": 2, "input_fn": 3, "predict_fn": 3, "output_fn": 3}
    for name, count in expected.items():
        params = inspect.signature(getattr(inference, name)).parameters
        assert len(params) == count, name
        assert list(params)[-1] == "context"
    assert not hasattr(inference, "transform_fn"), "transform_fn cannot be combined with input_fn etc."


def test_thread_count_override(inference: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEXTCLF_INTRA_OP_THREADS", raising=False)
    monkeypatch.setenv("TEXTCLF_NUM_THREADS", "3")
    assert inference.num_threads() == 3
    monkeypatch.setenv("TEXTCLF_NUM_THREADS", "0")
    with pytest.raises(ValueError, match="TEXTCLF_NUM_THREADS must be >= 1"):
        inference.num_threads()
    monkeypatch.delenv("TEXTCLF_NUM_THREADS")
    monkeypatch.setenv("TEXTCLF_INTRA_OP_THREADS", "2")
    assert inference.num_threads() == 2
    monkeypatch.delenv("TEXTCLF_INTRA_OP_THREADS")
    import os

    assert inference.num_threads() == len(os.sched_getaffinity(0))


def test_model_fn_needs_the_meta_file(inference: ModuleType, tmp_path: Any) -> None:
    (tmp_path / "config.json").write_text('{"id2label": {"0": "a"}}')
    with pytest.raises(FileNotFoundError, match=r"textclf_meta\.json is missing"):
        inference.model_fn(str(tmp_path))


JSONL = "application/jsonlines"


def test_json_lines_records_for_batch_transform(inference: ModuleType) -> None:
    body = '"Fed raises rates"\n{"text": "Apple unveils iPhone"}\n\n'
    body += '{"title": "Ebola spreads"}\n{"inputs": "x"}\n'
    assert inference.input_fn(body, JSONL) == [
        "Fed raises rates",
        "Apple unveils iPhone",
        "Ebola spreads",
        "x",
    ]
    assert inference.input_fn(body.encode(), "application/jsonlines; charset=utf-8")[0] == "Fed raises rates"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('"ok"\nnot json\n', "line 2: body is not valid JSON"),
        ('"ok"\n{"text": 3}\n', "line 2: each line must be a JSON string or an object"),
        ('{"text": "a", "title": "b"}', "line 1: each line must be"),
        ('"ok"\n"   "\n', "line 2: inputs is blank"),
        ('["a", "b"]', "line 1: each line must be"),
        ('{"text": "a", "text": "b"}', "line 1: body repeats the key 'text'"),
        ("\n\n", "no lines"),
        (b"\xff\n", "not valid UTF-8"),
    ],
)
def test_a_bad_json_line_is_named(inference: ModuleType, body: str | bytes, message: str) -> None:
    with pytest.raises(inference.PayloadError) as err:
        inference.input_fn(body, JSONL)
    assert message in str(err.value)


def test_json_lines_are_bounded(inference: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inference, "MAX_LINES", 3)
    assert len(inference.input_fn('"a"\n"b"\n"c"\n', JSONL)) == 3
    with pytest.raises(inference.PayloadError, match="more than 3 lines"):
        inference.input_fn('"a"\n"b"\n"c"\n"d"\n', JSONL)


def test_json_lines_answers_one_line_per_record_in_order(inference: ModuleType) -> None:
    rows = [{"label": name, "score": 0.9, "scores": {name: 0.9}} for name in ("health", "business")]
    rendered = inference.output_fn({"predictions": rows, "model_version": "7"}, JSONL)
    assert rendered.endswith("\n")
    assert [json.loads(line) for line in rendered.splitlines()] == [{**r, "model_version": "7"} for r in rows]


def test_the_endpoint_and_the_api_accept_the_same_longest_text(inference: ModuleType) -> None:
    # The Lambda validates first; an endpoint with a lower limit would answer 4xx to texts the
    # API documents as valid (and a higher one would accept what the API refuses).
    from textclf_api.schemas import MAX_TEXT_CHARS as API_MAX

    from textclf.scoring import MAX_TEXT_CHARS as SCORING_MAX

    assert inference.MAX_TEXT_CHARS == API_MAX == SCORING_MAX
