"""Looking inside a job: the record that lets `aws-train-remote shell` open a shell in a local-mode
or sandbox job's own folder with the job's environment, and the wait that keeps a failed script's
container up (--sagemaker-keep-on-failure) so a shell can still reach it. Standard library only.

On SageMaker the shell is an SSM session that SageMaker's own agent serves (RemoteDebugConfig);
nothing here takes part in it beyond saying how to connect while the container is kept.
"""
from __future__ import annotations

import json
import os
import re
import signal
import time

SHELL_RECORD_ENV = "ATR_SHELL_RECORD"  # set by the local executor: where this host writes its record
SANDBOX_ENV = "ATR_SANDBOX_JOB"  # set by the sandbox: a job that stands for a SageMaker one
RELEASE_FILE = "end-keep-on-failure"  # under the /opt/ml root: touching it ends the wait sooner
# SageMaker stops the job at MaxRuntimeInSeconds, counted from before this runtime started (the data
# download, for one): the wait ends this much earlier than the clock here says, so the job ends with
# the script's failure, never with MaxRuntimeExceeded
MARGIN_SECONDS = 60
# the environment of a shell is written to a file: a name like these stays out of it (the shell takes
# it from the environment of whoever opens it, as before)
_SECRET = re.compile(r"SECRET|TOKEN|PASSW|CREDENTIAL|PRIVATE|_KEY$|^AWS_ACCESS_KEY_ID$", re.I)


def shell_env(env: dict, python: str) -> dict:
    """The script's environment, with the job's own virtualenv (local mode) first on PATH, as
    `pip` and `python` in the shell should be the job's."""
    env = dict(env)
    folder = os.path.dirname(os.path.dirname(os.path.abspath(python)))
    if os.path.isfile(os.path.join(folder, "pyvenv.cfg")):
        env["VIRTUAL_ENV"] = folder
        env["PATH"] = os.pathsep.join([os.path.dirname(os.path.abspath(python)), *filter(None, [env.get("PATH")])])
    return env


def write_shell_record(environ, env: dict, python: str, *, cwd: str, root: str, host: str, job: str) -> None:
    """Local mode and the sandbox (the executor names the file): where this host runs the script and
    with what environment, for `aws-train-remote shell`. Private to the user; the executor removes
    it when the host ends. Nowhere else is there a file to write."""
    path = environ.get(SHELL_RECORD_ENV)
    if not path:
        return
    shown = {k: v for k, v in shell_env(env, python).items() if k != SHELL_RECORD_ENV and not _SECRET.search(k)}
    record = {"job": job, "host": host, "cwd": cwd, "root": root, "pid": os.getpid(), "env": shown,
              "release": os.path.join(root, RELEASE_FILE)}
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as fh:
            json.dump(record, fh)
        os.replace(tmp, path)
    except OSError:
        pass  # no shell for this job, which runs all the same


def keep_seconds(requested: int, max_run: int, elapsed: float, margin: int = MARGIN_SECONDS) -> int:
    """How long to keep a failed script's container: what was asked, cut so that the job ends
    `margin` seconds before its max run (`elapsed`: seconds of it already gone)."""
    if not requested or requested <= 0:
        return 0
    if not max_run:
        return int(requested)
    return max(0, min(int(requested), int(max_run - elapsed - margin)))


def job_elapsed(layout, started: float, now=time.time) -> float:
    """Seconds of the job's max run gone: from when its config files were written (before the data
    download, on SageMaker), or from this runtime's start, whichever is earlier."""
    times = [started]
    for name in ("resourceconfig.json", "hyperparameters.json", "inputdataconfig.json"):
        try:
            times.append(os.path.getmtime(layout.config_file(name)))
        except OSError:
            pass
    return max(0.0, now() - min(times))


def _human(seconds: int) -> str:
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"


def connect_lines(settings: dict, environ, *, job: str, host: str, root: str) -> list:
    """What the kept container says about reaching it."""
    lines = [f"  connect: aws-train-remote shell {job} --host {host}"]
    local = environ.get("SM_STUDIO_LOCAL_MODE") == "true" and not environ.get(SANDBOX_ENV)
    if not local:
        region = settings.get("region") or environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
        lines.append(f"  or: aws ssm start-session --target sagemaker-training-job:{job}_{host}"
                     + (f" --region {region}" if region else ""))
        if settings.get("debug") != "yes":
            lines.append(f"  remote debugging is off for this job: aws-train-remote shell {job} --enable turns it "
                         "on (or launch with --sagemaker-debug)")
    lines.append(f"  end the wait sooner: touch {os.path.join(root, RELEASE_FILE)} (from the shell), or "
                 f"aws-train-remote stop {job} (the job then ends Stopped)")
    return lines


def hold_after_failure(settings: dict, environ, layout, *, job: str, host: str, started: float, log,
                       clock=time.monotonic, sleep=time.sleep, now=time.time) -> int:
    """--sagemaker-keep-on-failure: keep this container up after the script failed (the failure
    file is already written), until the time is up, the release file appears or the platform's
    SIGTERM comes (a stop). Returns the seconds held."""
    try:
        requested, max_run = int(settings.get("keep_on_failure") or 0), int(settings.get("max_run") or 0)
    except ValueError:
        return 0
    if not requested:
        return 0
    seconds = keep_seconds(requested, max_run, job_elapsed(layout, started, now))
    if seconds <= 0:
        log(f"--sagemaker-keep-on-failure: not kept; the job's max run ({max_run} s) leaves no time for it")
        return 0
    cut = f", cut to end {MARGIN_SECONDS} s before --sagemaker-max-run" if seconds < requested else ""
    log(f"the script failed: this container stays up {_human(seconds)} (--sagemaker-keep-on-failure{cut}) so "
        "you can look inside; then the job ends Failed with the script's error")
    for line in connect_lines(settings, environ, job=job, host=host, root=layout.root):
        log(line)
    release = os.path.join(layout.root, RELEASE_FILE)
    stopped = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stopped.append(signum))
    began = clock()
    try:
        while not stopped and not os.path.exists(release) and clock() - began < seconds:
            sleep(min(1.0, max(0.0, seconds - (clock() - began))))
    finally:
        signal.signal(signal.SIGTERM, previous)
    held = int(round(clock() - began))
    why = "a stop request" if stopped else "the release file" if os.path.exists(release) else "time is up"
    log(f"--sagemaker-keep-on-failure: ending the job after {_human(held)} ({why})")
    return held
