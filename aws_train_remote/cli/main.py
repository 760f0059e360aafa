"""aws-train-remote: list, inspect, follow, stop and download training jobs from the terminal.

The only layer besides training_main that turns errors into messages and exit codes; the
work itself lives in executors/.
"""
from __future__ import annotations

import argparse
import sys

from .._version import __version__
from ..errors import TrainRemoteError

EXAMPLES = {
    "list": "examples:\n  aws-train-remote list\n  aws-train-remote list --status Failed --since 2d\n"
            "  aws-train-remote list --name-contains resnet --limit 0 --json",
    "status": "examples:\n  aws-train-remote status            (the last job launched from this folder)\n"
              "  aws-train-remote status demo-20261123-101500-a1b2c3 --json\n\n"
              "exit status: 0 Completed, 1 Failed, 2 bad input, 3 Stopped, 4 still running (InProgress, Stopping)",
    "logs": "examples:\n  aws-train-remote logs --tail 50\n  aws-train-remote logs JOB --follow --instance algo-2\n"
            "  aws-train-remote logs JOB --since 10m --json",
    "attach": "examples:\n  aws-train-remote attach\n  aws-train-remote attach JOB --stop-on-interrupt\n\n"
              "exit status: as for status, once the job has ended",
    "stop": "examples:\n  aws-train-remote stop demo-20261123-101500-a1b2c3\n  aws-train-remote stop last",
    "download": "examples:\n  aws-train-remote download last\n"
                "  aws-train-remote download JOB --dest models/run3 --json",
    "role": "examples:\n  aws-train-remote role create\n"
            "  aws-train-remote role create my-training-role --bucket my-bucket",
    "gc": "examples:\n  aws-train-remote gc --dry-run\n  aws-train-remote gc --older-than 90d\n"
          "  aws-train-remote gc --bucket my-bucket --prefix team-a\n\n"
          "Deletes input-store objects and manifests that no manifest newer than the cutoff and no\n"
          "running training or tuning job names (docs/remote.md, 'The input store').",
    "sandbox": "examples:\n  aws-train-remote sandbox              (prints the exports for another shell)\n"
               "  aws-train-remote sandbox -- python train.py --sagemaker-run yes",
}
JOB_HELP = "job name, training-job ARN, or last (default: the last job launched from this folder)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aws-train-remote",
        description="Manage SageMaker training jobs. Launch them by running your script with "
                    "--sagemaker-run yes (see README.md).",
        epilog="examples:\n  aws-train-remote list\n  aws-train-remote logs --tail 100\n"
               "  aws-train-remote COMMAND --help",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"aws-train-remote {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--region", help="AWS region (default: the job's, else AWS_REGION or the profile's)")
    common.add_argument("--profile", help="AWS profile")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name, help_text, **kwargs):
        return sub.add_parser(name, help=help_text, description=help_text[:1].upper() + help_text[1:] + ".",
                              epilog=EXAMPLES[name], formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs)

    p = command("list", "recent training jobs, newest first", parents=[common])
    p.add_argument("-n", "--limit", type=int, default=20, help="at most this many (0: all; default: 20)")
    p.add_argument("--name-contains", metavar="TEXT", help="only jobs whose name contains TEXT")
    p.add_argument("--status", choices=("InProgress", "Completed", "Failed", "Stopping", "Stopped"))
    p.add_argument("--since", metavar="AGE", help="only jobs created within AGE (e.g. 90m, 2h, 3d)")
    p.add_argument("--json", action="store_true", help="a JSON list of jobs (keys: docs/cli.md)")
    p = command("status", "one job's status, times and artifacts", parents=[common])
    p.add_argument("job", nargs="?", metavar="JOB", help=JOB_HELP)
    p.add_argument("--json", action="store_true", help="a JSON object (keys: docs/cli.md)")
    p = command("logs", "print a job's logs, all instances interleaved by time", parents=[common])
    p.add_argument("job", nargs="?", metavar="JOB", help=JOB_HELP)
    p.add_argument("-f", "--follow", action="store_true", help="keep printing until the job ends")
    p.add_argument("--tail", type=int, metavar="N", help="only the last N lines")
    p.add_argument("--since", metavar="AGE", help="only lines from the last AGE (e.g. 10m)")
    p.add_argument("--instance", action="append", metavar="HOST", help="only this instance (algo-2); repeatable")
    p.add_argument("--json", action="store_true", help="one JSON object per line (keys: docs/cli.md)")
    p = command("attach", "follow a running job: status, logs, summary", parents=[common])
    p.add_argument("job", nargs="?", metavar="JOB", help=JOB_HELP)
    p.add_argument("--stop-on-interrupt", action="store_true", help="Ctrl-C stops the job instead of detaching")
    p = command("stop", "stop a running job", parents=[common])
    p.add_argument("job", metavar="JOB", help="job name, training-job ARN, or last")
    p = command("download", "fetch a job's model.tar.gz and unpack it", parents=[common])
    p.add_argument("job", metavar="JOB", help="job name, training-job ARN, or last")
    p.add_argument("--dest", default="output/model", help="folder to unpack into (default: output/model)")
    p.add_argument("--json", action="store_true", help="a JSON object: job, model, dest, files")
    p = command("role", "create a SageMaker execution role for your jobs", parents=[common])
    p.add_argument("action", choices=("create",))
    p.add_argument("name", nargs="?", default="aws-train-remote-training",
                   help="role name (default: aws-train-remote-training)")
    p.add_argument("--bucket", help="the one bucket the role may use (default: sagemaker-<region>-<account>)")
    p = command("gc", "delete uploaded input data that no recent or running job uses", parents=[common])
    p.add_argument("--older-than", default="30d", metavar="AGE",
                   help="keep what a manifest written within AGE names (at least 1d; default: 30d)")
    p.add_argument("--dry-run", action="store_true", help="print what would be deleted; delete nothing")
    p.add_argument("--bucket", help="the bucket of the uploads (default: sagemaker-<region>-<account>)")
    p.add_argument("--prefix", default="aws-train-remote",
                   help="the --sagemaker-prefix of the uploads (default: aws-train-remote)")
    p = command("sandbox", "a loopback AWS (moto) on 127.0.0.1 for trying the remote path with no account; "
                "with a command after --, runs it against the sandbox")
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...] to run against the sandbox")
    return parser


