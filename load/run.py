"""`make load`: measure the raw engine, then load the local cloud with Locust, then report.

Steps, all on 127.0.0.1 and bounded in time:
1. The raw engine on this machine (a subprocess, before any load): ResNet50 as a compiled
   graph, images/s at its best batch and batch-1 latency (load.bench_inference's functions).
2. For each number of inference sandboxes (1, 2) and each number of users (1, 10, 25, 50, 100,
   200): a fresh local cloud (MODEL_WEIGHTS=random), one warm-up classify per sandbox, then
   Locust headless for LOAD_DURATION seconds; afterwards the runner waits for every upload the
   users did not wait for, and counts uploads against finished results.
3. load/results/summary.json, then load/REPORT.md and the PNG plots (load.report).

Settings (environment or flags): LOAD_USERS (e.g. "1,10,50"), LOAD_SANDBOXES ("1,2"),
LOAD_DURATION (seconds per scenario, default 60), LOAD_WAIT_MIN / LOAD_WAIT_MAX (think time).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import json
import os
import platform
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import requests

from load import report
from load.images import generate_images, unique_variant

ROOT = Path(__file__).resolve().parent.parent
LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
RESULTS_DIR = report.RESULTS_DIR

DEFAULT_USERS = (1, 10, 25, 50, 100, 200)
DEFAULT_SANDBOXES = (1, 2)
DEFAULT_DURATION_S = 60
DEMO_EMAIL = "admin@example.com"
DEMO_PASSWORD = "admin"
# After a scenario, how long the runner waits for results the users did not wait for.
DRAIN_DEADLINE_S = 180.0
FINAL_STATUSES = ("done", "failed")


@dataclass
class Scenario:
    """One Locust run: how many users against how many inference sandboxes."""

    users: int
    sandboxes: int
    duration_s: int
    results: dict = field(default_factory=dict)


def _csv_ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def measure_engine() -> dict:
    """Raw engine figures on this machine, measured in a fresh subprocess.

    A subprocess so TensorFlow's threads and memory are gone before the load starts.
    """
    command = [sys.executable, "-m", "load.run", "--measure-engine-only"]
    completed = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(f"engine measurement failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _engine_figures() -> dict:
    """Run inside the --measure-engine-only subprocess: reuse the benchmark's functions."""
    from load import bench_inference

    return bench_inference.raw_engine_figures()


def login(api_url: str, email: str = DEMO_EMAIL, password: str = DEMO_PASSWORD) -> str:
    """A bearer token for `email`."""
    response = requests.post(
        f"{api_url}/auth/login", json={"email": email, "password": password}, timeout=30
    )
    response.raise_for_status()
    return response.json()["access_token"]


def classify_once(api_url: str, token: str, image, timeout_s: float = 180.0) -> dict:
    """Classify one image through the API as a client does; return the final prediction."""
    headers = {"Authorization": f"Bearer {token}"}
    data = unique_variant(image, uuid.uuid4().hex)
    grant = requests.post(
        f"{api_url}/uploads",
        json={"filename": image.filename, "content_type": image.content_type, "size": len(data)},
        headers=headers,
        timeout=30,
    )
    grant.raise_for_status()
    body = grant.json()
    upload = requests.post(
        body["upload"]["url"],
        data=body["upload"]["fields"],
        files={"file": (image.filename, data, image.content_type)},
        timeout=30,
    )
    upload.raise_for_status()
    return wait_for_result(api_url, token, body["prediction_id"], timeout_s)


def wait_for_result(api_url: str, token: str, prediction_id: str, timeout_s: float) -> dict:
    """Long-poll one prediction until it is final or `timeout_s` has passed."""
    deadline = time.monotonic() + timeout_s
    prediction: dict = {"id": prediction_id, "status": "unknown"}
    while time.monotonic() < deadline:
        wait = max(1, min(20, int(deadline - time.monotonic())))
        response = requests.get(
            f"{api_url}/predictions/{prediction_id}",
            params={"wait": wait},
            headers={"Authorization": f"Bearer {token}"},
            timeout=wait + 30,
        )
        response.raise_for_status()
        prediction = response.json()
        if prediction["status"] in FINAL_STATUSES:
            break
    return prediction


