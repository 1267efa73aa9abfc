"""The bulk command's own logic, with an in-memory API: files, rows, reruns, dedup, errors.

tests/integration/test_frontend_cli.py runs the same command against the real local cloud.
"""

from __future__ import annotations

import _thread
import csv
import hashlib
import json
import signal
import threading
import time
from io import BytesIO
from pathlib import Path

import pytest
from PIL import Image

from frontend import cli
from frontend.client import (
    IMAGE_TYPES,
    ApiClient,
    Endpoints,
    FeedbackEntry,
    NotFound,
    Prediction,
    TopClass,
    UploadLimits,
)


class MemoryApi(ApiClient):
    """ApiClient whose upload and wait happen in memory, counting what was sent."""

    def __init__(self, finish: str = "done", max_bytes: int = 10 * 1024 * 1024):
        super().__init__(endpoints=Endpoints(api_url="http://127.0.0.1:9"), token="t")
        self.finish = finish
        self.max_bytes = max_bytes
        self.uploads: list[str] = []
        self.polls: list[str] = []
        self._lock = threading.Lock()

    def upload_limits(self):
        return UploadLimits(max_bytes=self.max_bytes, content_types=tuple(IMAGE_TYPES))

    def upload_image(self, data, filename, content_type=None):
        with self._lock:
            self.uploads.append(filename)
            return f"id{len(self.uploads)}-{hashlib.sha256(data).hexdigest()[:8]}"

    def wait_for(self, prediction_id, timeout=120):
        with self._lock:
            self.polls.append(prediction_id)
        if prediction_id == "gone":
            raise NotFound("prediction not found", status=404)
        if self.finish != "done":
            return Prediction(id=prediction_id, status=self.finish, error="still busy")
        top5 = (
            TopClass("n01443537", "goldfish", 0.75),
            TopClass("n01484850", "great white shark", 0.25),
        )
        return Prediction(id=prediction_id, status="done", label="goldfish", score=0.75, top5=top5)


def _image(path: Path, colour: tuple[int, int, int], fmt: str = "PNG") -> Path:
    buffer = BytesIO()
    Image.new("RGB", (8, 8), colour).save(buffer, format=fmt)
    path.write_bytes(buffer.getvalue())
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    images = tmp_path / "images"
    (images / "nested").mkdir(parents=True)
    _image(images / "a.png", (255, 0, 0))
    _image(images / "b.jpg", (0, 255, 0), "JPEG")
    _image(images / "nested" / "c.webp", (0, 0, 255), "WEBP")
    (images / "notes.txt").write_text("not an image")
    (images / "fake.jpg").write_text("text renamed as a jpeg")
    return images


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_every_file_gets_a_row_and_non_images_are_skipped(folder, tmp_path, suffix):
    out = tmp_path / f"results{suffix}"
    api = MemoryApi()
    rows, summary = cli.classify(api, [folder], out, concurrency=3, progress=False)
    by_name = {Path(r.file).name: r for r in rows}
    assert sorted(by_name) == ["a.png", "b.jpg", "c.webp", "fake.jpg", "notes.txt"]
    for name in ("a.png", "b.jpg", "c.webp"):
        row = by_name[name]
        assert (row.status, row.label, row.score) == ("done", "goldfish", 0.75)
        assert row.top5[0] == {"class_id": "n01443537", "label": "goldfish", "score": 0.75}
        assert row.sha256 == hashlib.sha256(Path(row.file).read_bytes()).hexdigest()
    for name in ("fake.jpg", "notes.txt"):
        assert by_name[name].status == "skipped"
        assert by_name[name].error == "not a JPEG, PNG or WebP image"
    assert summary.uploaded == 3 and sorted(api.uploads) == ["a.png", "b.jpg", "c.webp"]

    written = cli.read_results(out)
    assert [(r.file, r.status, r.label, r.top5) for r in written] == [
        (r.file, r.status, r.label, r.top5) for r in rows
    ]


def test_the_csv_has_the_documented_columns_and_json_top5(folder, tmp_path):
    out = tmp_path / "results.csv"
    cli.classify(MemoryApi(), [folder], out, progress=False)
    with out.open(newline="") as handle:
        reader = csv.DictReader(handle)
        raw = list(reader)
    assert reader.fieldnames == list(cli.RESULT_COLUMNS)
    done = [r for r in raw if r["status"] == "done"]
    assert len(done) == 3
    assert json.loads(done[0]["top5"])[1] == {
        "class_id": "n01484850",
        "label": "great white shark",
        "score": 0.25,
    }


def test_a_rerun_uploads_nothing_already_done(folder, tmp_path):
    out = tmp_path / "results.jsonl"
    first_rows, _ = cli.classify(MemoryApi(), [folder], out, progress=False)
    again = MemoryApi()
    rows, summary = cli.classify(again, [folder], out, progress=False)
    assert again.uploads == [] and again.polls == []
    assert summary.uploaded == 0 and summary.reused == 3
    assert [(r.file, r.prediction_id, r.status) for r in rows] == [
        (r.file, r.prediction_id, r.status) for r in first_rows
    ]


def test_a_rerun_uploads_only_the_new_image(folder, tmp_path):
    out = tmp_path / "results.csv"
    cli.classify(MemoryApi(), [folder], out, progress=False)
    _image(folder / "d.png", (9, 9, 9))
    again = MemoryApi()
    _, summary = cli.classify(again, [folder], out, progress=False)
    assert again.uploads == ["d.png"] and summary.reused == 3


