"""Pydantic models of the public API: the single source of the request/response schema.

The handlers validate every request against these models (powertools ``enable_validation``), the
predict logic validates the SageMaker endpoint's reply with :class:`PredictResponse` (the endpoint
answers exactly the API's 200 body), and ``python -m textclf_api.openapi`` derives the OpenAPI
document from them. No label set is compiled in: a reply carries the served model's own
``labels``, and a reply is checked against the set it reports. The news topics appear only as
example values of the document.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from textclf_api import hyperparameters as hp

#: Long enough for documents of a few thousand words (tokens past max_length are cut anyway); the
#: endpoint keeps the same limit (model/inference.py, pinned by a test).
MAX_TEXT_CHARS: Final = 20_000
#: train.py's --truncation choices (hyperparameters.py; a test keeps them equal).
Truncation = Literal["head", "tail", "head+tail"]
MAX_BATCH_TEXTS: Final = 64
# Every single valid text fits in 1 MiB even JSON-escaped (20,000 x 6 bytes as \uXXXX); a batch of
# long documents is bounded by the body size instead (413 names the limit). Anything larger cannot
# be a valid request, so it is refused before it is even parsed.
MAX_BODY_BYTES: Final = 1024 * 1024
MIN_MAX_LENGTH: Final = int(hp.BY_NAME["max_length"].minimum or 0)
MAX_MAX_LENGTH: Final = int(hp.BY_NAME["max_length"].maximum or 0)

#: Example values only (the default news corpus's topics, in its class-id order): the API serves
#: whatever label set the deployed model reports, and no code checks labels against these.
EXAMPLE_LABELS: Final[tuple[str, ...]] = ("business", "science_and_technology", "entertainment", "health")

# Base models a training job may start from. Each is a plain encoder the HF training image can load
# with AutoModelForSequenceClassification without extra packages (no sentencepiece/tiktoken).
BASE_MODELS: Final[tuple[str, ...]] = (
    "distilbert-base-uncased",
    "bert-base-uncased",
    "distilroberta-base",
    "roberta-base",
    "sentence-transformers/all-MiniLM-L6-v2",
)
BaseModelName = Literal[
    "distilbert-base-uncased",
    "bert-base-uncased",
    "distilroberta-base",
    "roberta-base",
    "sentence-transformers/all-MiniLM-L6-v2",
]

# GPU training instance types and their GPUs. The default training image is built for CUDA 13,
# which dropped Volta (V100, ml.p3.*), so only Turing (T4) and newer families are offered. A job
# with more than one GPU in all is launched with torchrun, one process per GPU (train.py's DDP).
GPUS_PER_INSTANCE: Final[dict[str, int]] = {
    "ml.g4dn.xlarge": 1,
    "ml.g4dn.2xlarge": 1,
    "ml.g4dn.12xlarge": 4,
    "ml.g5.xlarge": 1,
    "ml.g5.2xlarge": 1,
    "ml.g5.4xlarge": 1,
    "ml.g5.12xlarge": 4,
    "ml.g5.48xlarge": 8,
    "ml.g6.xlarge": 1,
    "ml.g6.2xlarge": 1,
    "ml.g6.12xlarge": 4,
    "ml.g6e.xlarge": 1,
}
GPU_INSTANCE_TYPES: Final[tuple[str, ...]] = tuple(GPUS_PER_INSTANCE)
# The same names for the OpenAPI enum (a unit test keeps the two equal).
GpuInstanceType = Literal[
    "ml.g4dn.xlarge",
    "ml.g4dn.2xlarge",
    "ml.g4dn.12xlarge",
    "ml.g5.xlarge",
    "ml.g5.2xlarge",
    "ml.g5.4xlarge",
    "ml.g5.12xlarge",
    "ml.g5.48xlarge",
    "ml.g6.xlarge",
    "ml.g6.2xlarge",
    "ml.g6.12xlarge",
    "ml.g6e.xlarge",
]
#: Instances one training job may use at most (the stack's MaxTrainingInstanceCount may be lower).
MAX_TRAINING_INSTANCE_COUNT: Final = 16

# CPU instance types of Batch Transform jobs (the serving image is the CPU inference DLC).
BATCH_INSTANCE_TYPES: Final[tuple[str, ...]] = (
    "ml.m5.large",
    "ml.m5.xlarge",
    "ml.m5.2xlarge",
    "ml.m5.4xlarge",
    "ml.c5.xlarge",
    "ml.c5.2xlarge",
    "ml.c5.4xlarge",
)
BatchInstanceType = Literal[
    "ml.m5.large",
    "ml.m5.xlarge",
    "ml.m5.2xlarge",
    "ml.m5.4xlarge",
    "ml.c5.xlarge",
    "ml.c5.2xlarge",
    "ml.c5.4xlarge",
]
DEFAULT_BATCH_INSTANCE_TYPE: Final = "ml.m5.xlarge"
#: Instances one Batch Transform job may use at most (the stack's MaxBatchInstanceCount may be lower).
MAX_BATCH_INSTANCE_COUNT: Final = 20
#: Where POST /batch reads input and writes output in the stack's bucket (the serving role may
#: read and write there and nowhere else but models/).
BATCH_INPUT_PREFIX: Final = "batch/input/"
BATCH_OUTPUT_PREFIX: Final = "batch/output/"
#: Where endpoints write their data capture (SageMaker's layout under it: <endpoint>/<variant>/
#: yyyy/mm/dd/hh/*.jsonl) and POST /feedback its ground truth (yyyy/mm/dd/hh/*.jsonl).
CAPTURE_PREFIX: Final = "capture/"
GROUND_TRUTH_PREFIX: Final = "ground-truth/"
#: The label set the endpoint serves now, as the deploy function records it when a model starts
#: serving; POST /feedback checks labels against it.
SERVING_LABELS_KEY: Final = "serving/labels.json"
#: Labellers whose feedback no retraining dataset takes (``textclf feedback quarantine``); the
#: monitor reads it too: ``{"labellers": {"<id>": {"since": ISO|null, "reason": str, "at": ISO}}}``.
QUARANTINE_KEY: Final = "feedback/quarantine.json"
#: Content-addressed feedback rows of retraining jobs: ``<sha256>.jsonl`` (and the manifests).
FEEDBACK_SETS_PREFIX: Final = "feedback-sets/"
#: Why a training job exists (the job's ``retrain_reason`` hyperparameter).
RetrainReason = Literal["manual", "schedule", "drift", "accuracy", "labels"]
#: The monitor's reports: one per window (``<prefix><window end ISO>.json``) and the latest.
MONITOR_REPORTS_PREFIX: Final = "monitoring/reports/"
MONITOR_LATEST_KEY: Final = "monitoring/latest.json"

# SageMaker training-job names: letters, digits and single/multiple hyphens, at most 63 characters.
TRAINING_JOB_NAME_PATTERN: Final = r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$"
#: The stack's job-name prefix (TrainingJobPrefix): lower case, at most 40 characters.
JOB_PREFIX_REGEX: Final = r"[a-z0-9](?:-*[a-z0-9]){0,39}"

#: What the predict function passes to InvokeEndpoint as ``InferenceId`` (SageMaker records it
#: in the endpoint's data capture): a uuid4 in hex, one per request.
INFERENCE_ID_REGEX: Final = r"[0-9a-f]{32}"
#: A prediction's id: ``<inference id>-<index in the request>`` for /predict and /explain, or
#: ``<transform job name>-<line index>`` for a Batch Transform output line (docs/api.md). POST
#: /feedback takes exactly these.
PREDICTION_ID_PATTERN: Final = (
    rf"^(?:{INFERENCE_ID_REGEX}|{JOB_PREFIX_REGEX}-batch-[0-9]{{12}}-[0-9a-f]{{3}})-(?:0|[1-9][0-9]{{0,8}})$"
)
PredictionId = Annotated[
    str,
    Field(
        max_length=80,
        pattern=PREDICTION_ID_PATTERN,
        description="Names this prediction for POST /feedback: `<inference id>-<index>`, the inference id "
        "(32 hex digits, one per request) being what the endpoint's data capture records.",
        examples=["0f8c2a9e4b7d4c1e9a3b5d7f1e2c4a6b-0"],
    ),
]


def _not_blank(value: str) -> str:
    # Whitespace-only headlines carry no signal; reject them instead of classifying noise.
    if not value.strip():
        raise ValueError("must not be blank")
    return value


# Texts are kept exactly as sent (no stripping): the model sees what the client asked about.
Headline = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_TEXT_CHARS,
        description="A text to classify, e.g. a news headline (1-20,000 characters, not only whitespace).",
        # Documents _not_blank (which gives the clearer message) for schema-driven clients.
        json_schema_extra={"pattern": r"\S"},
    ),
    AfterValidator(_not_blank),
]


# defer_build on every model (tests/unit/api/test_contract.py checks): a model's validator and
# serializer are built when it is first used -- once per Lambda container, by its first request --
# not at import. Each function uses a few of these models; the others' build is never paid.
class _Strict(BaseModel):
    # strict: "3" is not an integer and "true" is not a boolean -- wrong types are client errors.
    # extra=forbid: a misspelt field must be reported, not silently ignored.
    model_config = ConfigDict(strict=True, extra="forbid", defer_build=True)


def _predict_request_schema(schema: dict[str, Any]) -> None:
    """Exactly one of the two fields, neither of them null (pydantic documents ``X | None`` as
    nullable; here None only means "not sent")."""
    for prop in schema.get("properties", {}).values():
        options = prop.pop("anyOf", None)
        if options is not None:
            (kept,) = [o for o in options if o.get("type") != "null"]
            prop.update(kept)
        prop.pop("default", None)
    schema["oneOf"] = [{"required": ["text"]}, {"required": ["texts"]}]
    schema["examples"] = [
        {"text": "Fed raises interest rates by a quarter point"},
        {"texts": ["Apple unveils new iPhone", "Ebola outbreak spreads in West Africa"]},
    ]


class PredictRequest(_Strict):
    """Exactly one of ``text`` (one headline) or ``texts`` (a batch of 1-64 headlines)."""

    model_config = ConfigDict(json_schema_extra=lambda schema, _cls: _predict_request_schema(schema))

    # None only as "not sent": an explicit null is refused below, and the documented schema has
    # no null either (_without_null), so the OpenAPI document says exactly what the API accepts.
    text: Headline | None = None
    texts: (
        Annotated[
            list[Headline],
            Field(min_length=1, max_length=MAX_BATCH_TEXTS, description="1-64 headlines."),
        ]
        | None
    ) = None

    @model_validator(mode="after")
    def _exactly_one(self) -> PredictRequest:
        sent = {"text", "texts"} & self.model_fields_set
        if len(sent) != 1 or getattr(self, sent.pop()) is None:
            raise ValueError("send exactly one of 'text' (a string) or 'texts' (a list of strings)")
        return self

    def inputs(self) -> str | list[str]:
        """The endpoint payload's ``inputs``: a string for ``text``, a list for ``texts``."""
        if self.texts is not None:
            return list(self.texts)
        assert self.text is not None  # guaranteed by _exactly_one
        return self.text

    def count(self) -> int:
        return len(self.texts) if self.texts is not None else 1


