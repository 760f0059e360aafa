"""Every bad input judged before AWS: one line naming the flag, the value and the fix; exit 2;
no traceback; and no AWS call at all (checked on a real moto server's request log)."""
import pytest
from conftest import run_python, write_script

SCRIPT = """
from aws_train_remote import training_main
def main(args):
    print("MAIN RAN")
if __name__ == "__main__":
    training_main(main, inputs={"train": "data"}, additional_arguments=[{"dest": "--epochs", "type": int, "default": 1},
                                                                        {"dest": "--note", "default": ""}])
"""
REMOTE = ["--sagemaker-run", "yes", "--sagemaker-role", "arn:aws:iam::123456789012:role/R"]

CASES = [
    # (argv, text the single error line must contain)
    (["--sagemaker-spot", "maybe"], "--sagemaker-spot: 'maybe': expected yes/no"),
    (["--sagemaker-run", "later"], "--sagemaker-run: 'later': expected no, yes or local"),
    (["--sagemaker-instance-count", "two"], "--sagemaker-instance-count: 'two': expected a whole number"),
    (["--sagemaker-max-run", "forever"], "--sagemaker-max-run: 'forever': expected seconds"),
    (["--sagemaker-distribution", "mpi"], "--sagemaker-distribution: 'mpi': expected one of auto, none, torchrun"),
    (["--train-mode", "Stream"], "--train-mode: 'Stream': expected one of File, FastFile, Pipe"),
    (["--sagemaker-output-s3", "http://x/y"], "--sagemaker-output-s3: 'http://x/y': expected s3://"),
    ([*REMOTE, "--train", "missing-folder"], "--train=missing-folder: no such local file or folder"),
    ([*REMOTE, "--train", "s3://Bad_Bucket/x"], "--train=s3://Bad_Bucket/x: malformed S3 URI"),
    ([*REMOTE, "--sagemaker-spot", "--sagemaker-max-run", "2h", "--sagemaker-max-wait", "1h"],
     "--sagemaker-max-wait=3600: must be at least --sagemaker-max-run (7200)"),
    ([*REMOTE, "--sagemaker-max-wait", "1h"], "--sagemaker-max-wait=3600: only applies to spot jobs"),
    ([*REMOTE, "--sagemaker-spot", "--sagemaker-checkpoint-s3", "none"], "--sagemaker-checkpoint-s3=none: a spot job"),
    ([*REMOTE, "--sagemaker-instance", "m5.large"], "--sagemaker-instance=m5.large: not a SageMaker instance type"),
    ([*REMOTE, "--sagemaker-instance", "ml.huge"], "--sagemaker-instance=ml.huge"),
    ([*REMOTE, "--sagemaker-env", "NOEQUALS"], "--sagemaker-env=['NOEQUALS']: expected KEY=VALUE"),
    ([*REMOTE, "--sagemaker-env", "1BAD=x"], "--sagemaker-env=1BAD: not a valid variable name"),
    ([*REMOTE, "--sagemaker-env", "AWS_SECRET_ACCESS_KEY=abc"], "--sagemaker-env=AWS_SECRET_ACCESS_KEY: AWS credentials"),
    ([*REMOTE, "--sagemaker-tag", "aws:owner=me"], "--sagemaker-tag=aws:owner"),
    ([*REMOTE, "--sagemaker-metric", "loss=([0-9"], "--sagemaker-metric=loss=([0-9: bad regex"),
    ([*REMOTE, "--sagemaker-job-name", "x" * 64], "longer than 63 characters"),
    ([*REMOTE, "--sagemaker-job-name", "my_job"], "--sagemaker-job-name=my_job: only letters, digits and hyphens"),
    ([*REMOTE, "--sagemaker-base-job-name", "a--b_"], "--sagemaker-base-job-name=a--b_"),
    (["--sagemaker-run", "yes"], "--sagemaker-role: no IAM role for the job; pass --sagemaker-role NAME_OR_ARN"),
    ([*REMOTE[:2], "--sagemaker-role", "arn:aws:iam::1:role/x"], "--sagemaker-role=arn:aws:iam::1:role/x: neither"),
    ([*REMOTE, "--sagemaker-region", "mars-1"], "--sagemaker-region=mars-1: not an AWS region name"),
    ([*REMOTE, "--sagemaker-subnets", "subnet-0123abcd"], "a VPC needs both subnets and security groups"),
    ([*REMOTE, "--sagemaker-subnets", "net-1", "--sagemaker-security-groups", "sg-0123abcd"],
     "--sagemaker-subnets=net-1: not a subnet id"),
    ([*REMOTE, "--sagemaker-volume-size", "0"], "--sagemaker-volume-size=0: out of range"),
    ([*REMOTE, "--sagemaker-keep-alive", "2h"], "--sagemaker-keep-alive=7200: out of range"),
    ([*REMOTE, "--sagemaker-max-retries", "31"], "--sagemaker-max-retries=31: out of range"),
    ([*REMOTE, "--sagemaker-framework-version", "0.4"], "--sagemaker-framework-version=0.4: no default image"),
    ([*REMOTE, "--sagemaker-requirements", "nope.txt"], "--sagemaker-requirements=nope.txt: no such file"),
    ([*REMOTE, "--sagemaker-source", "nowhere"], "--sagemaker-source=nowhere: no such folder"),
    ([*REMOTE, "--checkpoint-initial", "no-such-dir"], "--checkpoint-initial=no-such-dir: no such local file"),
    ([*REMOTE, "--sagemaker-config", "missing.yaml"], "--sagemaker-config=missing.yaml: no such file"),
    ([*REMOTE, "--note", "x" * 2600], "--note=xxxxxxxx"),
    ([*REMOTE, "--sagemaker-simulate-interruption", "5"], "--sagemaker-simulate-interruption=5: only applies to"),
]


