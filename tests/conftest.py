"""Fixtures any test suite may use: the parsed template and a private redis-server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from samtranslator.yaml_helper import yaml_parse

ROOT = Path(__file__).resolve().parents[1]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--emulator",
        choices=("localstack", "moto"),
        default=os.environ.get("LOCALCLOUD_EMULATOR") or "localstack",
        help="the AWS emulator the integration suite's local clouds run on",
    )


def pytest_configure(config: pytest.Config) -> None:
    # The integration fixtures, and any `python -m localcloud` a test runs, read it here.
    os.environ["LOCALCLOUD_EMULATOR"] = config.getoption("emulator")


def pytest_report_header(config: pytest.Config) -> str:
    return f"emulator: {config.getoption('emulator')}"


def free_port() -> int:
    """A TCP port nobody listens on right now (never the `make up` ports)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    """template.yaml as a dict; intrinsics stay as {"Ref": ...}, {"Fn::GetAtt": ...}."""
    return yaml_parse((ROOT / "template.yaml").read_text())


@pytest.fixture
def dead_redis_url() -> str:
    """A Redis URL where nothing listens: for "Redis is down" tests."""
    return f"redis://127.0.0.1:{free_port()}/0"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server on a free port in a temp dir, for the whole session; its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed: run infrastructure/bootstrap.sh redis")
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(workdir),
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise
            time.sleep(0.05)
    yield url
    process.terminate()
    process.wait(timeout=10)
