"""The local cloud's own server processes: the AWS emulator (LocalStack or moto),
redis-server and the Streamlit front end.

Each is started by us, recorded by PID (with its command line, so a recycled PID is never
mistaken for ours), and stopped by that PID only.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"


def free_port(host: str = HOST) -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_open(port: int, host: str = HOST) -> bool:
    """Whether something accepts TCP connections on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def process_cmdline(pid: int) -> str | None:
    """The command line of a live process, or None when it is gone (Linux /proc)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        try:
            os.kill(pid, 0)
        except OSError:
            return None
        return ""  # alive, but no /proc to confirm what it is
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


@dataclass
class ProcessRecord:
    """A process we started: enough to find it again and to stop only it."""

    name: str
    pid: int
    cmdline: str

    def is_ours(self) -> bool:
        """True when the PID is alive and still runs the command we started."""
        current = process_cmdline(self.pid)
        if current is None:
            return False
        return current == "" or current == self.cmdline

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; only if the PID is still ours."""
        if not self.is_ours():
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not self.is_ours() or _reaped(self.pid):
                return
            time.sleep(0.1)
        if self.is_ours():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            _reaped(self.pid)

    def to_json(self) -> dict:
        """A JSON-able form for the state file."""
        return {"name": self.name, "pid": self.pid, "cmdline": self.cmdline}

    @classmethod
    def from_json(cls, data: dict) -> ProcessRecord:
        """Read back what to_json wrote."""
        return cls(name=data["name"], pid=int(data["pid"]), cmdline=data["cmdline"])


def _reaped(pid: int) -> bool:
    # Collect our own exited children so they do not linger as zombies.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return process_cmdline(pid) is None
    return done == pid


