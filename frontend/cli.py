"""Bulk classification and the feedback export, from the command line.

    python -m frontend.cli classify PATH... --out results.csv [--concurrency 8]
    python -m frontend.cli export-feedback --out manifest.csv

``classify`` logs in, uploads every JPEG, PNG and WebP under the paths straight to S3 through
pre-signed POSTs, long-polls every result and writes one row per file (CSV or JSON Lines, by
the extension of --out). Other files get a ``skipped`` row with the reason. A rerun with the
same --out reads the previous rows and uploads nothing whose SHA-256 is already ``done``
(and only polls again what was still ``pending``).

Credentials: --email/--password, or IMGCLF_EMAIL / IMGCLF_PASSWORD. The API: --api-url or
IMGCLF_API_URL (default http://127.0.0.1:3000).

Exit status: 0 when every image has a final result (done or failed) or was skipped, 1 when
some are still pending, expired (the upload never arrived: a rerun uploads them again) or hit
an error, 2 for a usage, login or API problem.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import getpass
import hashlib
import json
import os
import queue
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from frontend.client import (
    ApiClient,
    ApiError,
    Endpoints,
    Prediction,
    detect_image_type,
    human_size,
)

RESULT_COLUMNS = ("file", "sha256", "prediction_id", "status", "label", "score", "top5", "error")
MANIFEST_COLUMNS = (
    "image_key",
    "prediction_id",
    "filename",
    "predicted_label",
    "corrected_label",
    "correct",
    "comment",
    "created_at",
)
#: Statuses after which an image needs nothing more from the API.
FINAL = ("done", "failed")


@dataclass
class ResultRow:
    """One line of the output: a file and what became of it."""

    file: str
    sha256: str = ""
    prediction_id: str = ""
    status: str = ""
    label: str = ""
    score: float | None = None
    top5: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    error: str = ""

    def with_prediction(self, prediction: Prediction) -> ResultRow:
        """This row updated with the API's view of its prediction."""
        return dataclasses.replace(
            self,
            prediction_id=prediction.id,
            status=prediction.status,
            label=prediction.label or "",
            score=prediction.score,
            top5=[dataclasses.asdict(item) for item in prediction.top5],
            error=prediction.error or ("" if prediction.finished else "still pending"),
        )


# --------------------------------------------------------------------------- files


def iter_files(paths: Iterable[Path]) -> Iterator[Path]:
    """Every file under the paths (folders recursively), each once, in a stable order."""
    seen: set[Path] = set()
    for path in paths:
        candidates = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for candidate in candidates:
            resolved = candidate.resolve()
            if resolved not in seen:
                seen.add(resolved)
                yield candidate


def inspect_file(path: Path, max_bytes: int) -> ResultRow:
    """A row for ``path``: skipped with a reason, or ready to upload (sha256 set, no status)."""
    row = ResultRow(file=str(path))
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(16)
    except OSError as exc:
        return dataclasses.replace(row, status="skipped", error=f"cannot read: {exc.strerror}")
    if detect_image_type(head) is None:
        return dataclasses.replace(row, status="skipped", error="not a JPEG, PNG or WebP image")
    if size > max_bytes:
        reason = f"{human_size(size)} is over the upload limit of {human_size(max_bytes)}"
        return dataclasses.replace(row, status="skipped", error=reason)
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return dataclasses.replace(row, sha256=digest.hexdigest())


# --------------------------------------------------------------------------- output files


