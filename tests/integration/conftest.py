"""The whole local cloud for integration tests: `python -m localcloud up` on free ports.

Every cloud a test starts runs on the emulator of the run: LocalStack by default, moto with
`pytest --emulator moto` (`make test` runs the integration suite once on each).

The session fixture ``local_cloud`` starts it once (MODEL_WEIGHTS=random, state in a temp
dir, no front end: the front-end suites start their own Streamlit) and stops it after the
session. Other suites (front end, load smoke) reuse it; it exposes the URLs, the clients'
environment, and ways to break things on purpose (kill a sandbox, restart Redis).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest
import redis
import requests
from localcloud import services

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 180
DEMO_LOGIN = ("admin@example.com", "admin")


def emulator() -> str:
    """The AWS emulator of this test run (`pytest --emulator`, see tests/conftest.py)."""
    return os.environ.get("LOCALCLOUD_EMULATOR") or "localstack"


def start_emulator(directory: Path) -> tuple[services.ManagedProcess, str]:
    """The run's emulator alone, with no local cloud, on a free port: (process, endpoint).
    Stop it with ``process.stop()``."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, "testing")
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = directory / f"{emulator()}.log"
    if emulator() == "moto":
        process = services.moto_server(port, log)
    else:
        python = ROOT / ".venv-localstack" / "bin" / "python"
        process = services.localstack_server(port, python, directory / "localstack", log)
    return process, f"http://127.0.0.1:{port}"


def free_port() -> int:
    """A TCP port nobody listens on right now (never `make up`'s fixed ports)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LocalCloudHandle:
    """A running local cloud, as tests see it."""

    process: subprocess.Popen
    state_dir: Path
    output: Path
    api_url: str = ""
    function_urls: dict[str, str] = field(default_factory=dict)
    frontend_url: str = ""
    env: dict[str, str] = field(default_factory=dict)

    def state(self) -> dict:
        """The cloud's state file (PIDs, URLs, workers), read now."""
        return json.loads((self.state_dir / "state.json").read_text())

    def log(self, name: str) -> str:
        """A log file's text: "localstack", "moto", "redis", or a function's logical id."""
        path = self.state_dir / "logs" / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def workers(self, function: str) -> list[dict]:
        """The sandbox processes of a function: pid, busy, invocations."""
        return self.state()["functions"][function]["workers"]

    def kill_worker(self, function: str, *, busy: bool = True, timeout: float = 180) -> int:
        """SIGKILL a sandbox of ``function`` (by default one that is running an event, waiting
        for one to be busy); returns its PID."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for worker in self.workers(function):
                if worker["busy"] or not busy:
                    os.kill(worker["pid"], signal.SIGKILL)
                    return worker["pid"]
            time.sleep(0.02)
        raise TimeoutError(f"no {'busy ' if busy else ''}sandbox of {function} to kill")

    def restart_redis(self, timeout: float = 30) -> None:
        """Kill our redis-server (SIGKILL, as a crash); the local cloud starts a new one.
        Returns once the new one answers."""
        before = self.state()
        os.kill(before["processes"]["redis"]["pid"], signal.SIGKILL)
        deadline = time.monotonic() + timeout
        client = redis.Redis.from_url(self.env["REDIS_URL"], socket_timeout=1)
        while time.monotonic() < deadline:
            state = self.state()
            if state["redis_restarts"] > before["redis_restarts"]:
                with contextlib.suppress(redis.RedisError):
                    if client.ping():
                        return
            time.sleep(0.1)
        raise TimeoutError("redis-server did not come back")

    def login(self, email: str = DEMO_LOGIN[0], password: str = DEMO_LOGIN[1]) -> dict:
        """Authorization headers for a user, through POST /auth/login."""
        reply = requests.post(
            f"{self.api_url}/auth/login", json={"email": email, "password": password}, timeout=30
        )
        reply.raise_for_status()
        return {"Authorization": f"Bearer {reply.json()['access_token']}"}

    def grant(self, headers: dict, size: int, filename: str = "image.png") -> dict:
        """POST /uploads for a PNG of ``size`` bytes: the reply (prediction id, pre-signed
        POST, expires_in), checked to be 201."""
        reply = requests.post(
            f"{self.api_url}/uploads",
            json={"filename": filename, "content_type": "image/png", "size": size},
            headers=headers,
            timeout=30,
        )
        assert reply.status_code == 201, reply.text
        return reply.json()

    def stored(self, key: str) -> bool:
        """Whether the upload bucket holds ``key``."""
        s3 = boto3.client(
            "s3",
            endpoint_url=self.env["AWS_ENDPOINT_URL"],
            region_name=self.env["AWS_REGION"],
            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
        )
        listed = s3.list_objects_v2(Bucket=self.env["UPLOAD_BUCKET"], Prefix=key)
        return any(item["Key"] == key for item in listed.get("Contents", []))

    def add_user(self, email: str, password: str) -> None:
        """Create a user with the layer's own command, in the functions' environment."""
        env = {**os.environ, **self.env, "PYTHONPATH": str(ROOT / "layers" / "common" / "python")}
        subprocess.run(
            [sys.executable, "-m", "imgclf.users", "add", email],
            input=password + "\n",
            env=env,
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def stop(self) -> None:
        """Stop it like Ctrl-C does, and wait."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "localcloud",
                        "down",
                        "--state-dir",
                        str(self.state_dir),
                    ],
                    cwd=ROOT,
                    timeout=60,
                    check=False,
                )
                self.process.kill()
                self.process.wait(10)