LabelName = Annotated[
    str,
    Field(
        min_length=1,
        description="A label of the served model (one of the response's `labels`).",
        examples=[EXAMPLE_LABELS[0]],
    ),
]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
ServedLabels = Annotated[
    list[LabelName],
    Field(
        min_length=2,
        description="The served model's label set in class-id order (its `id2label`): every `label` "
        "is one of these and every `scores` has exactly these keys. It changes only when a model "
        "trained on another label set is deployed.",
        examples=[list(EXAMPLE_LABELS)],
    ),
]


class Prediction(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    prediction_id: PredictionId
    label: LabelName
    score: Annotated[float, Field(ge=0.0, le=1.0, description="Probability of `label`.")]
    scores: Annotated[
        dict[str, Probability],
        Field(description="Probability of every label of the served model (the keys are `labels`)."),
    ]

    @model_validator(mode="after")
    def _label_scored(self) -> Prediction:
        if self.label not in self.scores:
            raise ValueError(f"scores has no entry for the predicted label {self.label!r}")
        return self


def check_served_labels(labels: list[str], predictions: list[Prediction]) -> None:
    """Every prediction fits the label set the model reports: ``label`` in it, ``scores`` keyed by
    exactly its labels. Raises ValueError naming the first misfit (pydantic reports it)."""
    if len(set(labels)) != len(labels):
        raise ValueError(f"labels {labels} name a label twice")
    served = set(labels)
    for i, prediction in enumerate(predictions):
        where = f"prediction {i}" if len(predictions) > 1 else "the prediction"
        if prediction.label not in served:
            raise ValueError(f"{where}'s label {prediction.label!r} is not one of labels {labels}")
        if set(prediction.scores) != served:
            raise ValueError(f"{where}'s scores keys {sorted(prediction.scores)} are not labels {labels}")


class PredictResponse(BaseModel):
    """One prediction per input (in input order) and the served label set; also the endpoint's reply."""

    model_config = ConfigDict(
        extra="forbid",
        defer_build=True,
        json_schema_extra={
            "examples": [
                {
                    "predictions": [
                        {
                            "prediction_id": "0f8c2a9e4b7d4c1e9a3b5d7f1e2c4a6b-0",
                            "label": EXAMPLE_LABELS[0],
                            "score": 0.97,
                            "scores": dict(zip(EXAMPLE_LABELS, (0.97, 0.01, 0.01, 0.01), strict=True)),
                        }
                    ],
                    "labels": list(EXAMPLE_LABELS),
                    "model_version": "3",
                }
            ]
        },
    )

    predictions: list[Prediction]
    labels: ServedLabels
    model_version: str = Field(
        default="unversioned",
        description="The model version that answered: the Model Registry version the deploy function "
        "rolled out, or `sha256:<12 hex>` of a hand-deployed archive.",
    )

    @model_validator(mode="after")
    def _fits_labels(self) -> PredictResponse:
        check_served_labels(self.labels, self.predictions)
        return self


EndpointState = Annotated[
    str,
    Field(
        description="SageMaker EndpointStatus (InService, Creating, Updating, Failed, ...), "
        "`NotFound` when no endpoint has that name, `Unknown` when SageMaker could not be asked."
    ),
]


class ExplainRequest(_Strict):
    """One headline to classify and explain."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"text": "Ebola outbreak spreads in West Africa"}]}
    )

    text: Headline


class ExplainedToken(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    text: str = Field(
        description="A WordPiece (or BPE) piece as the tokenizer produced it; `##` continues a word."
    )
    special: bool = Field(description="A special token such as [CLS] or [SEP].")
    truncated: bool = Field(description="Past max_length: shown, never seen by the model.")


class LexicalEvidence(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    ngram: str
    weight: float = Field(description="Feature value x (weight for the label - mean weight for the others).")


class LexicalExplanation(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    toward: list[LexicalEvidence] = Field(
        description="N-grams of the headline pushing toward the label, strongest first."
    )
    against: list[LexicalEvidence] = Field(
        description="N-grams pushing toward other labels, strongest first."
    )


class ExplainResponse(Prediction):
    """The prediction `/predict` would give, and what it rests on. Also the endpoint's reply."""

    labels: ServedLabels
    model_version: str
    answered_by: str = Field(
        description="Which part of the served model answered (the cascade may skip the transformer)."
    )
    tokens: list[ExplainedToken] = Field(max_length=4096)
    attributions: list[float] = Field(
        description="Per token, aligned with `tokens`: the drop in the transformer's log-odds of `label` "
        "when the token is left out (occlusion); 0 for special and truncated tokens."
    )
    attribution_method: str
    lexical: LexicalExplanation | None = Field(description="Null for a model without a lexical head.")

    @model_validator(mode="after")
    def _aligned(self) -> ExplainResponse:
        check_served_labels(self.labels, [self])
        if len(self.attributions) != len(self.tokens):
            raise ValueError(f"{len(self.attributions)} attributions for {len(self.tokens)} tokens")
        return self


class EndpointHealth(BaseModel):
    model_config = ConfigDict(defer_build=True)

    name: str
    status: EndpointState


class HealthResponse(BaseModel):
    """200 with ``ok`` when the endpoint is InService; 503 with ``unavailable`` otherwise."""

    model_config = ConfigDict(defer_build=True)

    status: Literal["ok", "unavailable"]
    endpoint: EndpointHealth
    model_version: str | None = Field(
        default=None, description="Version the endpoint serves (its SageMaker Model's TEXTCLF_MODEL_VERSION)."
    )


class TrainRequest(_Strict):
    """Every field is optional; omitted hyperparameters take the defaults shown."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"epochs": 3, "learning_rate": 5e-5, "use_spot": True}]}
    )

    # Defaults and bounds: hyperparameters.py (a copy of model/hyperparameters.py, which train.py reads).
    # Whole epochs through the API (train.py also takes fractions, e.g. for a quick local run).
    epochs: Annotated[int, Field(**hp.field_bounds("epochs", whole=True))] = int(hp.default("epochs"))
    learning_rate: Annotated[float, Field(**hp.field_bounds("learning_rate"))] = hp.default("learning_rate")
    batch_size: Annotated[int, Field(**hp.field_bounds("batch_size"))] = hp.default("batch_size")
    max_length: Annotated[
        int | None,
        Field(
            **hp.field_bounds("max_length"),
            description="Token limit; omitted: the dataset's EDA choice (datasets/latest.json "
            f"training_defaults.max_length), else train.py's {hp.default('max_length')}.",
        ),
    ] = None
    truncation: Annotated[
        Truncation | None,
        Field(
            description="Which tokens of a text longer than max_length are kept (training and serving "
            f"alike): head, tail, or head+tail (a quarter from the start, the rest from the end); "
            f"omitted: train.py's {hp.default('truncation')}.",
        ),
    ] = None
    max_train_samples: Annotated[
        int | None,
        Field(
            **hp.field_bounds("max_train_samples", zero_by_omission=True),
            description="Train on a sample of this size; omitted: all rows.",
        ),
    ] = None
    base_model: Annotated[
        BaseModelName | None, Field(description="Omitted: the stack's BaseModel parameter.")
    ] = None
    instance_type: Annotated[
        GpuInstanceType | None, Field(description="Omitted: the stack's TrainingInstanceType parameter.")
    ] = None
    use_spot: Annotated[
        bool, Field(description="Managed spot training (checkpointed to S3, resumes after interruption).")
    ] = False
    instance_count: Annotated[
        int,
        Field(
            ge=1,
            le=MAX_TRAINING_INSTANCE_COUNT,
            description="Instances of the job (at most the stack's MaxTrainingInstanceCount). With more "
            "than one GPU in all, train.py runs under torchrun, one process per GPU: `batch_size` is per "
            "GPU, so the effective batch is batch_size x GPUs; `learning_rate` is used as given.",
        ),
    ] = 1
    allow_label_change: Annotated[
        bool,
        Field(
            description="Let the deploy gate replace the serving model with one whose label set (or "
            "label order) differs, e.g. after training on another dataset. Omitted or false: such a "
            "model is rejected, with both label sets in GET /train/{job_name}'s deployment reason."
        ),
    ] = False


class TrainStartedResponse(BaseModel):
    model_config = ConfigDict(defer_build=True)

    training_job_name: str
    training_job_arn: str
    status: str = Field(description="SageMaker TrainingJobStatus; `InProgress` right after the start.")
    dataset_uri: str = Field(description="The dataset the job trains on (from the dataset pointer).")
    processes: int = Field(default=1, description="Training processes: instance_count x GPUs per instance.")
    effective_batch_size: int | None = Field(
        default=None, description="Rows per optimiser step over all processes: batch_size x processes."
    )


DeploymentStatus = Literal["pending", "deploying", "deployed", "rejected", "failed", "rolled_back"]


class Deployment(BaseModel):
    model_config = ConfigDict(defer_build=True)

    status: DeploymentStatus = Field(
        description="pending: being evaluated; deploying: rollout under way; deployed: serving (or served "
        "and was superseded); rejected: the gate refused it; failed: job or rollout failed; rolled_back: "
        "the endpoint returned to the previous model."
    )
    reason: str | None = Field(default=None, description="Why, in one line (gate figures, failure).")
    model_version: str | None = Field(default=None, description="Model Registry version, once registered.")


class TrainStatusResponse(BaseModel):
    model_config = ConfigDict(defer_build=True)

    training_job_name: str
    training_job_arn: str
    status: str = Field(description="InProgress, Completed, Failed, Stopping or Stopped.")
    secondary_status: str | None = None
    failure_reason: str | None = None
    metrics: dict[str, float] = Field(
        default_factory=dict, description="Final value of each metric train.py printed."
    )
    model_artifact_uri: str | None = Field(default=None, description="s3://.../model.tar.gz once completed.")
    instance_type: str | None = None
    instance_count: int | None = None
    use_spot: bool = False
    created_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    billable_seconds: int | None = None
    reason: RetrainReason = Field(
        default="manual",
        description="Why the job exists: manual (POST /train), schedule, or a monitor alarm that "
        "started a retrain on feedback: drift, accuracy, labels.",
    )
    deployment: Deployment | None = Field(
        default=None, description="What the deploy function did with the job's model (null: not yet seen)."
    )


class ErrorDetail(BaseModel):
    model_config = ConfigDict(defer_build=True)

    field: str = Field(description="Where the problem is, e.g. `texts[3]` or `body`.")
    message: str


class ErrorResponse(BaseModel):
    """Body of every 4xx/5xx the Lambda functions return."""

    model_config = ConfigDict(defer_build=True)

    message: str = Field(description="One line naming what is wrong.")
    error: str = Field(description="Machine-readable kind, e.g. ValidationError, ModelError, Timeout.")
    details: list[ErrorDetail] | None = None
    request_id: str | None = None


def error_body(
    message: str, error: str, details: list[ErrorDetail] | None = None, request_id: str | None = None
) -> dict[str, Any]:
    """An :class:`ErrorResponse` as a JSON-ready dict (``details``/``request_id`` only when known)."""
    return ErrorResponse(message=message, error=error, details=details, request_id=request_id).model_dump(
        exclude_none=True
    )


class BatchRequest(_Strict):
    """Score a JSON Lines file (or every file under a prefix) with the model the endpoint serves."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"input_uri": "s3://my-bucket/batch/input/headlines.jsonl"}]}
    )

    input_uri: Annotated[
        str,
        Field(
            min_length=6,
            max_length=1024,
            pattern=r"^s3://\S+$",
            description=f"s3://<stack bucket>/{BATCH_INPUT_PREFIX}... : a JSON Lines file or a prefix "
            'of them; each line a JSON string or {"text": "..."}.',
        ),
    ]
    instance_type: Annotated[BatchInstanceType, Field(description="CPU instance type of the job.")] = (
        DEFAULT_BATCH_INSTANCE_TYPE
    )
    instance_count: Annotated[
        int,
        Field(
            ge=1,
            le=MAX_BATCH_INSTANCE_COUNT,
            description="Instances scoring in parallel, files spread over them (at most the stack's "
            "MaxBatchInstanceCount).",
        ),
    ] = 1