def warm_up(api_url: str, sandboxes: int) -> None:
    """One classify per inference sandbox, at once, so no scenario measures a cold start."""
    token = login(api_url)
    images = generate_images()[:sandboxes * 2]
    with concurrent.futures.ThreadPoolExecutor(len(images)) as pool:
        finals = list(pool.map(lambda image: classify_once(api_url, token, image), images))
    bad = [p for p in finals if p["status"] != "done"]
    if bad:
        raise RuntimeError(f"warm-up classify did not finish: {bad}")


def run_locust(
    api_url: str,
    users: int,
    duration_s: int,
    out_dir: Path,
    *,
    spawn_rate: float | None = None,
    extra_env: dict[str, str] | None = None,
) -> dict:
    """Run the locustfile headless in a subprocess; return its stats and its ledger.

    A subprocess because Locust monkey-patches the standard library with gevent.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    ledger_path = out_dir / "ledger.json"
    ledger_path.unlink(missing_ok=True)
    prefix = out_dir / "locust"
    rate = spawn_rate or max(1.0, users / 5.0)
    stop_timeout = 30
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--host",
        api_url,
        "--users",
        str(users),
        "--spawn-rate",
        str(rate),
        "--run-time",
        f"{duration_s}s",
        "--stop-timeout",
        str(stop_timeout),
        "--csv",
        str(prefix),
        "--only-summary",
        "--loglevel",
        "WARNING",
    ]
    env = {**os.environ, "LOAD_LEDGER": str(ledger_path), **(extra_env or {})}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    with open(out_dir / "locust.log", "w") as log:
        completed = subprocess.run(
            command,
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=duration_s + stop_timeout + 180,
            check=False,
        )
    stats_path = Path(f"{prefix}_stats.csv")
    if not stats_path.exists() or not ledger_path.exists():
        log_tail = (out_dir / "locust.log").read_text()[-3000:]
        raise RuntimeError(f"locust exited {completed.returncode} without results:\n{log_tail}")
    return {
        "exit_code": completed.returncode,
        "stats": read_stats(stats_path),
        "errors": read_failures(Path(f"{prefix}_failures.csv")),
        "ledger": json.loads(ledger_path.read_text()),
    }


def _number(value: str) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def read_stats(path: Path) -> dict:
    """Locust's *_stats.csv as {name: {requests, failures, rps, median_ms, p95_ms, ...}}."""
    rows = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            name = row["Name"]
            requests_count = int(row["Request Count"])
            rows[name] = {
                "method": row["Type"],
                "requests": requests_count,
                "failures": int(row["Failure Count"]),
                "rps": _number(row["Requests/s"]) or 0.0,
                "median_ms": _number(row["50%"]) if requests_count else None,
                "p95_ms": _number(row["95%"]) if requests_count else None,
                "avg_ms": _number(row["Average Response Time"]) if requests_count else None,
                "max_ms": _number(row["Max Response Time"]) if requests_count else None,
            }
    return rows


def read_failures(path: Path) -> list[dict]:
    """Locust's *_failures.csv as a list of {method, name, error, occurrences}."""
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return [
            {
                "method": row["Method"],
                "name": row["Name"],
                "error": row["Error"],
                "occurrences": int(row["Occurrences"]),
            }
            for row in csv.DictReader(handle)
        ]


