"""Issue 19.1, `aws-train-remote shell` end to end: in local mode and the sandbox a shell (here one
command, `shell JOB -- COMMAND`) in the job's own folder with its environment; a failed script kept
up by --sagemaker-keep-on-failure until the shell releases it, the job then ending with the script's
failure; the sandbox asked as SageMaker is (remote debugging off: refused, or turned on with
--enable through UpdateTrainingJob); and on the SageMaker path the exact `aws ssm start-session`,
run by the CLI, with an `aws` of the test's own on PATH."""
import io
import os
import subprocess
import sys
import tarfile
import time

import boto3
from conftest import REPO, run_python, write_script

from aws_train_remote import local_shells

ROLE = "arn:aws:iam::123456789012:role/DemoRole"
FAILING = """
import os
from aws_train_remote import training_main

def main(args):
    raise RuntimeError("boom in " + os.environ["SM_CURRENT_HOST"])

if __name__ == "__main__":
    training_main(main)
"""
PROBE = 'echo "cwd=$(pwd)"; echo "host=$SM_CURRENT_HOST"; echo "venv=$VIRTUAL_ENV"; echo "python=$(command -v python)"'


def cli(*args, cwd, env=None, timeout=60):
    return run_python(["-m", "aws_train_remote.cli.main", *args], cwd=cwd, env=env, timeout=timeout)


def wait_for_shell(job_or_none, timeout=90):
    """The job's record, once its runtime has started the script (the newest job's when None)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        root = os.path.join(os.environ["XDG_CACHE_HOME"], "aws-train-remote", "shells")
        for job in ([job_or_none] if job_or_none else (os.listdir(root) if os.path.isdir(root) else [])):
            found = local_shells.running(os.environ, job)
            if found:
                return found
        time.sleep(0.2)
    raise AssertionError("the job's runtime never wrote its shell record")


def probe(output: str) -> dict:
    return dict(line.split("=", 1) for line in output.splitlines() if "=" in line)


def test_local_mode_keeps_a_failed_job_up_for_a_shell_in_its_folder(tmp_path):
    write_script(tmp_path, FAILING)
    env = {**os.environ, "PYTHONPATH": REPO}
    job = subprocess.Popen([sys.executable, "train.py", "--sagemaker-run", "local", "--sagemaker-keep-on-failure", "2m"],
                           cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        record = wait_for_shell(None)["algo-1"]
        seen = cli("shell", "--", "sh", "-c", PROBE, cwd=tmp_path)  # no JOB: the newest local job of this folder
        assert seen.returncode == 0, seen.stderr
        values = probe(seen.stdout)
        assert values["host"] == "algo-1" and values["cwd"] == record["cwd"] == os.path.join(record["root"], "code")
        assert values["venv"] and values["python"] == os.path.join(values["venv"], "bin", "python")
        assert cli("shell", record["job"], "--host", "algo-2", "--", "true", cwd=tmp_path).returncode == 2
        # the shell ends the wait; the job then ends with the script's own failure
        assert cli("shell", record["job"], "--", "sh", "-c", "touch ../end-keep-on-failure; exit 3",
                   cwd=tmp_path).returncode == 3
        out, err = job.communicate(timeout=60)
    finally:
        job.kill()
    assert job.returncode == 1 and "RuntimeError: boom in algo-1" in err
    assert "connect: aws-train-remote shell " + record["job"] in out and "(the release file)" in out
    assert local_shells.running(os.environ, record["job"]) == {}  # the record went with the job
    ended = cli("shell", record["job"], "--", "true", cwd=tmp_path)
    assert ended.returncode == 2 and "the local job is not running" in ended.stderr


WAITING = """
import os, time
deadline = time.time() + 60
while not os.path.exists(os.environ["RELEASE"]) and time.time() < deadline:
    time.sleep(0.1)