class BatchStartedResponse(BaseModel):
    model_config = ConfigDict(defer_build=True)

    transform_job_name: str
    transform_job_arn: str
    status: str = Field(description="SageMaker TransformJobStatus; `InProgress` right after the start.")
    model_name: str = Field(description="The SageMaker Model the endpoint serves, which the job runs.")
    model_version: str | None = Field(default=None, description="Its Model Registry version, when known.")
    input_uri: str
    output_uri: str = Field(description="Prefix of the results: one `<input file>.out` JSON Lines file each.")


class BatchStatusResponse(BaseModel):
    model_config = ConfigDict(defer_build=True)

    transform_job_name: str
    transform_job_arn: str
    status: str = Field(description="InProgress, Completed, Failed, Stopping or Stopped.")
    failure_reason: str | None = None
    model_name: str | None = None
    input_uri: str | None = None
    output_uri: str | None = None
    instance_type: str | None = None
    instance_count: int | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None


#: POST /feedback: items per request (the contract's 1-1,000).
MAX_FEEDBACK_ITEMS: Final = 1000
#: Longer than any label name a model could be trained on (one of the served set is checked too).
MAX_LABEL_CHARS: Final = 256


class FeedbackItem(_Strict):
    prediction_id: PredictionId
    label: Annotated[
        str,
        Field(
            min_length=1,
            max_length=MAX_LABEL_CHARS,
            description="The right label: one of the served model's `labels`.",
            examples=[EXAMPLE_LABELS[1]],
        ),
    ]


