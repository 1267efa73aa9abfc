"""Faults of the local cloud and what survives them (README, "Reliability").

- `make down` then `make up`: every user, prediction, result, feedback and image is back;
  predictions whose image was uploaded but not yet classified finish after the restart, and
  no prediction is classified twice.
- `kill -9` of every process of the local cloud, then up: nothing acknowledged more than a
  save interval before the kill is lost.
- A save killed at any instant leaves the previous save readable and complete.
- The emulator dying under a running cloud: the functions answer 503 JSON within their
  Timeout, /health and the log say what is down, and the next start restores the state.
(A Redis restart mid-batch is test_local_cloud.py's test_a_redis_restart_mid_run_loses_nothing.)
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
import requests
from localcloud import services
from localcloud.provision import aws_clients, provision
from localcloud.saved_state import SavedState, SaveRefused
from localcloud.template import Template

from tests.integration.conftest import ROOT, LocalCloudHandle, emulator, start_local_cloud
from tests.integration.test_local_cloud import assert_done, png, upload, wait_final

pytestmark = pytest.mark.integration

SAVE_INTERVAL = 1.0
# A save of this little data takes well under a second; the rest is the machine being busy.
SAVE_SLACK = 4.0


def start(state_dir: Path, template: Path | None = None) -> LocalCloudHandle:
    return start_local_cloud(
        state_dir, template=template, extra_args=("--save-interval", str(SAVE_INTERVAL))
    )


def down(cloud: LocalCloudHandle) -> None:
    """`make down`: `python -m localcloud down` from another process; waits for the cloud."""
    subprocess.run(
        [sys.executable, "-m", "localcloud", "down", "--state-dir", str(cloud.state_dir)],
        cwd=ROOT,
        check=True,
        timeout=120,
    )
    cloud.process.wait(30)


def without_inference_events(tmp: Path) -> Path:
    """template.yaml with the upload queue's event source disabled: uploads stay pending."""
    text = (ROOT / "template.yaml").read_text()
    source = "        Uploads:\n          Type: SQS\n          Properties:\n"
    assert source in text
    path = tmp / "template.yaml"
    path.write_text(text.replace(source, source + "            Enabled: false\n"))
    return path


def manifest(state_dir: Path) -> dict:
    return json.loads((state_dir / "saved" / "manifest.json").read_text())


def saved_items(state_dir: Path, table: str) -> list[dict]:
    """The items of a table in the last complete save (DynamoDB JSON)."""
    entry = manifest(state_dir)["tables"][table]
    text = (state_dir / "saved" / entry["file"]).read_text()
    return [json.loads(line) for line in text.splitlines()]


def wait_saved(state_dir: Path, done: list[str], feedback_on: list[str] = ()) -> float:
    """Wait until the last complete save holds these predictions as done and feedback on
    those; how long that took."""
    started = time.monotonic()
    while time.monotonic() < started + SAVE_INTERVAL + SAVE_SLACK:
        with contextlib.suppress(OSError, ValueError, KeyError):
            statuses = {
                i["id"]["S"]: i["status"]["S"] for i in saved_items(state_dir, "PredictionsTable")
            }
            sent = {i["prediction_id"]["S"] for i in saved_items(state_dir, "FeedbackTable")}
            if all(statuses.get(i) == "done" for i in done) and set(feedback_on) <= sent:
                return time.monotonic() - started
        time.sleep(0.05)
    raise TimeoutError(f"not saved within {SAVE_INTERVAL + SAVE_SLACK}s of being acknowledged")