class ManagedProcess:
    """A child process started in its own session (Ctrl-C in the terminal does not reach it:
    the supervisor stops it, in order)."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        log_path: Path,
        env: dict | None = None,
        cwd: Path | None = None,
        grace: float = 5.0,
    ) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.env = env
        self.cwd = cwd
        self.grace = grace  # seconds between SIGTERM and SIGKILL
        self.process: subprocess.Popen | None = None

    def start(self) -> ProcessRecord:
        """Start the process, appending its output to its log file."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        return self.record()

    def record(self) -> ProcessRecord:
        """The PID record of the running process."""
        assert self.process is not None
        return ProcessRecord(self.name, self.process.pid, process_cmdline(self.process.pid) or "")

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.process is not None and self.process.poll() is None

    def stop(self, grace: float | None = None) -> None:
        """Stop the process by its PID: SIGTERM, then SIGKILL after ``grace`` seconds."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(self.grace if grace is None else grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


def wait_until(check, timeout: float, what: str, process: ManagedProcess | None = None) -> None:
    """Poll ``check()`` until true; fail early if ``process`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if process is not None and not process.alive():
            raise RuntimeError(f"{what} exited; see {process.log_path}")
        time.sleep(0.1)
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s")


# moto's server without werkzeug's line per request, which cost 6% of moto's CPU under
# load; its warnings and errors still reach moto.log.
_MOTO_WITHOUT_ACCESS_LOG = (
    "import logging, sys; logging.getLogger('werkzeug').setLevel(logging.WARNING); "
    "from moto.server import main; main(sys.argv[1:])"
)


def moto_server(port: int, log_path: Path) -> ManagedProcess:
    """moto in server mode (S3, SQS, DynamoDB and the rest) on 127.0.0.1:port, started."""
    process = ManagedProcess(
        "moto",
        [sys.executable, "-c", _MOTO_WITHOUT_ACCESS_LOG, "-H", HOST, "-p", str(port)],
        log_path,
        env={**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "false"},
    )
    process.start()
    wait_until(lambda: port_open(port), 60, "moto server", process)
    return process


# The AWS services the stack uses (STS: the local cloud asks the endpoint for its account).
LOCALSTACK_SERVICES = ("s3", "sqs", "dynamodb", "sts")


def localstack_server(port: int, python: Path, root: Path, log_path: Path) -> ManagedProcess:
    """LocalStack in host mode (no Docker, no account token) on 127.0.0.1:port, started and
    ready. ``python`` is its own venv's interpreter, ``root`` its filesystem (state, tmp)."""
    if not python.exists():
        raise RuntimeError(
            f"LocalStack is not installed ({python} is missing): run "
            "`infrastructure/bootstrap.sh localstack`, or `make up EMULATOR=moto`"
        )
    env = {
        # Only what it needs: never the endpoint or credentials its clients are given.
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "GATEWAY_LISTEN": f"{HOST}:{port}",
        "GATEWAY_SERVER": "hypercorn",
        "OVERRIDE_IN_DOCKER": "0",
        "FILESYSTEM_ROOT": str(root),
        "SERVICES": ",".join(LOCALSTACK_SERVICES),
        # DynamoDB from the moto backend LocalStack bundles (infrastructure/localstack/
        # provider): no Java, no DynamoDB Local download.
        "PROVIDER_OVERRIDE_DYNAMODB": "moto",
        # Queue URLs as http://127.0.0.1:port/<account>/<name>, resolvable with no DNS.
        "LOCALSTACK_HOST": f"{HOST}:{port}",
        "SQS_ENDPOINT_STRATEGY": "off",
        # Nothing reaches out: no DNS server of its own, no certificate download, no
        # analytics.
        "DNS_ADDRESS": "0",
        "SKIP_SSL_CERT_DOWNLOAD": "1",
        "DISABLE_EVENTS": "1",
        # Warnings and errors, not a line per request (as for moto's server).
        "LS_LOG": "warn",
    }
    process = ManagedProcess(
        "localstack",
        [str(python), "-m", "localstack.runtime.main"],
        log_path,
        env=env,
        # 4.9.2's runtime server at times never finishes its graceful shutdown (its own
        # TODO); it keeps nothing to flush (no persistence), so it is killed after 3 s.
        grace=3.0,
    )
    if port_open(port):
        raise RuntimeError(f"port {port} is taken (LocalStack); pass --emulator-port")
    root.mkdir(parents=True, exist_ok=True)
    process.start()
    url = f"http://{HOST}:{port}"
    wait_until(lambda: localstack_ready(url), 120, "LocalStack", process)
    return process


def localstack_ready(url: str) -> bool:
    """Whether LocalStack at ``url`` says every service the stack uses is available."""
    try:
        with urllib.request.urlopen(f"{url}/_localstack/health", timeout=2) as reply:
            health = json.load(reply)
    except (OSError, ValueError):
        return False
    services = health.get("services", {})
    return all(services.get(name) in ("available", "running") for name in LOCALSTACK_SERVICES)


def redis_binary() -> str:
    """The redis-server executable, or a clear error on how to get it."""
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError(
            "redis-server not found: run `infrastructure/bootstrap.sh redis` "
            "(apt-get install redis-server) or install Redis"
        )
    return found


def redis_server(port: int, directory: Path, log_path: Path) -> ManagedProcess:
    """Our own redis-server on 127.0.0.1:port with its own directory, started.

    A cache only: no snapshots, so a restart starts empty and callers fall back to DynamoDB.
    """
    directory.mkdir(parents=True, exist_ok=True)
    process = ManagedProcess(
        "redis",
        [
            redis_binary(),
            "--bind",
            HOST,
            "--port",
            str(port),
            "--dir",
            str(directory),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
        ],
        log_path,
    )
    if port_open(port):
        raise RuntimeError(f"port {port} is taken: the local cloud only uses a Redis it starts")
    process.start()
    wait_until(lambda: port_open(port), 30, "redis-server", process)
    return process


def streamlit_server(app: Path, port: int, env: dict, log_path: Path) -> ManagedProcess:
    """The Streamlit front end on 127.0.0.1:port, started (not waited for)."""
    process = ManagedProcess(
        "frontend",
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(app),
            "--server.address",
            HOST,
            "--server.port",
            str(port),
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
        ],
        log_path,
        env=env,
        cwd=app.parent.parent,
    )
    process.start()
    return process
