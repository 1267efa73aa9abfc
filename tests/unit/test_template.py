"""template.yaml: it lints, and it agrees with the code (handlers, routes, environment)."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from imgclf.settings import Settings
from imgclf.tables import FeedbackRecord, PredictionRecord

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        logical_id: resource
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


def http_functions(template: dict[str, Any]) -> dict[str, set[tuple[str, str]]]:
    """Logical id -> {(METHOD, path)} of its Api events."""
    routes: dict[str, set[tuple[str, str]]] = {}
    for logical_id, resource in functions(template).items():
        for source in resource["Properties"].get("Events", {}).values():
            if source["Type"] == "Api":
                props = source["Properties"]
                routes.setdefault(logical_id, set()).add((props["Method"].upper(), props["Path"]))
    return routes


def run(*command: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0"}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_cfn_lint_passes() -> None:
    result = run(str(BIN / "cfn-lint"), "template.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_sam_validate_lint_passes() -> None:
    result = run(str(BIN / "sam"), "validate", "--lint", "--region", "us-east-1")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_zip_handler_exists(
    template: dict[str, Any], function_module: Callable[[str], ModuleType]
) -> None:
    for logical_id, resource in functions(template).items():
        props = resource["Properties"]
        if props.get("PackageType") == "Image":
            continue
        module = function_module(logical_id)
        assert callable(getattr(module, props["Handler"].rsplit(".", 1)[1])), logical_id


def test_every_image_function_has_its_dockerfile_and_handler(template: dict[str, Any]) -> None:
    for resource in functions(template).values():
        if resource["Properties"].get("PackageType") != "Image":
            continue
        metadata = resource["Metadata"]
        dockerfile = ROOT / metadata["DockerContext"] / metadata["Dockerfile"]
        assert dockerfile.is_file()
        module, _ = resource["Properties"]["ImageConfig"]["Command"][0].rsplit(".", 1)
        assert (dockerfile.parent / f"{module}.py").is_file()


def test_api_routes_match_resolver_routes_both_ways(
    template: dict[str, Any], function_module: Callable[[str], ModuleType]
) -> None:
    routes = http_functions(template)
    assert routes, "template.yaml declares no Api events"
    for logical_id, declared in routes.items():
        schema = function_module(logical_id).app.get_openapi_schema()
        served = {
            (method.upper(), path)
            for path, operations in schema.paths.items()
            for method in operations.model_dump(exclude_none=True)
            if method in {"get", "post", "put", "patch", "delete"}
        }
        assert served == declared, logical_id


def test_every_http_function_has_a_function_url(template: dict[str, Any]) -> None:
    for logical_id in http_functions(template):
        assert "FunctionUrlConfig" in template["Resources"][logical_id]["Properties"]


def _environment(resource_or_globals: dict[str, Any]) -> set[str]:
    return set(resource_or_globals.get("Environment", {}).get("Variables", {}))


def test_every_setting_is_set_in_the_template(template: dict[str, Any]) -> None:
    globals_ = _environment(template["Globals"]["Function"])
    per_function = {
        logical_id: _environment(resource["Properties"])
        for logical_id, resource in functions(template).items()
    }
    for field in Settings.model_fields.values():
        name = field.alias
        # AWS_* come from the Lambda runtime (AWS_REGION) or only exist locally (AWS_ENDPOINT_URL).
        if name.startswith("AWS_"):
            continue
        assert name in globals_ or any(name in env for env in per_function.values()), name


def test_every_template_variable_is_read(template: dict[str, Any]) -> None:
    settings = {field.alias for field in Settings.model_fields.values()}
    declared = _environment(template["Globals"]["Function"]).union(
        *(_environment(resource["Properties"]) for resource in functions(template).values())
    )
    # LOG_LEVEL and POWERTOOLS_* are read by aws-lambda-powertools itself.
    unread = {
        name
        for name in declared - settings
        if name != "LOG_LEVEL" and not name.startswith("POWERTOOLS_")
    }
    assert not unread


def test_every_function_names_its_service(template: dict[str, Any]) -> None:
    for logical_id, resource in functions(template).items():
        assert "POWERTOOLS_SERVICE_NAME" in _environment(resource["Properties"]), logical_id


def test_samconfig_deploys_the_image_function_without_questions() -> None:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    deploy = config["default"]["deploy"]["parameters"]
    # An image function needs an ECR repository; resolve_image_repos creates it.
    assert deploy["resolve_image_repos"] is True
    assert deploy["resolve_s3"] is True
    assert "CAPABILITY_IAM" in deploy["capabilities"]


def _statements(resource: dict[str, Any]) -> set[tuple[str, str]]:
    """(action, resource as written) for every inline policy statement of a function."""
    found = set()
    for policy in resource["Properties"].get("Policies", []):
        for statement in policy.get("Statement", []):
            actions = statement["Action"]
            for action in [actions] if isinstance(actions, str) else actions:
                found.add((action, str(statement["Resource"])))
    return found


def test_the_http_functions_may_do_only_what_they_do(template: dict[str, Any]) -> None:
    predictions = str({"Fn::GetAtt": ["PredictionsTable", "Arn"]})
    feedback = str({"Fn::GetAtt": ["FeedbackTable", "Arn"]})
    uploads = str({"Fn::Sub": "arn:${AWS::Partition}:s3:::${UploadBucket}/uploads/*"})
    expected = {
        "PredictionsFunction": {
            ("dynamodb:GetItem", predictions),
            # Ends a prediction whose image never arrived (pending -> expired, conditional).
            ("dynamodb:UpdateItem", predictions),
            ("dynamodb:Query", str({"Fn::Sub": "${PredictionsTable.Arn}/index/by-user"})),
            # Signs image_url: a GET signed with the function's role needs that role's grant.
            ("s3:GetObject", uploads),
        },
        "FeedbackFunction": {
            ("dynamodb:GetItem", predictions),
            ("dynamodb:BatchGetItem", predictions),
            ("dynamodb:PutItem", feedback),
            ("dynamodb:Query", str({"Fn::Sub": "${FeedbackTable.Arn}/index/by-user"})),
        },
    }
    for logical_id, actions in expected.items():
        assert _statements(template["Resources"][logical_id]) == actions, logical_id


def test_every_index_the_code_queries_is_in_the_template(template: dict[str, Any]) -> None:
    models = {"PredictionsTable": PredictionRecord, "FeedbackTable": FeedbackRecord}
    for logical_id, model in models.items():
        props = template["Resources"][logical_id]["Properties"]
        declared = {
            index["IndexName"]: sorted((k["AttributeName"], k["KeyType"]) for k in keys)
            for index in props["GlobalSecondaryIndexes"]
            for keys in [index["KeySchema"]]
        }
        for name, index in model._indexes.items():
            schema = index._get_schema()["key_schema"]
            keys = sorted((k["AttributeName"], k["KeyType"]) for k in schema)
            assert declared.get(name) == keys, (logical_id, name)
