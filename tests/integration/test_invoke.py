"""`python -m localcloud invoke` (make invoke): the `sam local invoke` twin."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import requests

from tests.integration.conftest import ROOT

pytestmark = pytest.mark.integration


def invoke(local_cloud, function: str, event: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "localcloud",
            "invoke",
            function,
            event,
            "--project-dir",
            str(ROOT),
            "--state-dir",
            str(local_cloud.state_dir),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_invoke_runs_a_function_with_the_local_clouds_environment(local_cloud):
    done = invoke(local_cloud, "AuthFunction", "events/login.json")
    assert done.returncode == 0, done.stderr
    reply = json.loads(done.stdout)
    assert reply["statusCode"] == 200
    # The token is signed with the running cloud's secret: the API accepts it.
    token = json.loads(reply["body"])["access_token"]
    listed = requests.get(
        f"{local_cloud.api_url}/predictions",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert listed.status_code == 200


def test_invoke_reports_an_unknown_function_and_a_bad_event(local_cloud, tmp_path):
    unknown = invoke(local_cloud, "NoSuchFunction", "events/health.json")
    assert unknown.returncode != 0
    assert "AuthFunction" in unknown.stderr  # it lists the template's functions
    event = tmp_path / "not-an-api-event.json"
    event.write_text(json.dumps({"hello": "world"}))
    failed = invoke(local_cloud, "PredictionsFunction", str(event))
    assert failed.returncode == 1
    assert json.loads(failed.stdout)["errorType"]