class FeedbackRequest(_Strict):
    """The right labels of earlier predictions (ground truth), by prediction id."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "items": [
                        {"prediction_id": "0f8c2a9e4b7d4c1e9a3b5d7f1e2c4a6b-0", "label": EXAMPLE_LABELS[1]},
                        {"prediction_id": "0f8c2a9e4b7d4c1e9a3b5d7f1e2c4a6b-1", "label": EXAMPLE_LABELS[3]},
                    ]
                }
            ]
        }
    )

    items: Annotated[
        list[FeedbackItem],
        Field(
            min_length=1,
            max_length=MAX_FEEDBACK_ITEMS,
            description="1-1,000 labels; an id sent twice keeps its last label and counts once.",
        ),
    ]


class FeedbackResponse(BaseModel):
    """What was stored: one ground-truth line per distinct prediction id."""

    model_config = ConfigDict(defer_build=True)

    accepted: int = Field(description="Distinct prediction ids stored (ids the capture never saw included).")
    duplicates_in_request: int = Field(
        description="Items whose id came again later in the request (the last won)."
    )
    labels: dict[str, int] = Field(description="Accepted items per label.")
    model_version: str | None = Field(
        default=None, description="The served version whose label set the labels were checked against."
    )
    labeller: str = Field(description="Who the labels are recorded as: the API key id or the IAM principal.")
    received_at: datetime


# --------------------------------------------------------------------------------------------
# GET /monitor: the monitor's report of one window (logic/monitor.py writes it)
# --------------------------------------------------------------------------------------------


class MonitorWindow(BaseModel):
    model_config = ConfigDict(defer_build=True)

    start: datetime
    end: datetime
    minutes: int


class LabelDrift(BaseModel):
    """The predicted-label distribution of the window against the baseline's (validation) one."""

    model_config = ConfigDict(defer_build=True)

    counts: dict[str, int] = Field(description="Predictions per label in the window.")
    shares: dict[str, float]
    baseline_shares: dict[str, float] | None = Field(
        default=None, description="The baseline's predicted-label prior."
    )
    psi: float | None = Field(
        default=None, description="Population stability index against the baseline (None: no baseline)."
    )
    chi_square: float | None = None
    chi_square_dof: int | None = None
    chi_square_p: float | None = Field(
        default=None, description="Goodness-of-fit p-value of the counts against the baseline."
    )


