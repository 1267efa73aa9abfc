"""The local cloud as one object: start every piece in order, watch them, stop them by PID.

State (PIDs, URLs, the environment clients need) goes to ``<state dir>/state.json`` so that
``python -m localcloud down``, ``invoke`` and the test fixtures find a running cloud.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localcloud import services
from localcloud.gateway import FunctionUrl, HttpServer, RestGateway
from localcloud.poller import SqsPoller
from localcloud.provision import aws_clients, endpoint_account, provision
from localcloud.sandbox import FunctionPool, lambda_environment
from localcloud.saved_state import SAVED_DIR, SavedState, Saver
from localcloud.services import ManagedProcess, ProcessRecord
from localcloud.template import DEFAULT_REGION, DEFAULT_STACK, Template

log = logging.getLogger("localcloud")

STATE_FILE = "state.json"
# Sandbox changes reach the state file at most this often (the first one at once).
STATE_WRITE_INTERVAL = 0.1
DEMO_LOGIN = ("admin@example.com", "admin")
# The AWS emulators the local cloud can start (or none: --aws-endpoint).
EMULATORS = ("localstack", "moto")
# Environment variables of `localcloud up` that override the same-named template variable.
PASSTHROUGH = ("MODEL_WEIGHTS", "INFERENCE_ENGINE", "INFERENCE_PRECISION", "LOG_LEVEL")


@dataclass
class CloudConfig:
    """Where and how the local cloud runs. Port 0 means "any free port"."""

    project_dir: Path
    template: Path
    state_dir: Path
    host: str = services.HOST
    emulator: str = "localstack"  # or "moto"; ignored when aws_endpoint is given
    emulator_port: int = 4566
    redis_port: int = 6390
    api_port: int = 3000
    function_url_port: int = 3001
    frontend_port: int = 8501
    aws_endpoint: str | None = None  # use this endpoint instead of starting an emulator
    localstack_python: Path | None = None  # default: <project>/.venv-localstack/bin/python
    redis_url: str | None = None  # use this Redis instead of starting one
    concurrency: dict[str, int] = field(default_factory=dict)
    http_concurrency: int = 4
    event_concurrency: int = 1
    env_overrides: dict[str, str] = field(default_factory=dict)
    sqs_visibility_timeout: int | None = 30
    frontend: bool = True
    warm_event_functions: bool = True
    stack_name: str = DEFAULT_STACK
    region: str = DEFAULT_REGION
    account_id: str | None = None  # None: the account the endpoint names (STS)
    redis_restart_delay: float = 1.0
    # Durable state (saved_state.py): save this often while functions run (0: only at stop);
    # fresh=True starts empty (the previous save is moved to saved.before-fresh/);
    # durable=False neither restores nor saves (a throwaway cloud, e.g. a load test's).
    save_interval: float = 2.0
    fresh: bool = False
    durable: bool = True

    def resolved_port(self, port: int) -> int:
        """The port itself, or a free one for 0."""
        return port or services.free_port()


def local_secret(state_dir: Path, service: str, reference: str) -> str:
    """A local stand-in for a dynamic reference (e.g. a Secrets Manager secret): generated
    once, kept in the state dir so tokens stay valid across restarts."""
    path = state_dir / "secrets.json"
    values = json.loads(path.read_text()) if path.exists() else {}
    key = f"{service}:{reference}"
    if key not in values:
        values[key] = secrets.token_urlsafe(48)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values, indent=2))
        path.chmod(0o600)
    return values[key]


def read_state(state_dir: Path) -> dict | None:
    """The state file of a local cloud, or None."""
    path = state_dir / STATE_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


class LocalCloud:
    """The emulator, Redis, the template's resources, sandboxes, gateway, pollers, front end."""

    def __init__(self, config: CloudConfig) -> None:
        self.config = config
        self.state_dir = config.state_dir.resolve()
        self.logs = self.state_dir / "logs"
        self.emulator: ManagedProcess | None = None  # LocalStack or moto, when we started one
        self.redis: ManagedProcess | None = None
        self.frontend: ManagedProcess | None = None
        self.pools: dict[str, FunctionPool] = {}
        self.servers: dict[str, HttpServer] = {}
        self.pollers: list[SqsPoller] = []
        self.endpoint: str = ""
        self.account_id: str = ""
        self.redis_port = 0
        self.redis_url = ""
        self.template: Template | None = None
        self.status = "starting"
        self.overrides: dict[str, str] = {}
        self._state_lock = threading.Lock()
        self._state_changed = threading.Event()
        self._stopping = threading.Event()
        self._redis_restarts = 0
        self._owns_state = False  # never overwrite the state of another running cloud
        self.saver: Saver | None = None
        self.restored = ""  # what the restore at start put back, for the banner
        self.down: list[str] = []  # data services that died under the running cloud

    # ---- start --------------------------------------------------------------------------

    def start(self) -> None:
        """Start everything; on failure stop what did start and re-raise."""
        self._refuse_second_instance()
        self._owns_state = True
        threading.Thread(target=self._state_writer, name="state-writer", daemon=True).start()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        config = self.config
        self.logs.mkdir(parents=True, exist_ok=True)
        self._write_state()
        if config.aws_endpoint:
            self.endpoint = config.aws_endpoint.rstrip("/")
        else:
            self._start_emulator()
        if config.redis_url:
            self.redis_url = config.redis_url
        else:
            self.redis_port = config.resolved_port(config.redis_port)
            self._start_redis()
            self.redis_url = f"redis://{services.HOST}:{self.redis_port}/0"
        self._write_state()

        # Emulators take any credentials; LocalStack puts resources in the account a 12-digit
        # key names (else 000000000000), moto in its own. The ARNs the template resolves use
        # whatever account the endpoint says these credentials belong to.
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
        self.account_id = config.account_id or endpoint_account(self.endpoint, config.region)
        self.template = Template(
            config.template,
            code_root=config.project_dir,
            stack_name=config.stack_name,
            account_id=self.account_id,
            region=config.region,
            dynamic_references=lambda s, r: local_secret(self.state_dir, s, r),
            sqs_endpoint=self.endpoint,
        )
        clients = aws_clients(self.endpoint, config.region)
        provisioned = provision(
            self.template, clients, max_visibility_timeout=config.sqs_visibility_timeout
        )
        self._restore_saved_state()

        functions = self.template.functions()
        overrides = {"REDIS_URL": self.redis_url}
        overrides.update({k: os.environ[k] for k in PASSTHROUGH if os.environ.get(k)})
        overrides.update(config.env_overrides)
        self.overrides = overrides
        for logical_id, spec in functions.items():
            env = lambda_environment(
                spec,
                region=config.region,
                account_id=self.account_id,
                endpoint_url=self.endpoint,
                overrides=overrides,
            )
            limit = config.concurrency.get(
                logical_id, config.http_concurrency if spec.is_http else config.event_concurrency
            )
            warm = 1 if (spec.sqs_sources and config.warm_event_functions) else 0
            self.pools[logical_id] = FunctionPool(
                spec,
                env,
                concurrency=limit,
                keep_warm=warm,
                log_path=self.logs / f"{logical_id}.log",
                on_change=self._pool_changed,
            )
        self._ensure_demo_user(functions)
        for pool in self.pools.values():
            pool.warm()

        routes = [route for spec in functions.values() for route in spec.routes]
        if routes:
            gateway = RestGateway(
                routes,
                self.template.apis(),
                self.pools,
                account_id=self.account_id,
                title=f"{config.stack_name} API",
            )
            self.servers["api"] = HttpServer(gateway, config.host, config.api_port).start()
        url_port = config.function_url_port
        for logical_id, spec in functions.items():
            if spec.function_url:
                app = FunctionUrl(self.pools[logical_id], account_id=self.account_id)
                server = HttpServer(app, config.host, url_port)
                self.servers[logical_id] = server.start()
                url_port = url_port + 1 if url_port else 0

        sqs = clients["sqs"]
        for spec in functions.values():
            for source in spec.sqs_sources:
                if not source.enabled:
                    continue
                poller = SqsPoller(
                    source,
                    self.pools[spec.logical_id],
                    sqs,
                    provisioned.queues[source.queue],
                    region=config.region,
                )
                poller.start()
                self.pollers.append(poller)

        if config.frontend:
            self._start_frontend()
        if self.saver is not None:
            self.saver.start()
        self.status = "ready"
        self._write_state()

    def _refuse_second_instance(self) -> None:
        state = read_state(self.state_dir)
        if not state or state.get("status") == "stopped":
            return
        record = ProcessRecord.from_json(state["supervisor"])
        if record.pid != os.getpid() and record.is_ours():
            raise RuntimeError(
                f"a local cloud already runs from {self.state_dir} (PID {record.pid}); "
                "stop it with `python -m localcloud down`"
            )

    def _restore_saved_state(self) -> None:
        # After provisioning (the tables and buckets exist), before any function runs.
        assert self.template is not None
        if not self.config.durable:
            log.info("not durable: nothing is restored or saved")
            return
        directory = self.state_dir / SAVED_DIR
        if self.config.fresh and directory.exists():
            aside = directory.with_name(f"{SAVED_DIR}.before-fresh")
            shutil.rmtree(aside, ignore_errors=True)
            directory.rename(aside)
            log.warning("--fresh: starting empty; the previous saved state is in %s", aside)
        saved = SavedState(directory, self.template, self.endpoint, self.config.region)
        try:
            report = saved.restore()
        except Exception as exc:  # the saved state is kept as it is: say how to start anyway
            raise RuntimeError(
                f"restoring the saved state in {directory} failed ({exc!r}); it is left as it "
                "is: `--fresh` (LOCALCLOUD_FRESH=1) starts empty and moves it aside"
            ) from exc
        self.restored = str(report)
        if report.skipped:
            self.restored += f"; left alone: {', '.join(report.skipped)}"
        log.info("saved state restored from %s: %s", directory, self.restored)
        # Each save is shown in state.json (saved_state) at the next state write.
        self.saver = Saver(saved, self.config.save_interval, on_saved=self._state_changed.set)

    def _pool_changed(self) -> None:
        self._state_changed.set()
        if self.saver is not None:
            self.saver.changed()

    def _start_emulator(self) -> None:
        config = self.config
        if config.emulator not in EMULATORS:
            raise RuntimeError(f"unknown emulator {config.emulator!r}: one of {EMULATORS}")
        port = config.resolved_port(config.emulator_port)
        if services.port_open(port):
            raise RuntimeError(f"port {port} is taken ({config.emulator}); pass --emulator-port")
        log_path = self.logs / f"{config.emulator}.log"
        if config.emulator == "moto":
            self.emulator = services.moto_server(port, log_path)
        else:
            python = config.localstack_python or (
                config.project_dir / ".venv-localstack" / "bin" / "python"
            )
            # Its own filesystem (tmp, state) per cloud: two clouds never share one.
            root = self.state_dir / "localstack"
            self.emulator = services.localstack_server(port, python, root, log_path)
        self.endpoint = f"http://{services.HOST}:{port}"

    def _start_redis(self) -> None:
        self.redis = services.redis_server(
            self.redis_port, self.state_dir / "redis", self.logs / "redis.log"
        )

    def _ensure_demo_user(self, functions: dict) -> None:
        # The layer's own command, in a function's environment: no second copy of the logic.
        spec = next(iter(functions.values()))
        env = dict(self.pools[spec.logical_id].env)
        env["PYTHONPATH"] = os.pathsep.join(str(p) for p in spec.layers)
        result = subprocess.run(
            [sys.executable, "-m", "imgclf.users", "demo"],
            env=env,
            cwd=spec.code_dir,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0:
            raise RuntimeError(f"creating the demo user failed:\n{result.stderr}")

    def _start_frontend(self) -> None:
        app = self.config.project_dir / "frontend" / "app.py"
        if not app.exists():
            log.warning("no %s: the front end is not started", app)
            return
        port = self.config.resolved_port(self.config.frontend_port)
        env = {
            **os.environ,
            **self.client_env(),
            **self.frontend_endpoints(),
            "PYTHONPATH": str(self.config.project_dir),
        }
        self.frontend = services.streamlit_server(app, port, env, self.logs / "frontend.log")
        self._frontend_port = port
        try:
            services.wait_until(lambda: services.port_open(port), 60, "Streamlit", self.frontend)
        except (RuntimeError, TimeoutError) as exc:
            # The API works without the front end: say so, and keep going.
            log.warning("front end not started: %s", exc)

    # ---- what clients see ----------------------------------------------------------------

    @property
    def api_url(self) -> str:
        """The REST API's base URL (no stage prefix, like `sam local start-api`)."""
        server = self.servers.get("api")
        return server.url if server else ""

    def function_urls(self) -> dict[str, str]:
        """Function URL base URLs, by function."""
        return {name: s.url + "/" for name, s in self.servers.items() if name != "api"}

    def frontend_endpoints(self) -> dict[str, str]:
        """Where the front end sends each call: a function's URL (IMGCLF_AUTH_URL for
        AuthFunction, ...), as the product's front end does on AWS; the REST API
        (IMGCLF_API_URL) only for a function without one."""
        env = {"IMGCLF_API_URL": self.api_url}
        for logical_id, url in self.function_urls().items():
            concept = logical_id.removesuffix("Function").upper()
            env[f"IMGCLF_{concept}_URL"] = url
        return env

    def frontend_url(self) -> str:
        """The Streamlit app's URL (empty when not started)."""
        if not self.frontend:
            return ""
        return f"http://{services.HOST}:{self._frontend_port}"

    def client_env(self) -> dict[str, str]:
        """The environment a client or test needs to reach this cloud's resources: the
        template's variables (as the functions see them) and the endpoint."""
        env: dict[str, str] = {}
        for pool in self.pools.values():
            for key, value in pool.spec.environment.items():
                env.setdefault(key, pool.env.get(key, value))
        env.pop("POWERTOOLS_SERVICE_NAME", None)
        env.update(
            {
                "AWS_ENDPOINT_URL": self.endpoint,
                "AWS_REGION": self.config.region,
                "AWS_DEFAULT_REGION": self.config.region,
                "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
                "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
                "REDIS_URL": self.redis_url,
            }
        )
        return env

    def _state_writer(self) -> None:
        """Write the state when a pool's sandboxes changed (one started or ended, took or
        finished an event). A busy pool changes twice per invocation: writing the whole
        state each time cost the gateway's process about 40% of its CPU under load."""
        while not self._stopping.is_set():
            if self._state_changed.wait(0.5):
                self._state_changed.clear()
                try:
                    self._write_state()
                except OSError:  # e.g. the state directory was removed; try again later
                    log.exception("writing %s failed", STATE_FILE)
                self._stopping.wait(STATE_WRITE_INTERVAL)

    def _write_state(self) -> None:
        if not self._owns_state:
            return
        with self._state_lock:
            processes = {}
            for process in (self.emulator, self.redis, self.frontend):
                if process is not None and process.alive():
                    processes[process.name] = process.record().to_json()
            state: dict[str, Any] = {
                "status": self.status,
                "supervisor": ProcessRecord(
                    "supervisor", os.getpid(), services.process_cmdline(os.getpid()) or ""
                ).to_json(),
                "processes": processes,
                "api_url": self.api_url,
                "function_urls": self.function_urls(),
                "frontend_url": self.frontend_url(),
                "frontend_endpoints": self.frontend_endpoints() if self.servers else {},
                "aws_endpoint": self.endpoint,
                "emulator": self.emulator.name if self.emulator else None,
                "account_id": self.account_id,
                "redis_url": self.redis_url,
                "redis_restarts": self._redis_restarts,
                "down": self.down,
                "saved_state": self._saved_state_summary(),
                "demo_login": {"email": DEMO_LOGIN[0], "password": DEMO_LOGIN[1]},
                "env": self.client_env() if self.pools else {},
                # The local values given to the functions (invoke reuses them).
                "overrides": self.overrides,
                "functions": {
                    name: {"workers": pool.workers(), "concurrency": pool.concurrency}
                    for name, pool in self.pools.items()
                },
            }
            path = self.state_dir / STATE_FILE
            tmp = path.with_suffix(f".{threading.get_ident()}.tmp")
            tmp.write_text(json.dumps(state, indent=2))
            tmp.chmod(0o600)  # it holds the local JWT secret
            tmp.replace(path)

    def _saved_state_summary(self) -> dict[str, Any]:
        saver = self.saver
        if saver is None:
            return {}
        return {
            "dir": str(saver.saved.directory),
            "restored": self.restored,
            "last_saved_at": saver.last_saved_at,
            "last_save": str(saver.last) if saver.last else None,
            "failures": saver.failures,
        }

    # ---- run and stop ---------------------------------------------------------------------

    def watch(self) -> None:
        """Until stopped: bring back our redis-server if it dies (a cache restart loses
        nothing: DynamoDB is the record). If the emulator dies, say so and keep serving: the
        functions answer 503 until the next start restores the saved state."""
        redis_down_since: float | None = None
        emulator = self.emulator
        while not self._stopping.wait(0.25):
            if emulator is not None and not emulator.alive() and emulator.name not in self.down:
                self.down.append(emulator.name)
                if self.saver is not None:
                    self.saver.suspend()
                saved_at = self.saver.saved_at_text() if self.saver else "(none)"
                log.error(
                    "%s exited (see %s): S3, SQS and DynamoDB are down and the functions "
                    "answer 503; `make down` then `make up` restores the state saved at %s",
                    emulator.name,
                    emulator.log_path,
                    saved_at,
                )
                self._write_state()
            if self.redis is not None and not self.redis.alive():
                redis_down_since = redis_down_since or time.monotonic()
                if time.monotonic() - redis_down_since >= self.config.redis_restart_delay:
                    log.warning("redis-server exited; restarting it")
                    with contextlib.suppress(Exception):
                        self.redis.process.wait(1)
                    self._start_redis()
                    self._redis_restarts += 1
                    redis_down_since = None
                    self._write_state()

    def request_stop(self) -> None:
        """Ask watch() to return (signal handlers call this)."""
        self._stopping.set()

    def stop(self) -> None:
        """Stop everything this cloud started, by PID, newest first."""
        self._stopping.set()
        if self.status == "stopped":
            return
        self.status = "stopping"
        with contextlib.suppress(Exception):
            self._write_state()
        started = time.monotonic()
        for poller in self.pollers:
            poller.request_stop()
        # Independent pieces stop side by side; the data services last.
        steps = [server.stop for server in self.servers.values()]
        steps += [pool.close for pool in self.pools.values()]
        steps += [poller.stop for poller in self.pollers]
        if self.frontend:
            steps.append(self.frontend.stop)
        threads = [threading.Thread(target=_quietly, args=(step,)) for step in steps]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        if self.saver is not None and not self.down:
            # Nothing writes any more: the last save holds everything acknowledged.
            _quietly(self.saver.stop)
        data = [
            threading.Thread(target=_quietly, args=(p.stop,))
            for p in (self.redis, self.emulator)
            if p
        ]
        for thread in data:
            thread.start()
        for thread in data:
            thread.join(30)
        log.info("stopped in %.1fs", time.monotonic() - started)
        self.status = "stopped"
        with contextlib.suppress(Exception):
            self._write_state()


def _quietly(step) -> None:
    try:
        step()
    except Exception:  # stopping goes on whatever one piece does
        log.exception("while stopping")


def stop_running(state_dir: Path, timeout: float = 30.0) -> bool:
    """Stop the local cloud recorded in ``state_dir`` (``down``). True if one was running."""
    state = read_state(state_dir)
    if not state:
        return False
    supervisor = ProcessRecord.from_json(state["supervisor"])
    found = False
    if supervisor.is_ours():
        found = True
        os.kill(supervisor.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and supervisor.is_ours():
            time.sleep(0.2)
    # Whatever the supervisor could not stop (it was killed): stop by the recorded PIDs.
    leftovers = [ProcessRecord.from_json(p) for p in state.get("processes", {}).values()]
    for function in state.get("functions", {}).values():
        for worker in function.get("workers", []):
            leftovers.append(
                ProcessRecord(
                    "worker", int(worker["pid"]), services.process_cmdline(int(worker["pid"])) or ""
                )
            )
    for record in leftovers:
        if record.name == "worker":
            cmdline = services.process_cmdline(record.pid) or ""
            if "localcloud.worker" not in cmdline:
                continue
        if record.is_ours():
            found = True
            record.stop()
    if supervisor.is_ours():
        supervisor.stop(grace=1)
    return found
