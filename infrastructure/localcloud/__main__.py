"""``python -m localcloud up | down | invoke | provision`` (see ``--help``).

Every port and setting has a flag and an environment variable (LOCALCLOUD_*); MODEL_WEIGHTS
and per-function concurrency too.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

from localcloud import cloud, invoke
from localcloud.cloud import CloudConfig, LocalCloud


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _pairs(values: list[str], what: str) -> dict[str, str]:
    out = {}
    for value in values:
        for item in value.split(","):
            if not item.strip():
                continue
            key, sep, val = item.partition("=")
            if not sep:
                raise SystemExit(f"{what}: expected NAME=VALUE, got {item!r}")
            out[key.strip()] = val.strip()
    return out


def _project_dir() -> Path:
    # The directory holding template.yaml: the working directory, or above this package.
    for candidate in (Path.cwd(), *Path(__file__).resolve().parents):
        if (candidate / "template.yaml").exists():
            return candidate
    return Path.cwd()


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m localcloud", description=__doc__)
    project = _project_dir()
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--project-dir",
        type=Path,
        default=project,
        help="the checkout (code paths in the template are relative to it)",
    )
    common.add_argument("--template", type=Path, default=os.environ.get("LOCALCLOUD_TEMPLATE"))
    common.add_argument(
        "--state-dir",
        type=Path,
        default=Path(os.environ.get("LOCALCLOUD_STATE_DIR", project / ".localcloud")),
        help="PIDs, logs, Redis dir, local secrets (default .localcloud/)",
    )
    common.add_argument(
        "--emulator",
        choices=cloud.EMULATORS,
        default=os.environ.get("LOCALCLOUD_EMULATOR") or "localstack",
        help="the AWS emulator to start: LocalStack in host mode (default; installed by "
        "`infrastructure/bootstrap.sh localstack`) or moto's server (env LOCALCLOUD_EMULATOR)",
    )
    common.add_argument(
        "--aws-endpoint",
        default=os.environ.get("LOCALCLOUD_AWS_ENDPOINT") or os.environ.get("AWS_ENDPOINT_URL"),
        help="use this S3/SQS/DynamoDB endpoint instead of starting an emulator "
        "(default: $AWS_ENDPOINT_URL)",
    )
    common.add_argument(
        "--redis-url",
        default=os.environ.get("LOCALCLOUD_REDIS_URL"),
        help="use this Redis instead of starting one",
    )
    common.add_argument(
        "--emulator-port",
        "--moto-port",
        dest="emulator_port",
        type=int,
        default=_env_int("LOCALCLOUD_EMULATOR_PORT", _env_int("LOCALCLOUD_MOTO_PORT", 4566)),
        help="the emulator's port (0: any free port)",
    )
    common.add_argument("--redis-port", type=int, default=_env_int("LOCALCLOUD_REDIS_PORT", 6390))
    common.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a function environment variable the template declares",
    )
    common.add_argument(
        "--model-weights",
        default=os.environ.get("MODEL_WEIGHTS"),
        help="imagenet | random | a weights file (env MODEL_WEIGHTS)",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", parents=[common], help="start the local cloud (Ctrl-C stops)")
    up.add_argument(
        "--host",
        default=os.environ.get("LOCALCLOUD_HOST", "127.0.0.1"),
        help="address the gateway and function URLs listen on",
    )
    up.add_argument("--api-port", type=int, default=_env_int("LOCALCLOUD_API_PORT", 3000))
    up.add_argument(
        "--function-url-port",
        type=int,
        default=_env_int("LOCALCLOUD_FUNCTION_URL_PORT", 3001),
        help="first Function URL port (one per function; 0: any free ports)",
    )
    up.add_argument("--frontend-port", type=int, default=_env_int("LOCALCLOUD_FRONTEND_PORT", 8501))
    up.add_argument(
        "--no-frontend",
        action="store_true",
        default=os.environ.get("LOCALCLOUD_NO_FRONTEND") == "1",
    )
    up.add_argument(
        "--concurrency",
        action="append",
        default=[os.environ.get("LOCALCLOUD_CONCURRENCY", "")],
        metavar="FUNCTION=N",
        help="sandboxes per function (HTTP 4, events 1)",
    )
    up.add_argument(
        "--sqs-visibility-timeout",
        type=int,
        default=_env_int("LOCALCLOUD_SQS_VISIBILITY_TIMEOUT", 30),
        help="cap on queue visibility timeouts, seconds (0: the template's)",
    )
    up.add_argument(
        "--save-interval",
        type=float,
        default=float(os.environ.get("LOCALCLOUD_SAVE_INTERVAL", 2.0)),
        help="save tables and buckets to <state dir>/saved/ this often while functions run, "
        "seconds (0: only at stop)",
    )
    up.add_argument(
        "--fresh",
        action="store_true",
        default=os.environ.get("LOCALCLOUD_FRESH") == "1",
        help="start empty instead of restoring the saved state (kept in saved.before-fresh/)",
    )
    up.add_argument(
        "--ephemeral",
        action="store_true",
        default=os.environ.get("LOCALCLOUD_EPHEMERAL") == "1",
        help="neither restore nor save state (a throwaway cloud)",
    )

    commands.add_parser("down", parents=[common], help="stop the local cloud started from here")

    run = commands.add_parser(
        "invoke", parents=[common], help="run one function on one event, like `sam local invoke`"
    )
    run.add_argument("function", help="logical id in template.yaml, e.g. InferenceFunction")
    run.add_argument("event", help="event JSON file, e.g. events/s3-put.json ('-': stdin)")

    commands.add_parser(
        "provision",
        parents=[common],
        help="create the template's resources at --aws-endpoint and exit",
    )
    return parser


def config_from(args: argparse.Namespace) -> CloudConfig:
    """A CloudConfig from parsed arguments."""
    env_overrides = _pairs(args.env, "--env")
    if args.model_weights:
        env_overrides["MODEL_WEIGHTS"] = args.model_weights
    config = CloudConfig(
        project_dir=args.project_dir.resolve(),
        template=(args.template or args.project_dir / "template.yaml").resolve(),
        state_dir=args.state_dir.resolve(),
        aws_endpoint=args.aws_endpoint,
        redis_url=args.redis_url,
        emulator=args.emulator,
        emulator_port=args.emulator_port,
        redis_port=args.redis_port,
        env_overrides=env_overrides,
    )
    if args.command == "up":
        config.host = args.host
        config.api_port = args.api_port
        config.function_url_port = args.function_url_port
        config.frontend_port = args.frontend_port
        config.frontend = not args.no_frontend
        config.concurrency = {
            k: int(v) for k, v in _pairs(args.concurrency, "--concurrency").items()
        }
        config.sqs_visibility_timeout = args.sqs_visibility_timeout or None
        config.save_interval = args.save_interval
        config.fresh = args.fresh
        config.durable = not args.ephemeral
    return config


def up(config: CloudConfig) -> int:
    """Start, print where everything is, wait for Ctrl-C / SIGTERM, stop everything."""
    local = LocalCloud(config)
    signal.signal(signal.SIGTERM, lambda *_: local.request_stop())
    signal.signal(signal.SIGINT, lambda *_: local.request_stop())
    try:
        local.start()
    except Exception as exc:
        logging.getLogger("localcloud").exception("start failed")
        print(f"localcloud: could not start: {exc}\nlogs: {local.logs}", file=sys.stderr)
        return 1
    print(_banner(local), flush=True)
    try:
        local.watch()
    finally:
        print("localcloud: stopping...", flush=True)
        local.stop()
        print("localcloud: stopped", flush=True)
    return 0


def _banner(local: LocalCloud) -> str:
    emulator = local.emulator.name if local.emulator else "your endpoint"
    lines = [
        "",
        "imgclf local cloud is up",
        f"  API (REST, like sam local start-api)  {local.api_url}",
        f"  Swagger UI                            {local.api_url}/docs",
        f"  OpenAPI                               {local.api_url}/openapi.json",
    ]
    for name, url in local.function_urls().items():
        lines.append(f"  Function URL {name:<24} {url}")
    if local.frontend_url():
        lines.append(f"  Front end (Streamlit)                 {local.frontend_url()}")
    lines += [
        f"  S3 / SQS / DynamoDB ({emulator})".ljust(40) + local.endpoint,
        f"  Account (from the endpoint)           {local.account_id}",
        f"  Redis                                 {local.redis_url}",
        f"  Demo login                            {cloud.DEMO_LOGIN[0]} / {cloud.DEMO_LOGIN[1]}",
        f"  Logs                                  {local.logs}",
        f"  Saved state (restored {local.restored or 'nothing: --ephemeral'})",
        f"                                        {local.state_dir / 'saved'}",
        "Ctrl-C (or `make down`) stops everything.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("LOCALCLOUD_LOG_LEVEL", "WARNING"),
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    config = config_from(args)
    if args.command == "up":
        return up(config)
    if args.command == "down":
        stopped = cloud.stop_running(config.state_dir)
        print("localcloud: stopped" if stopped else "localcloud: nothing was running")
        return 0
    if args.command == "invoke":
        return invoke.main(config, args.function, args.event)
    if args.command == "provision":
        return provision_only(config)
    return 2


def provision_only(config: CloudConfig) -> int:
    """Create the template's resources at the configured endpoint (the LocalStack init)."""
    from localcloud.provision import ProvisioningError, aws_clients, endpoint_account, provision
    from localcloud.template import Template

    endpoint = config.aws_endpoint or os.environ.get("AWS_ENDPOINT_URL")
    template = Template(
        config.template,
        code_root=config.project_dir,
        stack_name=config.stack_name,
        account_id=config.account_id or endpoint_account(endpoint, config.region),
        region=config.region,
        sqs_endpoint=endpoint,
        dynamic_references=lambda s, r: cloud.local_secret(config.state_dir, s, r),
    )
    try:
        done = provision(template, aws_clients(endpoint, config.region))
    except ProvisioningError as exc:
        print(f"localcloud: provisioning failed: {exc}", file=sys.stderr)
        return 1
    for kind in ("buckets", "tables", "queues"):
        for logical_id, name in getattr(done, kind).items():
            print(f"{kind[:-1]:<6} {logical_id:<28} {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
