"""Durable local state: what users made survives a restart of the local cloud.

Neither moto's server nor LocalStack's community edition keeps its data, so the local cloud
does it itself, through the AWS APIs it provisions with (the same code serves moto,
LocalStack and any other endpoint): every DynamoDB item of the template's tables (Scan) and
every object of its buckets (ListObjectsV2, GetObject) is saved to ``<state dir>/saved/``,
and put back (BatchWriteItem, PutObject) after provisioning at the next start.

Queued work needs no copy of the queues: a restored object raises its ObjectCreated
notification as its upload did, and the inference function finishes the predictions still
pending and skips the finished ones (its writes are conditional on ``pending``, so nothing is
classified twice into two different results).

Layout, written so that a kill at any instant leaves the last complete save readable:

    saved/manifest.json          the commit point: replaced atomically (write, fsync, rename)
    saved/tables/<Id>.<sha>.jsonl  one file per table and content (DynamoDB JSON, a line an item)
    saved/objects/<sha256>       object bodies, by content (written once, never rewritten)

A save writes its new files first and the manifest last; files no manifest names are then
removed. Saving is incremental where that is cheap: an object whose ETag is unchanged is not
read again, and a table file whose content is unchanged is not rewritten.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from localcloud.template import Template

log = logging.getLogger("localcloud.saved_state")

SAVED_DIR = "saved"
MANIFEST = "manifest.json"
FORMAT = 1
_BATCH_WRITE_MAX = 25
# Objects are read and written a few at a time: each is a round trip to the endpoint.
_io = ThreadPoolExecutor(max_workers=4, thread_name_prefix="saved-state")


class SaveRefused(Exception):
    """The endpoint looks emptied (e.g. a restarted emulator): saving would erase the state."""


@dataclass
class Report:
    """What one save or restore did."""

    items: int = 0
    objects: int = 0
    bytes: int = 0  # object bytes read (save) or written (restore)
    seconds: float = 0.0
    skipped: list[str] = field(default_factory=list)  # resources left as they were

    def __str__(self) -> str:
        return (
            f"{self.items} items, {self.objects} objects ({self.bytes / 1e6:.1f} MB) "
            f"in {self.seconds:.2f}s"
        )


def _clients(endpoint: str, region: str) -> dict[str, Any]:
    # Short timeouts and one retry: a dead or wedged emulator fails a save in seconds (the
    # last complete save stays as it is) and never holds up a stop for long.
    config = Config(
        connect_timeout=2,
        read_timeout=10,
        retries={"mode": "standard", "total_max_attempts": 2},
        s3={"addressing_style": "path"},
    )
    session = boto3.session.Session(region_name=region)
    return {
        name: session.client(name, endpoint_url=endpoint, config=config)
        for name in ("s3", "dynamodb")
    }


class SavedState:
    """The saved state of a local cloud's tables and buckets, in ``directory``."""

    def __init__(self, directory: Path, template: Template, endpoint: str, region: str) -> None:
        self.directory = directory
        self.template = template
        self.clients = _clients(endpoint, region)
        self.tables = {
            logical_id: template.physical_name(logical_id)
            for logical_id in template.resources_of_type("AWS::DynamoDB::Table")
        }
        self.buckets = {
            logical_id: template.physical_name(logical_id)
            for logical_id in template.resources_of_type("AWS::S3::Bucket")
        }

    @property
    def manifest_path(self) -> Path:
        """The file whose atomic replacement commits a save."""
        return self.directory / MANIFEST

    def manifest(self) -> dict[str, Any] | None:
        """The last complete save, or None (nothing saved yet)."""
        try:
            text = self.manifest_path.read_text()
        except FileNotFoundError:
            return None
        manifest = json.loads(text)  # never half-written: it is only ever renamed into place
        if manifest.get("format") != FORMAT:
            raise ValueError(f"{self.manifest_path}: unknown format {manifest.get('format')!r}")
        return manifest

    # ---- save -------------------------------------------------------------------------

    def save(self) -> Report:
        """Save every table and bucket of the template; returns what it read.

        Tables are read before buckets: every saved prediction then has its image saved too
        (an image always exists before its prediction is finished).
        """
        started = time.monotonic()
        report = Report()
        previous = self.manifest() or {"tables": {}, "buckets": {}}
        (self.directory / "tables").mkdir(parents=True, exist_ok=True)
        (self.directory / "objects").mkdir(parents=True, exist_ok=True)
        manifest: dict[str, Any] = {"format": FORMAT, "tables": {}, "buckets": {}}
        for logical_id, name in self.tables.items():
            entry = self._save_table(logical_id, name, previous["tables"].get(logical_id))
            manifest["tables"][logical_id] = entry
            report.items += entry["items"]
        for logical_id, name in self.buckets.items():
            entry = self._save_bucket(name, previous["buckets"].get(logical_id), report)
            manifest["buckets"][logical_id] = entry
            report.objects += len(entry["objects"])
        had = _count(previous)
        if had and not report.items and not report.objects:
            raise SaveRefused(
                f"the endpoint holds nothing where the saved state holds {had} items and "
                "objects (was the emulator restarted?): the saved state is kept"
            )
        manifest["saved_at"] = time.time()
        _write_atomically(self.manifest_path, json.dumps(manifest, indent=1).encode())
        self._remove_unreferenced(manifest)
        report.seconds = time.monotonic() - started
        return report

    def _save_table(self, logical_id: str, name: str, previous: dict | None) -> dict[str, Any]:
        lines = [json.dumps(item, sort_keys=True) for item in self._scan(name)]
        lines.sort()  # the same items give the same file, whatever order the scan returned
        data = "".join(line + "\n" for line in lines).encode()
        digest = hashlib.sha256(data).hexdigest()[:16]
        file = f"tables/{logical_id}.{digest}.jsonl"
        if not (previous and previous.get("file") == file and (self.directory / file).exists()):
            _write_atomically(self.directory / file, data)
        return {"name": name, "file": file, "items": len(lines)}

    def _scan(self, name: str) -> Iterator[dict]:
        kwargs: dict[str, Any] = {"TableName": name, "ConsistentRead": True}
        while True:
            page = self.clients["dynamodb"].scan(**kwargs)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _save_bucket(self, name: str, previous: dict | None, report: Report) -> dict[str, Any]:
        known = (previous or {}).get("objects", {})
        objects: dict[str, dict] = {}
        new: list[str] = []
        for summary in _listing(self.clients["s3"], name):
            key, earlier = summary["Key"], known.get(summary["Key"])
            if (
                earlier
                and earlier["etag"] == summary["ETag"]
                and self._blob(earlier["blob"]).exists()
            ):
                objects[key] = earlier
            else:
                new.append(key)
        for key, entry in zip(new, _io.map(lambda k: self._save_object(name, k), new), strict=True):
            if entry is not None:  # None: deleted since the listing
                objects[key] = entry
                report.bytes += entry["size"]
        return {"name": name, "objects": objects}

    def _save_object(self, bucket: str, key: str) -> dict[str, Any] | None:
        try:
            reply = self.clients["s3"].get_object(Bucket=bucket, Key=key)
            body = reply["Body"].read()
        except ClientError as error:
            if error.response["Error"]["Code"] in ("NoSuchKey", "404"):
                return None
            raise
        blob = hashlib.sha256(body).hexdigest()
        if not self._blob(blob).exists():
            _write_atomically(self._blob(blob), body)
        return {
            "etag": reply["ETag"],
            "size": len(body),
            "blob": blob,
            "content_type": reply.get("ContentType") or "binary/octet-stream",
            "metadata": reply.get("Metadata") or {},
        }

    def _blob(self, digest: str) -> Path:
        return self.directory / "objects" / digest

    def _remove_unreferenced(self, manifest: dict[str, Any]) -> None:
        wanted = {self.directory / entry["file"] for entry in manifest["tables"].values()}
        wanted |= {
            self._blob(obj["blob"])
            for bucket in manifest["buckets"].values()
            for obj in bucket["objects"].values()
        }
        for folder in ("tables", "objects"):
            for path in (self.directory / folder).iterdir():
                if path not in wanted:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()

    # ---- restore ----------------------------------------------------------------------

    def restore(self) -> Report:
        """Put the last save back into the endpoint's (just provisioned) tables and buckets.

        A table or bucket that already holds data is left alone: the endpoint kept its own
        state (an emulator that persists, or one started elsewhere), which is newer.
        """
        started = time.monotonic()
        report = Report()
        manifest = self.manifest()
        if manifest is None:
            return report
        for logical_id, entry in manifest["tables"].items():
            name = self.tables.get(logical_id)
            if name is None:
                report.skipped.append(f"{logical_id} (no longer in the template)")
                continue
            if self.clients["dynamodb"].scan(TableName=name, Limit=1).get("Items"):
                report.skipped.append(f"{logical_id} (not empty)")
                continue
            report.items += self._restore_table(name, self.directory / entry["file"])
        for logical_id, entry in manifest["buckets"].items():
            name = self.buckets.get(logical_id)
            if name is None:
                report.skipped.append(f"{logical_id} (no longer in the template)")
                continue
            if self.clients["s3"].list_objects_v2(Bucket=name, MaxKeys=1).get("KeyCount"):
                report.skipped.append(f"{logical_id} (not empty)")
                continue
            objects = entry["objects"]
            for size in _io.map(
                self._restore_object, [name] * len(objects), objects, objects.values()
            ):
                report.objects += 1
                report.bytes += size
        report.seconds = time.monotonic() - started
        return report

    def _restore_object(self, bucket: str, key: str, obj: dict[str, Any]) -> int:
        body = self._blob(obj["blob"]).read_bytes()
        # PutObject raises the bucket's ObjectCreated notification, as the upload did.
        self.clients["s3"].put_object(
            Bucket=bucket,
            Key=key,
            Body=body,
            ContentType=obj["content_type"],
            Metadata=obj["metadata"],
        )
        return len(body)

    def _restore_table(self, name: str, path: Path) -> int:
        items = [json.loads(line) for line in path.read_text().splitlines() if line]
        dynamodb = self.clients["dynamodb"]
        for start in range(0, len(items), _BATCH_WRITE_MAX):
            batch = items[start : start + _BATCH_WRITE_MAX]
            requests = [{"PutRequest": {"Item": item}} for item in batch]
            for attempt in range(10):
                reply = dynamodb.batch_write_item(RequestItems={name: requests})
                requests = (reply.get("UnprocessedItems") or {}).get(name) or []
                if not requests:
                    break
                time.sleep(0.05 * 2**attempt)
            if requests:
                raise RuntimeError(f"restoring {name}: {len(requests)} items were not written")
        return len(items)