def start_local_cloud(
    state_dir: Path,
    *,
    template: Path | None = None,
    extra_args: tuple[str, ...] = (),
    emulator_name: str | None = None,
) -> LocalCloudHandle:
    """`python -m localcloud up` on free ports in ``state_dir``, on the run's emulator (or
    ``emulator_name``); returns once it is ready."""
    state_dir.mkdir(parents=True, exist_ok=True)
    output = state_dir / "up.out"
    argv = [
        sys.executable,
        "-m",
        "localcloud",
        "up",
        "--project-dir",
        str(ROOT),
        "--state-dir",
        str(state_dir),
        "--emulator",
        emulator_name or emulator(),
        "--emulator-port",
        str(free_port()),
        "--redis-port",
        str(free_port()),
        "--api-port",
        "0",
        "--function-url-port",
        "0",
        "--no-frontend",
        "--model-weights",
        "random",
        # A lost batch comes back in seconds, not the template's 12 minutes.
        "--sqs-visibility-timeout",
        "5",
        *extra_args,
    ]
    if template is not None:
        argv += ["--template", str(template)]
    env = {**os.environ, "MODEL_WEIGHTS": "random", "LOCALCLOUD_LOG_LEVEL": "INFO"}
    # Always its own emulator: never an endpoint another suite left in the environment.
    for name in ("AWS_ENDPOINT_URL", "LOCALCLOUD_AWS_ENDPOINT", "LOCALCLOUD_REDIS_URL"):
        env.pop(name, None)
    with open(output, "wb") as out:
        process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    handle = LocalCloudHandle(process=process, state_dir=state_dir, output=output)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"local cloud exited:\n{output.read_text(errors='replace')}")
        with contextlib.suppress(OSError, ValueError, KeyError):
            state = handle.state()
            # Ready, and this process's: a cloud killed with -9 leaves its "ready" behind.
            if state["status"] == "ready" and state["supervisor"]["pid"] == process.pid:
                handle.api_url = state["api_url"]
                handle.function_urls = state["function_urls"]
                handle.frontend_url = state["frontend_url"]
                handle.env = state["env"]
                return handle
        time.sleep(0.2)
    handle.stop()
    raise TimeoutError(f"local cloud not ready:\n{output.read_text(errors='replace')}")


@pytest.fixture(scope="session")
def local_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloudHandle]:
    """The whole local cloud (MODEL_WEIGHTS=random) on free ports, for the session."""
    # boto3 clients in tests need credentials; the emulator accepts any.
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, "testing")
    handle = start_local_cloud(tmp_path_factory.mktemp("localcloud"))
    try:
        yield handle
    finally:
        handle.stop()
