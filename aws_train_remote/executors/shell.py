"""`aws-train-remote shell [JOB] [--host algo-2] [-- COMMAND]`: a shell inside a running job.

On SageMaker it is an SSM session, `aws ssm start-session --target
sagemaker-training-job:<job>_<host>`, which the agent SageMaker starts in a job with remote
debugging serves (RemoteDebugConfig; train-remote-debugging.html). Checked first, one line each
(exit 2): the AWS CLI and its Session Manager plugin are installed, the job is running and
Training (the state in which SageMaker accepts a session), it has no network isolation, and
debugging is on -- for a running job without it, UpdateTrainingJob turns it on, after a prompt at a
terminal or with --enable (SageMaker allows it while the job is Downloading or Training).

A local-mode job has no SSM: the shell ($SHELL, else /bin/sh) opens in the job's own code folder
with the job's environment (SM_* variables, PYTHONPATH, its virtualenv first on PATH), from the
record its runtime left (local_shells.py), which is what a job on this machine can honestly give.
A sandbox job is asked about as a SageMaker one (same checks, UpdateTrainingJob included), and
that local shell stands for the SSM session. `-- COMMAND` runs one command instead of a shell
(SSM: the AWS-StartInteractiveCommand document).
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sys
import time

from .. import local_shells
from ..errors import UsageError
from ..runtime.debugging import SANDBOX_ENV
from ..spec.debugging import NO_ISOLATION

HOST = re.compile(r"^algo-([1-9]\d*)$")
UPDATABLE = ("Downloading", "Training")  # SecondaryStatus in which UpdateTrainingJob takes RemoteDebugConfig
ENABLE_WAIT_SECONDS = 300
CLI_INSTALL = "https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html"
PLUGIN_INSTALL = ("https://docs.aws.amazon.com/systems-manager/latest/userguide/"
                  "session-manager-working-with-install-plugin.html")


def target(job: str, host: str) -> str:
    return f"sagemaker-training-job:{job}_{host}"


def ssm_command(job: str, host: str, region: str, profile: str = None, command=()) -> list:
    """The exact `aws ssm start-session` argv; with a command, the session runs only that."""
    argv = ["aws", "ssm", "start-session", "--target", target(job, host), "--region", region]
    if command:
        argv += ["--document-name", "AWS-StartInteractiveCommand",
                 "--parameters", json.dumps({"command": [shlex.join(command)]})]
    return argv + (["--profile", profile] if profile else [])


def split_argv(argv: list) -> tuple:
    """(argv, command): `aws-train-remote shell [JOB] [options] -- COMMAND` with the command taken
    out before argparse sees it (argparse would take its first word for JOB when JOB is left out);
    command None for every other command line."""
    words = [w for w in argv if not w.startswith("-")]
    if not words or words[0] != "shell" or "--" not in argv or argv.index("--") < argv.index("shell"):
        return argv, None
    cut = argv.index("--")
    return argv[:cut], argv[cut + 1:]


def split_tail(args) -> None:
    """`shell JOB --host algo-2 -- env`: argparse hands everything after JOB to the command; the
    options among it (before a `--`) are taken back here."""
    import argparse

    if getattr(args, "tail_split", False):
        return
    args.tail_split = True
    words = list(args.cmd or [])
    if "--" in words:
        head, command = words[:words.index("--")], words[words.index("--") + 1:]
    elif words and words[0].startswith("--"):
        head, command = words, []
    else:
        head, command = [], words
    if head:
        tail = argparse.ArgumentParser(prog="aws-train-remote shell", add_help=False)
        for flag in ("--host", "--region", "--profile"):
            tail.add_argument(flag)
        tail.add_argument("--enable", action="store_true")
        known, unknown = tail.parse_known_args(head)
        if unknown:
            raise UsageError(unknown[0], None, "not an option of shell", "put the command after --, e.g. "
                             "aws-train-remote shell JOB --host algo-2 -- env")
        for name, value in vars(known).items():
            if value:
                setattr(args, name, value)
    args.cmd = command


def check_host(host: str, count: int = None) -> str:
    match = HOST.match(host or "")
    if not match:
        raise UsageError("--host", host, "not a host name", "use algo-1, algo-2, ... (the job's instances)")
    if count is not None and int(match.group(1)) > count:
        raise UsageError("--host", host, f"the job has {count} instance{'' if count == 1 else 's'}",
                         f"use one of algo-1..algo-{count}")
    return host


def run_attached(argv, cwd=None, env=None) -> int:
    """The session in the foreground. Ctrl-C belongs to it (the remote shell reads it), so this
    process only waits; a handler, unlike an ignored signal, is not inherited by the session."""
    import signal
    import subprocess

    previous = signal.signal(signal.SIGINT, lambda signum, frame: None)
    try:
        return subprocess.run(argv, cwd=cwd, env=env, check=False).returncode
    finally:
        signal.signal(signal.SIGINT, previous)


def open_local(record: dict, command, runner=run_attached, environ=None, err=None) -> int:
    """A shell (or one command) in a job on this machine: its folder, its environment."""
    environ = os.environ if environ is None else environ
    err = err or sys.stderr
    argv = list(command) or [environ.get("SHELL") or "/bin/sh"]
    if not command:
        print(f"shell in job {record['job']} ({record['host']}): {record['cwd']}, with the job's environment "
              f"(SM_* variables, PYTHONPATH, its Python first on PATH); exit to leave. A failed job kept up ends "
              f"sooner with: touch {record.get('release')}", file=err)
        err.flush()
    try:
        return runner(argv, cwd=record["cwd"], env={**environ, **record["env"]})
    except FileNotFoundError as error:
        gone = not os.path.isdir(record["cwd"])
        raise UsageError("JOB", record["job"], "the job ended as the shell opened" if gone else
                         f"cannot run {argv[0]!r} ({error.strerror})",
                         "start it again" if gone else "check the command's name") from None


def _records(environ, job: str, sandbox: bool) -> dict:
    """The running hosts of `job` here: local mode's, or (sandbox) those of this endpoint's sandbox."""
    found = local_shells.running(environ, job)
    if sandbox:
        return {h: r for h, r in found.items() if r["env"].get(SANDBOX_ENV) == "1"
                and r["env"].get("AWS_ENDPOINT_URL") == environ.get("AWS_ENDPOINT_URL")}
    return {h: r for h, r in found.items() if r["env"].get(SANDBOX_ENV) != "1"}


def _is_sandbox(environ) -> bool:
    """AWS at 127.0.0.1, the address the sandbox listens on and exports: its jobs run on this machine."""
    from urllib.parse import urlparse

    endpoint = environ.get("AWS_ENDPOINT_URL")
    return bool(endpoint) and urlparse(endpoint).hostname == "127.0.0.1"


def _pick(records: dict, host: str, job: str) -> dict:
    if host not in records:
        raise UsageError("--host", host, f"job {job} runs no script on it here (not started yet, or ended)",
                         "use one of " + ", ".join(sorted(records)) if records else "try again in a moment")
    return records[host]


def shell_here(args, environ, runner=run_attached) -> object:
    """A local-mode job: its shell, no AWS call. None when JOB is not a local-mode job of this
    machine (then it is a SageMaker or sandbox job's)."""
    from ..local_jobs import find, local_job_for

    split_tail(args)
    kept = local_job_for(args.job, environ)
    name = kept["job"] if kept else args.job
    if not name or name == "last":
        return None
    records = _records(environ, name, sandbox=False)
    if not records:
        if kept or find(name, environ):  # a local job of this machine, but not running
            raise UsageError("JOB", name, "the local job is not running; a shell needs a running job",
                             "to keep a failed one up for a look inside, run it with --sagemaker-keep-on-failure 10m")
        return None
    return open_local(_pick(records, check_host(args.host or "algo-1"), name), args.cmd, runner, environ)


def _instances(desc: dict) -> int:
    resources = desc.get("ResourceConfig") or {}
    groups = resources.get("InstanceGroups") or []
    if groups:
        return sum(int(g.get("InstanceCount", 0)) for g in groups)
    # an InstancePreferences job: the count of the type SageMaker selected (issue 19.3)
    return int(resources.get("SelectedInstanceCount") or resources.get("InstanceCount") or 1)


def _debug_on(desc: dict) -> bool:
    return bool((desc.get("RemoteDebugConfig") or {}).get("EnableRemoteDebug"))


def check_tools(which=shutil.which) -> None:
    if not which("aws"):
        raise UsageError("aws", None, "the AWS CLI is not installed (the shell is `aws ssm start-session`)",
                         f"install it: {CLI_INSTALL}")
    if not which("session-manager-plugin"):
        raise UsageError("session-manager-plugin", None, "the Session Manager plugin of the AWS CLI is not installed",
                         f"install it: {PLUGIN_INSTALL}")


def check_state(desc: dict, job: str) -> None:
    """Running, no network isolation: the job a session could reach at all."""
    status, secondary = desc.get("TrainingJobStatus"), desc.get("SecondaryStatus")
    if status != "InProgress":
        raise UsageError("JOB", job, f"the job is {status}; a shell needs a running job",
                         "launch with --sagemaker-keep-on-failure 30m to keep a failed script's container up for one")
    if desc.get("EnableNetworkIsolation"):
        raise UsageError("JOB", job, NO_ISOLATION, "relaunch without --sagemaker-network-isolation")
    if secondary not in UPDATABLE:
        raise UsageError("JOB", job, f"the job is {secondary}; SageMaker accepts a shell once it is Training",
                         "try again in a minute (aws-train-remote status JOB shows it)")


def ensure_debug(sm, job: str, desc: dict, *, enable: bool, ask, sleep=time.sleep, clock=time.monotonic,
                 err=None) -> dict:
    """Remote debugging on, or UsageError: turned on with UpdateTrainingJob when `enable`, or when
    `ask` (a prompt at a terminal; None without one) says yes. Returns the job's description once
    SageMaker shows it on and the job Training."""
    err = err or sys.stderr
    if not _debug_on(desc):
        question = f"remote debugging is off for {job}; turn it on now (UpdateTrainingJob)? [y/N] "
        if not (enable or (ask is not None and ask(question).strip().lower() in ("y", "yes"))):
            raise UsageError("JOB", job, "remote debugging is off for this job",
                             "pass --enable to turn it on (UpdateTrainingJob), or launch with --sagemaker-debug")
        sm.update_training_job(TrainingJobName=job, RemoteDebugConfig={"EnableRemoteDebug": True})
        print(f"remote debugging turned on for {job} (UpdateTrainingJob)", file=err)
    began = clock()
    while not (_debug_on(desc) and desc.get("SecondaryStatus") == "Training"):
        if desc.get("TrainingJobStatus") != "InProgress" or clock() - began > ENABLE_WAIT_SECONDS:
            check_state(desc, job)  # it ended, or went elsewhere: say so
            raise UsageError("JOB", job, f"the job is still {desc.get('SecondaryStatus')} after "
                             f"{ENABLE_WAIT_SECONDS} s", "try again in a minute")
        print(f"waiting for the job to be Training with remote debugging on (now {desc.get('SecondaryStatus')})",
              file=err)
        sleep(5)
        desc = sm.describe_training_job(TrainingJobName=job)
    return desc


def terminal_prompt():
    """input() when both ends are a terminal, else None (a script or CI gets the one-line refusal)."""
    return input if sys.stdin.isatty() and sys.stderr.isatty() else None


def cmd_shell(session, job: str, region: str, args, *, environ=None, which=shutil.which, runner=run_attached,
              ask=None, sleep=time.sleep, err=None) -> int:
    """The SageMaker (or sandbox) job's shell: every check, then the session."""
    from .manage import describe

    environ = os.environ if environ is None else environ
    err = err or sys.stderr
    split_tail(args)
    host = check_host(args.host or "algo-1")
    sandbox = _is_sandbox(environ)
    if not sandbox:
        check_tools(which)
    sm = session.client("sagemaker")
    desc = describe(sm, job)
    check_host(host, _instances(desc))
    check_state(desc, job)
    desc = ensure_debug(sm, job, desc, enable=args.enable, ask=ask if ask is not None else terminal_prompt(),
                        sleep=sleep, err=err)
    argv = ssm_command(job, host, region, args.profile, args.cmd)
    if sandbox:  # the SSM session, emulated: a shell in the sandbox job's folder
        print(f"sandbox: a shell in the job's folder stands for: {shlex.join(argv)}", file=err)
        return open_local(_pick(_records(environ, job, sandbox=True), host, job), args.cmd, runner, environ, err)
    print(shlex.join(argv), file=err)
    err.flush()
    return runner(argv)
