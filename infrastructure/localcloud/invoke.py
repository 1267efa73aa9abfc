"""The `sam local invoke` twin: run one template function on one event, print its reply.

    python -m localcloud invoke InferenceFunction events/s3-put.json

The function runs in a fresh sandbox with the running local cloud's environment (endpoint,
Redis, secrets; read from its state file), or with the default local ports when none runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TextIO

from localcloud.cloud import PASSTHROUGH, CloudConfig, local_secret, read_state
from localcloud.provision import endpoint_account
from localcloud.sandbox import FunctionPool, InvokeResult, lambda_environment
from localcloud.template import Template


def invoke(
    config: CloudConfig,
    function: str,
    event: dict,
    *,
    log: TextIO = sys.stderr,
) -> InvokeResult:
    """Run ``function`` (a logical id, or its physical name) once on ``event``."""
    import os

    state = read_state(config.state_dir) or {}
    running = state.get("status") == "ready"
    endpoint = state.get("aws_endpoint") if running else None
    endpoint = endpoint or config.aws_endpoint or f"http://127.0.0.1:{config.emulator_port}"
    redis_url = (state.get("redis_url") if running else None) or (
        config.redis_url or f"redis://127.0.0.1:{config.redis_port}/0"
    )
    if not running:
        print(
            f"(no local cloud running in {config.state_dir}: using {endpoint} and "
            f"{redis_url}; start one with `make up`)",
            file=log,
        )
    account_id = (
        (state.get("account_id") if running else None)
        or config.account_id
        or endpoint_account(endpoint, config.region)
    )
    template = Template(
        config.template,
        code_root=config.project_dir,
        stack_name=config.stack_name,
        account_id=account_id,
        region=config.region,
        dynamic_references=lambda s, r: local_secret(config.state_dir, s, r),
        sqs_endpoint=endpoint,
    )
    functions = template.functions()
    spec = functions.get(function) or next(
        (f for f in functions.values() if f.name == function), None
    )
    if spec is None:
        raise SystemExit(
            f"no function {function!r} in {config.template}; choose one of: {', '.join(functions)}"
        )
    overrides = dict(state.get("overrides") or {}) if running else {}
    overrides["REDIS_URL"] = redis_url
    overrides.update({k: os.environ[k] for k in PASSTHROUGH if os.environ.get(k)})
    overrides.update(config.env_overrides)
    env = lambda_environment(
        spec,
        region=config.region,
        account_id=account_id,
        endpoint_url=endpoint,
        overrides=overrides,
    )
    log_path = config.state_dir / "logs" / f"invoke-{spec.logical_id}.log"
    pool = FunctionPool(spec, env, concurrency=1, log_path=log_path)
    try:
        result = pool.invoke(event)
    finally:
        pool.close()
    print(f"{spec.logical_id}: {result.duration_ms:.0f} ms (log: {log_path})", file=log)
    return result


def main(config: CloudConfig, function: str, event_path: str) -> int:
    """Print the reply (or the error) as JSON; exit status 1 when the function failed."""
    path = Path(event_path)
    if not path.exists() and (config.project_dir / path).exists():
        path = config.project_dir / path
    event = json.loads(sys.stdin.read() if event_path == "-" else path.read_text())
    result = invoke(config, function, event)
    print(json.dumps(result.payload if result.ok else result.error, indent=2))
    return 0 if result.ok else 1
