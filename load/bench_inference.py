"""Inference benchmark: the original pipeline and every engine, on this machine, in one run.

    .venv/bin/python -m load.bench_inference            # ~10 minutes on 2 cores
    .venv/bin/python -m load.bench_inference --quick    # fewer, shorter rounds

It prints, measured in the same run (CPU model from /proc/cpuinfo in the header):
- original: what the old model service did per request: ``load_img`` -> ``img_to_array`` ->
  ``preprocess_input`` -> ``model.predict`` on ONE image -> top-5;
- raw engine at batch 1, 8, 16, 32, for each configuration: ``tensorflow`` (the compiled
  graph, f32), ``openvino/f32`` and ``openvino/bf16`` (the IR compiled at that precision);
  the engine alone, on ready uint8 pixels, one request per batch;
- OpenVINO's other way to use the cores, at batch 16: one request per image over a stream
  per core (the THROUGHPUT hint, an AsyncInferQueue), against the whole batch in one request;
- function at batch 16: the inference function's path from JPEG bytes to top-5
  (``imgclf.images.load_many``, then ``Classifier.classify``);
- cold start per configuration: a new process's imports + model load + first result, then
  its peak RSS after 20 batches of 16; and the inference handler's whole init (imports,
  classifier, SDK clients), as a Lambda init phase;
- accuracy: each configuration's largest score difference from the Keras model; bf16's
  top-1 agreement and top-5 overlap with f32 on 200 varied generated images.

The CPU may be shared, so the configurations are measured in interleaved rounds and each
figure is its best round: other work can only slow a measurement down, so the best round is
the closest to what the machine can do (medians are saved too). Weights are random (the same
compute as ImageNet's; this machine cannot download them). Figures also go to load/results/.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from imgclf import images, model
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
BATCH_SIZES = (1, 8, 16, 32)
TARGET_BATCH = 16
# engine/precision -> Classifier arguments
CONFIGS = {
    "tensorflow": ("tensorflow", "f32"),
    "openvino/f32": ("openvino", "f32"),
    "openvino/bf16": ("openvino", "bf16"),
}
RESULTS = Path(__file__).resolve().parent / "results" / "bench_inference.json"
# Uploads as phones and the web send them (ImageNet's own photos are ~500x375).
PHOTO_SIZES = ((640, 480), (800, 600), (1024, 768), (480, 640))


def cpu_model() -> str:
    """The CPU's model name and family, as lscpu shows them (e.g. "AMD EPYC, family 26,
    model 2": a model name alone can hide which generation it is)."""
    fields: dict[str, str] = {}
    with open("/proc/cpuinfo") as info:
        for line in info:
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    name = fields.get("model name") or platform.processor() or "unknown"
    return f"{name}, family {fields.get('cpu family', '?')}, model {fields.get('model', '?')}"


def cpu_flags() -> list[str]:
    """The CPU's flags that decide the engine's fast paths."""
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
                return [f for f in wanted if f in flags]
    return []


def photos(count: int, seed: int = 0) -> list[bytes]:
    """``count`` distinct JPEG photos (gradients, shapes and noise; quality 90)."""
    rng = np.random.default_rng(seed)
    files = []
    for i in range(count):
        width, height = PHOTO_SIZES[i % len(PHOTO_SIZES)]
        y, x = np.mgrid[0:height, 0:width].astype(np.float32)
        phase = rng.uniform(0, 6.28, size=3)
        base = np.stack(
            [127 + 120 * np.sin(x / (40 + 9 * c) + y / (70 + 5 * c) + phase[c]) for c in range(3)],
            axis=-1,
        )
        noise = rng.normal(0, 10, size=base.shape).astype(np.float32)
        out = io.BytesIO()
        Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8)).save(
            out, "JPEG", quality=90
        )
        files.append(out.getvalue())
    return files


def throughput(step: Callable[[int], int], seconds: float) -> float:
    """Images per second of ``step(i)`` (which returns how many images it handled), called
    until ``seconds`` have passed (at least twice; the first call is not timed)."""
    step(0)
    done, calls = 0, 0
    started = time.perf_counter()
    while calls < 2 or time.perf_counter() - started < seconds:
        done += step(calls + 1)
        calls += 1
    return done / (time.perf_counter() - started)


def original_step(keras_model: Any, files: list[bytes]) -> Callable[[int], int]:
    """The original model service: one image per request, ``model.predict``."""
    import keras
    from keras.applications.resnet50 import preprocess_input

    def step(i: int) -> int:
        data = files[i % len(files)]
        img = keras.utils.load_img(io.BytesIO(data), target_size=(224, 224))
        x = preprocess_input(np.expand_dims(keras.utils.img_to_array(img), 0))
        model.top_k(keras_model.predict(x, verbose=0))
        return 1

    return step


