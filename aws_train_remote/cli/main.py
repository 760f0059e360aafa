"""aws-train-remote: list, inspect, follow, stop and download training jobs from the terminal.

The only layer besides training_main that turns errors into messages and exit codes; the
work itself lives in executors/.
"""
from __future__ import annotations

import argparse
import sys

from .._version import DOCS_URL, __version__
from ..errors import TrainRemoteError, UsageError

EXAMPLES = {
    "list": "examples:\n  aws-train-remote list\n  aws-train-remote list --status Failed --since 2d\n"
            "  aws-train-remote list --name-contains resnet --limit 0 --json",
    "status": "examples:\n  aws-train-remote status            (the last job launched from this folder)\n"
              "  aws-train-remote status demo-20261123-101500-a1b2c3 --json\n\n"
              "exit status: 0 Completed, 1 Failed, 2 bad input, 3 Stopped,\n"
              "             4 still running (InProgress, Stopping)",
    "logs": "examples:\n  aws-train-remote logs --tail 50\n  aws-train-remote logs JOB --follow --instance algo-2\n"
            "  aws-train-remote logs JOB --since 10m --json",
    "attach": "examples:\n  aws-train-remote attach\n  aws-train-remote attach JOB --stop-on-interrupt\n\n"
              "exit status: as for status, once the job has ended; 4 when the follow ends\n"
              "first (AWS out of reach for 15 minutes, or credentials expired): the job keeps\n"
              "running, attach again later",
    "stop": "examples:\n  aws-train-remote stop demo-20261123-101500-a1b2c3\n  aws-train-remote stop last",
    "download": "examples:\n  aws-train-remote download last\n"
                "  aws-train-remote download JOB --dest models/run3 --json",
    "tensorboard": "examples:\n  aws-train-remote tensorboard            (the last job launched from this folder)\n"
                   "  aws-train-remote tensorboard JOB --dest runs/job3 --port 6007\n"
                   "  aws-train-remote tensorboard JOB --no-start\n\n"
                   "The job must have been launched with --sagemaker-tensorboard. While it runs,\n"
                   "its new files are fetched every 30 s until it ends; nothing in --dest is deleted.",
    "role": "examples:\n  aws-train-remote role create\n"
            "  aws-train-remote role create my-training-role --bucket my-bucket",
    "gc": "examples:\n  aws-train-remote gc --dry-run\n  aws-train-remote gc --older-than 90d\n"
          "  aws-train-remote gc --bucket my-bucket --prefix team-a\n\n"
          "Deletes only the input versions launches wrote (store objects and manifests,\n"
          "FastFile versions) that no manifest newer than the cutoff and no running\n"
          "training or tuning job in the bucket's region names; other keys under the\n"
          "prefix are counted and left alone. Ages are taken by S3's clock. Ctrl-C says\n"
          "what was deleted; running gc again is safe. More under 'Garbage' in\n"
          f"{DOCS_URL}/remote.html",
    "sandbox": "examples:\n  aws-train-remote sandbox              (prints the exports for another shell)\n"
               "  aws-train-remote sandbox -- python train.py --sagemaker-run yes",
    "shell": "examples:\n  aws-train-remote shell                (the last job launched from this folder)\n"
             "  aws-train-remote shell JOB --host algo-2\n"
             "  aws-train-remote shell JOB --enable -- nvidia-smi\n\n"
             "SageMaker: an SSM session (aws ssm start-session), which needs the AWS CLI, its\n"
             "Session Manager plugin, and a job launched with --sagemaker-debug (or --enable).\n"
             "Local mode and the sandbox: a shell in the job's folder with its environment.",
    "metrics": "examples:\n  aws-train-remote metrics            (the last job launched from this folder)\n"
               "  aws-train-remote metrics JOB --json\n  aws-train-remote metrics JOB --plot curves.png",
    "price": "examples:\n  aws-train-remote price ml.g5.xlarge\n"
             "  aws-train-remote price ml.p5.48xlarge ml.p4d.24xlarge --region us-west-2\n\n"
             "On-demand prices from the AWS Price List Query API (pricing:GetProducts), kept\n"
             "a day in the cache, where dry runs (which make no AWS call) find them too.",
    "notify": "examples:\n  aws-train-remote notify setup --email me@example.com\n"
              "  aws-train-remote notify setup --webhook https://hooks.example.com/T0/B0/x\n"
              "  aws-train-remote notify status\n  aws-train-remote notify remove\n\n"
              "Then launch with --sagemaker-notify: when such a job ends (Completed, Failed,\n"
              "Stopped), EventBridge tells the address or the webhook, in that job's region.\n"
              "Creates an EventBridge rule, and an SNS topic or an API destination; remove\n"
              "deletes exactly those.",
    "completion": "examples:\n  aws-train-remote completion bash > ~/.aws-train-remote.bash\n"
                  "      (and in ~/.bashrc: source ~/.aws-train-remote.bash)\n"
                  "  eval \"$(aws-train-remote completion zsh)\"      (in ~/.zshrc, after compinit)\n"
                  "  aws-train-remote completion fish > ~/.config/fish/conf.d/atr.fish\n\n"
                  "Completes the commands, their flags, job names from this machine's launch\n"
                  "records (no AWS call) and, after `python SCRIPT.py` for a script using\n"
                  "aws-train-remote, its --sagemaker-* flags.",
}
JOB_HELP = "job name, training-job ARN, or last (default: the last job launched from this folder)"
STATUSES = ("InProgress", "Completed", "Failed", "Stopping", "Stopped")