class Confidence(BaseModel):
    model_config = ConfigDict(defer_build=True)

    mean_top_probability: float | None
    baseline_mean_top_probability: float | None
    drop: float | None = Field(description="Baseline mean minus the window's (positive: less confident).")


class Novelty(BaseModel):
    model_config = ConfigDict(defer_build=True)

    share: float | None = Field(
        description="Share of the window's word tokens not in the training vocabulary."
    )
    tokens: int
    unseen: int
    token_length_quantiles: dict[str, float] | None
    baseline_token_length_quantiles: dict[str, float] | None


class LiveAccuracy(BaseModel):
    """Labels received in the window joined to captured predictions (quarantined labellers left out)."""

    model_config = ConfigDict(defer_build=True)

    labels: int = Field(description="Distinct prediction ids labelled in the window (last label wins).")
    joined: int = Field(description="Of those, labels whose prediction is in the capture.")
    unknown_ids: int = Field(
        description="Labels whose prediction id the capture never saw (sampled, or foreign)."
    )
    quarantined: int = Field(description="Labels of quarantined labellers, left out.")
    accuracy: float | None
    macro_f1: float | None
    wilson_low: float | None
    wilson_high: float | None
    published: bool = Field(description="Whether LiveAccuracy was published (joined >= MonitorMinLabels).")


