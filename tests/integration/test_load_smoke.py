"""A short smoke load: 20 Locust users for 20 s against the local cloud.

It runs the same locustfile as `make load` (headless, in a subprocess) and fails on any failed
request or any upload that never reached a final result.
"""

from __future__ import annotations

import pytest

from load.run import drain, run_locust

pytestmark = pytest.mark.integration

USERS = 20
DURATION_S = 20


def test_smoke_load_fails_no_request_and_loses_no_image(local_cloud, tmp_path):
    result = run_locust(
        local_cloud.api_url,
        USERS,
        DURATION_S,
        tmp_path,
        spawn_rate=10,
        extra_env={"LOAD_WAIT_MIN": "0.5", "LOAD_WAIT_MAX": "1.5"},
    )
    ledger = result["ledger"]
    counts = drain(local_cloud.api_url, ledger, deadline_s=120)
    stats = result["stats"]

    # The whole run (ramp-up and logins included) and the measured window.
    assert ledger["failed_requests"] == {}
    assert stats["Aggregated"]["failures"] == 0, result["errors"]
    assert len(ledger["login_ms"]) == USERS
    assert ledger["measure_started"] > 0
    e2e = stats["classify e2e"]
    assert e2e["requests"] > 0
    assert e2e["failures"] == 0
    assert counts["uploads"] >= e2e["requests"]
    assert counts["lost"] == 0, counts["lost_ids"]
    assert counts["failed_results"] == 0
    assert counts["finished"] == counts["uploads"]
    # Every other task of the mix ran too.
    for name in ("GET /predictions", "GET /predictions/{id}", "POST /predictions/{id}/feedback"):
        assert stats[name]["requests"] > 0, name
