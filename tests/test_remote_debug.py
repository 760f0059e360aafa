"""Issue 19.1, a shell into the job: --sagemaker-debug (RemoteDebugConfig) and
--sagemaker-keep-on-failure in the request and the spec, their refusals, the runtime's wait, the
SSM agent's own log streams, the execution role's ssmmessages actions, and the SageMaker path of
`aws-train-remote shell` (its checks and its exact `aws ssm start-session`) against botocore's
Stubber. The local-mode and sandbox shells run end to end in test_shell.py."""
import argparse
import datetime
import json
import os
import signal

import boto3
import pytest
from botocore.stub import Stubber
from conftest import run_python, write_script
from test_dry_run import validate_create_training_job

from aws_train_remote.aws.logs import host_of
from aws_train_remote.aws.roles import execution_policy
from aws_train_remote.contract import Layout
from aws_train_remote.errors import UsageError
from aws_train_remote.executors import shell
from aws_train_remote.runtime import debugging

ROLE = "arn:aws:iam::111122223333:role/TrainRole"
SCRIPT = """
from aws_train_remote import training_main
def main(args):
    pass
if __name__ == "__main__":
    training_main(main)
"""
DRY = ["train.py", "--sagemaker-run", "yes", "--sagemaker-dry-run", "--sagemaker-role", ROLE,
       "--sagemaker-region", "us-east-1"]


def dry_run(tmp_path, *args):
    write_script(tmp_path, SCRIPT)
    return run_python([*DRY, *args], cwd=tmp_path)


def test_debug_and_keep_on_failure_are_in_the_request_and_valid_for_botocore(tmp_path):
    result = dry_run(tmp_path, "--sagemaker-debug", "--sagemaker-keep-on-failure", "30m", "--sagemaker-max-run", "2h")
    assert result.returncode == 0, result.stderr
    request = json.loads(result.stdout)["request"]
    validate_create_training_job(request)
    assert request["RemoteDebugConfig"] == {"EnableRemoteDebug": True}
    settings = json.loads(request["HyperParameters"]["sagemaker_atr_settings"])
    assert settings["keep_on_failure"] == "1800" and settings["max_run"] == "7200" and settings["debug"] == "yes"
    plain = dry_run(tmp_path)
    assert "RemoteDebugConfig" not in json.loads(plain.stdout)["request"]


def test_the_config_file_and_environment_set_them_too(tmp_path):
    write_script(tmp_path, SCRIPT)
    (tmp_path / "aws-train-remote.yaml").write_text("debug: true\n")
    result = run_python(DRY, cwd=tmp_path, env={"AWS_TRAIN_REMOTE_KEEP_ON_FAILURE": "10m"})
    request = json.loads(result.stdout)["request"]
    assert request["RemoteDebugConfig"] == {"EnableRemoteDebug": True}
    assert json.loads(request["HyperParameters"]["sagemaker_atr_settings"])["keep_on_failure"] == "600"


@pytest.mark.parametrize("args, message", [
    (["--sagemaker-debug", "--sagemaker-network-isolation"],
     "--sagemaker-debug=yes: SageMaker does not support remote debugging with network isolation; drop"),
    (["--sagemaker-keep-on-failure", "10m", "--sagemaker-network-isolation"],
     "--sagemaker-keep-on-failure=600: SageMaker does not support remote debugging with network isolation, so "
     "nothing could look inside"),
    (["--sagemaker-debug", "--sagemaker-tune", "tune.yaml"],
     "--sagemaker-debug=yes: a tuning job's trials take no RemoteDebugConfig; drop it; turn it on for one running "
     "trial with: aws-train-remote shell TRIAL --enable"),
    (["--sagemaker-keep-on-failure", "soon"], "--sagemaker-keep-on-failure"),
])
def test_refusals_are_one_line_before_anything_is_created(tmp_path, args, message):
    result = dry_run(tmp_path, *args)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not result.stdout


def test_the_wait_never_runs_past_max_run():
    assert debugging.keep_seconds(1800, 86400, elapsed=100) == 1800
    assert debugging.keep_seconds(1800, 3600, elapsed=3000) == 3600 - 3000 - debugging.MARGIN_SECONDS
    assert debugging.keep_seconds(1800, 3600, elapsed=3590) == 0
    assert debugging.keep_seconds(0, 3600, elapsed=0) == 0
    assert debugging.keep_seconds(30, 0, elapsed=0) == 30  # no max run known: as asked


class FakeTime:
    def __init__(self):
        self.now = 0.0

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def hold(tmp_path, settings, environ=None, release_after=None):
    layout = Layout(str(tmp_path / "opt" / "ml"))
    os.makedirs(layout.root, exist_ok=True)
    lines, fake = [], FakeTime()

    def sleep(seconds):
        fake.sleep(seconds)
        if release_after is not None and fake.now >= release_after:
            open(os.path.join(layout.root, debugging.RELEASE_FILE), "w").close()

    held = debugging.hold_after_failure(settings, environ or {}, layout, job="demo-1", host="algo-2",
                                        started=0.0, log=lines.append, clock=fake.clock, sleep=sleep,
                                        now=lambda: 100.0)
    return held, "\n".join(lines)


