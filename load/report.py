"""Turn a load run's summary (load/results/summary.json) into load/REPORT.md and PNG plots.

`python -m load.report` rewrites the report from the last run's summary without re-running.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI
import matplotlib.pyplot as plt

LOAD_DIR = Path(__file__).resolve().parent
RESULTS_DIR = LOAD_DIR / "results"
SUMMARY_PATH = RESULTS_DIR / "summary.json"
REPORT_PATH = LOAD_DIR / "REPORT.md"
THROUGHPUT_PNG = "throughput.png"
LATENCY_PNG = "latency.png"
E2E = "classify e2e"

# The original system's published figures (FastAPI + Redis + a TF model service).
ORIGINAL = {
    "rps": (3.3, 7.5),
    "median_ms": {10: 230, 100: 2200},
    "failures_pct": {50: 1.0, 100: 17.0},
}
# The targets: relative to the raw engine (set when the engine was the bottleneck), and
# absolute, set with the OpenVINO engine: e2e images/s at 50 users on 1 sandbox, and the
# e2e median at 1 user.
TARGET_THROUGHPUT_SHARE = 0.60
TARGET_LATENCY_FACTOR = 3.0
TARGET_E2E_AT_50 = 18.0
TARGET_MEDIAN_AT_1_MS = 80.0

ENDPOINT_ORDER = (
    E2E,
    "POST /auth/login",
    "POST /uploads",
    "POST s3 presigned",
    "GET /predictions/{id}?wait",
    "GET /predictions",
    "GET /predictions/{id}",
    "POST /predictions/{id}/feedback",
)


def summary_path(label: str | None = None) -> Path:
    """Where a run's summary goes: summary.json, or summary-<label>.json for a variant."""
    return RESULTS_DIR / (f"summary-{label}.json" if label else "summary.json")


def load_variants() -> list[dict]:
    """The summaries of variant runs (LOAD_BATCHING=...), oldest first."""
    paths = sorted(RESULTS_DIR.glob("summary-*.json"), key=lambda p: p.stat().st_mtime)
    return [json.loads(p.read_text()) for p in paths]


def _fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _pct(part: float, whole: float) -> str:
    if not whole:
        return "-"
    share = 100.0 * part / whole
    # A handful of failures among many requests must not print as 0.0%.
    return "<0.1%" if part and share < 0.1 else f"{share:.1f}%"


def _sandboxes_label(count: int) -> str:
    return f"{count} sandbox" if count == 1 else f"{count} sandboxes"


def _user_ticks(ax, summary: dict) -> None:
    """Log x axis labelled with the user counts that were run."""
    counts = sorted({s["users"] for s in summary["scenarios"]})
    ax.set_xscale("log")
    ax.set_xticks(counts)
    ax.set_xticklabels([str(c) for c in counts])
    ax.minorticks_off()


def _scenarios(summary: dict, sandboxes: int) -> list[dict]:
    found = [s for s in summary["scenarios"] if s["sandboxes"] == sandboxes]
    return sorted(found, key=lambda s: s["users"])


def _sandbox_counts(summary: dict) -> list[int]:
    return sorted({s["sandboxes"] for s in summary["scenarios"]})


def _find(summary: dict, sandboxes: int, users: int) -> dict | None:
    for scenario in summary["scenarios"]:
        if scenario["sandboxes"] == sandboxes and scenario["users"] == users:
            return scenario
    return None


def failed_requests(scenario: dict) -> int:
    """Failed requests over the whole run (ramp-up and logins included)."""
    return scenario.get("failed_requests_whole_run", scenario["aggregated"]["failures"])


def e2e_stats(scenario: dict) -> dict:
    """The `classify e2e` row of a scenario (zeros when no classify finished)."""
    return scenario["endpoints"].get(
        E2E, {"requests": 0, "failures": 0, "rps": 0.0, "median_ms": None, "p95_ms": None}
    )


def latency_factor(scenario: dict) -> float:
    """The scenario's classify e2e median over the batch-1 latency of its raw engine."""
    median = e2e_stats(scenario)["median_ms"]
    return (median or float("inf")) / scenario["engine"]["batch1_ms"]


