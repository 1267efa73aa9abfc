"""Function sandboxes: worker processes that run one event at a time, like Lambda.

A pool per function starts workers on demand up to its concurrency limit; each worker does
its cold start once, then serves events one by one. An event over the function's Timeout
ends the worker (SIGKILL); a worker that dies is dropped and a new one replaces it on the
next event (or at once, for pools kept warm).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localcloud.template import FunctionSpec

log = logging.getLogger("localcloud.sandbox")

# Lambda allows 10 s for init; loading a model (several seconds on a busy laptop) needs more.
DEFAULT_INIT_TIMEOUT = 300.0
# Lambda gives an execution environment one vCPU per 1,769 MB of memory.
MB_PER_VCPU = 1769

CpuSet = tuple[int, ...]


def cpu_sets(memory_mb: int, concurrency: int, cores: Sequence[int]) -> list[CpuSet]:
    """The slices of the machine a function's sandboxes are pinned to; [] for no pinning.

    In Lambda every execution environment has vCPUs of its own, as many as its memory buys.
    Here the sandboxes share the machine, and each sizes its thread pools to the cores it
    may use; so a function whose sandboxes want several cores gets disjoint slices of the
    machine, as many cores each as its memory buys, or fewer when they do not go round (two
    inference sandboxes on 2 cores run one engine thread each, rather than four threads
    fighting over two cores). Sandboxes of one-vCPU functions run anywhere.
    """
    vcpus = max(1, math.ceil(memory_mb / MB_PER_VCPU))
    share = min(vcpus, max(1, len(cores) // max(1, concurrency)))
    if vcpus == 1 or share >= len(cores):
        return []
    return [tuple(cores[i * share : (i + 1) * share]) for i in range(len(cores) // share)]


@dataclass
class InvokeResult:
    """The outcome of one invocation."""

    ok: bool
    payload: Any = None
    error_type: str | None = None
    error_message: str | None = None
    stack_trace: list[str] = field(default_factory=list)
    timed_out: bool = False
    crashed: bool = False
    duration_ms: float = 0.0
    request_id: str = ""

    @property
    def error(self) -> dict:
        """The error as Lambda reports it to a synchronous caller."""
        return {
            "errorType": self.error_type,
            "errorMessage": self.error_message,
            "stackTrace": self.stack_trace,
        }


class WorkerDied(Exception):
    """The worker process ended while we waited for it."""


class Worker:
    """One sandbox process of a function."""

    def __init__(
        self, spec: FunctionSpec, env: dict[str, str], log_path: Path, cpus: CpuSet | None = None
    ) -> None:
        self.spec = spec
        self.cpus = cpus
        if cpus is not None:
            # The worker pins itself before it imports the handler (localcloud.worker).
            env = {**env, "LOCALCLOUD_CPUS": ",".join(map(str, cpus))}
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log_file:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "localcloud.worker"],
                cwd=spec.code_dir,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log_file,
                start_new_session=True,
            )
        self.pid = self.process.pid
        self.busy_since: float | None = None
        self.invocations = 0
        self.init_ms: float | None = None
        self._buffer = b""
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.process.stdout, selectors.EVENT_READ)

    def alive(self) -> bool:
        """Whether the process still runs."""
        return self.process.poll() is None

    def kill(self) -> None:
        """End the process (and anything it started) at once."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            self.process.wait(5)
        self._close()

    def stop(self) -> None:
        """Close stdin (the worker exits after its current event), then make sure."""
        with contextlib.suppress(Exception):
            self.process.stdin.close()
        try:
            self.process.wait(1)
        except subprocess.TimeoutExpired:
            self.kill()
        self._close()

    def _close(self) -> None:
        with contextlib.suppress(Exception):
            self._selector.close()
        for stream in (self.process.stdin, self.process.stdout):
            with contextlib.suppress(Exception):
                stream.close()

    def _read_line(self, timeout: float) -> dict | None:
        """The next reply line, or None on timeout; WorkerDied on EOF."""
        deadline = time.monotonic() + timeout
        fd = self.process.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            if not self._selector.select(remaining):
                continue
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                raise WorkerDied()
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def wait_ready(self, timeout: float) -> InvokeResult | None:
        """Wait for the cold start; None when ready, else the init error."""
        try:
            message = self._read_line(timeout)
        except WorkerDied:
            return InvokeResult(
                False,
                error_type="Runtime.ExitError",
                crashed=True,
                error_message=f"sandbox exited during init ({self._exit()})",
            )
        if message is None:
            self.kill()
            return InvokeResult(
                False,
                error_type="Sandbox.Timedout",
                timed_out=True,
                error_message=f"init took longer than {timeout:.0f}s",
            )
        if not message.get("ok"):
            self.kill()
            return InvokeResult(
                False,
                error_type=message.get("errorType"),
                error_message=message.get("errorMessage"),
                stack_trace=message.get("stackTrace") or [],
            )
        self.init_ms = message.get("init_ms")
        return None

    def _exit(self) -> str:
        with contextlib.suppress(Exception):
            self.process.wait(2)
        code = self.process.returncode
        if code is not None and code < 0:
            return f"signal {signal.Signals(-code).name}"
        return f"exit code {code}"

    def request(self, message: dict, timeout: float) -> InvokeResult:
        """Send one request and wait up to ``timeout`` seconds for its reply."""
        started = time.monotonic()
        request_id = message.get("aws_request_id", "")
        try:
            self.process.stdin.write((json.dumps(message) + "\n").encode())
            self.process.stdin.flush()
            reply = self._read_line(timeout)
        except (WorkerDied, BrokenPipeError, OSError, ValueError):
            return InvokeResult(
                False,
                error_type="Runtime.ExitError",
                crashed=True,
                error_message=f"sandbox process ended ({self._exit()})",
                duration_ms=(time.monotonic() - started) * 1000,
                request_id=request_id,
            )
        duration = (time.monotonic() - started) * 1000
        if reply is None:
            self.kill()
            return InvokeResult(
                False,
                error_type="Sandbox.Timedout",
                timed_out=True,
                error_message=f"Task timed out after {timeout:.2f} seconds",
                duration_ms=duration,
                request_id=request_id,
            )
        if reply.get("ok"):
            return InvokeResult(
                True, payload=reply.get("payload"), duration_ms=duration, request_id=request_id
            )
        return InvokeResult(
            False,
            error_type=reply.get("errorType"),
            error_message=reply.get("errorMessage"),
            stack_trace=reply.get("stackTrace") or [],
            duration_ms=duration,
            request_id=request_id,
        )