def test_a_rerun_polls_again_what_was_pending_without_uploading(folder, tmp_path):
    out = tmp_path / "results.csv"
    rows, _ = cli.classify(MemoryApi(finish="pending"), [folder], out, progress=False)
    assert {r.status for r in rows if r.sha256} == {"pending"}
    again = MemoryApi()
    rows, summary = cli.classify(again, [folder], out, progress=False)
    assert again.uploads == [] and len(again.polls) == 3 and summary.polled == 3
    assert {r.status for r in rows if r.sha256} == {"done"}


def test_identical_files_are_uploaded_once(tmp_path):
    one = _image(tmp_path / "one.png", (1, 2, 3))
    two = tmp_path / "two.png"
    two.write_bytes(one.read_bytes())
    api = MemoryApi()
    rows, _ = cli.classify(api, [one, two], tmp_path / "out.csv", progress=False)
    assert len(api.uploads) == 1
    assert rows[0].prediction_id == rows[1].prediction_id and rows[1].file == str(two)


def test_oversize_images_are_skipped_with_the_limit(tmp_path):
    image = _image(tmp_path / "big.png", (1, 2, 3))
    rows, _ = cli.classify(MemoryApi(), [image], tmp_path / "out.csv", max_bytes=10, progress=False)
    assert rows[0].status == "skipped" and "over the upload limit of 10 bytes" in rows[0].error


def test_the_size_limit_comes_from_the_api(tmp_path):
    image = _image(tmp_path / "big.png", (1, 2, 3))
    api = MemoryApi(max_bytes=12)
    rows, _ = cli.classify(api, [image], tmp_path / "out.csv", progress=False)
    assert rows[0].status == "skipped" and "over the upload limit of 12 bytes" in rows[0].error
    assert api.uploads == []


def test_an_api_error_lands_in_the_row(tmp_path):
    image = _image(tmp_path / "x.png", (1, 2, 3))
    out = tmp_path / "out.csv"
    previous = cli.ResultRow(
        file=str(image),
        sha256=hashlib.sha256(image.read_bytes()).hexdigest(),
        prediction_id="gone",
        status="pending",
    )
    cli.write_rows(out, cli.RESULT_COLUMNS, [previous.__dict__])
    rows, _ = cli.classify(MemoryApi(), [image], out, progress=False)
    assert rows[0].status == "error" and "prediction not found (HTTP 404)" in rows[0].error


def test_the_output_must_be_csv_or_jsonl(tmp_path):
    with pytest.raises(SystemExit, match=r"must end in \.csv or \.jsonl"):
        cli.main(["classify", str(tmp_path), "--out", str(tmp_path / "out.xlsx")])


def test_the_feedback_manifest_has_the_label_to_train_on(tmp_path):
    class FeedbackApi(MemoryApi):
        def list_feedback(self, limit=100):
            yield FeedbackEntry("p1", "uploads/u/p1", "a.jpg", "tabby", True, None, None, "t1")
            yield FeedbackEntry(
                "p2", "uploads/u/p2", "b.jpg", "tabby", False, "tiger cat", "stripes", "t2"
            )
            yield FeedbackEntry(
                "p3", "uploads/u/p3", "c.jpg", "goldfish", False, None, "no idea", "t3"
            )
            # Its prediction is gone: no image to train on.
            yield FeedbackEntry("p4", None, None, None, True, None, None, "t4")

    out = tmp_path / "manifest.csv"
    assert cli.export_feedback(FeedbackApi(), out) == 3
    with out.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [
        (r["image_key"], r["filename"], r["predicted_label"], r["corrected_label"], r["comment"])
        for r in rows
    ] == [
        ("uploads/u/p1", "a.jpg", "tabby", "tabby", ""),
        ("uploads/u/p2", "b.jpg", "tabby", "tiger cat", "stripes"),
        ("uploads/u/p3", "c.jpg", "goldfish", "", "no idea"),
    ]


@pytest.fixture
def ctrl_c_raises():
    """SIGINT raises KeyboardInterrupt, as in a terminal: a shell starts background jobs
    with SIGINT ignored, and then _thread.interrupt_main() does nothing."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_an_interrupted_run_keeps_what_was_uploaded_and_a_rerun_only_polls_it(
    folder, tmp_path, ctrl_c_raises
):
    ctrl_c = threading.Lock()

    class InterruptedApi(MemoryApi):
        def wait_for(self, prediction_id, timeout=120):
            if ctrl_c.acquire(blocking=False):
                deadline = time.monotonic() + 10
                while len(self.uploads) < 3 and time.monotonic() < deadline:
                    time.sleep(0.01)  # until every image is sent and its result awaited
                _thread.interrupt_main()  # then one Ctrl-C
            time.sleep(0.5)
            return Prediction(id=prediction_id, status="pending")

    out = tmp_path / "results.csv"
    first = InterruptedApi()
    with pytest.raises(KeyboardInterrupt):
        cli.classify(first, [folder], out, concurrency=3, progress=False)
    kept = [r for r in cli.read_results(out) if r.sha256]
    assert len(first.uploads) == 3
    assert [r.status for r in kept] == ["pending"] * 3 and all(r.prediction_id for r in kept)

    again = MemoryApi()
    rows, summary = cli.classify(again, [folder], out, progress=False)
    assert again.uploads == [] and sorted(again.polls) == sorted(r.prediction_id for r in kept)
    assert {r.status for r in rows if r.sha256} == {"done"}
    assert (summary.uploaded, summary.polled) == (0, 3)
