"""Reads template.yaml (SAM) and answers what the local cloud needs to know.

The template is the single source of truth: functions (code, handler, environment, timeout,
memory), their API routes, Function URLs and SQS event sources, and the buckets, tables and
queues to provision. Intrinsic functions are resolved for a local stack (name, account,
region); dynamic references (``{{resolve:...}}``) are answered by a local resolver.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_STACK = "imgclf"
# moto's account, for a template read with no endpoint to ask (tests, tools); the local
# cloud always resolves it with the account its endpoint names (provision.endpoint_account).
DEFAULT_ACCOUNT = "123456789012"
DEFAULT_REGION = "us-east-1"
IMPLICIT_API = "ServerlessRestApi"

# SAM defaults, used when neither the function nor Globals says otherwise.
DEFAULT_TIMEOUT = 3
DEFAULT_MEMORY = 128
DEFAULT_SQS_BATCH_SIZE = 10

_NO_VALUE = object()
# The function properties that matter for running it (policies, tracing... do not).
_RUN_PROPERTIES = (
    "PackageType",
    "ImageConfig",
    "CodeUri",
    "Handler",
    "Runtime",
    "Timeout",
    "MemorySize",
    "Environment",
    "FunctionUrlConfig",
    "FunctionName",
)
_DYNAMIC_REFERENCE = re.compile(r"\{\{resolve:([a-z-]+):([^}]*)\}\}")


class TemplateError(Exception):
    """The template uses something the local cloud cannot resolve."""


class _CfnLoader(yaml.SafeLoader):
    """A YAML loader that understands CloudFormation's short-form tags (!Ref, !Sub, ...)."""


