"""One function sandbox process: ``python -m localcloud.worker`` (started by sandbox.py).

Like a Lambda execution environment: the working directory is the function's code, its
layers are on sys.path, the handler module is imported once (the cold start), then events
arrive one at a time on stdin as JSON lines and each reply goes back as one JSON line.
The handler's own prints go to stderr (the function's log), never into the reply channel.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from typing import Any


class LambdaContext:
    """The context object handed to handlers (the fields Lambda's Python runtime provides)."""

    def __init__(self, request: dict) -> None:
        env = os.environ
        self.function_name = env.get("AWS_LAMBDA_FUNCTION_NAME", "local")
        self.function_version = env.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        self.log_group_name = env.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = env.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.invoked_function_arn = request.get("invoked_function_arn", "")
        self.aws_request_id = request.get("aws_request_id", "")
        self.identity = None
        self.client_context = None
        self._deadline_ms = int(request.get("deadline_ms", 0))

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the sandbox is ended for exceeding its Timeout."""
        return max(0, self._deadline_ms - int(time.time() * 1000))


def _error(exc: BaseException, error_type: str | None = None) -> dict:
    return {
        "ok": False,
        "errorType": error_type or type(exc).__name__,
        "errorMessage": str(exc),
        "stackTrace": traceback.format_exception(exc),
    }


def _load_handler(handler: str) -> tuple[Any, Any]:
    module_name, _, function_name = handler.rpartition(".")
    module = importlib.import_module(module_name)
    return module, getattr(module, function_name)


def _openapi(module: Any) -> dict:
    resolver = getattr(module, "app", None)
    if resolver is None or not hasattr(resolver, "get_openapi_json_schema"):
        return {"ok": False, "errorType": "NoOpenApi", "errorMessage": "no resolver `app`"}
    return {"ok": True, "payload": json.loads(resolver.get_openapi_json_schema())}


def main() -> None:
    """Cold start, then serve events until stdin closes."""
    reply_channel = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)  # print() in handlers now goes to the log, not the reply channel
    sys.stdout = os.fdopen(1, "w", encoding="utf-8", buffering=1, closefd=False)

    def reply(message: dict) -> None:
        try:
            line = json.dumps(message)
        except (TypeError, ValueError) as exc:
            line = json.dumps(_error(exc, "Runtime.MarshalError"))
        reply_channel.write(line + "\n")
        reply_channel.flush()

    cpus = os.environ.pop("LOCALCLOUD_CPUS", "")
    if cpus:
        # The sandbox's own cores (localcloud.sandbox.cpu_sets), before any thread starts.
        os.sched_setaffinity(0, {int(cpu) for cpu in cpus.split(",")})
    for path in reversed(
        [p for p in os.environ.get("LOCALCLOUD_LAYERS", "").split(os.pathsep) if p]
    ):
        sys.path.insert(1, path)
    started = time.monotonic()
    try:
        module, handler = _load_handler(os.environ["_HANDLER"])
    except BaseException as exc:  # any import failure (even SystemExit) is an init error
        reply({"kind": "init", **_error(exc, "Runtime.ImportModuleError")})
        return
    reply({"kind": "init", "ok": True, "init_ms": round((time.monotonic() - started) * 1000, 1)})

    for line in sys.stdin:
        request = json.loads(line)
        if request.get("kind") == "openapi":
            try:
                reply(_openapi(module))
            except Exception as exc:
                reply(_error(exc))
            continue
        try:
            result = handler(request["event"], LambdaContext(request))
            reply({"ok": True, "payload": result})
        except Exception as exc:  # reported to the caller, as Lambda does
            traceback.print_exc()
            reply(_error(exc))
        sys.stderr.flush()


if __name__ == "__main__":
    main()