def running(pid: int) -> bool:
    """Alive and not a zombie (orphans here may wait for a reaper that never comes)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def kill_everything(cloud: LocalCloudHandle) -> list[int]:
    """SIGKILL the supervisor and every process it started, at once; their PIDs."""
    state = cloud.state()
    pids = [state["supervisor"]["pid"]]
    pids += [p["pid"] for p in state["processes"].values()]
    pids += [w["pid"] for f in state["functions"].values() for w in f["workers"]]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    cloud.process.wait(10)
    deadline = time.monotonic() + 10
    while any(running(pid) for pid in pids):
        assert time.monotonic() < deadline, "processes survived SIGKILL"
        time.sleep(0.05)
    return pids


def views(cloud: LocalCloudHandle, headers: dict) -> dict[str, dict]:
    reply = requests.get(
        f"{cloud.api_url}/predictions", params={"limit": 100}, headers=headers, timeout=30
    )
    assert reply.status_code == 200, reply.text
    return {item["id"]: item for item in reply.json()["items"]}


def feedback(cloud: LocalCloudHandle, headers: dict) -> dict[str, dict]:
    reply = requests.get(f"{cloud.api_url}/feedback", headers=headers, timeout=30)
    assert reply.status_code == 200, reply.text
    return {item["prediction_id"]: item for item in reply.json()["items"]}


def send_feedback(cloud: LocalCloudHandle, headers: dict, prediction_id: str) -> None:
    reply = requests.post(
        f"{cloud.api_url}/predictions/{prediction_id}/feedback",
        json={"correct": False, "label": "tabby", "comment": "kept across restarts"},
        headers=headers,
        timeout=30,
    )
    assert reply.status_code in (200, 201), reply.text


def image(view: dict) -> bytes:
    reply = requests.get(view["image_url"], timeout=30)
    assert reply.status_code == 200, reply.text
    return reply.content


def stable(view: dict) -> dict:
    """A view without its per-request signed link."""
    return {k: v for k, v in view.items() if k != "image_url"}


def finished_counts(cloud: LocalCloudHandle) -> dict[str, int]:
    """How many times the inference log says each prediction was finished (every run of a
    state dir appends to the same log)."""
    counts: dict[str, int] = {}
    for line in cloud.log("InferenceFunction").splitlines():
        if '"prediction finished"' in line:
            found = re.search(r'"prediction_id":"([0-9a-f]+)"', line)
            assert found, line
            counts[found[1]] = counts.get(found[1], 0) + 1
    return counts


def test_down_then_up_keeps_everything_and_finishes_what_was_pending(tmp_path):
    state_dir = tmp_path / "cloud"
    images = {}
    cloud = start(state_dir)
    try:
        cloud.add_user("durable@example.com", "a-long-password")
        headers = cloud.login("durable@example.com", "a-long-password")
        for seed in (1, 2):
            prediction_id = upload(cloud, headers, png(7000 + seed))
            images[prediction_id] = png(7000 + seed)
            assert_done(wait_final(cloud, headers, prediction_id))
        done_ids = list(images)
        send_feedback(cloud, headers, done_ids[0])
        before = views(cloud, headers)
        sent = feedback(cloud, headers)
    finally:
        down(cloud)

    # Uploaded while nothing classifies: their images exist, their predictions are pending.
    cloud = start(state_dir, template=without_inference_events(tmp_path))
    try:
        for seed in (3, 4):
            prediction_id = upload(cloud, headers, png(7000 + seed))
            images[prediction_id] = png(7000 + seed)
        pending_ids = [i for i in images if i not in done_ids]
        assert all(views(cloud, headers)[i]["status"] == "pending" for i in pending_ids)
    finally:
        cloud.stop()  # Ctrl-C

    cloud = start(state_dir)
    try:
        # The token from the first run still works: the user and the signing key are kept.
        after = views(cloud, headers)
        assert set(after) == set(images)
        for prediction_id in done_ids:
            assert stable(after[prediction_id]) == stable(before[prediction_id])
        for prediction_id in pending_ids:
            assert_done(wait_final(cloud, headers, prediction_id))
        assert feedback(cloud, headers) == sent
        final = views(cloud, headers)
        for prediction_id, data in images.items():
            assert image(final[prediction_id]) == data
        # Restored images raised their notifications again: the finished were skipped, the
        # pending classified once.
        counts = finished_counts(cloud)
        assert {i: counts.get(i) for i in images} == dict.fromkeys(images, 1)
    finally:
        down(cloud)


def test_kill_9_of_every_process_loses_nothing_older_than_the_save_interval(tmp_path):
    state_dir = tmp_path / "cloud"
    cloud = start(state_dir)
    try:
        headers = cloud.login()
        ids = [upload(cloud, headers, png(7100 + seed)) for seed in range(3)]
        for prediction_id in ids:
            assert_done(wait_final(cloud, headers, prediction_id))
        send_feedback(cloud, headers, ids[0])
        wait_saved(state_dir, ids, feedback_on=ids[:1])
        before = views(cloud, headers)
        sent = feedback(cloud, headers)
    finally:
        kill_everything(cloud)

    # What is on disk is a complete save, readable as it is.
    saved = manifest(state_dir)
    for entry in saved["tables"].values():
        assert (state_dir / "saved" / entry["file"]).exists()

    cloud = start(state_dir)
    try:
        after = views(cloud, headers)
        assert {i: stable(v) for i, v in after.items()} == {i: stable(v) for i, v in before.items()}
        assert feedback(cloud, headers) == sent
        assert image(after[ids[1]]) == png(7101)
    finally:
        cloud.stop()


def _fill_and_save_forever(endpoint: str, directory: str) -> None:
    """Child process: change the data and save it, over and over, until killed."""
    template = Template(ROOT / "template.yaml", code_root=ROOT, sqs_endpoint=endpoint)
    saved = SavedState(Path(directory), template, endpoint, "us-east-1")
    clients = aws_clients(endpoint, "us-east-1")
    table = template.physical_name("PredictionsTable")
    bucket = template.physical_name("UploadBucket")
    for n in range(10**9):
        body = random.randbytes(200_000)
        clients["s3"].put_object(Bucket=bucket, Key=f"uploads/u/p{n}", Body=body)
        clients["dynamodb"].put_item(
            TableName=table,
            Item={
                "id": {"S": f"p{n}"},
                "user_id": {"S": "u"},
                "created_at": {"S": f"{n:09d}"},
                "size": {"N": str(len(body))},
            },
        )
        saved.save()


def test_a_save_killed_at_any_moment_leaves_the_last_one_complete(tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, "testing")
    port = services.free_port()
    moto = services.moto_server(port, tmp_path / "moto.log")
    endpoint = f"http://127.0.0.1:{port}"
    directory = tmp_path / "saved"
    try:
        template = Template(ROOT / "template.yaml", code_root=ROOT, sqs_endpoint=endpoint)
        provision(template, aws_clients(endpoint, "us-east-1"))
        code = (
            "import sys; from tests.integration.test_durable_state import _fill_and_save_forever;"
            " _fill_and_save_forever(sys.argv[1], sys.argv[2])"
        )
        rng = random.Random(14)
        for _ in range(8):
            child = subprocess.Popen(
                [sys.executable, "-c", code, endpoint, str(directory)],
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            time.sleep(1.5 + rng.random())  # imports, then a few saves
            child.kill()
            child.wait(10)
            state = SavedState(directory, template, endpoint, "us-east-1")
            saved = state.manifest()
            assert saved is not None
            for entry in saved["tables"].values():
                lines = (directory / entry["file"]).read_text().splitlines()
                assert len(lines) == entry["items"]
                assert all(json.loads(line) for line in lines)
            for entry in saved["buckets"].values():
                for obj in entry["objects"].values():
                    assert (directory / "objects" / obj["blob"]).stat().st_size == obj["size"]
        assert saved["tables"]["PredictionsTable"]["items"] >= 8

        # And it restores, whole, into an emulator that starts empty.
        moto.stop()
        moto = services.moto_server(port, tmp_path / "moto.log")
        provision(template, aws_clients(endpoint, "us-east-1"))
        report = SavedState(directory, template, endpoint, "us-east-1").restore()
        assert report.items == sum(e["items"] for e in saved["tables"].values())
        assert report.objects == sum(len(e["objects"]) for e in saved["buckets"].values())
    finally:
        moto.stop()


def test_the_emulator_dying_answers_503_and_the_next_up_restores(tmp_path):
    state_dir = tmp_path / "cloud"
    cloud = start(state_dir)
    try:
        headers = cloud.login()
        prediction_id = upload(cloud, headers, png(7200))
        assert_done(wait_final(cloud, headers, prediction_id))
        wait_saved(state_dir, [prediction_id])

        dead = cloud.state()["emulator"]
        os.kill(cloud.state()["processes"][dead]["pid"], signal.SIGKILL)
        deadline = time.monotonic() + 10
        while cloud.state()["down"] != [dead]:
            assert time.monotonic() < deadline, "the cloud did not notice the emulator died"
            time.sleep(0.1)
        saved_at = manifest(state_dir)["saved_at"]
        login_url = cloud.function_urls["AuthFunction"] + "auth/login"
        png_type = {"content_type": "image/png"}
        requests_needing_the_store = [
            ("POST", f"{cloud.api_url}/auth/login", {"email": "a@b.c", "password": "x"}),
            ("POST", login_url, {"email": "a@b.c", "password": "x"}),
            ("GET", f"{cloud.api_url}/predictions", None),
            ("POST", f"{cloud.api_url}/uploads", {"filename": "a.png", "size": 10, **png_type}),
            ("POST", f"{cloud.api_url}/predictions/{prediction_id}/feedback", {"correct": True}),
        ]
        for method, url, body in requests_needing_the_store:
            started = time.monotonic()
            reply = requests.request(method, url, json=body, headers=headers, timeout=30)
            took = time.monotonic() - started
            assert reply.status_code == 503, (url, reply.status_code, reply.text)
            assert reply.json()["error"] == "service_unavailable", reply.text
            assert took < 10, f"{method} {url} took {took:.1f}s (the functions' Timeout is 10s)"

        health = requests.get(f"{cloud.api_url}/health", timeout=30).json()
        assert (health["status"], health["database"], health["cache"]) == (
            "degraded",
            "down",
            "up",
        )
        output = cloud.output.read_text()
        assert f"{dead} exited" in output
        # Said once per queue, not once a second while it is down.
        assert output.count("polling failed; retrying") <= 2, output[-3000:]
        assert cloud.process.poll() is None  # still serving
    finally:
        down(cloud)
    # Nothing was saved over the last good save while the emulator was gone.
    assert manifest(state_dir)["saved_at"] == saved_at

    cloud = start(state_dir)
    try:
        after = requests.get(
            f"{cloud.api_url}/predictions/{prediction_id}", headers=headers, timeout=30
        )
        assert after.status_code == 200, after.text
        assert_done(after.json())
    finally:
        cloud.stop()


def test_fresh_starts_empty_and_keeps_the_previous_state_aside(tmp_path):
    state_dir = tmp_path / "cloud"
    cloud = start(state_dir)
    try:
        headers = cloud.login()
        upload(cloud, headers, png(7300))
    finally:
        down(cloud)
    cloud = start_local_cloud(state_dir, extra_args=("--fresh",))
    try:
        assert views(cloud, cloud.login()) == {}
        assert (state_dir / "saved.before-fresh" / "manifest.json").exists()
        dynamodb = boto3.client(
            "dynamodb",
            endpoint_url=cloud.env["AWS_ENDPOINT_URL"],
            region_name=cloud.env["AWS_REGION"],
            aws_access_key_id=cloud.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=cloud.env["AWS_SECRET_ACCESS_KEY"],
        )
        users = dynamodb.scan(TableName=cloud.env["USERS_TABLE"])["Items"]
        assert [u["email"]["S"] for u in users] == ["admin@example.com"]
    finally:
        cloud.stop()


def test_a_save_made_on_one_emulator_restores_on_the_other(tmp_path):
    # Saved on this run's emulator, restored on the other: `make test` runs both ways.
    here = emulator()
    other = {"localstack": "moto", "moto": "localstack"}[here]
    state_dir = tmp_path / "cloud"
    cloud = start_local_cloud(state_dir, emulator_name=here)
    try:
        headers = cloud.login()
        prediction_id = upload(cloud, headers, png(7400))
        assert_done(wait_final(cloud, headers, prediction_id))
        send_feedback(cloud, headers, prediction_id)
        before, sent = views(cloud, headers), feedback(cloud, headers)
    finally:
        down(cloud)
    cloud = start_local_cloud(state_dir, emulator_name=other)
    try:
        assert cloud.state()["emulator"] == other
        after = views(cloud, headers)
        assert stable(after[prediction_id]) == stable(before[prediction_id])
        assert feedback(cloud, headers) == sent
        assert image(after[prediction_id]) == png(7400)
    finally:
        cloud.stop()


def test_an_ephemeral_cloud_saves_nothing(tmp_path):
    state_dir = tmp_path / "cloud"
    cloud = start_local_cloud(state_dir, extra_args=("--ephemeral",))
    try:
        headers = cloud.login()
        assert_done(wait_final(cloud, headers, upload(cloud, headers, png(7500))))
    finally:
        down(cloud)
    assert not (state_dir / "saved").exists()


def test_a_wedged_emulator_never_holds_a_request_past_its_timeout(tmp_path):
    cloud = start(tmp_path / "cloud")
    stopped = cloud.state()["processes"][cloud.state()["emulator"]]["pid"]
    try:
        headers = cloud.login()
        os.kill(stopped, signal.SIGSTOP)  # accepts connections, answers nothing
        # (route, the function's Timeout in template.yaml)
        for method, path, body, timeout in [
            ("POST", "/auth/login", {"email": "a@b.c", "password": "x"}, 10),
            ("GET", "/predictions", None, 25),
        ]:
            started = time.monotonic()
            reply = requests.request(
                method, cloud.api_url + path, json=body, headers=headers, timeout=60
            )
            took = time.monotonic() - started
            # 503 once the SDK gives up, or the gateway's 504 when the Timeout comes first.
            assert reply.status_code in (503, 504), (path, reply.status_code, reply.text)
            assert took < timeout + 3, f"{path} held for {took:.1f}s (Timeout {timeout}s)"
    finally:
        os.kill(stopped, signal.SIGCONT)
        down(cloud)


def test_an_emptied_emulator_is_never_saved_over_the_state_and_a_full_one_is_not_restored_over(
    tmp_path,
):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, "testing")
    port = services.free_port()
    endpoint = f"http://127.0.0.1:{port}"
    moto = services.moto_server(port, tmp_path / "moto.log")
    try:
        template = Template(ROOT / "template.yaml", code_root=ROOT, sqs_endpoint=endpoint)
        clients = aws_clients(endpoint, "us-east-1")
        provision(template, clients)
        users = template.physical_name("UsersTable")
        item = {"email": {"S": "kept@example.com"}, "user_id": {"S": "u1"}}
        clients["dynamodb"].put_item(TableName=users, Item=item)
        saved = SavedState(tmp_path / "saved", template, endpoint, "us-east-1")
        saved.save()
        committed = saved.manifest()

        # The emulator restarts empty (provisioned, no data): a save would erase the state.
        moto.stop()
        moto = services.moto_server(port, tmp_path / "moto.log")
        provision(template, clients)
        with pytest.raises(SaveRefused):
            saved.save()
        assert saved.manifest() == committed

        # A table that holds data of its own is left as it is; the empty ones are restored.
        other = {"email": {"S": "newer@example.com"}, "user_id": {"S": "u2"}}
        clients["dynamodb"].put_item(TableName=users, Item=other)
        report = saved.restore()
        assert report.skipped == ["UsersTable (not empty)"]
        assert clients["dynamodb"].scan(TableName=users)["Items"] == [other]
    finally:
        moto.stop()