def function_step(
    classifier: model.Classifier, files: list[bytes], batch: int
) -> Callable[[int], int]:
    """The function's path: JPEG bytes -> decode (all cores) -> one forward pass -> top-5."""

    def step(i: int) -> int:
        chunk = [files[(i * batch + j) % len(files)] for j in range(batch)]
        pixels = np.stack([d.pixels for d in images.load_many(chunk)])
        classifier.classify(pixels)
        return batch

    return step


def raw_step(classifier: model.Classifier, pixels: np.ndarray, batch: int) -> Callable[[int], int]:
    """The engine alone, on ready pixels, one request per batch."""
    chunk = np.ascontiguousarray(pixels[:batch])

    def step(i: int) -> int:
        classifier.scores(chunk)
        return batch

    return step


def streams_step(precision: str, pixels: np.ndarray, batch: int) -> Callable[[int], int]:
    """OpenVINO's throughput mode: one request per image, spread over a stream per core
    (what the function would do instead of one request per batch)."""
    import openvino as ov

    compiled = ov.Core().compile_model(
        str(model.openvino_ir_path("random")),
        "CPU",
        {
            "PERFORMANCE_HINT": "THROUGHPUT",
            "INFERENCE_NUM_THREADS": model.cpu_count(),
            "INFERENCE_PRECISION_HINT": precision,
        },
    )
    requests = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    queue = ov.AsyncInferQueue(compiled, requests)
    singles = [np.ascontiguousarray(pixels[i : i + 1]) for i in range(batch)]

    def step(i: int) -> int:
        for single in singles:
            queue.start_async({0: single})
        queue.wait_all()
        return batch

    return step


COLD_START = r"""
import json, sys, time
started = time.perf_counter()
import numpy as np
from imgclf import images, model
imported = time.perf_counter()
classifier = model.Classifier(weights="random", engine=sys.argv[2], precision=sys.argv[3])
built = time.perf_counter()
classifier.classify(images.load_pixels(open(sys.argv[1], "rb").read())[None])
first = time.perf_counter()
batch = np.zeros((16, 224, 224, 3), np.uint8)
for _ in range(20):
    classifier.scores(batch)
print(json.dumps({"import_s": imported - started, "load_s": built - imported,
                  "first_call_s": first - built, "total_s": first - started,
                  # VmHWM: this process's peak RSS (ru_maxrss would count the parent's at fork).
                  "peak_rss_mb": int(next(line.split()[1] for line in open("/proc/self/status")
                                          if line.startswith("VmHWM:"))) / 1024,
                  "precision": classifier.precision}))
"""

HANDLER_INIT = r"""
import importlib.util, json, sys, time
started = time.perf_counter()
spec = importlib.util.spec_from_file_location("app", sys.argv[1])
app = importlib.util.module_from_spec(spec)
spec.loader.exec_module(app)
print(json.dumps({"init_s": time.perf_counter() - started, "model": app.classifier.info}))
"""

# What the handler's settings need; the SDK clients are made, not used (no endpoint is called).
HANDLER_ENV = {
    "USERS_TABLE": "bench-users",
    "PREDICTIONS_TABLE": "bench-predictions",
    "FEEDBACK_TABLE": "bench-feedback",
    "UPLOAD_BUCKET": "bench-uploads",
    "JWT_SECRET": "bench-" + "0" * 32,
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_REGION": "us-east-1",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",  # nothing listens: refused at once
    "REDIS_URL": "redis://127.0.0.1:9/0",
    "MODEL_WEIGHTS": "random",
    "POWERTOOLS_SERVICE_NAME": "inference",
}


