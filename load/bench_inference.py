"""Inference benchmark: the original pipeline vs the function's, on this machine, in one run.

    .venv/bin/python -m load.bench_inference            # ~10 minutes on 2 cores
    .venv/bin/python -m load.bench_inference --quick    # fewer, shorter rounds; no bf16

It prints, measured in the same run:
- original: what the old model service did per request: ``load_img`` -> ``img_to_array`` ->
  ``preprocess_input`` -> ``model.predict`` on ONE image -> top-5;
- function at batch 1, 8, 16, 32, for each INFERENCE_ENGINE (``tensorflow``: the compiled
  graph; ``litert``: the same Keras model exported with ``model.export`` and converted with
  ``TFLiteConverter.from_saved_model``): the inference function's path from JPEG bytes to
  top-5 (``imgclf.images.load_many``, then ``Classifier.classify``: one pass per batch);
- raw engine at the same batch sizes: the engine alone, on ready uint8 pixels;
- cold start per engine: a fresh interpreter's import + model build + first classification;
- the largest score difference of LiteRT and of TensorFlow bf16 (Keras ``mixed_bfloat16``)
  from TensorFlow fp32, and whether each is faster: an engine is worth offering only if it
  is faster AND within 1e-5.

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

BATCH_SIZES = (1, 8, 16, 32)
TARGET_BATCH = 16
EXACT = 1e-5
RESULTS = Path(__file__).resolve().parent / "results" / "bench_inference.json"
# Uploads as phones and the web send them (ImageNet's own photos are ~500x375).
PHOTO_SIZES = ((640, 480), (800, 600), (1024, 768), (480, 640))


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
    """The compiled graph alone, on ready pixels."""
    chunk = np.ascontiguousarray(pixels[:batch])

    def step(i: int) -> int:
        classifier.scores(chunk)
        return batch

    return step


COLD_START = r"""
import json, sys, time
started = time.perf_counter()
import keras, tensorflow
from imgclf import images, model
imported = time.perf_counter()
classifier = model.Classifier(weights="random", engine=sys.argv[2])
built = time.perf_counter()
data = open(sys.argv[1], "rb").read()
classifier.classify(images.load_pixels(data)[None])
first = time.perf_counter()
print(json.dumps({"import_s": imported - started, "build_s": built - imported,
                  "first_call_s": first - built, "total_s": first - started}))
"""


def cold_start(photo: bytes, engine: str) -> dict[str, float]:
    """Import + build + first classification in a fresh interpreter (as a new sandbox)."""
    with tempfile.NamedTemporaryFile(suffix=".jpg") as f:
        f.write(photo)
        f.flush()
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        out = subprocess.run(
            [sys.executable, "-c", COLD_START, f.name, engine],
            capture_output=True,
            text=True,
            env=env,
            check=True,
            timeout=600,
        )
    return json.loads(out.stdout.strip().splitlines()[-1])


def bf16_engine(keras_model: Any) -> Callable[[np.ndarray], np.ndarray]:
    """The same network and weights under Keras's mixed_bfloat16 policy, as a graph."""
    import keras
    import tensorflow as tf
    from keras.applications.resnet50 import preprocess_input

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        bf16 = keras.applications.ResNet50(weights=None)
    finally:
        keras.config.set_dtype_policy(previous)
    bf16.set_weights(keras_model.get_weights())

    @tf.function(input_signature=[tf.TensorSpec([None, 224, 224, 3], tf.uint8)])
    def forward(pixels: tf.Tensor) -> tf.Tensor:
        return tf.cast(
            bf16(preprocess_input(tf.cast(pixels, tf.float32)), training=False), tf.float32
        )

    return lambda pixels: forward(pixels).numpy()


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def run(rounds: int, seconds: float, extras: bool) -> dict[str, Any]:
    """Measure everything; returns the figures (images/s: best round, and median)."""
    files = photos(64)
    report: dict[str, Any] = {
        "machine": {"cores": model.cpu_count(), "python": sys.version.split()[0]},
        "images": "64 JPEG photos, 480x640 to 1024x768, quality 90",
        "rounds": rounds,
        "cold_start": {},
    }
    for engine in model.ENGINES:
        print(f"cold start, {engine} (fresh interpreter) ... ", end="", flush=True)
        report["cold_start"][engine] = cold_start(files[0], engine)
        print(f"{report['cold_start'][engine]['total_s']:.1f} s")

    classifiers = {}
    for engine in model.ENGINES:
        classifiers[engine] = model.Classifier(weights="random", engine=engine)
        classifiers[engine].warm_up()
    keras_model = classifiers["tensorflow"].keras_model
    pixels = np.stack([d.pixels for d in images.load_many(files[: max(BATCH_SIZES)])])
    steps: dict[str, Callable[[int], int]] = {"original": original_step(keras_model, files)}
    for batch in BATCH_SIZES:
        for engine, classifier in classifiers.items():
            steps[f"function/{engine}@{batch}"] = function_step(classifier, files, batch)
            steps[f"raw/{engine}@{batch}"] = raw_step(classifier, pixels, batch)
    samples: dict[str, list[float]] = {name: [] for name in steps}
    for r in range(rounds):
        for name, step in steps.items():
            samples[name].append(throughput(step, seconds))
        print(
            f"round {r + 1}/{rounds}: " + ", ".join(f"{k} {v[-1]:.2f}" for k, v in samples.items())
        )
    report["images_per_second"] = {name: max(v) for name, v in samples.items()}
    report["median_images_per_second"] = {name: median(v) for name, v in samples.items()}

    batch = pixels[:TARGET_BATCH]
    reference = classifiers["tensorflow"].scores(batch)
    diffs = {"litert": float(np.abs(classifiers["litert"].scores(batch) - reference).max())}
    if extras:
        bf16 = bf16_engine(keras_model)
        diffs["bf16"] = float(np.abs(bf16(batch) - reference).max())
        # Without CPU support for bf16 it is slow: one timed call per round is enough.
        speeds = [throughput(lambda i: len(bf16(batch)), 0.0) for _ in range(rounds)]
        report["images_per_second"][f"raw/bf16@{TARGET_BATCH}"] = max(speeds)
    report["max_abs_diff_vs_tensorflow_fp32"] = diffs
    ips = report["images_per_second"]
    tf_speed = ips[f"raw/tensorflow@{TARGET_BATCH}"]
    report["verdicts"] = {
        name: {
            "faster": ips[f"raw/{name}@{TARGET_BATCH}"] > tf_speed,
            "exact": diff <= EXACT,
            "offer": ips[f"raw/{name}@{TARGET_BATCH}"] > tf_speed and diff <= EXACT,
        }
        for name, diff in diffs.items()
    }
    return report