def engine_range(summary: dict) -> str:
    """Every raw engine measurement of the run, as ranges, e.g. "20.1-22.5 images/s,
    batch-1 46-50 ms"."""
    measured = [s["engine"][when] for s in summary["scenarios"] for when in ("before", "after")]
    rates = [engine["images_per_s"] for engine in measured]
    batch1 = [engine["batch1_ms"] for engine in measured]
    return (
        f"{min(rates):.1f}-{max(rates):.1f} images/s, batch-1 {min(batch1):.0f}-"
        f"{max(batch1):.0f} ms"
    )


def _median_engine(summary: dict, figure: str) -> float:
    values = sorted(s["engine"][figure] for s in summary["scenarios"])
    return values[len(values) // 2]


def evaluate_targets(summary: dict) -> list[dict]:
    """Each target with the measured value and whether it was met."""
    rows = []
    failed = [s for s in summary["scenarios"] if failed_requests(s)]
    lost = [s for s in summary["scenarios"] if s["lost"]]
    rows.append(
        {
            "target": "0 failed requests in every scenario",
            "measured": (
                "0 in every scenario"
                if not failed
                else ", ".join(
                    f"{failed_requests(s)} at {s['users']} users x {s['sandboxes']}" for s in failed
                )
            ),
            "met": not failed,
        }
    )
    rows.append(
        {
            "target": "no image lost (every upload ends done or failed)",
            "measured": (
                f"{sum(s['uploads'] for s in summary['scenarios']):,} uploads, 0 lost"
                if not lost
                else ", ".join(f"{s['lost']} lost at {s['users']} users" for s in lost)
            ),
            "met": not lost,
        }
    )
    at50 = [s for s in summary["scenarios"] if s["users"] == 50]
    if at50:
        best = max(at50, key=lambda s: e2e_stats(s)["rps"] / s["engine"]["images_per_s"])
        engine = best["engine"]
        share = e2e_stats(best)["rps"] / engine["images_per_s"]
        rows.append(
            {
                "target": "classify e2e throughput at 50 users >= 60% of the raw engine",
                "measured": (
                    f"{e2e_stats(best)['rps']:.1f} img/s ({best['sandboxes']} sandbox"
                    f"{'es' if best['sandboxes'] > 1 else ''}) = {share:.1%} of "
                    f"{engine['images_per_s']:.1f} img/s"
                ),
                "met": share >= TARGET_THROUGHPUT_SHARE,
            }
        )
    at1 = [s for s in summary["scenarios"] if s["users"] == 1]
    if at1:
        best = min(at1, key=latency_factor)
        median = e2e_stats(best)["median_ms"]
        factor = latency_factor(best)
        engine = best["engine"]
        rows.append(
            {
                "target": "classify e2e median at 1 user <= 3x the raw batch-1 latency",
                "measured": (f"{_fmt_ms(median)} ms = {factor:.1f}x {engine['batch1_ms']:.0f} ms"),
                "met": factor <= TARGET_LATENCY_FACTOR,
            }
        )
        rows.append(
            {
                "target": f"classify e2e median at 1 user <= {TARGET_MEDIAN_AT_1_MS:.0f} ms",
                "measured": f"{_fmt_ms(median)} ms",
                "met": median is not None and median <= TARGET_MEDIAN_AT_1_MS,
            }
        )
    one_sandbox_at50 = [s for s in at50 if s["sandboxes"] == 1]
    if one_sandbox_at50:
        rate = e2e_stats(one_sandbox_at50[0])["rps"]
        rows.append(
            {
                "target": f"classify e2e at 50 users, 1 sandbox >= {TARGET_E2E_AT_50:.0f} img/s",
                "measured": f"{rate:.1f} img/s",
                "met": rate >= TARGET_E2E_AT_50,
            }
        )
    return rows


def _summary_table(summary: dict) -> list[str]:
    lines = [
        "| sandboxes | users | requests | failed | RPS | classify e2e/s | e2e median ms "
        "| e2e p95 ms | uploads | finished | lost | raw engine img/s | e2e/s / engine "
        "| mean batch | batches per sandbox | login median / p95 ms |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for sandboxes in _sandbox_counts(summary):
        for s in _scenarios(summary, sandboxes):
            agg, e2e = s["aggregated"], e2e_stats(s)
            engine_ips = s["engine"]["images_per_s"]
            logins = f"{_fmt_ms(s.get('login_median_ms'))} / {_fmt_ms(s.get('login_p95_ms'))}"
            lines.append(
                f"| {sandboxes} | {s['users']} | {agg['requests']:,} "
                f"| {failed_requests(s)} | {agg['rps']:.1f} "
                f"| {e2e['rps']:.1f} | {_fmt_ms(e2e['median_ms'])} | {_fmt_ms(e2e['p95_ms'])} "
                f"| {s['uploads']:,} | {s['finished']:,} | {s['lost']} | {engine_ips:.1f} "
                f"| {e2e['rps'] / engine_ips:.0%} "
                f"| {s.get('mean_batch_size') or '-'} "
                f"| {' / '.join(str(n) for n in s.get('invocations_by_sandbox', [])) or '-'} "
                f"| {logins} |"
            )
    return lines


def _endpoint_table(summary: dict, sandboxes: int) -> list[str]:
    lines = [
        "| users | endpoint | requests | failures | RPS | median ms | p95 ms |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for s in _scenarios(summary, sandboxes):
        names = [n for n in ENDPOINT_ORDER if n in s["endpoints"]]
        names += sorted(n for n in s["endpoints"] if n not in ENDPOINT_ORDER)
        for name in names:
            row = s["endpoints"][name]
            lines.append(
                f"| {s['users']} | {name} | {row['requests']:,} "
                f"| {_pct(row['failures'], row['requests'])} | {row['rps']:.2f} "
                f"| {_fmt_ms(row['median_ms'])} | {_fmt_ms(row['p95_ms'])} |"
            )
    return lines


CPU_COLUMNS = (
    ("InferenceFunction", "inference"),
    ("PredictionsFunction", "predictions"),
    ("UploadsFunction", "uploads"),
    ("FeedbackFunction", "feedback"),
    ("AuthFunction", "auth (logins)"),
    ("gateway + SQS poller", "gateway + poller"),
    ("emulator (S3, SQS, DynamoDB)", "emulator"),
    ("redis", "redis"),
    ("locust", "locust"),
)


def _cpu_table(summary: dict) -> list[str]:
    """CPU per upload by component, and how much of the machine others used meanwhile."""
    rows = [s for s in summary["scenarios"] if s.get("cpu_s") and s["uploads"]]
    if not rows:
        return []
    header = " | ".join(label for _, label in CPU_COLUMNS)
    lines = [
        f"| sandboxes | users | {header} | ours, total | cores: ours / others |",
        "|---:|---:|" + "---:|" * len(CPU_COLUMNS) + "---:|---|",
    ]
    for s in sorted(rows, key=lambda r: (r["sandboxes"], r["users"])):
        cpu, uploads, wall = s["cpu_s"], s["uploads"], s["wall_s"]
        ours = sum(cpu.get(key) or 0.0 for key, _ in CPU_COLUMNS)
        others = max(0.0, cpu.get("machine (all processes)", ours) - ours)
        cells = " | ".join(
            "n/a" if cpu.get(key) is None else f"{1000 * cpu[key] / uploads:,.0f}"
            for key, _ in CPU_COLUMNS
        )
        lines.append(
            f"| {s['sandboxes']} | {s['users']} | {cells} | {1000 * ours / uploads:,.0f} "
            f"| {ours / wall:.2f} / {others / wall:.2f} |"
        )
    return lines


def _comparison_table(summary: dict) -> list[str]:
    rps = [s["aggregated"]["rps"] for s in summary["scenarios"] if s["users"] >= 10]
    one = min(_sandbox_counts(summary))

    def e2e_median(users: int) -> str:
        found = _find(summary, one, users)
        return f"{_fmt_ms(e2e_stats(found)['median_ms'])} ms" if found else "not run"

    def failures(users: int) -> str:
        found = [s for s in summary["scenarios"] if s["users"] == users]
        if not found:
            return "not run"
        return " / ".join(
            _pct(failed_requests(s), s["aggregated"]["requests"] + s.get("logins", 0))
            for s in found
        )

    def batch_at(users: int) -> str:
        found = _find(summary, one, users)
        return str(found.get("mean_batch_size") or "-") if found else "-"

    second = []
    for users in sorted({s["users"] for s in summary["scenarios"]}):
        a, b = _find(summary, 1, users), _find(summary, 2, users)
        if a and b and users >= 50:
            second.append(f"{users} users: {e2e_stats(a)['rps']:.1f} -> {e2e_stats(b)['rps']:.1f}")
    twos = [s for s in summary["scenarios"] if s["sandboxes"] == 2 and s["uploads"]]
    if twos and all(min(s.get("invocations_by_sandbox") or [0]) == 0 for s in twos):
        second.append(
            "but the second sandbox never ran a batch (the local event source mapping runs "
            "one batch at a time), so the difference is the machine's other load (see the "
            "cores column under Where the time goes)"
        )
    lines = [
        "| | original (published) | imgclf (this run) |",
        "|---|---|---|",
        f"| requests/s | 3.3-7.5 | {min(rps):.1f}-{max(rps):.1f} |" if rps else "",
        f"| predict / classify e2e median, 10 users | 230 ms | {e2e_median(10)} |",
        f"| predict / classify e2e median, 100 users | 2,200 ms | {e2e_median(100)} |",
        f"| failures, 50 users | 1% | {failures(50)} |",
        f"| failures, 100 users | 17% | {failures(100)} |",
        "| a second model instance | made it worse | classify e2e/s, 1 -> 2 sandboxes: "
        + ("; ".join(second) if second else "not run")
        + " |",
        "| model serving | `model.predict`, one image at a time, 50 ms sleep between jobs "
        f"| one engine call per SQS batch (mean batch {batch_at(50)} at 50 users) |",
        "| client | logged in on every task | logs in once per user |",
    ]
    return [line for line in lines if line]


def write_plots(summary: dict, out_dir: Path = LOAD_DIR) -> list[str]:
    """Draw throughput and latency against users, 1 vs 2 sandboxes; return the file names."""
    styles = {1: ("tab:blue", "o"), 2: ("tab:orange", "s")}

    fig, ax = plt.subplots(figsize=(8, 5))
    for sandboxes in _sandbox_counts(summary):
        rows = [s for s in _scenarios(summary, sandboxes) if s["users"] >= 1]
        users = [s["users"] for s in rows]
        colour, marker = styles.get(sandboxes, ("tab:green", "^"))
        ax.plot(
            users,
            [s["aggregated"]["rps"] for s in rows],
            marker=marker,
            color=colour,
            linestyle="--",
            label=f"all requests/s, {_sandboxes_label(sandboxes)}",
        )
        ax.plot(
            users,
            [e2e_stats(s)["rps"] for s in rows],
            marker=marker,
            color=colour,
            label=f"classify e2e/s, {_sandboxes_label(sandboxes)}",
        )
        ax.plot(
            users,
            [s["engine"]["images_per_s"] for s in rows],
            color=colour,
            linewidth=1,
            linestyle=":",
            label=f"raw engine images/s around each scenario, {_sandboxes_label(sandboxes)}",
        )
    ax.axhline(
        _median_engine(summary, "images_per_s") * TARGET_THROUGHPUT_SHARE,
        color="grey",
        linestyle=":",
        label="target: 60% of the raw engine (its median over the run)",
    )
    ax.axhspan(*ORIGINAL["rps"], color="red", alpha=0.15, label="original: 3.3-7.5 RPS")
    _user_ticks(ax, summary)
    ax.set_xlabel("concurrent users")
    ax.set_ylabel("per second")
    ax.set_title("imgclf throughput on the local cloud (2 cores, Locust on the same cores)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / THROUGHPUT_PNG, dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 5))
    for sandboxes in _sandbox_counts(summary):
        rows = _scenarios(summary, sandboxes)
        users = [s["users"] for s in rows]
        colour, marker = styles.get(sandboxes, ("tab:green", "^"))
        ax.plot(
            users,
            [e2e_stats(s)["median_ms"] for s in rows],
            marker=marker,
            color=colour,
            label=f"classify e2e median, {_sandboxes_label(sandboxes)}",
        )
        ax.plot(
            users,
            [e2e_stats(s)["p95_ms"] for s in rows],
            marker=marker,
            color=colour,
            linestyle="--",
            label=f"classify e2e p95, {_sandboxes_label(sandboxes)}",
        )
    original = sorted(ORIGINAL["median_ms"].items())
    ax.plot(
        [u for u, _ in original],
        [ms for _, ms in original],
        marker="x",
        color="red",
        linestyle=":",
        label="original: predict median",
    )
    ax.axhline(
        _median_engine(summary, "batch1_ms") * TARGET_LATENCY_FACTOR,
        color="grey",
        linestyle=":",
        label="target at 1 user: 3x raw batch-1 latency (its median over the run)",
    )
    ax.set_yscale("log")
    _user_ticks(ax, summary)
    ax.set_xlabel("concurrent users")
    ax.set_ylabel("milliseconds")
    ax.set_title("classify end to end: upload, inference, result (long-poll)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / LATENCY_PNG, dpi=110)
    plt.close(fig)
    return [THROUGHPUT_PNG, LATENCY_PNG]


def _variant_section(variant: dict) -> list[str]:
    settings = variant["settings"]
    if settings.get("batching"):
        size, window = settings["batching"].split(":")
        title = f"BatchSize {size}, MaximumBatchingWindowInSeconds {window}"
        how = (
            f"`LOAD_BATCHING={size}:{window} make load`: the same scenarios on a copy of "
            "template.yaml whose inference SQS event has these settings"
        )
    else:
        title = f"on {settings['emulator']}"
        how = (
            f"`make load EMULATOR={settings['emulator']}`: the scenarios below on the other "
            "emulator, for CPU per image by component side by side with the main run's"
        )
    return [
        f"## Variant: {title}",
        "",
        f"{how} (run {variant['started_at']}). Raw engine around its scenarios: "
        f"{engine_range(variant)}.",
        "",
        *_summary_table(variant),
        "",
        *_cpu_table(variant),
        "",
        "| target | measured | met |",
        "|---|---|---|",
        *[
            f"| {row['target']} | {row['measured']} | {'yes' if row['met'] else 'NO'} |"
            for row in evaluate_targets(variant)
        ],
        "",
    ]


def render_report(summary: dict, variants: list[dict] | None = None) -> str:
    """The Markdown report for one run (and any variant runs beside it)."""
    engine = summary["scenarios"][0]["engine"]
    settings = summary["settings"]
    batching = (
        f"BatchSize:window `{settings['batching']}`"
        if settings.get("batching")
        else "as in template.yaml"
    )
    lines = [
        "# imgclf load test report",
        "",
        f"Run {summary['started_at']} on this machine ({summary['machine']}), written by "
        "`make load` (`python -m load.run`). Local cloud on "
        f"{settings.get('emulator', 'moto')} with `MODEL_WEIGHTS=random` (same "
        "compute as ImageNet weights), Locust headless on the same 2 cores. Each scenario runs "
        "on a fresh local cloud (no data from earlier scenarios) for "
        f"{settings['duration_s']} s, after a warm-up (two classifies per inference "
        "sandbox, one predictions sandbox per user, so no cold start is measured). Users log in "
        f"once ({settings.get('accounts') or 1} accounts), think "
        f"{settings['wait_min']}-{settings['wait_max']} s between tasks, and mix classify 6 : "
        "list 2 : get 2 : feedback 1; every upload has unique bytes (no dedup hits). "
        f"Inference batching: {batching}.",
        "",
        "## Raw engine (same machine, same run, around each scenario)",
        "",
        f"- {engine['description']}",
        "- measured in a subprocess before the first scenario and after each one, with "
        "none of the local cloud running: this machine is shared and its speed drifts over "
        "a run, so each scenario is compared with the mean of the measurements right before "
        "and right after it (the summary table's raw engine column); images/s at the better "
        "of batch 16 and 32",
        f"- every measurement of this run: **{engine_range(summary)}**",
        "",
        "## Targets",
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    for row in evaluate_targets(summary):
        lines.append(f"| {row['target']} | {row['measured']} | {'yes' if row['met'] else 'NO'} |")
    lines += [
        "",
        "## Summary",
        "",
        "Requests, RPS and latencies cover the measured window: it starts once every user "
        "has logged in and lasts the scenario's duration (steady state). `failed` counts "
        "failed requests over the whole run, ramp-up and logins included; the login columns "
        "cover every login. RPS counts every request (upload grant, S3 POST, long-polls, "
        "list, get, feedback); `classify e2e` is one whole classification: upload grant, S3 "
        "POST, long-poll until the result. Uploads are the S3 POSTs accepted over the whole "
        "run; finished are those that reached `done` or `failed` (seen by the users or, for "
        "classifies cut by the end of the run, by the runner afterwards); lost = uploads - "
        "finished. Mean batch = uploads / inference invocations; batches per sandbox shows "
        "how many inference sandboxes the event source mapping actually used.",
        "",
        *_summary_table(summary),
        "",
        "## Where the time goes",
        "",
        "CPU milliseconds per uploaded image, by component, over each Locust run (ramp-up "
        "and logins included; Argon2id at OWASP's parameters costs about 30 CPU-ms a login). "
        "The last column "
        "is the average number of cores our processes used, and the cores every other "
        "process on the machine used meanwhile (other engineers' builds and tests share it).",
        "",
        *_cpu_table(summary),
        "",
        "## Side by side with the original",
        "",
        *_comparison_table(summary),
        "",
        "## Plots",
        "",
        f"![throughput against users]({THROUGHPUT_PNG})",
        "",
        f"![latency against users]({LATENCY_PNG})",
        "",
    ]
    for sandboxes in _sandbox_counts(summary):
        lines += [
            f"## Per endpoint, {sandboxes} inference sandbox{'es' if sandboxes > 1 else ''}",
            "",
            *_endpoint_table(summary, sandboxes),
            "",
        ]
    errors = [(s, e) for s in summary["scenarios"] for e in s.get("errors", []) if e["occurrences"]]
    if errors:
        lines += ["## Errors", "", "| sandboxes | users | request | error | count |"]
        lines.append("|---:|---:|---|---|---:|")
        for s, e in errors:
            lines.append(
                f"| {s['sandboxes']} | {s['users']} | {e['method']} {e['name']} "
                f"| {e['error'][:120]} | {e['occurrences']} |"
            )
        lines.append("")
    for variant in variants or []:
        lines += _variant_section(variant)
    if summary.get("notes"):
        lines += ["## Notes", "", *[f"- {note}" for note in summary["notes"]], ""]
    lines += [
        "## Reproduce",
        "",
        "```sh",
        "make load                                   # the full run (about 40 minutes)",
        "LOAD_DURATION=15 LOAD_USERS=1,10,50 make load   # a quick one",
        "python -m load.report                       # rewrite this file from the last run",
        "```",
        "",
    ]
    return "\n".join(lines)


def write_report(
    summary: dict, variants: list[dict] | None = None, out_dir: Path = LOAD_DIR
) -> Path:
    """Write REPORT.md and the plots next to it; return the report's path."""
    write_plots(summary, out_dir)
    path = out_dir / REPORT_PATH.name
    path.write_text(render_report(summary, variants))
    return path


def rewrite_report() -> Path | None:
    """REPORT.md from the results on disk (the main run and its variants); None without a
    main run."""
    main_path = summary_path()
    if not main_path.exists():
        return None
    return write_report(json.loads(main_path.read_text()), load_variants())


README_BEGIN = "<!-- load-report -->"
README_END = "<!-- /load-report -->"


def readme_block(summary: dict) -> str:
    """The README's load-test figures: targets, the summary table, the side by side, plots."""
    lines = [
        f"Measured by `make load` on {summary['started_at']} (full report: "
        "[load/REPORT.md](load/REPORT.md)). Raw engine, measured around each scenario "
        f"(each is compared with the mean of the two next to it): {engine_range(summary)}.",
        "",
        "| target | measured | met |",
        "|---|---|---|",
        *[
            f"| {row['target']} | {row['measured']} | {'yes' if row['met'] else 'NO'} |"
            for row in evaluate_targets(summary)
        ],
        "",
        *_summary_table(summary),
        "",
        *_comparison_table(summary),
        "",
        f"![throughput against users](load/{THROUGHPUT_PNG})",
        f"![latency against users](load/{LATENCY_PNG})",
    ]
    return "\n".join(lines)


def update_readme(summary: dict, readme: Path = LOAD_DIR.parent / "README.md") -> bool:
    """Replace the text between the load-report markers in README.md; False without them."""
    text = readme.read_text()
    if README_BEGIN not in text or README_END not in text:
        return False
    head, rest = text.split(README_BEGIN, 1)
    _, tail = rest.split(README_END, 1)
    readme.write_text(f"{head}{README_BEGIN}\n{readme_block(summary)}\n{README_END}{tail}")
    return True


def main(argv: list[str] | None = None) -> int:
    """Rewrite load/REPORT.md from load/results/summary*.json (--readme: the README's
    figures between its load-report markers too)."""
    argv = sys.argv[1:] if argv is None else argv
    path = rewrite_report()
    if path is None:
        print(f"no {SUMMARY_PATH.relative_to(LOAD_DIR.parent)}: run `make load` first")
        return 1
    print(f"wrote {path.relative_to(LOAD_DIR.parent)}")
    if "--readme" in argv:
        summary = json.loads(SUMMARY_PATH.read_text())
        print("updated README.md" if update_readme(summary) else "README.md has no markers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