def _construct_tag(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "Condition":
        return {"Condition": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{tag_suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def load_yaml(path: Path) -> dict:
    """Parse a CloudFormation/SAM YAML file, short-form tags included, into plain data."""
    with open(path, encoding="utf-8") as handle:
        data = yaml.load(handle, Loader=_CfnLoader)
    if not isinstance(data, dict) or "Resources" not in data:
        raise TemplateError(f"{path} is not a CloudFormation template (no Resources)")
    return data


@dataclass(frozen=True)
class Cors:
    """An API's CORS settings, as the preflight (OPTIONS) reply sends them."""

    allow_origin: str
    allow_methods: str | None = None
    allow_headers: str | None = None
    max_age: str | None = None
    allow_credentials: bool = False

    def headers(self) -> dict[str, str]:
        """The Access-Control-* headers of the preflight reply."""
        out = {"Access-Control-Allow-Origin": self.allow_origin}
        if self.allow_methods:
            out["Access-Control-Allow-Methods"] = self.allow_methods
        if self.allow_headers:
            out["Access-Control-Allow-Headers"] = self.allow_headers
        if self.max_age:
            out["Access-Control-Max-Age"] = self.max_age
        if self.allow_credentials:
            out["Access-Control-Allow-Credentials"] = "true"
        return out


@dataclass(frozen=True)
class RestApi:
    """An AWS::Serverless::Api (or SAM's implicit one)."""

    logical_id: str
    stage: str
    cors: Cors | None
    binary_media_types: tuple[str, ...] = ()


@dataclass(frozen=True)
class ApiRoute:
    """One Api event: an HTTP method on a resource path, served by a function."""

    function: str
    event: str
    api: str
    path: str
    method: str  # upper case, or ANY


@dataclass(frozen=True)
class SqsSource:
    """One SQS event source mapping of a function."""

    function: str
    event: str
    queue: str  # logical id
    queue_name: str
    queue_arn: str
    batch_size: int
    batching_window: int
    report_batch_item_failures: bool
    enabled: bool = True


@dataclass
class FunctionSpec:
    """Everything needed to run one function locally."""

    logical_id: str
    name: str
    code_dir: Path
    handler: str
    runtime: str
    package_type: str
    timeout: int
    memory: int
    environment: dict[str, str]
    layers: list[Path]
    function_url: bool
    routes: list[ApiRoute] = field(default_factory=list)
    sqs_sources: list[SqsSource] = field(default_factory=list)

    @property
    def is_http(self) -> bool:
        """Whether the function answers HTTP (API routes or a Function URL)."""
        return bool(self.routes) or self.function_url


class Template:
    """A SAM template resolved for one local stack."""

    def __init__(
        self,
        path: Path,
        *,
        code_root: Path | None = None,
        stack_name: str = DEFAULT_STACK,
        account_id: str = DEFAULT_ACCOUNT,
        region: str = DEFAULT_REGION,
        parameters: Mapping[str, str] | None = None,
        dynamic_references: Callable[[str, str], str] | None = None,
        sqs_endpoint: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.code_root = Path(code_root) if code_root else self.path.parent
        self.stack_name = stack_name
        self.account_id = account_id
        self.region = region
        self.data = load_yaml(self.path)
        self.resources: dict[str, dict] = self.data["Resources"]
        self._parameter_overrides = dict(parameters or {})
        self._dynamic_references = dynamic_references
        self._sqs_endpoint = (sqs_endpoint or f"https://sqs.{region}.amazonaws.com").rstrip("/")
        self._conditions: dict[str, bool] = {}

    # ---- resources ---------------------------------------------------------------------

    def resources_of_type(self, resource_type: str) -> dict[str, dict]:
        """The resources of one type, by logical id, in template order."""
        return {
            logical_id: resource
            for logical_id, resource in self.resources.items()
            if resource.get("Type") == resource_type and self._included(resource)
        }

    def properties(self, logical_id: str) -> dict:
        """A resource's Properties with every intrinsic function resolved."""
        return self.resolve(self.resources[logical_id].get("Properties") or {})

    def physical_name(self, logical_id: str) -> str:
        """The name a resource gets in this stack: its explicit name, else stack-logicalId."""
        resource = self.resources.get(logical_id)
        if resource is None:
            raise TemplateError(f"unknown resource {logical_id!r}")
        props = resource.get("Properties") or {}
        name_property = {
            "AWS::S3::Bucket": "BucketName",
            "AWS::DynamoDB::Table": "TableName",
            "AWS::SQS::Queue": "QueueName",
            "AWS::Serverless::Function": "FunctionName",
            "AWS::Serverless::LayerVersion": "LayerName",
        }.get(resource["Type"])
        if name_property and name_property in props:
            return str(self.resolve(props[name_property]))
        name = f"{self.stack_name}-{logical_id}"
        # Bucket names must be lower case; CloudFormation lower-cases generated ones too.
        return name.lower() if resource["Type"] == "AWS::S3::Bucket" else name

    def queue_arn(self, logical_id: str) -> str:
        """The ARN of a queue resource."""
        return f"arn:aws:sqs:{self.region}:{self.account_id}:{self.physical_name(logical_id)}"

    def queue_url(self, logical_id: str) -> str:
        """The URL of a queue resource at the configured SQS endpoint."""
        return f"{self._sqs_endpoint}/{self.account_id}/{self.physical_name(logical_id)}"

    # ---- intrinsic functions -----------------------------------------------------------

    def parameter(self, name: str) -> str:
        """A template parameter's value: the local override, else its Default."""
        if name in self._parameter_overrides:
            return str(self._parameter_overrides[name])
        declared = (self.data.get("Parameters") or {}).get(name)
        if declared is None:
            raise TemplateError(f"unknown parameter {name!r}")
        if "Default" not in declared:
            raise TemplateError(f"parameter {name!r} has no Default and no local value")
        return str(declared["Default"])

    def resolve(self, value: Any) -> Any:
        """Resolve intrinsic functions and dynamic references in a template value."""
        resolved = self._resolve(value)
        return None if resolved is _NO_VALUE else resolved

    def _resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            items = [self._resolve(item) for item in value]
            return [item for item in items if item is not _NO_VALUE]
        if isinstance(value, str):
            return self._dynamic(value)
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref":
                return self._ref(argument)
            if key.startswith("Fn::"):
                return self._function(key[4:], argument)
        out = {}
        for key, item in value.items():
            resolved = self._resolve(item)
            if resolved is not _NO_VALUE:
                out[key] = resolved
        return out

    def _dynamic(self, text: str) -> str:
        def replace(match: re.Match) -> str:
            if self._dynamic_references is None:
                raise TemplateError(f"no local value for dynamic reference {match.group(0)}")
            return self._dynamic_references(match.group(1), match.group(2))

        return _DYNAMIC_REFERENCE.sub(replace, text)

    def _pseudo(self, name: str) -> Any:
        return {
            "AWS::StackName": self.stack_name,
            "AWS::AccountId": self.account_id,
            "AWS::Region": self.region,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackId": (
                f"arn:aws:cloudformation:{self.region}:{self.account_id}:stack/"
                f"{self.stack_name}/00000000-0000-0000-0000-000000000000"
            ),
            "AWS::NotificationARNs": [],
            "AWS::NoValue": _NO_VALUE,
        }.get(name)

    def _ref(self, name: str) -> Any:
        if name.startswith("AWS::"):
            value = self._pseudo(name)
            if value is None:
                raise TemplateError(f"unknown pseudo parameter {name}")
            return value
        if name in (self.data.get("Parameters") or {}):
            return self.parameter(name)
        resource = self.resources.get(name)
        if resource is None:
            raise TemplateError(f"!Ref to unknown {name!r}")
        kind = resource["Type"]
        if kind == "AWS::SQS::Queue":
            return self.queue_url(name)
        if kind in ("AWS::Serverless::Api", "AWS::ApiGateway::RestApi"):
            return f"local{name.lower()}"[:10]
        if kind == "AWS::Serverless::LayerVersion":
            return (
                f"arn:aws:lambda:{self.region}:{self.account_id}:layer:{self.physical_name(name)}:1"
            )
        return self.physical_name(name)

    def _get_att(self, logical_id: str, attribute: str) -> str:
        resource = self.resources.get(logical_id)
        if resource is None:
            raise TemplateError(f"!GetAtt of unknown {logical_id!r}")
        kind, name = resource["Type"], self.physical_name(logical_id)
        region, account = self.region, self.account_id
        attributes = {
            "AWS::SQS::Queue": {
                "Arn": self.queue_arn(logical_id),
                "QueueName": name,
                "QueueUrl": self.queue_url(logical_id),
            },
            "AWS::S3::Bucket": {
                "Arn": f"arn:aws:s3:::{name}",
                "DomainName": f"{name}.s3.amazonaws.com",
                "RegionalDomainName": f"{name}.s3.{region}.amazonaws.com",
            },
            "AWS::DynamoDB::Table": {
                "Arn": f"arn:aws:dynamodb:{region}:{account}:table/{name}",
                "StreamArn": f"arn:aws:dynamodb:{region}:{account}:table/{name}/stream/local",
            },
            "AWS::Serverless::Function": {
                "Arn": f"arn:aws:lambda:{region}:{account}:function:{name}",
            },
        }.get(kind, {})
        if attribute not in attributes:
            raise TemplateError(f"!GetAtt {logical_id}.{attribute} is not known locally")
        return attributes[attribute]

    def _function(self, name: str, argument: Any) -> Any:
        if name == "GetAtt":
            logical_id, attribute = (
                argument.split(".", 1) if isinstance(argument, str) else argument
            )
            return self._get_att(logical_id, self._resolve(attribute))
        if name == "Sub":
            return self._sub(argument)
        if name == "Join":
            separator, items = argument
            return str(separator).join(str(item) for item in self._resolve(items))
        if name == "Select":
            index, items = argument
            return self._resolve(items)[int(self._resolve(index))]
        if name == "Split":
            separator, text = argument
            return str(self._resolve(text)).split(separator)
        if name == "Base64":
            return base64.b64encode(str(self._resolve(argument)).encode()).decode()
        if name == "If":
            condition, when_true, when_false = argument
            return self._resolve(when_true if self.condition(condition) else when_false)
        if name == "FindInMap":
            map_name, top, second = (self._resolve(item) for item in argument)
            return self.data["Mappings"][map_name][top][second]
        if name in ("Equals", "Not", "And", "Or"):
            return self._evaluate_condition({f"Fn::{name}": argument})
        raise TemplateError(f"Fn::{name} is not supported by the local cloud")

    def _sub(self, argument: Any) -> str:
        if isinstance(argument, list):
            text, variables = argument[0], self._resolve(argument[1])
        else:
            text, variables = argument, {}

        def replace(match: re.Match) -> str:
            expression = match.group(1)
            if expression.startswith("!"):
                return "${" + expression[1:] + "}"
            if expression in variables:
                return str(variables[expression])
            if "." in expression and not expression.startswith("AWS::"):
                logical_id, attribute = expression.split(".", 1)
                return str(self._get_att(logical_id, attribute))
            return str(self._ref(expression))

        return self._dynamic(re.sub(r"\$\{([^}]+)\}", replace, text))

    def condition(self, name: str) -> bool:
        """Evaluate one of the template's Conditions."""
        if name not in self._conditions:
            definition = (self.data.get("Conditions") or {}).get(name)
            if definition is None:
                raise TemplateError(f"unknown condition {name!r}")
            self._conditions[name] = self._evaluate_condition(definition)
        return self._conditions[name]

    def _evaluate_condition(self, definition: Any) -> bool:
        if isinstance(definition, dict) and len(definition) == 1:
            ((key, argument),) = definition.items()
            if key == "Condition":
                return self.condition(argument)
            if key == "Fn::Equals":
                left, right = (self._resolve(item) for item in argument)
                return str(left) == str(right)
            if key == "Fn::Not":
                return not self._evaluate_condition(argument[0])
            if key == "Fn::And":
                return all(self._evaluate_condition(item) for item in argument)
            if key == "Fn::Or":
                return any(self._evaluate_condition(item) for item in argument)
        raise TemplateError(f"cannot evaluate condition {definition!r}")

    def _included(self, resource: dict) -> bool:
        condition = resource.get("Condition")
        return True if condition is None else self.condition(condition)

    # ---- serverless model ---------------------------------------------------------------

    def _function_globals(self) -> dict:
        return ((self.data.get("Globals") or {}).get("Function")) or {}

    def _merged_function_properties(self, logical_id: str) -> dict:
        merged = dict(self._function_globals())
        own = self.resources[logical_id].get("Properties") or {}
        for key, value in own.items():
            if key == "Environment":
                variables = dict((merged.get("Environment") or {}).get("Variables") or {})
                variables.update((value or {}).get("Variables") or {})
                merged["Environment"] = {"Variables": variables}
            elif key == "Layers":
                merged["Layers"] = list(merged.get("Layers") or []) + list(value or [])
            else:
                merged[key] = value
        return merged

    def _layer_path(self, reference: Any) -> Path | None:
        logical_id = reference.get("Ref") if isinstance(reference, dict) else None
        resource = self.resources.get(logical_id or "")
        if resource is None or resource["Type"] != "AWS::Serverless::LayerVersion":
            return None  # a layer from outside this template: nothing to run locally
        content = self.code_root / str(self.resolve(resource["Properties"]["ContentUri"]))
        # Lambda puts a Python layer's python/ directory on sys.path.
        return content / "python" if (content / "python").is_dir() else content

    def apis(self) -> dict[str, RestApi]:
        """The REST APIs, by logical id (SAM's implicit API included when used)."""
        apis: dict[str, RestApi] = {}
        api_globals = (self.data.get("Globals") or {}).get("Api") or {}
        for logical_id in self.resources_of_type("AWS::Serverless::Api"):
            props = {**api_globals, **(self.resources[logical_id].get("Properties") or {})}
            props = self.resolve(props)
            apis[logical_id] = RestApi(
                logical_id=logical_id,
                stage=str(props.get("StageName", "Prod")),
                cors=_cors(props.get("Cors")),
                binary_media_types=tuple(props.get("BinaryMediaTypes") or ()),
            )
        apis.setdefault(
            IMPLICIT_API,
            RestApi(IMPLICIT_API, "Prod", _cors(self.resolve(api_globals.get("Cors")))),
        )
        return apis

    def functions(self) -> dict[str, FunctionSpec]:
        """Every AWS::Serverless::Function, ready to run locally, by logical id."""
        all_layers = [
            path
            for logical_id in self.resources_of_type("AWS::Serverless::LayerVersion")
            if (path := self._layer_path({"Ref": logical_id})) is not None
        ]
        functions = {}
        for logical_id in self.resources_of_type("AWS::Serverless::Function"):
            raw = self._merged_function_properties(logical_id)
            props = self.resolve({k: v for k, v in raw.items() if k in _RUN_PROPERTIES})
            metadata = self.resources[logical_id].get("Metadata") or {}
            package_type = props.get("PackageType", "Zip")
            if package_type == "Image":
                context = self.code_root / str(metadata.get("DockerContext", "."))
                dockerfile = str(metadata.get("Dockerfile", "Dockerfile"))
                code_dir = (context / dockerfile).parent
                command = (props.get("ImageConfig") or {}).get("Command") or []
                if not command:
                    raise TemplateError(f"{logical_id}: image function without ImageConfig.Command")
                handler = str(command[0])
                # The image bakes the template's layers in (see its Dockerfile).
                layers = list(all_layers)
                runtime = "python3.11"
            else:
                code_dir = self.code_root / str(props.get("CodeUri", "."))
                handler = str(props["Handler"])
                layers = [p for ref in raw.get("Layers") or [] if (p := self._layer_path(ref))]
                runtime = str(props.get("Runtime", "python3.11"))
            variables = (props.get("Environment") or {}).get("Variables") or {}
            spec = FunctionSpec(
                logical_id=logical_id,
                name=self.physical_name(logical_id),
                code_dir=code_dir.resolve(),
                handler=handler,
                runtime=runtime,
                package_type=package_type,
                timeout=int(props.get("Timeout", DEFAULT_TIMEOUT)),
                memory=int(props.get("MemorySize", DEFAULT_MEMORY)),
                environment={key: _env_string(value) for key, value in variables.items()},
                layers=[layer.resolve() for layer in layers],
                function_url="FunctionUrlConfig" in props,
            )
            for event_name, event in (raw.get("Events") or {}).items():
                self._add_event(spec, event_name, event)
            functions[logical_id] = spec
        return functions

    def _add_event(self, spec: FunctionSpec, event_name: str, event: dict) -> None:
        kind = event.get("Type")
        raw_props = event.get("Properties") or {}
        if kind == "Api":
            api_ref = raw_props.get("RestApiId")
            api = api_ref.get("Ref") if isinstance(api_ref, dict) else IMPLICIT_API
            props = self.resolve({k: v for k, v in raw_props.items() if k != "RestApiId"})
            spec.routes.append(
                ApiRoute(
                    function=spec.logical_id,
                    event=event_name,
                    api=api or IMPLICIT_API,
                    path=str(props["Path"]),
                    method=str(props["Method"]).upper(),
                )
            )
        elif kind == "SQS":
            queue = raw_props.get("Queue")
            queue_logical = None
            if isinstance(queue, dict):
                target = queue.get("Fn::GetAtt") or [queue.get("Ref")]
                queue_logical = target[0] if isinstance(target, list) else None
            if queue_logical not in self.resources:
                raise TemplateError(f"{spec.logical_id}.{event_name}: queue outside the template")
            props = self.resolve(raw_props)
            spec.sqs_sources.append(
                SqsSource(
                    function=spec.logical_id,
                    event=event_name,
                    queue=queue_logical,
                    queue_name=self.physical_name(queue_logical),
                    queue_arn=self.queue_arn(queue_logical),
                    batch_size=int(props.get("BatchSize", DEFAULT_SQS_BATCH_SIZE)),
                    batching_window=int(props.get("MaximumBatchingWindowInSeconds", 0)),
                    report_batch_item_failures="ReportBatchItemFailures"
                    in (props.get("FunctionResponseTypes") or []),
                    enabled=bool(props.get("Enabled", True)),
                )
            )

    def routes(self) -> list[ApiRoute]:
        """Every API route of every function."""
        return [route for spec in self.functions().values() for route in spec.routes]


def _cors(value: Any) -> Cors | None:
    if not value:
        return None
    if isinstance(value, str):
        return Cors(allow_origin=_unquote(value), allow_methods="*", allow_headers="*")
    return Cors(
        allow_origin=_unquote(value.get("AllowOrigin", "'*'")),
        allow_methods=_unquote(value.get("AllowMethods")),
        allow_headers=_unquote(value.get("AllowHeaders")),
        max_age=_unquote(value.get("MaxAge")),
        allow_credentials=bool(value.get("AllowCredentials", False)),
    )


def _unquote(value: Any) -> str | None:
    # SAM's Cors values are header values in single quotes: "'GET,POST'".
    if value is None:
        return None
    text = str(value)
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == "'" else text


def _env_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
