"""`make load`: load the local cloud with Locust, each scenario beside the raw engine; report.

Steps, all on 127.0.0.1 and bounded in time:
1. For each number of inference sandboxes (1, 2) and each number of users (1, 10, 25, 50,
   100, 200), between two measurements of the raw engine (a subprocess, nothing else of
   ours running: ResNet50 as imgclf.model's compiled graph, images/s at its best batch and
   batch-1 latency), whose mean the scenario is compared with, because this shared
   machine's speed drifts over a run: a fresh local cloud (MODEL_WEIGHTS=random) with a few
   load-test accounts, warm-up (two classifies per inference sandbox, a predictions
   sandbox per user), Locust headless for LOAD_DURATION seconds, then the runner waits for
   every upload the users did not wait for and counts uploads against finished results.
   A fresh cloud each time, so no scenario inherits another's data: moto answers a Query
   by reading every item of the partition (DynamoDB reads only the page), so its cost
   would grow with earlier scenarios.
2. load/results/summary.json, then load/REPORT.md and the PNG plots (load.report).

Settings (environment or flags): LOAD_USERS (e.g. "1,10,50"), LOAD_SANDBOXES ("1,2"),
LOAD_DURATION (seconds per scenario, default 45), LOAD_WAIT_MIN / LOAD_WAIT_MAX (think time,
read by the locustfile), LOAD_ACCOUNT_COUNT (accounts the users share, default 20),
LOAD_BATCHING=SIZE:WINDOW (a variant run on a copy of template.yaml whose inference SQS event
has that BatchSize and MaximumBatchingWindowInSeconds; reported beside the main run).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import csv
import json
import logging
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import requests

from load import report
from load.bench_inference import cpu_model
from load.images import generate_images, unique_variant

ROOT = Path(__file__).resolve().parent.parent
LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
RESULTS_DIR = report.RESULTS_DIR

DEFAULT_USERS = (1, 10, 25, 50, 100, 200)
DEFAULT_SANDBOXES = (1, 2)
DEFAULT_DURATION_S = 45
DEFAULT_ACCOUNTS = 20
DEFAULT_EMULATOR = "localstack"
DEMO_EMAIL = "admin@example.com"
DEMO_PASSWORD = "admin"
# After a scenario, how long the runner waits for results the users did not wait for.
DRAIN_DEADLINE_S = 180.0
# Seconds Locust gives running tasks to finish after the run time (so classifies complete).
STOP_TIMEOUT_S = 10
FINAL_STATUSES = ("done", "failed")


def _csv_ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


# ---- the raw engine -------------------------------------------------------------------------


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
    engine = json.loads(completed.stdout.strip().splitlines()[-1])
    print(
        f"raw engine: {engine['images_per_s']:.1f} images/s (batch {engine['batch_size']}), "
        f"batch-1 {engine['batch1_ms']:.0f} ms",
        flush=True,
    )
    return engine


def bracketing_engine(before: dict, after: dict) -> dict:
    """The raw engine a scenario is compared with: the mean of the measurements right before
    and right after it (both kept), since this shared machine's speed drifts."""
    return {
        "description": before["description"],
        "images_per_s": (before["images_per_s"] + after["images_per_s"]) / 2,
        "batch1_ms": (before["batch1_ms"] + after["batch1_ms"]) / 2,
        "before": before,
        "after": after,
    }


def inference_engine() -> tuple[str, str]:
    """The engine and precision the local cloud's inference function runs: INFERENCE_ENGINE
    and INFERENCE_PRECISION when set (the local cloud passes them through), else what
    template.yaml gives the function."""
    from localcloud.template import load_yaml

    function = load_yaml(ROOT / "template.yaml")["Resources"]["InferenceFunction"]
    variables = function["Properties"]["Environment"]["Variables"]
    return tuple(  # type: ignore[return-value]
        os.environ.get(name) or variables[name]
        for name in ("INFERENCE_ENGINE", "INFERENCE_PRECISION")
    )