def _listing(s3: Any, bucket: str) -> Iterator[dict]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        yield from page.get("Contents", [])


def _count(manifest: dict[str, Any]) -> int:
    tables = sum(entry.get("items", 0) for entry in manifest["tables"].values())
    return tables + sum(len(entry["objects"]) for entry in manifest["buckets"].values())


def _write_atomically(path: Path, data: bytes) -> None:
    """Write ``path`` so that it holds either its old content or all of ``data``."""
    # One temporary name per thread: two objects with the same body are written at once.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a power cut
    finally:
        os.close(directory)


class Saver:
    """Saves a SavedState every ``interval`` seconds while something changed, and once more
    at ``stop``. A save never takes more than a quarter of the time: when saves get slow
    (many items), the interval stretches to three times the last save's duration."""

    # Even with no function run (e.g. a user added from the command line), save this often.
    IDLE_SAVE_SECONDS = 30.0

    def __init__(
        self, saved: SavedState, interval: float, on_saved: Callable[[], None] | None = None
    ) -> None:
        self.saved = saved
        self.interval = interval
        self._on_saved = on_saved or (lambda: None)
        self.last: Report | None = None
        self.last_saved_at: float | None = None
        self.failures = 0
        self._failing = 0
        self._changed = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="state-saver", daemon=True)

    def changed(self) -> None:
        """Something may have written to the tables or buckets (a function ran)."""
        self._changed.set()

    def start(self) -> Saver:
        """Start saving periodically (not at all for an interval of 0: only at stop)."""
        if self.interval > 0:
            self._thread.start()
        return self

    def save(self, why: str) -> bool:
        """Save now; False (logged) when the endpoint does not answer or looks emptied, in
        which case the last complete save stays as it is."""
        with self._lock:
            try:
                self.last = self.saved.save()
            except (SaveRefused, BotoCoreError, ClientError, OSError) as exc:
                self.failures += 1
                self._failing += 1
                # The first failure of a run is an error; its repeats every interval are not news.
                level = logging.ERROR if self._failing == 1 else logging.DEBUG
                kept = self.saved_at_text()
                log.log(level, "state not saved (%s): %s; the save of %s is kept", why, exc, kept)
                return False
            self._failing = 0
            self.last_saved_at = time.time()
            log.info("state saved (%s): %s", why, self.last)
        self._on_saved()
        return True

    def saved_at_text(self) -> str:
        """When the last complete save was made, for messages."""
        with contextlib.suppress(OSError, ValueError):
            manifest = self.saved.manifest()
            if manifest:
                return time.strftime("%H:%M:%S", time.localtime(manifest["saved_at"]))
        return "(none)"

    def suspend(self) -> None:
        """Stop the periodic saves, without a last one (the endpoint died)."""
        self._stopping.set()

    def stop(self) -> bool:
        """Stop the periodic saves and save one last time (call once nothing writes)."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(60)
        return self.save("stop")

    def _run(self) -> None:
        idle_since = time.monotonic()
        wait = self.interval
        while not self._stopping.wait(wait):
            idle = time.monotonic() - idle_since
            if not self._changed.is_set() and idle < self.IDLE_SAVE_SECONDS:
                continue
            self._changed.clear()
            idle_since = time.monotonic()
            self.save("periodic")
            took = self.last.seconds if self.last else 0.0
            wait = max(self.interval, 3 * took)