"""


def create_job(name, tmp_path, **extra):
    body = io.BytesIO()
    with tarfile.open(fileobj=body, mode="w:gz") as tar:
        info = tarfile.TarInfo("train.py")
        info.size = len(WAITING.encode())
        tar.addfile(info, io.BytesIO(WAITING.encode()))
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="shell-bucket")
    s3.put_object(Bucket="shell-bucket", Key="src/sourcedir.tar.gz", Body=body.getvalue())
    boto3.client("sagemaker", region_name="us-east-1").create_training_job(
        TrainingJobName=name, RoleArn=ROLE,
        AlgorithmSpecification={"TrainingImage": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:x",
                                "TrainingInputMode": "File"},
        HyperParameters={"sagemaker_program": '"train.py"',
                         "sagemaker_submit_directory": '"s3://shell-bucket/src/sourcedir.tar.gz"'},
        Environment={"RELEASE": str(tmp_path / "release")},
        OutputDataConfig={"S3OutputPath": "s3://shell-bucket/output"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
        StoppingCondition={"MaxRuntimeInSeconds": 600}, **extra)


def test_the_sandbox_asks_as_sagemaker_and_opens_a_shell_in_the_job(tmp_path, sandbox):
    create_job("shell-demo", tmp_path)
    record = wait_for_shell("shell-demo")["algo-1"]
    off = cli("shell", "shell-demo", "--", "true", cwd=tmp_path)
    assert off.returncode == 2 and "remote debugging is off for this job; pass --enable" in off.stderr
    on = cli("shell", "shell-demo", "--enable", "--", "sh", "-c", PROBE, cwd=tmp_path)
    assert on.returncode == 0, on.stderr
    assert "remote debugging turned on for shell-demo (UpdateTrainingJob)" in on.stderr
    assert "stands for: aws ssm start-session --target sagemaker-training-job:shell-demo_algo-1" in on.stderr
    assert probe(on.stdout)["host"] == "algo-1" and probe(on.stdout)["cwd"] == record["cwd"]
    sm = boto3.client("sagemaker", region_name="us-east-1")
    assert sm.describe_training_job(TrainingJobName="shell-demo")["RemoteDebugConfig"] == {"EnableRemoteDebug": True}
    (tmp_path / "release").write_text("")
    sandbox.wait_for_jobs(timeout=60)
    done = cli("shell", "shell-demo", cwd=tmp_path)
    assert done.returncode == 2 and "the job is Completed; a shell needs a running job" in done.stderr


def test_on_sagemaker_the_cli_runs_the_exact_ssm_session(tmp_path, aws):
    """moto holds the job (jobs not run) and stands for AWS, reached as localhost: 127.0.0.1 would be the
    sandbox, whose shells are local ones. The test's own `aws` on PATH prints what it was given."""
    create_job("ssm-demo", tmp_path, RemoteDebugConfig={"EnableRemoteDebug": True})
    aws.set_job("ssm-demo", training_job_status="InProgress", secondary_status="Training")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "aws").write_text('#!/bin/sh\necho "fake aws: $*"\n')
    (bin_dir / "aws").chmod(0o755)
    path = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    env = {"PATH": path, "AWS_ENDPOINT_URL": aws.url.replace("127.0.0.1", "localhost")}
    no_plugin = cli("shell", "ssm-demo", cwd=tmp_path, env=env)
    assert no_plugin.returncode == 2 and "session-manager-plugin: the Session Manager plugin" in no_plugin.stderr
    (bin_dir / "session-manager-plugin").write_text("#!/bin/sh\n")
    (bin_dir / "session-manager-plugin").chmod(0o755)
    ran = cli("shell", "ssm-demo", "--host", "algo-1", cwd=tmp_path, env=env)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == ("fake aws: ssm start-session --target sagemaker-training-job:ssm-demo_algo-1 "
                                  "--region us-east-1")
    # a job with network isolation: refused in one line
    create_job("isolated", tmp_path, EnableNetworkIsolation=True, RemoteDebugConfig={"EnableRemoteDebug": True})
    aws.set_job("isolated", training_job_status="InProgress", secondary_status="Training")
    isolated = cli("shell", "isolated", cwd=tmp_path, env=env)
    assert isolated.returncode == 2 and "does not support remote debugging with network isolation" in isolated.stderr