def _python(code: str, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``code`` in a new interpreter; its last line of output, as JSON."""
    out = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})},
        check=True,
        timeout=600,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def cold_start(photo: bytes, engine: str, precision: str) -> dict[str, Any]:
    """Imports + model load + first classification in a new process (as a new sandbox),
    then its peak RSS after 20 batches of 16."""
    with tempfile.NamedTemporaryFile(suffix=".jpg") as f:
        f.write(photo)
        f.flush()
        return _python(COLD_START, f.name, engine, precision)


def handler_init(engine: str, precision: str) -> dict[str, Any]:
    """The inference handler's init phase in a new process: imports, classifier (built and
    warmed), SDK clients, the model announced (to a Redis that refuses at once)."""
    env = {**HANDLER_ENV, "INFERENCE_ENGINE": engine, "INFERENCE_PRECISION": precision}
    return _python(HANDLER_INIT, str(ROOT / "functions/inference/app.py"), env=env)


def varied_pixels(count: int, seed: int = 11) -> np.ndarray:
    """``count`` varied pictures: colour waves, flat blocks, tinted noise, stripes with a
    disc; every third through JPEG and the function's decoder. (N, 224, 224, 3) uint8."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:224, 0:224].astype(np.float32)
    out = []
    for i in range(count):
        phase, freq = rng.uniform(0, 6.28, size=3), rng.uniform(4, 60, size=3)
        kind = i % 4
        if kind == 0:
            img = np.stack(
                [127 + 120 * np.sin(x / freq[c] + y / freq[2 - c] + phase[c]) for c in range(3)],
                -1,
            )
        elif kind == 1:
            img = np.kron(rng.integers(0, 256, size=(8, 8, 3)), np.ones((28, 28, 1)))
        elif kind == 2:
            img = rng.normal(rng.uniform(40, 210, size=3), rng.uniform(10, 80), (224, 224, 3))
        else:
            img = np.stack([255 * ((x + phase[c] * 10) // freq[c] % 2) for c in range(3)], -1)
            disc = (x - 112) ** 2 + (y - 112) ** 2 < rng.uniform(20, 90) ** 2
            img[disc] = rng.integers(0, 256, 3)
        pixels = np.clip(img, 0, 255).astype(np.uint8)
        if i % 3 == 0:
            encoded = io.BytesIO()
            Image.fromarray(pixels).save(encoded, "JPEG", quality=90)
            pixels = images.load_pixels(encoded.getvalue())
        out.append(pixels)
    return np.stack(out)


def agreement(low: np.ndarray, full: np.ndarray) -> dict[str, float]:
    """Top-1 agreement, mean top-5 overlap and the largest score difference of two engines."""
    top5 = [
        len(set(np.argsort(-a)[:5]) & set(np.argsort(-b)[:5])) / 5
        for a, b in zip(low, full, strict=True)
    ]
    return {
        "top1_agreement": float(np.mean(low.argmax(axis=1) == full.argmax(axis=1))),
        "top5_overlap": float(np.mean(top5)),
        "max_abs_diff": float(np.abs(low - full).max()),
        "images": len(low),
    }


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def run(rounds: int, seconds: float) -> dict[str, Any]:
    """Measure everything; returns the figures (images/s: best round, and median)."""
    files = photos(64)
    report: dict[str, Any] = {
        "machine": {
            "cpu": cpu_model(),
            "flags": cpu_flags(),
            "cores": model.cpu_count(),
            "python": sys.version.split()[0],
        },
        "images": "64 JPEG photos, 480x640 to 1024x768, quality 90",
        "rounds": rounds,
        "cold_start": {},
        "handler_init": {},
    }
    classifiers = {
        name: model.Classifier(weights="random", engine=engine, precision=precision)
        for name, (engine, precision) in CONFIGS.items()
    }
    # Cold starts after the first build, so the IR is cached as in the image or a second start.
    for name, (engine, precision) in CONFIGS.items():
        print(f"cold start, {name} (new process) ... ", end="", flush=True)
        report["cold_start"][name] = cold_start(files[0], engine, precision)
        print(f"{report['cold_start'][name]['total_s']:.2f} s")
    for name in ("tensorflow", "openvino/auto"):
        engine, precision = CONFIGS.get(name, ("openvino", "auto"))
        print(f"inference handler init, {name} ... ", end="", flush=True)
        report["handler_init"][name] = handler_init(engine, precision)
        print(f"{report['handler_init'][name]['init_s']:.2f} s")

    for classifier in classifiers.values():
        classifier.warm_up()
    keras_model = model.build_keras_model("random")
    pixels = np.stack([d.pixels for d in images.load_many(files[: max(BATCH_SIZES)])])
    steps: dict[str, Callable[[int], int]] = {"original": original_step(keras_model, files)}
    for batch in BATCH_SIZES:
        for name, classifier in classifiers.items():
            steps[f"raw/{name}@{batch}"] = raw_step(classifier, pixels, batch)
    for name, classifier in classifiers.items():
        steps[f"function/{name}@{TARGET_BATCH}"] = function_step(classifier, files, TARGET_BATCH)
    for precision in ("f32", "bf16"):
        steps[f"streams/openvino/{precision}@{TARGET_BATCH}"] = streams_step(
            precision, pixels, TARGET_BATCH
        )
    samples: dict[str, list[float]] = {name: [] for name in steps}
    for r in range(rounds):
        for name, step in steps.items():
            samples[name].append(throughput(step, seconds))
        print(
            f"round {r + 1}/{rounds}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in samples.items())
        )
    report["images_per_second"] = {name: max(v) for name, v in samples.items()}
    report["median_images_per_second"] = {name: median(v) for name, v in samples.items()}

    from keras.applications.resnet50 import preprocess_input

    batch = pixels[:TARGET_BATCH]
    reference = keras_model.predict(preprocess_input(batch.astype(np.float32)), verbose=0)
    report["max_abs_diff_vs_keras"] = {
        name: float(np.abs(c.scores(batch) - reference).max()) for name, c in classifiers.items()
    }
    varied = varied_pixels(200)
    report["bf16_vs_f32"] = agreement(
        classifiers["openvino/bf16"].scores(varied), classifiers["openvino/f32"].scores(varied)
    )
    report["auto_precision"] = model.Classifier(weights="random", precision="auto").precision
    return report


def print_report(report: dict[str, Any]) -> None:
    """The figures as tables."""
    ips = report["images_per_second"]
    original = ips["original"]
    machine = report["machine"]
    print()
    print(
        f"machine: {machine['cpu']} ({', '.join(machine['flags'])}), {machine['cores']} cores; "
        f"{report['images']}; weights: random; auto precision here: {report['auto_precision']}"
    )
    print(f"best of {report['rounds']} interleaved rounds (medians in the saved JSON)")
    print()
    header = f"{'engine':<16}" + "".join(f"{f'b{b} img/s':>11}" for b in BATCH_SIZES)
    print(header + f"{'b1 ms':>8}{'x TF b16':>10}{'cold s':>8}{'RSS MB':>8}{'max|diff|':>11}")
    print(f"{'original':<16}{original:>11.1f}{'':>33}{1000 / original:>8.1f}")
    tf16 = ips[f"raw/tensorflow@{TARGET_BATCH}"]
    for name in CONFIGS:
        rates = [ips[f"raw/{name}@{b}"] for b in BATCH_SIZES]
        cold = report["cold_start"][name]
        print(
            f"{name:<16}"
            + "".join(f"{r:>11.1f}" for r in rates)
            + f"{1000 / rates[0]:>8.1f}{ips[f'raw/{name}@{TARGET_BATCH}'] / tf16:>10.2f}"
            + f"{cold['total_s']:>8.2f}{cold['peak_rss_mb']:>8.0f}"
            + f"{report['max_abs_diff_vs_keras'][name]:>11.1e}"
        )
    print()
    for precision in ("f32", "bf16"):
        one = ips[f"raw/openvino/{precision}@{TARGET_BATCH}"]
        many = ips[f"streams/openvino/{precision}@{TARGET_BATCH}"]
        print(
            f"openvino {precision}, batch {TARGET_BATCH}: one request {one:.1f} img/s, "
            f"a request per image over streams {many:.1f} img/s ({many / one:.2f}x)"
        )
    for name in CONFIGS:
        fn = ips[f"function/{name}@{TARGET_BATCH}"]
        print(
            f"function {name}, batch {TARGET_BATCH} (JPEG decode + engine): {fn:.1f} img/s "
            f"= {fn / original:.1f}x original"
        )
    print()
    for name, init in report["handler_init"].items():
        print(
            f"inference handler init ({name}, runs {init['model']['engine']} "
            f"{init['model']['precision']}): {init['init_s']:.2f} s"
        )
    for name, cold in report["cold_start"].items():
        print(
            f"cold start, {name}: {cold['total_s']:.2f} s = import {cold['import_s']:.2f} + "
            f"load {cold['load_s']:.2f} + first result {cold['first_call_s']:.2f}"
        )
    agree = report["bf16_vs_f32"]
    print(
        f"bf16 vs f32 on {agree['images']} varied images: top-1 {agree['top1_agreement']:.1%}, "
        f"top-5 overlap {agree['top5_overlap']:.1%}, largest score difference "
        f"{agree['max_abs_diff']:.4f}"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print (and save) its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--seconds", type=float, default=4.0, help="per measurement")
    parser.add_argument("--quick", action="store_true", help="2 rounds of 1.5 s")
    parser.add_argument("--json", type=Path, default=RESULTS, help="where to save the figures")
    args = parser.parse_args(argv)
    rounds, seconds = (2, 1.5) if args.quick else (max(1, args.rounds), max(0.5, args.seconds))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    report = run(rounds, seconds)
    print_report(report)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    print(f"\nfigures saved to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