class FunctionPool:
    """The sandboxes of one function, at most ``concurrency`` of them."""

    def __init__(
        self,
        spec: FunctionSpec,
        env: dict[str, str],
        *,
        concurrency: int,
        log_path: Path,
        keep_warm: int = 0,
        init_timeout: float = DEFAULT_INIT_TIMEOUT,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.spec = spec
        self.concurrency = max(1, concurrency)
        self.keep_warm = min(keep_warm, self.concurrency)
        self.init_timeout = init_timeout
        self.log_path = log_path
        self.env = self._sandbox_env(spec, env)
        self.cpu_sets = cpu_sets(spec.memory, self.concurrency, sorted(os.sched_getaffinity(0)))
        self._claimed: list[CpuSet | None] = []  # the CPU sets of workers being started
        self._on_change = on_change or (lambda: None)
        self._idle: list[Worker] = []
        self._workers: list[Worker] = []
        self._starting = 0
        self._cond = threading.Condition()
        self._closed = False

    @staticmethod
    def _sandbox_env(spec: FunctionSpec, env: dict[str, str]) -> dict[str, str]:
        package_parent = str(Path(__file__).resolve().parent.parent)
        return {
            **env,
            "_HANDLER": spec.handler,
            "LAMBDA_TASK_ROOT": str(spec.code_dir),
            "LOCALCLOUD_LAYERS": os.pathsep.join(str(p) for p in spec.layers),
            # Only so the sandbox can import localcloud.worker; handlers never need it.
            "PYTHONPATH": package_parent,
            "PYTHONUNBUFFERED": "1",
        }

    # ---- workers --------------------------------------------------------------------------

    def workers(self) -> list[dict]:
        """Each worker's PID and whether it is running an event (for the state file)."""
        with self._cond:
            return [
                {
                    "pid": w.pid,
                    "busy": w.busy_since is not None,
                    "busy_since": w.busy_since,
                    "invocations": w.invocations,
                    "init_ms": w.init_ms,
                    "cpus": None if w.cpus is None else list(w.cpus),
                }
                for w in self._workers
            ]

    def _spawn(self) -> Worker | InvokeResult:
        """Start a worker and wait for its cold start (called with a slot reserved in
        ``_starting``; the reservation passes to ``_workers`` so it is never counted twice).
        A pinned worker takes the CPU set fewest other workers are on."""
        with self._cond:
            cpus = self._least_used_cpu_set()
            self._claimed.append(cpus)
        try:
            worker = Worker(self.spec, self.env, self.log_path, cpus)
        except BaseException:
            with self._cond:
                self._starting -= 1
                self._claimed.remove(cpus)
                self._cond.notify_all()
            raise
        with self._cond:
            self._starting -= 1
            self._claimed.remove(cpus)
            self._workers.append(worker)
        self._on_change()
        failure = worker.wait_ready(self.init_timeout)
        if failure is not None:
            # No refill here: a function whose init fails would otherwise restart forever.
            self._forget(worker)
            return failure
        return worker

    def _least_used_cpu_set(self) -> CpuSet | None:
        if not self.cpu_sets:
            return None
        used = Counter([w.cpus for w in self._workers] + self._claimed)
        return min(self.cpu_sets, key=lambda cpus: used[cpus])

    def _forget(self, worker: Worker) -> None:
        """Kill a worker and take it out of the pool."""
        worker.kill()
        with self._cond:
            if worker in self._workers:
                self._workers.remove(worker)
            self._cond.notify_all()
        self._on_change()

    def _drop(self, worker: Worker) -> None:
        """Forget a worker that timed out or crashed, and replace it if the pool is warm."""
        self._forget(worker)
        self._refill()

    def _refill(self) -> None:
        # Pools kept warm replace a lost worker straight away, in the background.
        with self._cond:
            missing = self.keep_warm - len(self._workers) - self._starting
            if self._closed or missing <= 0:
                return
            self._starting += missing
        for _ in range(missing):
            threading.Thread(target=self._warm_one, daemon=True).start()

    def _warm_one(self) -> None:
        result = self._spawn()
        if isinstance(result, Worker):
            self._release(result)
        elif not self._closed:
            log.error(
                "%s: warm start failed: %s %s",
                self.spec.logical_id,
                result.error_type,
                result.error_message,
            )

    def warm(self) -> None:
        """Start the workers that should be ready before the first event."""
        self._refill()

    def _acquire(self, wait: float | None) -> Worker | InvokeResult | None:
        deadline = None if wait is None else time.monotonic() + wait
        with self._cond:
            while True:
                if self._closed:
                    return InvokeResult(
                        False,
                        error_type="Sandbox.Stopped",
                        error_message="the local cloud is stopping",
                    )
                while self._idle:
                    worker = self._idle.pop()
                    if worker.alive():
                        worker.busy_since = time.time()
                        return worker
                    # Died while idle (killed from outside): forget it, free its pipes.
                    self._workers.remove(worker)
                    worker.kill()
                if len(self._workers) + self._starting < self.concurrency:
                    self._starting += 1
                    break
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining if remaining is not None else 1.0)
        result = self._spawn()
        if isinstance(result, Worker):
            result.busy_since = time.time()
        return result

    def _release(self, worker: Worker) -> None:
        with self._cond:
            worker.busy_since = None
            if self._closed or not worker.alive():
                if worker in self._workers:
                    self._workers.remove(worker)
                alive = False
            else:
                self._idle.append(worker)
                alive = True
            self._cond.notify_all()
        if not alive:
            worker.kill()
            self._refill()
        self._on_change()

    # ---- invocations ----------------------------------------------------------------------

    def invoke(self, event: Any, *, wait: float | None = None) -> InvokeResult:
        """Run one event in a free sandbox (waiting up to ``wait`` s for one; None: forever).

        Returns a throttling error when no sandbox frees up in time.
        """
        request_id = str(uuid.uuid4())
        message = {
            "kind": "invoke",
            "event": event,
            "aws_request_id": request_id,
            "deadline_ms": 0,
            "invoked_function_arn": self.env.get("LOCALCLOUD_FUNCTION_ARN", ""),
        }
        return self._run(message, float(self.spec.timeout), wait, request_id)

    def openapi(self) -> InvokeResult:
        """The OpenAPI document of the function's resolver ``app``, read inside a sandbox."""
        return self._run({"kind": "openapi"}, 60.0, 60.0, "")

    def _run(
        self, message: dict, timeout: float, wait: float | None, request_id: str
    ) -> InvokeResult:
        acquired = self._acquire(wait)
        if acquired is None:
            return InvokeResult(
                False,
                error_type="TooManyRequestsException",
                error_message="Rate Exceeded.",
                request_id=request_id,
            )
        if isinstance(acquired, InvokeResult):
            acquired.request_id = request_id
            return acquired
        worker = acquired
        self._on_change()
        if message["kind"] == "invoke":
            message["deadline_ms"] = int((time.time() + timeout) * 1000)
        result = worker.request(message, timeout)
        worker.invocations += 1
        if result.timed_out or result.crashed:
            self._drop(worker)
        else:
            self._release(worker)
        return result

    def close(self) -> None:
        """Stop every worker of this function."""
        with self._cond:
            self._closed = True
            workers = list(self._workers)
            self._idle.clear()
            self._cond.notify_all()
        for worker in workers:
            if worker.busy_since is None:
                worker.stop()
            else:
                worker.kill()
        with self._cond:
            self._workers.clear()


def lambda_environment(
    spec: FunctionSpec,
    *,
    region: str,
    account_id: str,
    endpoint_url: str | None,
    overrides: dict[str, str],
) -> dict[str, str]:
    """The environment a function sees: the Lambda runtime's variables, the template's
    (Globals + the function's), then local overrides for what the template declares."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
        "AWS_SESSION_TOKEN": os.environ.get("AWS_SESSION_TOKEN", "testing"),
        "AWS_LAMBDA_FUNCTION_NAME": spec.name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory),
        "AWS_LAMBDA_FUNCTION_TIMEOUT": str(spec.timeout),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "local",
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
        "AWS_SAM_LOCAL": "true",
        # No X-Ray daemon locally: Tracing: Active would only print warnings.
        "POWERTOOLS_TRACE_DISABLED": "true",
        "LOCALCLOUD_FUNCTION_ARN": f"arn:aws:lambda:{region}:{account_id}:function:{spec.name}",
    }
    if endpoint_url:
        env["AWS_ENDPOINT_URL"] = endpoint_url
    env.update(spec.environment)
    for name, value in overrides.items():
        if name in spec.environment:
            env[name] = value
    return env
