"""aws-train-remote: list, inspect, follow, stop and download training jobs from the terminal.

The only layer besides training_main that turns errors into messages and exit codes; the
work itself lives in executors/.
"""
from __future__ import annotations

import argparse
import sys

from .._version import __version__
from ..errors import TrainRemoteError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aws-train-remote",
        description="Manage SageMaker training jobs. Launch them by running your script with "
                    "--sagemaker-run yes (see README.md).")
    parser.add_argument("--version", action="version", version=f"aws-train-remote {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--region", help="AWS region (default: AWS_REGION or the profile's)")
    common.add_argument("--profile", help="AWS profile")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("list", parents=[common], help="recent training jobs, newest first")
    p.add_argument("-n", "--limit", type=int, default=20)
    p.add_argument("--name-contains")
    p.add_argument("--status", choices=("InProgress", "Completed", "Failed", "Stopping", "Stopped"))
    p = sub.add_parser("status", parents=[common], help="one job's status, times and artifacts")
    p.add_argument("job")
    p = sub.add_parser("logs", parents=[common], help="print a job's logs (all instances); --follow to tail")
    p.add_argument("job")
    p.add_argument("-f", "--follow", action="store_true")
    p = sub.add_parser("attach", parents=[common], help="follow a running job: status, logs, summary")
    p.add_argument("job")
    p.add_argument("--stop-on-interrupt", action="store_true", help="Ctrl-C stops the job instead of detaching")
    p = sub.add_parser("stop", parents=[common], help="stop a running job")
    p.add_argument("job")
    p = sub.add_parser("download", parents=[common], help="fetch model.tar.gz and unpack it")
    p.add_argument("job")
    p.add_argument("--dest", default="output/model", help="folder to unpack into (default: output/model)")
    p = sub.add_parser("sandbox", help="a loopback AWS (moto) on 127.0.0.1 for trying the remote path "
                       "with no account; with a command after --, runs it against the sandbox")
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...] to run against the sandbox")
    return parser


def run_sandbox(args) -> int:
    import os
    import subprocess
    import time

    from ..sandbox import LoopbackAws

    server = LoopbackAws(port=args.port)
    env = server.env()
    try:
        cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
        if cmd:
            return subprocess.run(cmd, env={**os.environ, **env}, check=False).returncode
        print("sandbox listening; in another shell:")
        for key, value in env.items():
            print(f"export {key}={value}")
        print("Ctrl-C stops it.")
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()


def run(args) -> int:
    if args.command == "sandbox":
        return run_sandbox(args)
    from ..aws.session import aws_failures_as_errors

    with aws_failures_as_errors():
        return run_aws(args)


def run_aws(args) -> int:
    import os

    from ..aws.session import AwsSession
    from ..executors import manage
    from ..executors.sagemaker import download_model, follow_job
    from ..paths import read_aws_config
    from ..spec.job import resolve_region

    region = resolve_region(args.region, os.environ, read_aws_config(), args.profile)
    session = AwsSession(profile=args.profile, region=region)
    if not region:
        raise TrainRemoteError("--region: no AWS region set; pass --region us-east-1 or set AWS_REGION")
    sm = session.client("sagemaker")
    if args.command == "list":
        for row in manage.format_job_rows(manage.list_jobs(sm, args.limit, args.name_contains, args.status)):
            print(row)
    elif args.command == "status":
        print("\n".join(manage.status_lines(sm, args.job)))
    elif args.command in ("logs", "attach"):
        manage.describe(sm, args.job)
        if args.command == "logs" and not args.follow:
            from ..aws.logs import LogTail
            from ..executors.follow import Printer

            printer = Printer()
            for line in LogTail(session.client("logs"), args.job).poll():
                printer.line(line.host, line.message)
            return 0
        desc = follow_job(session, args.job, region, stop_on_interrupt=getattr(args, "stop_on_interrupt", False))
        return 0 if desc["TrainingJobStatus"] == "Completed" else 1
    elif args.command == "stop":
        print(manage.stop_job(sm, args.job))
    elif args.command == "download":
        desc = manage.describe(sm, args.job)
        count = download_model(session.client("s3"), desc, args.dest)
        from ..aws.jobs import plural

        print(f"{plural(count, 'file')} unpacked into {args.dest}")
    return 0


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    try:
        return run(args)
    except TrainRemoteError as err:
        print(f"aws-train-remote: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