def test_a_failed_script_keeps_the_container_and_says_how_to_connect(tmp_path):
    held, text = hold(tmp_path, {"keep_on_failure": "30", "max_run": "86400", "region": "eu-west-1"})
    assert held == 30 and "stays up 30 s" in text
    assert "connect: aws-train-remote shell demo-1 --host algo-2" in text
    assert "aws ssm start-session --target sagemaker-training-job:demo-1_algo-2 --region eu-west-1" in text
    assert "remote debugging is off for this job: aws-train-remote shell demo-1 --enable" in text
    assert "after 30 s (time is up)" in text
    # the release file ends it sooner; local mode prints no SSM command
    held, text = hold(tmp_path / "b", {"keep_on_failure": "600", "max_run": "86400", "debug": "yes"},
                      {"SM_STUDIO_LOCAL_MODE": "true"}, release_after=5)
    assert held == 5 and "(the release file)" in text and "ssm" not in text and "remote debugging is off" not in text
    # max run: cut, or not kept at all
    held, text = hold(tmp_path / "c", {"keep_on_failure": "1800", "max_run": "400"})
    assert held == 400 - 100 - debugging.MARGIN_SECONDS and "cut to end 60 s before --sagemaker-max-run" in text
    held, text = hold(tmp_path / "d", {"keep_on_failure": "1800", "max_run": "150"})
    assert held == 0 and "not kept; the job's max run (150 s) leaves no time" in text
    assert hold(tmp_path / "e", {"max_run": "150"}) == (0, "")


def test_a_stop_ends_the_wait(tmp_path):
    layout = Layout(str(tmp_path))
    lines = []

    def sleep(seconds):
        os.kill(os.getpid(), signal.SIGTERM)  # the platform's stop, while the container waits

    before = signal.getsignal(signal.SIGTERM)
    held = debugging.hold_after_failure({"keep_on_failure": "600"}, {}, layout, job="j", host="algo-1",
                                        started=0.0, log=lines.append, clock=lambda: 0.0, sleep=sleep)
    assert held == 0 and "(a stop request)" in lines[-1] and signal.getsignal(signal.SIGTERM) is before


def test_ssm_agent_streams_are_labelled_not_taken_for_a_host():
    job = "demo-20261123-101500-a1b2c3"
    assert host_of(f"{job}/algo-2-1680535238", job) == "algo-2"
    assert host_of(f"{job}/algo-2-1680535238/ssm", job) == "algo-2/ssm"
    assert host_of(f"{job}/algo-12-1680535238/ssm", job) == "algo-12/ssm"


def test_role_create_grants_the_ssm_agent_its_channels(aws):
    from aws_train_remote.aws.roles import create_execution_role

    statements = {s["Sid"]: s for s in execution_policy("b")["Statement"]}
    assert sorted(statements["RemoteDebugging"]["Action"]) == [
        "ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel", "ssmmessages:OpenControlChannel",
        "ssmmessages:OpenDataChannel"]
    iam = boto3.client("iam", region_name="us-east-1")
    create_execution_role(iam, "debug-role", "my-bucket")
    policy = iam.get_role_policy(RoleName="debug-role", PolicyName="aws-train-remote-training")["PolicyDocument"]
    assert any("ssmmessages:OpenDataChannel" in s["Action"] for s in policy["Statement"])


@pytest.mark.parametrize("argv, expected", [
    (["shell", "J", "--", "env"], (["shell", "J"], ["env"])),
    (["shell", "--", "ls", "--all"], (["shell"], ["ls", "--all"])),
    (["shell", "J", "--host", "algo-2"], (["shell", "J", "--host", "algo-2"], None)),
    (["sandbox", "--", "aws-train-remote", "shell", "--", "env"], (["sandbox", "--", "aws-train-remote", "shell",
                                                                  "--", "env"], None)),
])
def test_the_command_after_double_dash_is_never_taken_for_job(argv, expected):
    assert shell.split_argv(argv) == expected


# -- the SageMaker path, against botocore's Stubber (it refuses a request the model does not allow)

class Session:
    def __init__(self, client):
        self._client = client

    def client(self, name):
        return self._client


def description(status="InProgress", secondary="Training", debug=True, count=2, isolation=False):
    now = datetime.datetime(2026, 11, 23, tzinfo=datetime.timezone.utc)
    desc = {"TrainingJobName": "J", "TrainingJobArn": "arn:aws:sagemaker:us-east-1:111122223333:training-job/j",
            "ModelArtifacts": {"S3ModelArtifacts": "s3://b/m.tar.gz"}, "TrainingJobStatus": status,
            "SecondaryStatus": secondary, "AlgorithmSpecification": {"TrainingInputMode": "File"},
            "ResourceConfig": {"InstanceType": "ml.g5.xlarge", "InstanceCount": count, "VolumeSizeInGB": 30},
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600}, "CreationTime": now,
            "EnableNetworkIsolation": isolation}
    if debug is not None:
        desc["RemoteDebugConfig"] = {"EnableRemoteDebug": debug}
    return desc