def _engine_figures(seconds: float = 3.0, rounds: int = 3) -> dict:
    """Run inside the --measure-engine-only subprocess: load.bench_inference's raw engine
    (the function's engine on ready pixels, random weights: ImageNet's compute),
    batches 1, 16 and 32 in interleaved rounds, the median of each."""
    import numpy as np
    from imgclf.images import TARGET_SIZE
    from imgclf.model import Classifier, cpu_count

    from load.bench_inference import raw_step, throughput

    load_before = os.getloadavg()[0]
    engine, precision = inference_engine()
    classifier = Classifier(weights="random", engine=engine, precision=precision)
    classifier.warm_up()
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(32, *TARGET_SIZE, 3), dtype=np.uint8)
    batches = (1, 16, 32)
    steps = {batch: raw_step(classifier, pixels, batch) for batch in batches}
    measured: dict[int, list[float]] = {batch: [] for batch in batches}
    for _ in range(rounds):
        for batch in batches:
            measured[batch].append(throughput(steps[batch], seconds))
    rates = {batch: float(np.median(values)) for batch, values in measured.items()}
    best = max((16, 32), key=lambda batch: rates[batch])
    return {
        "description": f"ResNet50 through {engine} {classifier.precision} (what the inference "
        "function runs), load.bench_inference's raw engine: preprocess_input + network, "
        f"{cpu_count()} threads, on ready pixels",
        "images_per_s": rates[best],
        "batch_size": best,
        "batch1_ms": 1000.0 / rates[1],
        "images_per_s_by_batch": rates,
        "load_average_before": load_before,
    }


# ---- the local cloud ------------------------------------------------------------------------


def emulator() -> str:
    """The emulator the clouds run on: LOCALCLOUD_EMULATOR (make load EMULATOR=...), else
    make up's default."""
    return os.environ.get("LOCALCLOUD_EMULATOR") or DEFAULT_EMULATOR


@contextlib.contextmanager
def start_local_cloud(
    sandboxes: int,
    state_dir: Path,
    *,
    predictions_concurrency: int = 4,
    template: Path | None = None,
) -> Iterator[Any]:
    """A fresh local cloud (MODEL_WEIGHTS=random, free ports on 127.0.0.1, no front end) with
    `sandboxes` inference sandboxes, in this process; yields the LocalCloud (`.api_url`) and
    stops everything it started afterwards."""
    from localcloud.cloud import CloudConfig, LocalCloud

    # One log line per request would cost the gateway CPU the load test is measuring.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    state_dir = state_dir.resolve()
    shutil.rmtree(state_dir, ignore_errors=True)
    config = CloudConfig(
        project_dir=ROOT,
        template=(template or ROOT / "template.yaml").resolve(),
        state_dir=state_dir,
        emulator=emulator(),
        emulator_port=0,
        redis_port=0,
        api_port=0,
        function_url_port=0,
        frontend=False,
        concurrency={
            "InferenceFunction": sandboxes,
            # Every waiting classify holds a predictions sandbox for its long-poll, as it
            # holds a Lambda execution environment in AWS.
            "PredictionsFunction": predictions_concurrency,
        },
        env_overrides={"MODEL_WEIGHTS": "random"},
        # A throwaway cloud: periodic saves would be load the test did not ask for.
        durable=False,
    )
    cloud = LocalCloud(config)
    cloud.start()
    try:
        yield cloud
    finally:
        cloud.stop()


def add_accounts(cloud: Any, count: int) -> list[tuple[str, str]]:
    """Create `count` load-test users with the layer's own add_user, in a function's
    environment (as the local cloud creates its demo user); returns (email, password) pairs."""
    accounts = [(f"load-{i:03d}@example.com", f"load-password-{i:03d}") for i in range(count)]
    if not accounts:
        return [(DEMO_EMAIL, DEMO_PASSWORD)]
    pool = cloud.pools["AuthFunction"]
    env = {**pool.env, "PYTHONPATH": os.pathsep.join(str(p) for p in pool.spec.layers)}
    script = (
        "import json, sys\n"
        "from imgclf.users import add_user\n"
        "for email, password in json.load(sys.stdin):\n"
        "    add_user(email, password)\n"
    )
    subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(accounts),
        env=env,
        cwd=pool.spec.code_dir,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return accounts