def print_report(report: dict[str, Any]) -> None:
    """The figures as tables, and the targets' verdicts."""
    ips = report["images_per_second"]
    original = ips["original"]
    print()
    print(f"machine: {report['machine']['cores']} cores; {report['images']}; weights: random")
    print(f"best of {report['rounds']} interleaved rounds (medians in the saved JSON)")
    print()
    header = f"{'pipeline':<30}{'images/s':>10}{'ms/image':>10}{'x original':>12}{'% of raw':>10}"
    print(header)
    print(
        f"{'original (predict, 1 image)':<30}{original:>10.2f}{1000 / original:>10.1f}{1.0:>12.2f}"
    )
    for engine in model.ENGINES:
        for batch in BATCH_SIZES:
            fn, raw = ips[f"function/{engine}@{batch}"], ips[f"raw/{engine}@{batch}"]
            label = f"function {engine}, batch {batch}"
            print(
                f"{label:<30}{fn:>10.2f}{1000 / fn:>10.1f}{fn / original:>12.2f}"
                f"{100 * fn / raw:>9.0f}%"
            )
        for batch in BATCH_SIZES:
            raw = ips[f"raw/{engine}@{batch}"]
            label = f"raw {engine}, batch {batch}"
            print(f"{label:<30}{raw:>10.2f}{1000 / raw:>10.1f}{raw / original:>12.2f}")
    print()
    for engine, cold in report["cold_start"].items():
        print(
            f"cold start, {engine}: {cold['total_s']:.1f} s = import {cold['import_s']:.1f} s"
            f" + model build {cold['build_s']:.1f} s + first call {cold['first_call_s']:.1f} s"
        )
    print()
    print(f"{'engine vs tensorflow fp32':<30}{'images/s':>10}{'max |diff|':>12}  verdict")
    for name, diff in report["max_abs_diff_vs_tensorflow_fp32"].items():
        verdict = report["verdicts"][name]
        reasons = [
            w
            for w, ok in (("slower", verdict["faster"]), ("not within 1e-5", verdict["exact"]))
            if not ok
        ]
        text = (
            "offer: faster and exact"
            if verdict["offer"]
            else "not offered: " + " and ".join(reasons)
        )
        speed = ips[f"raw/{name}@{TARGET_BATCH}"]
        print(f"{f'{name}, batch {TARGET_BATCH}':<30}{speed:>10.2f}{diff:>12.1e}  {text}")
    print()
    for engine in model.ENGINES:
        fn = ips[f"function/{engine}@{TARGET_BATCH}"]
        raw = ips[f"raw/{engine}@{TARGET_BATCH}"]
        print(
            f"target ({engine}): batch {TARGET_BATCH} >= 3x original: {fn / original:.2f}x "
            f"{'MET' if fn >= 3 * original else 'NOT MET'}; >= 90% of raw engine: "
            f"{100 * fn / raw:.0f}% {'MET' if fn >= 0.9 * raw else 'NOT MET'}"
        )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print (and save) its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument("--seconds", type=float, default=4.0, help="per measurement")
    parser.add_argument("--quick", action="store_true", help="2 rounds of 2 s, no bf16")
    parser.add_argument("--no-bf16", action="store_true", help="skip bf16")
    parser.add_argument("--json", type=Path, default=RESULTS, help="where to save the figures")
    args = parser.parse_args(argv)
    rounds, seconds = (2, 2.0) if args.quick else (max(1, args.rounds), max(0.5, args.seconds))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    report = run(rounds, seconds, extras=not (args.quick or args.no_bf16))
    print_report(report)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    print(f"\nfigures saved to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