@pytest.fixture
def project(tmp_path):
    write_script(tmp_path, SCRIPT)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "f.txt").write_text("x")
    return tmp_path


@pytest.mark.parametrize("argv,expected", CASES, ids=[" ".join(c[0])[-60:] for c in CASES])
def test_bad_invocation(project, aws, argv, expected):
    result = run_python(["train.py", *argv, "--sagemaker-region", "us-east-1"]
                        if "--sagemaker-region" not in argv else ["train.py", *argv], cwd=project,
                        env={"AWS_REGION": "us-east-1"})
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1, result.stderr
    assert expected in lines[0], lines[0]
    assert "Traceback" not in result.stderr and "MAIN RAN" not in result.stdout
    assert aws.calls() == [], "a bad input must not reach AWS"


def test_bad_input_in_config_file(project, aws):
    (project / "aws-train-remote.yaml").write_text("instance_cout: 2\n")
    result = run_python(["train.py"], cwd=project)
    assert result.returncode == 2
    assert "aws-train-remote.yaml: instance_cout: unknown key; did you mean 'instance_count'?" in result.stderr


def test_bad_environment_value(project):
    result = run_python(["train.py"], cwd=project, env={"AWS_TRAIN_REMOTE_SPOT": "sometimes"})
    assert result.returncode == 2
    assert "AWS_TRAIN_REMOTE_SPOT=sometimes: expected yes/no" in result.stderr


def test_more_than_100_hyperparameters(tmp_path, aws):
    flags = ", ".join(f'{{"dest": "--p{i}", "default": {i}}}' for i in range(100))
    write_script(tmp_path, SCRIPT.replace('{"dest": "--note", "default": ""}', flags))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "f.txt").write_text("x")
    result = run_python(["train.py", *REMOTE, "--sagemaker-dry-run", "--sagemaker-region", "us-east-1"], cwd=tmp_path)
    assert result.returncode == 2
    assert "hyperparameters=" in result.stderr and "more than SageMaker's 100" in result.stderr
    assert aws.calls() == []


def test_more_than_20_channels(tmp_path, aws):
    inputs = ", ".join(f'"in{i}": "s3://bucket/in{i}/"' for i in range(19))
    write_script(tmp_path, SCRIPT.replace('inputs={"train": "data"}', "inputs={" + inputs + "}"))
    result = run_python(["train.py", *REMOTE, "--sagemaker-region", "us-east-1"], cwd=tmp_path)
    assert result.returncode == 2
    assert "inputs=19: too many input channels; SageMaker allows 20 channels, 18 of them for inputs" in result.stderr
    assert aws.calls() == []