def run_shell(responses, *, host=None, enable=False, cmd=(), ask=None, which=lambda name: f"/usr/bin/{name}"):
    import io

    sm = boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    ran, err = [], io.StringIO()
    with Stubber(sm) as stub:
        for method, reply, params in responses:
            stub.add_response(method, reply, params)
        args = argparse.Namespace(job="J", host=host, enable=enable, cmd=list(cmd), profile=None, region=None)
        code = shell.cmd_shell(Session(sm), "J", "us-east-1", args, environ={}, which=which,
                               runner=lambda argv, **kw: ran.append(argv) or 0, ask=ask, sleep=lambda s: None, err=err)
        stub.assert_no_pending_responses()
    return code, ran, err.getvalue()


DESCRIBE = ("describe_training_job",)


def test_a_running_job_with_debugging_gets_the_exact_ssm_session():
    code, ran, err = run_shell([(*DESCRIBE, description(), {"TrainingJobName": "J"})], host="algo-2")
    assert code == 0 and ran == [["aws", "ssm", "start-session", "--target", "sagemaker-training-job:J_algo-2",
                                  "--region", "us-east-1"]]
    assert "aws ssm start-session --target sagemaker-training-job:J_algo-2 --region us-east-1" in err
    code, ran, _ = run_shell([(*DESCRIBE, description(), {"TrainingJobName": "J"})], cmd=["nvidia-smi", "-L"])
    assert ran[0][-4:] == ["--document-name", "AWS-StartInteractiveCommand", "--parameters",
                           json.dumps({"command": ["nvidia-smi -L"]})]


def test_debugging_off_is_turned_on_only_when_asked():
    with pytest.raises(UsageError, match="remote debugging is off for this job; pass --enable"):
        run_shell([(*DESCRIBE, description(debug=None), {"TrainingJobName": "J"})])
    turned_on = [(*DESCRIBE, description(debug=False, secondary="Downloading"), {"TrainingJobName": "J"}),
                 ("update_training_job", {"TrainingJobArn": "arn:aws:sagemaker:us-east-1:1:training-job/j"},
                  {"TrainingJobName": "J", "RemoteDebugConfig": {"EnableRemoteDebug": True}}),
                 (*DESCRIBE, description(debug=True), {"TrainingJobName": "J"})]
    code, ran, err = run_shell(turned_on, enable=True)
    assert code == 0 and len(ran) == 1 and "remote debugging turned on for J (UpdateTrainingJob)" in err
    questions = []
    code, ran, _ = run_shell(turned_on, ask=lambda q: questions.append(q) or "y")
    assert code == 0 and "turn it on now (UpdateTrainingJob)? [y/N]" in questions[0]
    with pytest.raises(UsageError, match="remote debugging is off"):
        run_shell([(*DESCRIBE, description(debug=False), {"TrainingJobName": "J"})], ask=lambda q: "n")


@pytest.mark.parametrize("desc, host, message", [
    (description(status="Failed", secondary="Failed"), None, "the job is Failed; a shell needs a running job"),
    (description(secondary="Starting"), None, "the job is Starting; SageMaker accepts a shell once it is Training"),
    (description(isolation=True), None, "SageMaker does not support remote debugging with network isolation"),
    (description(count=2), "algo-3", "--host=algo-3: the job has 2 instances; use one of algo-1..algo-2"),
])
def test_a_job_that_cannot_take_a_shell_is_one_line(desc, host, message):
    with pytest.raises(UsageError, match=message.replace("?", r"\?").replace("(", r"\(").replace(")", r"\)")):
        run_shell([(*DESCRIBE, desc, {"TrainingJobName": "J"})], host=host)


def test_the_cli_and_its_plugin_are_checked_before_any_aws_call():
    with pytest.raises(UsageError, match="^aws: the AWS CLI is not installed"):
        run_shell([], which=lambda name: None)
    with pytest.raises(UsageError, match="^session-manager-plugin: the Session Manager plugin"):
        run_shell([], which=lambda name: "/usr/bin/aws" if name == "aws" else None)
    with pytest.raises(UsageError, match="--host=algo-0: not a host name"):
        run_shell([], host="algo-0")


def test_shell_help_has_examples(tmp_path):
    result = run_python(["-m", "aws_train_remote.cli.main", "shell", "--help"], cwd=tmp_path)
    assert result.returncode == 0 and "examples:\n  aws-train-remote shell" in result.stdout
    assert "--enable" in result.stdout and "-- COMMAND" in result.stdout