class LabelsSinceTraining(BaseModel):
    model_config = ConfigDict(defer_build=True)

    count: int = Field(description="Distinct prediction ids labelled since `since` (not quarantined).")
    since: datetime | None
    since_source: str = Field(
        description="feedback_until | later_retrain (a version after the serving one, refused or "
        "rolling out, took labels until then) | package_created | published_at | none"
    )


class LabellerAgreement(BaseModel):
    model_config = ConfigDict(defer_build=True)

    labeller: str
    labels: int = Field(description="Distinct prediction ids this labeller labelled in the window.")
    confident: int = Field(description="Of those, predictions the model made with score >= 0.9.")
    disagree_with_confident: int
    disagreement_rate: float | None
    shared_with_others: int = Field(
        description="Label pairs with another labeller on the same prediction id."
    )
    agreement_with_others: float | None
    quarantined: bool
    flagged: bool
    reason: str | None = None


class MonitorReport(BaseModel):
    """One window of production: volume, drift against the serving model's baseline, live accuracy."""

    model_config = ConfigDict(defer_build=True)

    stack: str
    window: MonitorWindow
    generated_at: datetime
    model_version: str | None
    baseline_available: bool
    predictions: int
    capture: dict[str, int] = Field(description="files, lines, unreadable (torn lines skipped), without_id.")
    label_drift: LabelDrift
    confidence: Confidence
    novelty: Novelty
    live: LiveAccuracy
    labels_since_training: LabelsSinceTraining
    labellers: list[LabellerAgreement]
    metrics: dict[str, float] = Field(
        description="What was published to CloudWatch (namespace textclf, dimension Stack); a metric "
        "the window cannot measure is absent."
    )
    notes: list[str] = Field(default_factory=list)
