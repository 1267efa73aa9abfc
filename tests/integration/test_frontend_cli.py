"""The bulk command (`python -m frontend.cli`) against the real local cloud.

30 generated images and 2 non-images: 30 rows done and 2 skipped; a rerun uploads nothing.
The feedback export writes the labelled manifest from GET /feedback.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import subprocess
import sys
import uuid
from pathlib import Path

import jwt
import pytest
from PIL import Image

from frontend.client import ApiClient, Endpoints

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
FORMATS = ("PNG", "JPEG", "WEBP")
EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}


def make_images(folder: Path, count: int) -> list[Path]:
    """``count`` different images (formats and sizes vary), some in a subfolder."""
    rng = random.Random(20261126)
    paths = []
    for n in range(count):
        fmt = FORMATS[n % len(FORMATS)]
        size = (rng.randrange(32, 400), rng.randrange(32, 300))
        image = Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))
        # A few noisy pixels so that no two images hash alike.
        for _ in range(50):
            xy = (rng.randrange(size[0]), rng.randrange(size[1]))
            image.putpixel(xy, tuple(rng.randrange(256) for _ in range(3)))
        target = folder / ("more" if n % 4 == 0 else ".") / f"img-{n:02d}.{EXTENSIONS[fmt]}"
        target.parent.mkdir(parents=True, exist_ok=True)
        out = io.BytesIO()
        image.save(out, format=fmt)
        target.write_bytes(out.getvalue())
        paths.append(target)
    return paths


@pytest.fixture
def user(local_cloud) -> tuple[str, str]:
    """A user of its own, so that counting its predictions is not disturbed by other tests."""
    email, password = f"bulk-{uuid.uuid4().hex[:12]}@example.com", "bulk-password"
    local_cloud.add_user(email, password)
    return email, password


def run_cli(local_cloud, user, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "IMGCLF_API_URL": local_cloud.api_url,
        "IMGCLF_EMAIL": user[0],
        "IMGCLF_PASSWORD": user[1],
    }
    return subprocess.run(
        [sys.executable, "-m", "frontend.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def all_predictions(client: ApiClient) -> list:
    items, cursor = [], None
    while True:
        page = client.list_predictions(limit=100, cursor=cursor)
        items.extend(page.items)
        cursor = page.next_cursor
        if not cursor:
            return items


def test_bulk_classification_then_a_rerun_that_uploads_nothing(local_cloud, user, tmp_path):
    folder = tmp_path / "collection"
    images = make_images(folder, 30)
    (folder / "notes.txt").write_text("not an image")
    (folder / "more" / "renamed.jpg").write_text("text that pretends to be a JPEG")
    out = tmp_path / "results.csv"

    first = run_cli(
        local_cloud, user, "classify", str(folder), "--out", str(out), "--concurrency", "8"
    )
    assert first.returncode == 0, first.stderr
    assert "uploaded 30, reused 0" in first.stderr
    with out.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 32
    done = [r for r in rows if r["status"] == "done"]
    skipped = {Path(r["file"]).name: r["error"] for r in rows if r["status"] == "skipped"}
    assert sorted(Path(r["file"]) for r in done) == sorted(images)
    assert skipped == {
        "notes.txt": "not a JPEG, PNG or WebP image",
        "renamed.jpg": "not a JPEG, PNG or WebP image",
    }
    for row in done:
        top5 = json.loads(row["top5"])
        assert len(top5) == 5 and top5[0]["label"] == row["label"]
        assert float(row["score"]) == pytest.approx(top5[0]["score"])
        assert row["prediction_id"] and row["error"] == ""
    assert len({r["prediction_id"] for r in done}) == 30

    client = ApiClient(endpoints=Endpoints(api_url=local_cloud.api_url))
    client.login(*user)
    assert len(all_predictions(client)) == 30

    second = run_cli(local_cloud, user, "classify", str(folder), "--out", str(out))
    assert second.returncode == 0, second.stderr
    assert "uploaded 0, reused 30" in second.stderr
    with out.open(newline="") as handle:
        again = list(csv.DictReader(handle))
    assert again == rows
    assert len(all_predictions(client)) == 30  # the API saw no new upload


def test_jsonl_output_and_a_wrong_password(local_cloud, user, tmp_path):
    image = make_images(tmp_path / "one", 1)[0]
    out = tmp_path / "results.jsonl"
    ok = run_cli(local_cloud, user, "classify", str(image), "--out", str(out))
    assert ok.returncode == 0, ok.stderr
    [row] = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["status"] == "done" and len(row["top5"]) == 5

    bad = run_cli(local_cloud, (user[0], "wrong"), "classify", str(image), "--out", str(out))
    assert bad.returncode == 2
    assert "invalid email or password (HTTP 401)" in bad.stderr


def test_a_corrupt_image_gets_a_failed_row_with_the_reason(local_cloud, user, tmp_path):
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00garbage" * 100)  # JPEG magic, no image
    out = tmp_path / "results.csv"
    run = run_cli(local_cloud, user, "classify", str(corrupt), "--out", str(out))
    assert run.returncode == 0, run.stderr  # a failed image is a result, not an error
    with out.open(newline="") as handle:
        [row] = list(csv.DictReader(handle))
    assert row["status"] == "failed" and row["error"] and row["label"] == ""


def test_export_feedback_writes_the_labelled_manifest(local_cloud, user, tmp_path):
    client = ApiClient(endpoints=Endpoints(api_url=local_cloud.api_url))
    client.login(*user)
    user_id = jwt.decode(client.token, options={"verify_signature": False})["sub"]
    images = make_images(tmp_path / "labelled", 3)
    ids = [client.upload_image(path.read_bytes(), path.name) for path in images]
    predictions = [client.wait_for(prediction_id, timeout=180) for prediction_id in ids]
    assert [p.status for p in predictions] == ["done"] * 3
    verdicts = [
        {"correct": True},
        {"correct": False, "label": "tabby", "comment": "my cat"},
        {"correct": False, "comment": "no idea what it is"},
    ]
    for prediction_id, verdict in zip(ids, verdicts, strict=True):
        client.send_feedback(prediction_id, **verdict)
    # Someone else's feedback (the demo user's) must not appear in this user's manifest.
    demo = ApiClient(endpoints=Endpoints(api_url=local_cloud.api_url))
    demo.login("admin@example.com", "admin")
    demo_prediction = demo.upload_image(images[0].read_bytes(), "demo.png")
    demo.wait_for(demo_prediction, timeout=180)
    demo.send_feedback(demo_prediction, correct=True)

    expected = [  # newest first
        {
            "image_key": f"uploads/{user_id}/{prediction.id}",
            "prediction_id": prediction.id,
            "filename": path.name,
            "predicted_label": prediction.label,
            "corrected_label": corrected,
            "correct": verdict["correct"],
            "comment": verdict.get("comment"),
        }
        for path, prediction, verdict, corrected in zip(
            images,
            predictions,
            verdicts,
            [predictions[0].label, "tabby", None],
            strict=True,
        )
    ][::-1]

    jsonl = tmp_path / "manifest.jsonl"
    run = run_cli(local_cloud, user, "export-feedback", "--out", str(jsonl))
    assert run.returncode == 0, run.stderr
    assert f"3 feedback rows written to {jsonl}" in run.stderr
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [{k: v for k, v in row.items() if k != "created_at"} for row in rows] == expected
    assert [row["created_at"] for row in rows] == sorted(
        (row["created_at"] for row in rows), reverse=True
    )

    manifest = tmp_path / "manifest.csv"
    run = run_cli(local_cloud, user, "export-feedback", "--out", str(manifest))
    assert run.returncode == 0, run.stderr
    with manifest.open(newline="") as handle:
        csv_rows = list(csv.DictReader(handle))
    assert [(r["image_key"], r["corrected_label"], r["comment"]) for r in csv_rows] == [
        (e["image_key"], e["corrected_label"] or "", e["comment"] or "") for e in expected
    ]

    # Page by page (one item a page) gives the same, through the cursor.
    assert [e.prediction_id for e in client.list_feedback(limit=1)] == [
        e["prediction_id"] for e in expected
    ]