def output_format(path: Path) -> str:
    """'csv' or 'jsonl', from the file's extension."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    raise SystemExit(f"--out must end in .csv or .jsonl, not {path.name!r}")


def write_rows(path: Path, columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> None:
    """Write rows as CSV or JSON Lines, atomically (a crash never leaves half a file)."""
    fmt = output_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as handle:
            if fmt == "csv":
                writer = csv.DictWriter(handle, fieldnames=list(columns))
                writer.writeheader()
                for row in rows:
                    writer.writerow({k: _csv_cell(row.get(k)) for k in columns})
            else:
                for row in rows:
                    handle.write(json.dumps({k: row.get(k) for k in columns}) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _csv_cell(value: Any) -> Any:
    if isinstance(value, list | dict):
        return json.dumps(value)
    return "" if value is None else value


def read_results(path: Path) -> list[ResultRow]:
    """The rows of a previous ``classify`` output (none if the file does not exist)."""
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        if output_format(path) == "csv":
            raw = list(csv.DictReader(handle))
        else:
            raw = [json.loads(line) for line in handle if line.strip()]
    rows = []
    for item in raw:
        top5 = item.get("top5") or []
        score = item.get("score")
        rows.append(
            ResultRow(
                file=str(item.get("file") or ""),
                sha256=str(item.get("sha256") or ""),
                prediction_id=str(item.get("prediction_id") or ""),
                status=str(item.get("status") or ""),
                label=str(item.get("label") or ""),
                score=float(score) if score not in (None, "") else None,
                top5=json.loads(top5) if isinstance(top5, str) else list(top5),
                error=str(item.get("error") or ""),
            )
        )
    return rows


# --------------------------------------------------------------------------- classify


@dataclass
class Summary:
    """What one ``classify`` run did, for the last line it prints."""

    uploaded: int = 0
    reused: int = 0
    polled: int = 0


def classify(
    client: ApiClient,
    paths: Sequence[Path],
    out: Path,
    concurrency: int = 8,
    timeout: float = 300,
    max_bytes: int | None = None,
    progress: bool | None = None,
) -> tuple[list[ResultRow], Summary]:
    """Classify every image under ``paths``; write and return one row per file.

    Images whose SHA-256 is ``done`` in ``out`` already are not uploaded again; those left
    ``pending`` there are polled again by prediction id. Identical files are uploaded once.
    Files over ``max_bytes`` (default: the API's limit, from GET /health) are skipped.
    """
    max_bytes = client.upload_limits().max_bytes if max_bytes is None else max_bytes
    rows = [inspect_file(path, max_bytes) for path in iter_files(paths)]
    previous = {r.sha256: r for r in read_results(out) if r.sha256 and r.prediction_id}
    summary = Summary()

    # One piece of work per distinct image: upload it, or only poll it, or nothing.
    to_upload: dict[str, ResultRow] = {}
    to_poll: dict[str, ResultRow] = {}
    finished: dict[str, ResultRow] = {}
    for row in rows:
        if row.status == "skipped" or row.sha256 in to_upload or row.sha256 in to_poll:
            continue
        earlier = previous.get(row.sha256)
        if earlier and earlier.status == "done":
            finished[row.sha256] = earlier
        elif earlier and earlier.status == "pending":
            to_poll[row.sha256] = earlier
        else:
            to_upload[row.sha256] = row
    summary.reused = sum(1 for r in rows if r.sha256 in finished)
    summary.polled = len(to_poll)

    results: queue.Queue[ResultRow] = queue.Queue()
    uploaded: list[str] = []  # list.append is atomic: the upload threads share it
    # Uploaded, result not seen yet: written as pending if the run stops early, so that a
    # rerun polls them instead of uploading them again.
    in_flight: dict[str, ResultRow] = dict(to_poll)
    total = len(to_upload) + len(to_poll)
    uploads = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="upload")
    waits = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="wait")

    # Every job puts exactly one row on `results`, whatever goes wrong, so the loop
    # below always ends: hence the broad excepts.
    def wait(row: ResultRow) -> None:
        try:
            results.put(row.with_prediction(client.wait_for(row.prediction_id, timeout)))
        except Exception as exc:
            results.put(dataclasses.replace(row, status="error", error=str(exc)))

    def upload(row: ResultRow) -> None:
        try:
            data = Path(row.file).read_bytes()
            if hashlib.sha256(data).hexdigest() != row.sha256:
                raise OSError("the file changed while the command ran")
            prediction_id = client.upload_image(data, Path(row.file).name)
            uploaded.append(prediction_id)
        except Exception as exc:
            results.put(dataclasses.replace(row, status="error", error=str(exc)))
            return
        sent = dataclasses.replace(row, prediction_id=prediction_id, status="pending")
        in_flight[row.sha256] = sent
        waits.submit(wait, sent)

    try:
        for row in to_poll.values():
            waits.submit(wait, row)
        for row in to_upload.values():
            uploads.submit(upload, row)
        # disable=None: a bar on a terminal, nothing when the output is piped or captured.
        with tqdm(total=total, unit="image", disable=True if progress is False else None) as bar:
            for _ in range(total):
                row = results.get()
                finished[row.sha256] = row
                bar.update(1)
                bar.set_postfix_str(_counts(finished.values()), refresh=False)
    finally:
        uploads.shutdown(wait=True, cancel_futures=True)
        waits.shutdown(wait=True, cancel_futures=True)
        summary.uploaded = len(uploaded)
        known = {**in_flight, **finished}
        final = [
            dataclasses.replace(known[r.sha256], file=r.file) if r.sha256 in known else r
            for r in rows
        ]
        write_rows(out, RESULT_COLUMNS, (dataclasses.asdict(r) for r in final))
    return final, summary


def _counts(rows: Iterable[ResultRow]) -> str:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))


# --------------------------------------------------------------------------- export


def export_feedback(client: ApiClient, out: Path) -> int:
    """Write the caller's feedback as a labelled manifest for retraining, newest first;
    returns the number of rows."""
    # Feedback whose prediction is gone has no image left to train on.
    entries = [entry for entry in client.list_feedback() if entry.object_key]
    write_rows(
        out,
        MANIFEST_COLUMNS,
        (
            {
                "image_key": e.object_key,
                "prediction_id": e.prediction_id,
                "filename": e.filename,
                "predicted_label": e.predicted_label,
                "corrected_label": e.corrected_label,
                "correct": e.correct,
                "comment": e.comment,
                "created_at": e.created_at,
            }
            for e in entries
        ),
    )
    return len(entries)


# --------------------------------------------------------------------------- command line


def _parser() -> argparse.ArgumentParser:
    # The connection options belong to every command, so they may come after its name.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--api-url", help="API base URL (default: $IMGCLF_API_URL or local)")
    common.add_argument("--email", help="default: $IMGCLF_EMAIL, else asked")
    common.add_argument("--password", help="default: $IMGCLF_PASSWORD, else asked")

    parser = argparse.ArgumentParser(
        prog="python -m frontend.cli", description="Bulk classification with imgclf."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "classify", parents=[common], help="classify every image under the paths"
    )
    run.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="files or folders")
    run.add_argument("--out", type=Path, required=True, help="results .csv or .jsonl")
    run.add_argument("--concurrency", type=int, default=8, help="parallel uploads (default 8)")
    run.add_argument(
        "--timeout", type=float, default=300, help="seconds to wait for each result (300)"
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar")

    export = commands.add_parser(
        "export-feedback", parents=[common], help="write a labelled manifest for retraining"
    )
    export.add_argument("--out", type=Path, required=True, help="manifest .csv or .jsonl")
    return parser


def _login(args: argparse.Namespace) -> ApiClient:
    endpoints = Endpoints.from_env()
    if args.api_url:
        endpoints = dataclasses.replace(endpoints, api_url=args.api_url)
    email = args.email or os.environ.get("IMGCLF_EMAIL")
    if not email and sys.stdin.isatty():
        email = input("email: ")
    password = args.password or os.environ.get("IMGCLF_PASSWORD")
    if not password and sys.stdin.isatty():
        password = getpass.getpass("password: ")
    if not email or not password:
        raise SystemExit("give --email and --password (or IMGCLF_EMAIL and IMGCLF_PASSWORD)")
    # Keeping the credentials lets a long run log in again when its token expires.
    client = ApiClient(endpoints=endpoints, credentials=(email, password))
    client.login(email, password)
    return client


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "classify" and args.concurrency < 1:
        raise SystemExit("--concurrency must be at least 1")
    output_format(args.out)  # a bad extension fails before any upload
    try:
        client = _login(args)
        if args.command == "export-feedback":
            count = export_feedback(client, args.out)
            print(f"{count} feedback rows written to {args.out}", file=sys.stderr)
            return 0
        missing = [str(p) for p in args.paths if not p.exists()]
        if missing:
            raise SystemExit(f"no such file or folder: {', '.join(missing)}")
        rows, summary = classify(
            client,
            args.paths,
            args.out,
            concurrency=args.concurrency,
            timeout=args.timeout,
            progress=not args.no_progress,
        )
    except ApiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # classify() has written the rows finished so far: a rerun picks up from there.
        print(f"interrupted; the results so far are in {args.out}", file=sys.stderr)
        return 130
    print(
        f"{len(rows)} files: {_counts(rows)}; uploaded {summary.uploaded}, "
        f"reused {summary.reused} from {args.out.name}, polled again {summary.polled}",
        file=sys.stderr,
    )
    return 1 if any(r.status not in (*FINAL, "skipped") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