def _process_cpu(pid: int) -> float:
    """CPU seconds of a process and its live children (LocalStack starts helpers)."""
    try:
        process = psutil.Process(pid)
        processes = [process, *process.children(recursive=True)]
    except psutil.Error:
        return 0.0  # a sandbox replaced meanwhile: its CPU is not counted
    total = 0.0
    for each in processes:
        with contextlib.suppress(psutil.Error):
            times = each.cpu_times()
            total += times.user + times.system
    return total


def component_cpu(cloud: Any) -> dict[str, float]:
    """CPU seconds used so far by each piece of the local cloud, by Locust (this process's
    finished children) and by the whole machine (everyone's processes)."""
    me = psutil.Process().cpu_times()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    machine = psutil.cpu_times()
    out = {
        # The gateway's request threads and the SQS pollers run in this process.
        "gateway + SQS poller": me.user + me.system,
        "emulator (S3, SQS, DynamoDB)": (
            _process_cpu(cloud.emulator.process.pid) if cloud.emulator else 0.0
        ),
        "redis": _process_cpu(cloud.redis.process.pid) if cloud.redis else 0.0,
        "locust": children.ru_utime + children.ru_stime,
        "machine (all processes)": sum(machine) - machine.idle - getattr(machine, "iowait", 0),
    }
    for name, pool in cloud.pools.items():
        out[name] = sum(_process_cpu(w["pid"]) for w in pool.workers())
    return out


def inference_rss_mb(cloud: Any) -> float | None:
    """The largest resident memory of the inference sandboxes now, in MB."""
    sizes = []
    for worker in cloud.pools["InferenceFunction"].workers():
        try:
            sizes.append(psutil.Process(worker["pid"]).memory_info().rss / 2**20)
        except psutil.Error:
            continue  # replaced meanwhile
    return round(max(sizes), 1) if sizes else None


def cloud_counters(cloud: Any) -> dict:
    """Inference batches and invocations per sandbox so far (to diff around a scenario)."""
    workers = cloud.pools["InferenceFunction"].workers()
    return {
        "batches": sum(p.batches for p in cloud.pollers if p.source.event == "Uploads"),
        "invocations_by_sandbox": {str(w["pid"]): w["invocations"] for w in workers},
    }


def batching_template(size: int, window: int, out_path: Path) -> Path:
    """A copy of template.yaml whose InferenceFunction `Uploads` SQS event has another
    BatchSize and MaximumBatchingWindowInSeconds (to measure a proposed setting)."""
    lines = (ROOT / "template.yaml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "Uploads:")
    indent = len(lines[start]) - len(lines[start].lstrip())
    end = start + 1
    while end < len(lines) and (
        not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) > indent
    ):
        end += 1
    block = lines[start:end]
    keys = {"BatchSize": size, "MaximumBatchingWindowInSeconds": window}
    for key, value in keys.items():
        found = [i for i, line in enumerate(block) if line.strip().startswith(f"{key}:")]
        if not found:
            raise ValueError(f"template.yaml: no {key} in the Uploads event")
        line = block[found[0]]
        block[found[0]] = f"{line[: len(line) - len(line.lstrip())]}{key}: {value}"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text("\n".join([*lines[:start], *block, *lines[end:]]) + "\n")
    return out_path


# ---- a client, for warm-up and the nothing-lost check ---------------------------------------


def login(api_url: str, email: str = DEMO_EMAIL, password: str = DEMO_PASSWORD) -> str:
    """A bearer token for `email`."""
    response = requests.post(
        f"{api_url}/auth/login", json={"email": email, "password": password}, timeout=60
    )
    response.raise_for_status()
    return response.json()["access_token"]


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
            timeout=wait + 60,
        )
        response.raise_for_status()
        prediction = response.json()
        if prediction["status"] in FINAL_STATUSES:
            break
    return prediction