SANDBOX_ROLE = "aws-train-remote-sandbox"


def run_sandbox(args) -> int:
    import os
    import subprocess
    import time

    from ..sandbox import LoopbackAws

    server = LoopbackAws(port=args.port)
    try:
        env = {**server.env(), "AWS_TRAIN_REMOTE_ROLE": server.create_role(SANDBOX_ROLE)}
        cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
        if cmd:
            return subprocess.run(cmd, env={**os.environ, **env}, check=False).returncode
        print(f"sandbox listening on {server.url}, with the execution role {env['AWS_TRAIN_REMOTE_ROLE']}.")
        print("In another shell:")
        for key, value in env.items():
            print(f"export {key}={value}")
        print("then run your script with --sagemaker-run yes. Ctrl-C stops the sandbox.")
        sys.stdout.flush()
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

    from ..aws.session import AwsSession, check_region
    from ..executors import manage
    from ..paths import read_aws_config
    from ..spec.job import resolve_region

    job, job_region = (None, None)
    if args.command not in ("list", "role", "gc"):
        job, job_region = manage.resolve_job(args.job, os.environ)
    region = resolve_region(args.region or job_region, os.environ, read_aws_config(), args.profile)
    if not region:
        raise TrainRemoteError("--region: no AWS region set; pass --region us-east-1 or set AWS_REGION")
    check_region(region, os.environ)
    session = AwsSession(profile=args.profile, region=region)
    if args.command == "list":
        return manage.cmd_list(session, args)
    if args.command == "role":
        return manage.cmd_role(session, args, region)
    if args.command == "gc":
        return manage.cmd_gc(session, args, region)
    if args.command == "status":
        return manage.cmd_status(session, job, args.json)
    if args.command == "logs":
        return manage.cmd_logs(session, job, region, args)
    if args.command == "attach":
        from ..aws.jobs import exit_status
        from ..executors.sagemaker import follow_job

        manage.describe(session.client("sagemaker"), job)
        return exit_status(follow_job(session, job, region, stop_on_interrupt=args.stop_on_interrupt)
                           ["TrainingJobStatus"])
    if args.command == "stop":
        print(manage.stop_job(session.client("sagemaker"), job))
        return 0
    return manage.cmd_download(session, job, args.dest, args.json)


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
