"""Read the API's routes and the functions' environment from ``template.yaml``.

The local API must expose exactly what the SAM template deploys, so nothing here is listed by
hand: routes come from each function's ``Api`` events, handlers from ``Handler``, timeouts and
environment variables from ``Globals.Function`` merged with the function's own properties.
CloudFormation intrinsics in the environment are resolved to their local stand-ins
(parameters → local overrides or defaults, the bucket → the local bucket, roles → local ARNs).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from textclf.errors import UserError

log = logging.getLogger(__name__)

_INTRINSICS = (
    "And",
    "Base64",
    "Cidr",
    "Condition",
    "Equals",
    "FindInMap",
    "GetAtt",
    "GetAZs",
    "If",
    "ImportValue",
    "Join",
    "Not",
    "Or",
    "Ref",
    "Select",
    "Split",
    "Sub",
    "Transform",
)


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that reads CloudFormation short forms (``!Ref X``) as their long forms."""


def _construct(tag: str) -> Any:
    key = "Ref" if tag == "Ref" else f"Fn::{tag}"

    def build(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if tag == "GetAtt" and isinstance(value, str):
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        elif isinstance(node, yaml.MappingNode):
            value = loader.construct_mapping(node, deep=True)
        else:
            raise yaml.constructor.ConstructorError(
                None, None, f"unexpected node for !{tag}", node.start_mark
            )
        return {key: value}

    return build


for _tag in _INTRINSICS:
    _CfnLoader.add_constructor(f"!{_tag}", _construct(_tag))


def load_template(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise UserError(f"no SAM template at {path} (pass --template)")
    with path.open(encoding="utf-8") as fh:
        data = yaml.load(fh, Loader=_CfnLoader)  # a SafeLoader subclass: no object construction
    if not isinstance(data, dict) or "Resources" not in data:
        raise UserError(f"{path} is not a SAM/CloudFormation template (no Resources)")
    return data


@dataclass(frozen=True)
class Route:
    """One API Gateway method: ``POST /predict`` → function ``PredictFunction``."""

    method: str
    path: str  # the resource path, with {placeholders}
    function: str  # logical id
    handler: str  # "module.attribute"
    timeout_s: float
    memory_mb: int
    auth: str | None  # "AWS_IAM" or None
    pattern: re.Pattern[str] = field(compare=False, repr=False)
    #: The method needs an ``x-api-key`` of the stack's usage plan (API Gateway answers 403 without).
    api_key_required: bool = False

    def match(self, path: str) -> dict[str, str] | None:
        found = self.pattern.fullmatch(path)
        return found.groupdict() if found else None


def _path_regex(path: str) -> re.Pattern[str]:
    # API Gateway: {name} matches one path segment, {name+} the rest of the path.
    parts = re.split(r"(\{[^}]+\})", path)
    out = []
    for part in parts:
        if part.startswith("{") and part.endswith("}"):
            name = part[1:-1]
            if name.endswith("+"):
                out.append(f"(?P<{name[:-1]}>.+)")
            else:
                out.append(f"(?P<{name}>[^/]+)")
        else:
            out.append(re.escape(part))
    return re.compile("".join(out))


def _function_property(template: Mapping[str, Any], props: Mapping[str, Any], name: str) -> Any:
    if name in props:
        return props[name]
    return template.get("Globals", {}).get("Function", {}).get(name)


def routes(template: Mapping[str, Any], parameters: Mapping[str, str] | None = None) -> list[Route]:
    """Every ``Api`` event of every ``AWS::Serverless::Function``, most specific paths first.

    ``Auth`` is read as deployed: intrinsics (``Fn::If`` on a parameter, resolved by the
    LanguageExtensions transform in AWS) are evaluated with ``parameters`` over the defaults.
    """
    found: list[Route] = []
    resolver = _Resolver(
        template, LocalResources("local", "000000000000", "local", "local", dict(parameters or {}))
    )
    api_auth = template.get("Globals", {}).get("Api", {}).get("Auth", {}) or {}
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        props = resource.get("Properties", {}) or {}
        handler = props.get("Handler")
        for event in (props.get("Events") or {}).values():
            if event.get("Type") != "Api":
                continue
            ev = event.get("Properties", {}) or {}
            event_auth = ev.get("Auth") or {}
            auth = resolver.resolve(event_auth.get("Authorizer") or api_auth.get("DefaultAuthorizer"))
            key_required = resolver.resolve(event_auth.get("ApiKeyRequired", api_auth.get("ApiKeyRequired")))
            found.append(
                Route(
                    method=str(ev["Method"]).upper(),
                    path=str(ev["Path"]),
                    function=logical_id,
                    handler=str(handler),
                    timeout_s=float(_function_property(template, props, "Timeout") or 3),
                    memory_mb=int(_function_property(template, props, "MemorySize") or 128),
                    auth=auth if auth and auth != "NONE" else None,
                    pattern=_path_regex(str(ev["Path"])),
                    api_key_required=key_required.lower() == "true",
                )
            )
    if not found:
        raise UserError("template.yaml declares no Api events: nothing to serve")
    # Literal paths win over placeholders, as in API Gateway (/train/status before /train/{job}).
    found.sort(key=lambda r: (r.path.count("{"), -len(r.path)))
    return found


@dataclass(frozen=True)
class FunctionSpec:
    """An ``AWS::Serverless::Function``: what the local stack needs to run it."""

    name: str
    handler: str
    timeout_s: float
    memory_mb: int


def functions(template: Mapping[str, Any]) -> list[FunctionSpec]:
    """Every function of the template, API-backed or not (the deploy function has no route)."""
    found = []
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        props = resource.get("Properties", {}) or {}
        found.append(
            FunctionSpec(
                name=logical_id,
                handler=str(props.get("Handler")),
                timeout_s=float(_function_property(template, props, "Timeout") or 3),
                memory_mb=int(_function_property(template, props, "MemorySize") or 128),
            )
        )
    return found


@dataclass(frozen=True)
class EventRule:
    """An ``EventBridgeRule`` event of a function: its pattern with the intrinsics resolved."""

    function: str
    name: str
    pattern: dict[str, Any]


@dataclass
class LocalResources:
    """What the template's references become locally."""

    region: str
    account_id: str
    bucket_name: str
    role_arn: str
    parameters: dict[str, str]  # overrides of template parameters (e.g. the endpoint name)


#: Resource types whose Ref is their name, and the property that sets it.
_NAME_PROPERTIES = {
    "AWS::DynamoDB::Table": "TableName",
    "AWS::CloudWatch::Alarm": "AlarmName",
    "AWS::SageMaker::ModelPackageGroup": "ModelPackageGroupName",
    "AWS::ECR::Repository": "RepositoryName",
}


class _Resolver:
    def __init__(self, template: Mapping[str, Any], local: LocalResources) -> None:
        self.template = template
        self.local = local
        self.params = {
            name: str(spec.get("Default", ""))
            for name, spec in (template.get("Parameters") or {}).items()
            if isinstance(spec, dict)
        }
        self.params.update(local.parameters)
        self.pseudo = {
            "AWS::Region": local.region,
            "AWS::AccountId": local.account_id,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": "textclf-local",
            "AWS::NoValue": "",
        }

    def ref(self, name: str) -> str:
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.params:
            return self.params[name]
        resource = self.template.get("Resources", {}).get(name, {})
        rtype = resource.get("Type", "")
        if rtype == "AWS::S3::Bucket":
            return self.local.bucket_name
        if rtype == "AWS::IAM::Role":
            return self.local.role_arn.rsplit("/", 1)[-1]
        named = _NAME_PROPERTIES.get(rtype)
        if named is not None:
            # Ref gives the resource's name: the one the template sets, else CloudFormation's
            # stack-prefixed one (the local stack creates it under that name in moto).
            explicit = (resource.get("Properties") or {}).get(named)
            if explicit is not None:
                return self.resolve(explicit)
            return f"{self.pseudo['AWS::StackName']}-{re.sub(r'(?<!^)(?=[A-Z])', '-', name).lower()}"
        # Anything else has no local counterpart; a recognisable name beats a crash.
        return f"local-{name}"

    def getatt(self, name: str, attribute: str) -> str:
        rtype = self.template.get("Resources", {}).get(name, {}).get("Type", "")
        if rtype == "AWS::IAM::Role" and attribute == "Arn":
            return self.local.role_arn
        if rtype == "AWS::S3::Bucket":
            if attribute == "Arn":
                return f"arn:aws:s3:::{self.local.bucket_name}"
            return self.local.bucket_name
        if rtype == "AWS::ECR::Repository":
            # In moto's ECR, which the local deploy function asks for the newest image.
            repository, region, account = self.ref(name), self.local.region, self.local.account_id
            if attribute == "Arn":
                return f"arn:aws:ecr:{region}:{account}:repository/{repository}"
            return f"{account}.dkr.ecr.{region}.amazonaws.com/{repository}"
        return f"local-{name}-{attribute}"

    def sub(self, value: Any) -> str:
        text, variables = (value[0], value[1]) if isinstance(value, list) else (value, {})

        def replace(match: re.Match[str]) -> str:
            key = match.group(1)
            if key in variables:
                return self.resolve(variables[key])
            if "." in key and not key.startswith("AWS::"):
                name, attribute = key.split(".", 1)
                return self.getatt(name, attribute)
            return self.ref(key)

        return re.sub(r"\$\{([^}!]+)\}", replace, str(text))

    def condition(self, name: str) -> bool:
        return self.truth(self.template.get("Conditions", {})[name])

    def truth(self, value: Any) -> bool:
        """Evaluate a condition expression (Fn::Equals/Not/And/Or/Condition)."""
        ((key, arg),) = value.items()
        if key == "Fn::Equals":
            return self.resolve(arg[0]) == self.resolve(arg[1])
        if key == "Fn::Not":
            return not self.truth(arg[0])
        if key == "Fn::And":
            return all(self.truth(v) for v in arg)
        if key == "Fn::Or":
            return any(self.truth(v) for v in arg)
        if key == "Condition":
            return self.condition(str(arg))
        raise UserError(f"template.yaml: cannot evaluate condition {value!r} locally")

    def deep(self, value: Any) -> Any:
        """``resolve`` inside a structure (lists and maps of plain values and intrinsics)."""
        if isinstance(value, dict):
            if len(value) == 1 and (next(iter(value)) == "Ref" or next(iter(value)).startswith("Fn::")):
                return self.resolve(value)
            return {k: self.deep(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.deep(v) for v in value]
        return value

    def resolve(self, value: Any) -> str:
        if isinstance(value, dict) and len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self.ref(str(arg))
            if key == "Fn::GetAtt":
                name, attribute = arg if isinstance(arg, list) else str(arg).split(".", 1)
                return self.getatt(str(name), str(attribute))
            if key == "Fn::Sub":
                return self.sub(arg)
            if key == "Fn::Join":
                return str(arg[0]).join(self.resolve(v) for v in arg[1])
            if key == "Fn::If":
                return self.resolve(arg[1] if self.condition(str(arg[0])) else arg[2])
            if key == "Fn::FindInMap":
                mapping = self.template.get("Mappings", {})[arg[0]]
                return self.resolve(mapping[self.resolve(arg[1])][self.resolve(arg[2])])
            if key == "Fn::Select":
                return self.resolve(arg[1][int(self.resolve(arg[0]))])
        if isinstance(value, bool):
            return "true" if value else "false"
        return "" if value is None else str(value)


def check_parameters(template: Mapping[str, Any], overrides: Mapping[str, str]) -> None:
    """``--parameter-overrides`` must name the template's parameters with values it allows."""
    declared = template.get("Parameters") or {}
    for name, value in overrides.items():
        spec = declared.get(name)
        if not isinstance(spec, dict):
            raise UserError(f"--parameter-overrides: template.yaml has no parameter {name!r}")
        allowed = spec.get("AllowedValues")
        if allowed is not None and value not in [str(a) for a in allowed]:
            raise UserError(f"--parameter-overrides: {name}={value!r} is not one of {allowed}")
        if spec.get("Type") == "Number":
            try:
                number = float(value)
            except ValueError:
                raise UserError(f"--parameter-overrides: {name}={value!r} is not a number") from None
            low, high = spec.get("MinValue"), spec.get("MaxValue")
            if (low is not None and number < float(low)) or (high is not None and number > float(high)):
                raise UserError(f"--parameter-overrides: {name}={value} is outside {low}..{high}")


def function_environment(template: Mapping[str, Any], function: str, local: LocalResources) -> dict[str, str]:
    """The environment AWS would give ``function``: Globals merged with its own variables."""
    resolver = _Resolver(template, local)
    global_vars = (
        template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {}) or {}
    )
    props = template["Resources"][function].get("Properties", {}) or {}
    own_vars = (props.get("Environment") or {}).get("Variables", {}) or {}
    merged = {**global_vars, **own_vars}
    return {name: resolver.resolve(value) for name, value in merged.items()}


def _events(template: Mapping[str, Any], kind: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(function, event name, event properties) of every function event of type ``kind``."""
    found = []
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        for name, event in ((resource.get("Properties") or {}).get("Events") or {}).items():
            if event.get("Type") == kind:
                found.append((logical_id, str(name), event.get("Properties") or {}))
    return found


def event_rules(template: Mapping[str, Any], local: LocalResources) -> list[EventRule]:
    """Every ``EventBridgeRule`` event, patterns resolved as CloudFormation would."""
    resolver = _Resolver(template, local)
    return [
        EventRule(function=function, name=name, pattern=resolver.deep(props.get("Pattern") or {}))
        for function, name, props in _events(template, "EventBridgeRule")
    ]


@dataclass(frozen=True)
class ScheduleRule:
    """A ``Schedule`` event of a function: its rate expression with the parameters resolved."""

    function: str
    name: str
    expression: str


def schedules(template: Mapping[str, Any], local: LocalResources) -> list[ScheduleRule]:
    """Every ``Schedule`` event (an EventBridge scheduled rule in AWS), expressions resolved."""
    resolver = _Resolver(template, local)
    return [
        ScheduleRule(function=function, name=name, expression=resolver.resolve(props.get("Schedule")))
        for function, name, props in _events(template, "Schedule")
    ]


@dataclass(frozen=True)
class AlarmSpec:
    """An ``AWS::CloudWatch::Alarm`` on one metric, as deployed (names and thresholds resolved)."""

    name: str
    description: str
    namespace: str
    metric: str
    dimensions: dict[str, str]
    statistic: str
    period: int
    threshold: float
    comparison: str
    treat_missing_data: str


def alarms(template: Mapping[str, Any], local: LocalResources) -> list[AlarmSpec]:
    resolver = _Resolver(template, local)
    found = []
    for resource in template["Resources"].values():
        if resource.get("Type") != "AWS::CloudWatch::Alarm":
            continue
        props = resource.get("Properties") or {}
        found.append(
            AlarmSpec(
                name=resolver.resolve(props["AlarmName"]),
                description=resolver.resolve(props.get("AlarmDescription", "")),
                namespace=resolver.resolve(props["Namespace"]),
                metric=resolver.resolve(props["MetricName"]),
                dimensions={
                    resolver.resolve(d["Name"]): resolver.resolve(d["Value"])
                    for d in props.get("Dimensions", [])
                },
                statistic=resolver.resolve(props.get("Statistic") or props.get("ExtendedStatistic")),
                period=int(resolver.resolve(props.get("Period", 60))),
                threshold=float(resolver.resolve(props["Threshold"])),
                comparison=resolver.resolve(props["ComparisonOperator"]),
                treat_missing_data=resolver.resolve(props.get("TreatMissingData", "missing")),
            )
        )
    return found


def stage_name(template: Mapping[str, Any], local: LocalResources) -> str:
    """The REST API's stage (``StageName`` of the ``AWS::Serverless::Api``), ``Prod`` by default."""
    resolver = _Resolver(template, local)
    for resource in template["Resources"].values():
        if resource.get("Type") == "AWS::Serverless::Api":
            stage = (resource.get("Properties") or {}).get("StageName")
            if stage is not None:
                return resolver.resolve(stage)
    return "Prod"


@dataclass(frozen=True)
class GatewayResponse:
    """An ``AWS::Serverless::Api`` ``GatewayResponses`` entry: API Gateway's own error shape."""

    templates: dict[str, str]
    headers: dict[str, str]

    def render(self, *, message: str, response_type: str, request_id: str) -> str | None:
        """The ``application/json`` template with the ``$context`` variables it may use filled in."""
        text = self.templates.get("application/json")
        if text is None:
            return None
        for variable, value in (
            ("$context.error.messageString", json.dumps(message)),
            ("$context.error.message", message),
            ("$context.error.responseType", response_type),
            ("$context.requestId", request_id),
        ):
            text = text.replace(variable, value)
        return text


def gateway_responses(template: Mapping[str, Any]) -> dict[str, GatewayResponse]:
    """Response type (``DEFAULT_4XX``, ``MISSING_AUTHENTICATION_TOKEN``, ...) → its customisation."""
    for resource in template["Resources"].values():
        if resource.get("Type") != "AWS::Serverless::Api":
            continue
        found: dict[str, GatewayResponse] = {}
        for response_type, spec in ((resource.get("Properties") or {}).get("GatewayResponses") or {}).items():
            headers = (spec.get("ResponseParameters") or {}).get("Headers") or {}
            found[str(response_type)] = GatewayResponse(
                templates={str(k): str(v) for k, v in (spec.get("ResponseTemplates") or {}).items()},
                # Header values are API Gateway expressions; static ones are quoted: "'1'".
                headers={str(k): str(v).strip("'") for k, v in headers.items()},
            )
        return found
    return {}