def request_upload(api_url: str, token: str, image, data: bytes) -> dict:
    """POST /uploads: a pending prediction and its pre-signed POST."""
    grant = requests.post(
        f"{api_url}/uploads",
        json={"filename": image.filename, "content_type": image.content_type, "size": len(data)},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    grant.raise_for_status()
    return grant.json()


def classify_once(api_url: str, token: str, image, timeout_s: float = 300.0) -> dict:
    """Classify one image through the API as a client does; return the final prediction."""
    data = unique_variant(image, uuid.uuid4().hex)
    grant = request_upload(api_url, token, image, data)
    upload = requests.post(
        grant["upload"]["url"],
        data=grant["upload"]["fields"],
        files={"file": (image.filename, data, image.content_type)},
        timeout=60,
    )
    upload.raise_for_status()
    return wait_for_result(api_url, token, grant["prediction_id"], timeout_s)


def start_sandboxes(cloud: Any, counts: dict[str, int], timeout_s: float = 600.0) -> None:
    """Have `counts[function]` sandboxes of each function started and initialised, so no
    scenario measures a cold start (a pool kept warm starts its workers in the background)."""
    for name, count in counts.items():
        pool = cloud.pools[name]
        pool.keep_warm = min(count, pool.concurrency)
        pool.warm()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for name in counts:
            # Again each time: a pool counts a worker that is still starting twice, so one
            # call made while another warm start runs starts too few.
            cloud.pools[name].warm()
        ready = {
            name: sum(1 for w in cloud.pools[name].workers() if w["init_ms"] is not None)
            for name in counts
        }
        if all(ready[name] >= min(n, cloud.pools[name].concurrency) for name, n in counts.items()):
            return
        time.sleep(0.5)
    raise TimeoutError(f"sandboxes not ready after {timeout_s:.0f} s: {ready}")


def warm_up(cloud: Any, inference_sandboxes: int, users: int) -> None:
    """Start every sandbox a scenario needs, then classify two images per inference sandbox
    through the API, so the scenario measures neither a cold start nor a first trace."""
    start_sandboxes(
        cloud,
        {
            "AuthFunction": 4,
            "UploadsFunction": 4,
            "FeedbackFunction": 4,
            # Each user holds at most one request, a long-poll included.
            "PredictionsFunction": max(4, users),
            "InferenceFunction": inference_sandboxes,
        },
    )
    token = login(cloud.api_url)
    images = generate_images()[: inference_sandboxes * 2]
    with concurrent.futures.ThreadPoolExecutor(len(images)) as pool:
        finals = list(pool.map(lambda image: classify_once(cloud.api_url, token, image), images))
    bad = [p for p in finals if p["status"] != "done"]
    if bad:
        raise RuntimeError(f"warm-up classify did not finish: {bad}")


# ---- Locust ---------------------------------------------------------------------------------


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

    The stats cover `duration_s` seconds of steady state, measured from the moment every user
    has logged in (the locustfile resets them then); the ledger covers the whole run. A
    subprocess because Locust monkey-patches the standard library with gevent.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    ledger_path = out_dir / "ledger.json"
    ledger_path.unlink(missing_ok=True)
    prefix = out_dir / "locust"
    # Logins hash with Argon2 (~30 CPU-ms each): at most 2.5 a second, far below what 4 auth
    # sandboxes serve on 2 busy cores, so no login waits out the gateway's 29 s for a sandbox.
    rate = spawn_rate or min(2.5, max(1.0, users / 5.0))
    # A hard stop in case the logins never all finish: ramp-up, logins, the window.
    run_time = duration_s + int(users / rate) + 60 + users
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
        f"{run_time}s",
        "--stop-timeout",
        str(STOP_TIMEOUT_S),
        "--csv",
        str(prefix),
        "--only-summary",
        "--loglevel",
        "WARNING",
    ]
    env = {
        **os.environ,
        "LOAD_LEDGER": str(ledger_path),
        "LOAD_MEASURE_SECONDS": str(duration_s),
        **(extra_env or {}),
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    with open(out_dir / "locust.log", "w") as log:
        completed = subprocess.run(
            command,
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=run_time + STOP_TIMEOUT_S + 120,
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
            count = int(row["Request Count"])
            rows[row["Name"]] = {
                "method": row["Type"],
                "requests": count,
                "failures": int(row["Failure Count"]),
                "rps": _number(row["Requests/s"]) or 0.0,
                "median_ms": _number(row["50%"]) if count else None,
                "p95_ms": _number(row["95%"]) if count else None,
                "avg_ms": _number(row["Average Response Time"]) if count else None,
                "max_ms": _number(row["Max Response Time"]) if count else None,
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

    Returns {uploads, finished, finished_by_users, failed_results, lost, lost_ids}.
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


# ---- the run --------------------------------------------------------------------------------


def run_scenario(
    cloud: Any,
    sandboxes: int,
    users: int,
    duration_s: int,
    out_dir: Path,
    accounts: list[tuple[str, str]],
) -> dict:
    """Warm up, one Locust run, the nothing-lost check: the scenario's summary row."""
    warm_up(cloud, sandboxes, users)
    before = cloud_counters(cloud)
    load_before = os.getloadavg()[0]
    cpu_before = component_cpu(cloud)
    started = time.monotonic()
    result = run_locust(
        cloud.api_url,
        users,
        duration_s,
        out_dir,
        extra_env={"LOAD_ACCOUNTS": ",".join(f"{e}:{p}" for e, p in accounts)},
    )
    wall = time.monotonic() - started
    cpu_after = component_cpu(cloud)
    rss_mb = inference_rss_mb(cloud)
    counts = drain(cloud.api_url, result["ledger"])
    after = cloud_counters(cloud)
    cpu = {name: round(cpu_after[name] - cpu_before[name], 2) for name in cpu_after}
    if "cpu_s" in result["ledger"]:
        # Exact, whereas finished children may include sandboxes reaped meanwhile.
        cpu["locust"] = round(result["ledger"]["cpu_s"], 2)
    stats = result["stats"]
    aggregated = stats.pop("Aggregated")
    ledger = result["ledger"]
    logins = sorted(ledger["login_ms"])
    invocations = {
        pid: n - before["invocations_by_sandbox"].get(pid, 0)
        for pid, n in after["invocations_by_sandbox"].items()
    }
    batches = after["batches"] - before["batches"]
    return {
        "users": users,
        "sandboxes": sandboxes,
        "duration_s": duration_s,
        "wall_s": round(wall, 1),
        # CPU seconds per component over the Locust run (ramp-up and logins included).
        "cpu_s": cpu,
        "aggregated": aggregated,
        "endpoints": stats,
        "errors": result["errors"],
        "failed_requests_whole_run": sum(ledger["failed_requests"].values()),
        "failed_by_name_whole_run": ledger["failed_requests"],
        "measured_s": round(ledger["measure_ended"] - ledger["measure_started"], 1)
        if ledger["measure_started"]
        else None,
        "logins": len(logins),
        "login_median_ms": logins[len(logins) // 2] if logins else None,
        "login_p95_ms": logins[int(len(logins) * 0.95)] if logins else None,
        "inference_batches": batches,
        "mean_batch_size": round(counts["uploads"] / batches, 2) if batches else None,
        "invocations_by_sandbox": sorted(invocations.values(), reverse=True),
        "inference_sandbox_rss_mb": rss_mb,
        "load_average_before": round(load_before, 2),
        "load_average_after": round(os.getloadavg()[0], 2),
        **counts,
    }


def main(argv: list[str] | None = None) -> int:
    """Measure, load, report."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--users", default=os.environ.get("LOAD_USERS"))
    parser.add_argument("--sandboxes", default=os.environ.get("LOAD_SANDBOXES"))
    parser.add_argument(
        "--duration", type=int, default=int(os.environ.get("LOAD_DURATION", DEFAULT_DURATION_S))
    )
    parser.add_argument(
        "--accounts",
        type=int,
        default=int(os.environ.get("LOAD_ACCOUNT_COUNT", DEFAULT_ACCOUNTS)),
        help="accounts the virtual users share (0: the demo user)",
    )
    parser.add_argument(
        "--batching",
        default=os.environ.get("LOAD_BATCHING"),
        metavar="SIZE:WINDOW",
        help="a variant run: the inference SQS event with this BatchSize and batching window",
    )
    parser.add_argument("--measure-engine-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    # Ctrl-C and `kill` both unwind through start_local_cloud, which stops what it started
    # (a shell starts background jobs with SIGINT ignored: restore it).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    if args.measure_engine_only:
        print(json.dumps(_engine_figures()))
        return 0

    template, label = None, None
    if args.batching:
        size, window = (int(part) for part in args.batching.split(":"))
        label = f"batch{size}-window{window}"
        template = batching_template(size, window, RESULTS_DIR / f"template-{label}.yaml")
    if emulator() != DEFAULT_EMULATOR:
        label = "-".join(part for part in (label, emulator()) if part)
    users = _csv_ints(args.users) if args.users else list(DEFAULT_USERS)
    sandbox_counts = _csv_ints(args.sandboxes) if args.sandboxes else list(DEFAULT_SANDBOXES)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {
        "started_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{cpu_model()}, {os.cpu_count()} cores, {platform.machine()}, Python "
        f"{platform.python_version()}",
        "settings": {
            "duration_s": args.duration,
            "wait_min": float(os.environ.get("LOAD_WAIT_MIN", "0.5")),
            "wait_max": float(os.environ.get("LOAD_WAIT_MAX", "1.5")),
            "accounts": args.accounts,
            "batching": args.batching,
            "emulator": emulator(),
        },
        "label": label,
        "scenarios": [],
    }
    summary_path = report.summary_path(label)
    before = measure_engine()
    for sandboxes in sandbox_counts:
        prefix = f"{label}-" if label else ""
        for count in users:
            out_dir = RESULTS_DIR / f"{prefix}sandboxes-{sandboxes}-users-{count}"
            started = time.monotonic()
            with start_local_cloud(
                sandboxes,
                RESULTS_DIR / f"{prefix}cloud",
                predictions_concurrency=max(4, count),
                template=template,
            ) as cloud:
                accounts = add_accounts(cloud, args.accounts)
                print(
                    f"{sandboxes} sandbox(es), {count} users, {args.duration} s: local cloud "
                    f"up in {time.monotonic() - started:.0f} s at {cloud.api_url} ...",
                    flush=True,
                )
                row = run_scenario(cloud, sandboxes, count, args.duration, out_dir, accounts)
            after = measure_engine()
            row["engine"] = bracketing_engine(before, after)
            before = after
            summary["scenarios"].append(row)
            e2e = report.e2e_stats(row)
            print(
                f"  {row['aggregated']['requests']} requests, "
                f"{row['failed_requests_whole_run']} failed (whole run), "
                f"{row['aggregated']['rps']:.1f} RPS; classify e2e {e2e['rps']:.1f}/s "
                f"({e2e['rps'] / row['engine']['images_per_s']:.0%} of the raw engine), "
                f"median {e2e['median_ms']} ms, p95 {e2e['p95_ms']} ms; uploads "
                f"{row['uploads']}, finished {row['finished']}, lost {row['lost']}; "
                f"batches {row['inference_batches']} (mean {row['mean_batch_size']}), "
                f"per sandbox {row['invocations_by_sandbox']}",
                flush=True,
            )
            summary_path.write_text(json.dumps(summary, indent=2))
    path = report.rewrite_report()
    print(f"wrote {path.relative_to(ROOT)}" if path else f"wrote {summary_path}")
    bad = [s for s in summary["scenarios"] if s["failed_requests_whole_run"] or s["lost"]]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