def drain(api_url: str, ledger: dict, deadline_s: float = DRAIN_DEADLINE_S) -> dict:
    """Wait for every upload the users did not see finish; count uploads against results.

    Returns {uploads, finished, failed_results, lost, lost_ids}.
    """
    uploaded: dict[str, str] = ledger["uploaded"]
    statuses: dict[str, str] = dict(ledger["finished"])
    waiting = [pid for pid in uploaded if pid not in statuses]
    deadline = time.monotonic() + deadline_s

    def settle(prediction_id: str) -> tuple[str, str]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return prediction_id, "unknown"
        try:
            final = wait_for_result(api_url, uploaded[prediction_id], prediction_id, remaining)
        except requests.RequestException as error:
            return prediction_id, f"error: {error}"
        return prediction_id, final["status"]

    if waiting:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            statuses.update(pool.map(settle, waiting))
    finished = [pid for pid in uploaded if statuses.get(pid) in FINAL_STATUSES]
    lost = [pid for pid in uploaded if statuses.get(pid) not in FINAL_STATUSES]
    return {
        "uploads": len(uploaded),
        "finished": len(finished),
        "finished_by_users": len(ledger["finished"]),
        "failed_results": sum(1 for pid in finished if statuses[pid] == "failed"),
        "lost": len(lost),
        "lost_ids": lost[:20],
    }


def run_scenario(api_url: str, scenario: Scenario, out_dir: Path) -> dict:
    """One Locust run plus the nothing-lost check; the scenario's summary row."""
    result = run_locust(api_url, scenario.users, scenario.duration_s, out_dir)
    counts = drain(api_url, result["ledger"])
    stats = result["stats"]
    aggregated = stats.pop("Aggregated")
    return {
        "users": scenario.users,
        "sandboxes": scenario.sandboxes,
        "duration_s": scenario.duration_s,
        "aggregated": aggregated,
        "endpoints": stats,
        "errors": result["errors"],
        **counts,
    }


def main(argv: list[str] | None = None) -> int:
    """Measure, load, report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", default=os.environ.get("LOAD_USERS"))
    parser.add_argument("--sandboxes", default=os.environ.get("LOAD_SANDBOXES"))
    parser.add_argument(
        "--duration", type=int, default=int(os.environ.get("LOAD_DURATION", DEFAULT_DURATION_S))
    )
    parser.add_argument("--measure-engine-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.measure_engine_only:
        print(json.dumps(_engine_figures()))
        return 0

    users = _csv_ints(args.users) if args.users else list(DEFAULT_USERS)
    sandbox_counts = _csv_ints(args.sandboxes) if args.sandboxes else list(DEFAULT_SANDBOXES)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    summary = {
        "started_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} cores, {platform.machine()}, Python "
        f"{platform.python_version()}",
        "settings": {
            "duration_s": args.duration,
            "wait_min": float(os.environ.get("LOAD_WAIT_MIN", "1")),
            "wait_max": float(os.environ.get("LOAD_WAIT_MAX", "3")),
        },
        "scenarios": [],
        "notes": [],
    }
    print("measuring the raw engine ...", flush=True)
    summary["engine"] = measure_engine()
    print(
        f"raw engine: {summary['engine']['images_per_s']:.1f} images/s, "
        f"batch-1 {summary['engine']['batch1_ms']:.0f} ms",
        flush=True,
    )
    for sandboxes in sandbox_counts:
        for count in users:
            scenario = Scenario(users=count, sandboxes=sandboxes, duration_s=args.duration)
            out_dir = RESULTS_DIR / f"sandboxes-{sandboxes}-users-{count}"
            with start_local_cloud(sandboxes, out_dir) as api_url:
                warm_up(api_url, sandboxes)
                print(f"{sandboxes} sandbox(es), {count} users, {args.duration} s ...", flush=True)
                row = run_scenario(api_url, scenario, out_dir)
            summary["scenarios"].append(row)
            e2e = report.e2e_stats(row)
            print(
                f"  {row['aggregated']['requests']} requests, "
                f"{row['aggregated']['failures']} failed, {row['aggregated']['rps']:.1f} RPS, "
                f"classify e2e {e2e['rps']:.1f}/s median {e2e['median_ms']} ms, "
                f"uploads {row['uploads']} finished {row['finished']} lost {row['lost']}",
                flush=True,
            )
            (RESULTS_DIR / "summary.json").write_text(json.dumps(summary, indent=2))
    path = report.write_report(summary)
    print(f"wrote {path.relative_to(ROOT)}")
    bad = [s for s in summary["scenarios"] if s["aggregated"]["failures"] or s["lost"]]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