class Parser(argparse.ArgumentParser):
    """argparse whose complaints are one line (what, the value, the fix) and exit 2, not the
    usage block: bad input reads the same in every command (issue 17.8). Sub-parsers are made of
    this class too."""

    def error(self, message):
        fix = "" if "; " in message else f"; see: {self.prog} --help"  # our own types' messages carry a fix
        self.exit(2, f"{self.prog}: error: {message}{fix}\n")

    def _check_value(self, action, value):
        """A value not among the choices (a command, role's action) names the closest one."""
        if action.choices is not None and value not in action.choices:
            import difflib

            close = difflib.get_close_matches(value, list(action.choices), n=1, cutoff=0.6)
            command = isinstance(action, argparse._SubParsersAction)
            fix = f"did you mean {close[0]}?" if close else f"use one of {', '.join(action.choices)}"
            raise argparse.ArgumentError(None if command else action,  # None: no "argument COMMAND:" before it
                                         f"unknown {'command' if command else 'choice'} {value!r}; {fix}")
        return super()._check_value(action, value)


def count_of(text: str) -> int:
    """-n/--limit: a whole number, 0 or more."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 0 or more; e.g. --limit 50 (0: all)")
    return value


def status_of(text: str) -> str:
    """--status: a training job status, in any case (failed, FAILED)."""
    for status in STATUSES:
        if status.lower() == text.lower():
            return status
    raise argparse.ArgumentTypeError(f"{text!r} is not a training job status; use one of {', '.join(STATUSES)} "
                                     "(a running job is InProgress)")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="aws-train-remote",
        description="Manage SageMaker training jobs. Launch them by running your script with\n"
                    "--sagemaker-run yes.",
        epilog="examples:\n  aws-train-remote list\n  aws-train-remote logs --tail 100\n"
               f"  aws-train-remote COMMAND --help\n\ndocumentation: {DOCS_URL}",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"aws-train-remote {__version__}")
    common = Parser(add_help=False)
    common.add_argument("--region", help="AWS region (default: the job's, else AWS_REGION or the profile's)")
    common.add_argument("--profile", help="AWS profile")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name, help_text, **kwargs):
        import textwrap  # argparse's own import: costs nothing; raw descriptions are not wrapped for us

        description = textwrap.fill(help_text[:1].upper() + help_text[1:] + ".", 78)
        return sub.add_parser(name, help=help_text, description=description,
                              epilog=f"{EXAMPLES[name]}\n\ndocumentation: {DOCS_URL}/cli.html",
                              formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs)

    p = command("list", "recent training jobs, newest first", parents=[common])
    p.add_argument("-n", "--limit", type=count_of, default=20, help="at most this many (0: all; default: 20)")
    p.add_argument("--name-contains", metavar="TEXT", help="only jobs whose name contains TEXT")
    p.add_argument("--status", type=status_of, metavar="STATUS",
                   help="only jobs in this status: " + ", ".join(STATUSES))
    p.add_argument("--since", metavar="AGE", help="only jobs created within AGE (e.g. 90m, 2h, 3d)")
    p.add_argument("--json", action="store_true", help="a JSON list of jobs (keys: see the docs below)")
    p = command("status", "one job's status, times and artifacts", parents=[common])
    p.add_argument("job", nargs="?", metavar="JOB", help=JOB_HELP)
    p.add_argument("--json", action="store_true", help="a JSON object (keys: see the docs below)")
    p = command("logs", "print a job's logs, all instances interleaved by time", parents=[common])
    p.add_argument("job", nargs="?", metavar="JOB", help=JOB_HELP)
    p.add_argument("-f", "--follow", action="store_true", help="keep printing until the job ends")
    p.add_argument("--tail", type=int, metavar="N", help="only the last N lines")
    p.add_argument("--since", metavar="AGE", help="only lines from the last AGE (e.g. 10m)")
    p.add_argument("--instance", action="append", metavar="HOST", help="only this instance (algo-2); repeatable")
    p.add_argument("--json", action="store_true", help="one JSON object per line (keys: see the docs below)")
    p = command("attach", "follow a running job: status, logs, summary", parents=[common])
    p.add_argument("job", nargs="?", metavar="JOB", help=JOB_HELP)
    p.add_argument("--stop-on-interrupt", action="store_true", help="Ctrl-C stops the job instead of detaching")
    p.add_argument("--tail", type=int, metavar="N", help="only the last N lines of the log so far, then the new ones "
                   "(default: the whole log)")
    p = command("stop", "stop a running job", parents=[common])
    p.add_argument("job", nargs="?", metavar="JOB", help=JOB_HELP)
    p = command("download", "fetch a job's model.tar.gz and unpack it", parents=[common])
    p.add_argument("job", nargs="?", metavar="JOB", help=JOB_HELP)
    p.add_argument("--dest", default="output/model", help="folder to unpack into (default: output/model); what "
                   "is already there is kept, and a file the model would replace is refused unless --overwrite")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the files in --dest that the model has too (its other files are kept)")
    p.add_argument("--json", action="store_true", help="a JSON object: job, model, dest, files, replaced, skipped")
    p = command("tensorboard", "fetch a job's TensorBoard files and start TensorBoard on them", parents=[common])
    p.add_argument("job", nargs="?", metavar="JOB", help=JOB_HELP)
    p.add_argument("--dest", help="folder for the files (default: output/tensorboard/JOB)")
    p.add_argument("--port", type=int, default=6006, help="TensorBoard's port on localhost (default: 6006)")
    p.add_argument("--no-start", action="store_true", help="only fetch the files; print the command that starts "
                   "TensorBoard")
    p = command("role", "create a SageMaker execution role for your jobs", parents=[common])
    p.add_argument("action", choices=("create",))
    p.add_argument("name", nargs="?", default="aws-train-remote-training",
                   help="role name (default: aws-train-remote-training)")
    p.add_argument("--bucket", help="the one bucket the role may use (default: sagemaker-<region>-<account>)")
    p = command("gc", "delete uploaded input data that no recent or running job uses", parents=[common])
    p.add_argument("--older-than", default="30d", metavar="AGE",
                   help="keep what a manifest written within AGE (by S3's clock) names (1d to 36500d; "
                        "default: 30d)")
    p.add_argument("--dry-run", action="store_true", help="print what would be deleted; delete nothing")
    p.add_argument("--bucket", help="the bucket's name (default: sagemaker-<region>-<account>)")
    p.add_argument("--prefix", default="aws-train-remote",
                   help="the --sagemaker-prefix the launches used, the folder that holds store/ "
                        "(default: aws-train-remote)")
    p = command("sandbox", "a loopback AWS (moto) on 127.0.0.1 for trying the remote path with no account; "
                "with a command after --, runs it against the sandbox")
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...] to run against the sandbox")
    p = command("metrics", "the metrics a job defined (--sagemaker-metric), read from its log: a table with a "
                "sparkline each", parents=[common])
    p.add_argument("job", nargs="?", metavar="JOB", help=JOB_HELP + "; a local-mode job by its name too")
    p.add_argument("--instance", action="append", metavar="HOST", help="only this instance (algo-2); repeatable")
    p.add_argument("--json", action="store_true", help="a JSON object with every value (keys: see the docs below)")
    p.add_argument("--plot", metavar="FILE.png", help="also draw the curves into FILE.png (needs matplotlib: "
                   "pip install 'aws-train-remote[plot]')")
    p = command("shell", "open a shell inside a running job (SageMaker: an SSM session; local mode and the sandbox: "
                "the job's folder and environment)", parents=[common])
    p.add_argument("job", nargs="?", metavar="JOB", help=JOB_HELP + "; a local-mode job by its name too")
    p.add_argument("--host", metavar="HOST", help="the instance (default: algo-1)")
    p.add_argument("--enable", action="store_true", help="turn remote debugging on (UpdateTrainingJob) if it is "
                   "off, without asking")
    p.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- COMMAND", help="run this one command instead of "
                   "a shell (after JOB and the options)")
    p = command("price", "the on-demand price of SageMaker training instance types in a region, from the AWS "
                "Price List", parents=[common])
    p.add_argument("types", nargs="+", metavar="TYPE", help="instance types, e.g. ml.g5.xlarge")
    p = command("notify", "hear when a job launched with --sagemaker-notify ends: by email (SNS) or a webhook, "
                "through an EventBridge rule", parents=[common])
    p.add_argument("action", choices=("setup", "status", "remove"))
    p.add_argument("--email", metavar="ADDRESS", help="setup: mail this address (an SNS email subscription, which "
                   "AWS asks it to confirm)")
    p.add_argument("--webhook", metavar="URL", help="setup: POST each event (JSON) to this https:// URL (an "
                   "EventBridge API destination)")
    p.add_argument("--webhook-header", metavar="NAME=VALUE", help="setup: the header the webhook's calls carry "
                   "(e.g. a token it checks; default: X-Aws-Train-Remote=notify)")
    p = command("completion", "print a shell completion script for aws-train-remote and for the --sagemaker-* "
                "flags of python SCRIPT.py")
    p.add_argument("shell", choices=("bash", "zsh", "fish"), help="the shell: bash, zsh or fish")
    p.add_argument("--job-names", action="store_true", help=argparse.SUPPRESS)  # what the scripts call at TAB
    return parser


SANDBOX_ROLE = "aws-train-remote-sandbox"
SANDBOX_GONE = ("sandbox: stopped; its jobs, logs and S3 objects are gone with it (it keeps them in memory).\n"
                "To inspect jobs after they end, keep one running: `aws-train-remote sandbox` in another shell,\n"
                "paste the exports it prints here, then run your command, `aws-train-remote list`, `logs`, `metrics`.")


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
            try:
                return subprocess.run(cmd, env={**os.environ, **env}, check=False).returncode
            finally:
                print(SANDBOX_GONE, file=sys.stderr)
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
    if args.command == "completion":
        from .completion import run_completion

        return run_completion(args)
    if args.command == "shell":
        import os

        from ..executors.shell import shell_here

        code = shell_here(args, os.environ)  # a local-mode job: no AWS call
        if code is not None:
            return code
    if args.command == "metrics":
        import os

        from ..executors.metrics import check_plot, cmd_metrics_local
        from ..local_jobs import local_job_for

        check_plot(args.plot)
        kept = local_job_for(args.job, os.environ)  # a local-mode job: no AWS call
        if kept is not None:
            return cmd_metrics_local(kept, args)
    if args.command == "tensorboard" and args.job not in (None, "", "last"):
        import os

        from ..local_jobs import find

        if find(args.job, os.environ) is not None:  # nothing in S3 to fetch: local mode copied the files
            raise UsageError("JOB", args.job, "a local-mode job: when it ended, local mode copied its TensorBoard "
                             f"files into --tensorboard-dir/{args.job} (default output/tensorboard/{args.job}; "
                             "its summary's TensorBoard line names the folder)", "run: tensorboard --logdir FOLDER")
    from ..aws.session import aws_failures_as_errors

    with aws_failures_as_errors():
        return run_aws(args)


def run_aws(args) -> int:
    import os

    from ..aws.session import AwsSession, check_region
    from ..executors import manage
    from ..paths import read_aws_config
    from ..spec.job import REGION, resolve_region

    job, job_region = (None, None)
    if args.command not in ("list", "role", "gc", "notify", "price"):
        job, job_region = manage.resolve_job(args.job, os.environ)
    region = resolve_region(args.region or job_region, os.environ, read_aws_config(), args.profile)
    if not region:  # bad input, exit 2 (1 means a job failed): issue 21.5
        raise UsageError("--region", None, "no AWS region set", "pass --region us-east-1 or set AWS_REGION")
    if not REGION.match(region):  # checked here too when AWS_ENDPOINT_URL is set, which check_region skips
        raise UsageError("--region", region, "not an AWS region name", "use a name such as us-east-1 or eu-west-1")
    check_region(region, os.environ)
    session = AwsSession(profile=args.profile, region=region)
    if args.command == "list":
        return manage.cmd_list(session, args)
    if args.command == "role":
        return manage.cmd_role(session, args, region)
    if args.command == "gc":
        return manage.cmd_gc(session, args, region)
    if args.command == "price":
        from ..executors.cost import cmd_price

        return cmd_price(session, args.types, region, os.environ)
    if args.command == "notify":
        from ..executors.notify import cmd_notify

        return cmd_notify(session, args, region, os.environ)
    if args.command == "status":
        return manage.cmd_status(session, job, args.json)
    if args.command == "logs":
        return manage.cmd_logs(session, job, region, args)
    if args.command == "attach":
        return manage.cmd_attach(session, job, region, args)
    if args.command == "stop":
        return manage.cmd_stop(session, job, named=args.job not in (None, "", "last"))
    if args.command == "shell":
        from ..executors.shell import cmd_shell

        return cmd_shell(session, job, region, args)
    if args.command == "metrics":
        from ..executors.metrics import cmd_metrics

        return cmd_metrics(session, job, args)
    if args.command == "tensorboard":
        from ..executors.tensorboard import cmd_tensorboard

        return cmd_tensorboard(session, job, args)
    return manage.cmd_download(session, job, args.dest, args.json, args.overwrite)


def one_line(message: str) -> str:
    """An error as one line: an HTML page some server answered with (another endpoint, a region it
    does not serve) shrinks to its title (issue 17.8)."""
    import re

    page = re.search(r"<(!doctype|html)\b.*", message, re.I | re.S)
    if page:
        title = re.search(r"<title>(.*?)</title>", page.group(0), re.I | re.S)
        message = (message[:page.start()] + "the server answered with an HTML page"
                   + (f" ({title.group(1).strip()})" if title else "") + "; check --region and AWS_ENDPOINT_URL")
    return " ".join(message.split())


def main(argv=None) -> int:
    parser = build_parser()
    argv, command = sys.argv[1:] if argv is None else list(argv), None
    if "shell" in argv:  # `shell [JOB] -- COMMAND`: the command is never parsed
        from ..executors.shell import split_argv

        argv, command = split_argv(argv)
    args = parser.parse_args(argv)
    if command is not None:
        args.cmd = [*(args.cmd or []), "--", *command]
    if not args.command:
        parser.print_help()
        return 2
    try:
        return run(args)
    except TrainRemoteError as err:
        from ..executors.style import BAD, paint, use_color

        print(f"aws-train-remote: {paint('error:', BAD, use_color(sys.stderr))} {one_line(str(err))}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
