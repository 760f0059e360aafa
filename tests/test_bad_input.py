"""Every bad input: one line naming the flag, the value and the fix; exit 2; no traceback; and
nothing created -- no AWS call at all for what can be judged offline (checked on a real moto
server's request log), nothing changed in AWS for what needs a look-up (checked on the server's
state), and nothing written to the local cache (issue 7, items 9 and 10a)."""
import os

import boto3
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
    ([*REMOTE, "--sagemaker-simulate-interruption", "5"], "--sagemaker-simulate-interruption=5: only applies to"),
]



def _mkfifo(p):
    (p / "data").mkdir(exist_ok=True)
    os.mkfifo(p / "data" / "pipe")


def _bytes_name(folder):
    def make(p):
        target = p / folder
        target.mkdir(exist_ok=True)
        with open(os.path.join(os.fsencode(str(target)), b"caf\xe9.txt"), "wb") as fh:
            fh.write(b"x")
    return make


def _long_path(p):
    deep = p / "deep"
    path = deep
    for i in range(6):
        path = path / (f"{i}" * 200)
    path.mkdir(parents=True)
    (path / "f.txt").write_text("x")


# (setup(project), argv, text the single error line must contain); judged offline: no AWS call at all
OFFLINE_CASES = [
    (None, [*REMOTE, "--sagemaker-nproc-per-node", "0"], "--sagemaker-nproc-per-node=0: out of range"),
    (None, [*REMOTE, "--sagemaker-nproc-per-node", "-2"], "--sagemaker-nproc-per-node=-2: out of range"),
    (None, [*REMOTE, "--sagemaker-image", "pytorch"], "--sagemaker-image=pytorch: not a container image URI"),
    (None, [*REMOTE, "--sagemaker-image", "https://x.io/img"], "--sagemaker-image=https://x.io/img: not a container"),
    (None, [*REMOTE, "--sagemaker-region", "US-EAST-1"], "--sagemaker-region=US-EAST-1: not an AWS region name"),
    (None, [*REMOTE, "--train", "."], "is the source folder or holds it"),
    (None, [*REMOTE, "--train", ".."], "is the source folder or holds it"),
    (lambda p: (p / "empty").mkdir(), [*REMOTE, "--train", "empty"], "empty folder (SageMaker refuses an empty"),
    (lambda p: (p / "bad.yaml").write_bytes(b"instance: \xff\xfe\n"), [*REMOTE, "--sagemaker-config", "bad.yaml"],
     "bad.yaml: not UTF-8 text"),
    (_bytes_name("data"), REMOTE, "file name is not valid UTF-8"),
    (_bytes_name("src"), REMOTE, "file name is not valid UTF-8"),
    (None, [*REMOTE, "--train", "/proc/self/mem"], "--train=/proc/self/mem: cannot be read"),
    (lambda p: (p / ".sagemakerignore").mkdir(), REMOTE, ".sagemakerignore: cannot be read as an ignore file"),
    (_long_path, [*REMOTE, "--train", "deep", "--train-mode", "FastFile"], "over S3's 1024"),  # a prefix per file
    (None, [*REMOTE, "--sagemaker-prefix", "p" * 1000], "over S3's 1024"),
    (lambda p: os.symlink(p / "nowhere", p / "data" / "dangling"), REMOTE, "dangling: broken symlink"),
    (_mkfifo, REMOTE, "pipe: not a regular file"),
    (None, [*REMOTE, "--sagemaker-env", "LONG=" + "v" * 600], "--sagemaker-env=LONG: value longer than 512"),
    (None, [*REMOTE, "--sagemaker-instance-count", "0"], "--sagemaker-instance-count=0: out of range"),
    (None, [*REMOTE, "--sagemaker-instance-count", "101"], "--sagemaker-instance-count=101: out of range"),
    (None, [*REMOTE, "--sagemaker-max-run", "0"], "--sagemaker-max-run=0: out of range"),
    (None, [*REMOTE, "--sagemaker-checkpoint-container", "ckpt"], "must be an absolute path in the container"),
    (None, [*REMOTE, "--sagemaker-neuron-cache", "http://x"], "--sagemaker-neuron-cache=http://x: expected"),
    (None, [*REMOTE, "--sagemaker-security-groups", "group1", "--sagemaker-subnets", "subnet-0123abcd"],
     "--sagemaker-security-groups=group1: not a security group id"),
    (None, [*REMOTE, "--sagemaker-bucket", "Bad_Bucket"], "--sagemaker-bucket=Bad_Bucket: not a valid bucket name"),
    # SageMaker's tag pattern ([\p{L}\p{Z}\p{N}_.:/=+\-@]*): refused by CreateTrainingJob after the uploads (moto lets it by)
    (None, [*REMOTE, "--sagemaker-tag", "note=a, b!"], "--sagemaker-tag=note=a, b!: the tag value holds ',' '!'"),
    (None, [*REMOTE, "--sagemaker-tag", "team#1=x"], "--sagemaker-tag=team#1: the tag key holds '#'"),
    # issue 18.7: what pip would fail on in the job, after everything was created (plan/bundle_needs.py)
    (lambda p: (p / "requirements.txt").write_text("-e ../outside\n"), REMOTE,
     "--sagemaker-requirements=-e ../outside: line 1 of requirements.txt names ../outside: read from the source "
     "folder (where pip runs), it lies outside the source folder"),
    (lambda p: [(p / "requirements.txt").write_text("-r base.env\n"), (p / "base.env").write_text("x==1\n")], REMOTE,
     "--sagemaker-requirements=-r base.env: line 1 of requirements.txt names it, but the code bundle leaves base.env "
     "out (secret"),
    # issue 19.8: a heterogeneous cluster's image comes from its groups, not --sagemaker-instance (was a KeyError)
    (None, [*REMOTE, "--sagemaker-instance-group", "a=ml.q9.large:1"],
     "--sagemaker-instance-group=a=ml.q9.large:1: no default image for the 'q9' instance family"),
    (None, [*REMOTE, "--sagemaker-instance-group", "a=ml.m5.large:60", "--sagemaker-instance-group", "b=ml.c5.xlarge:41"],
     "--sagemaker-instance-group=101: more instances than a job may have in all"),
]


def _taken(aws):
    boto3.client("sagemaker", region_name="us-east-1").create_training_job(
        TrainingJobName="taken-name", RoleArn="arn:aws:iam::123456789012:role/R",
        AlgorithmSpecification={"TrainingImage": "img", "TrainingInputMode": "File"},
        OutputDataConfig={"S3OutputPath": "s3://b/out"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
        StoppingCondition={"MaxRuntimeInSeconds": 600})


# judged with a read-only look-up in AWS: nothing may be created there
AWS_CASES = [
    (_taken, [*REMOTE, "--sagemaker-job-name", "taken-name"], "--sagemaker-job-name=taken-name: a training job of "
     "this name already exists"),
    (lambda aws: aws.add_foreign_bucket("their-bucket"), [*REMOTE, "--sagemaker-output-s3", "s3://their-bucket/out"],
     "--sagemaker-output-s3=their-bucket: exists but is not owned by this account"),
    (lambda aws: aws.add_foreign_bucket("their-bucket"),
     [*REMOTE, "--sagemaker-checkpoint-s3", "s3://their-bucket/ckpt/"],
     "--sagemaker-checkpoint-s3=their-bucket: exists but is not owned by this account"),
    (lambda aws: aws.add_foreign_bucket("their-bucket"), [*REMOTE, "--sagemaker-bucket", "their-bucket"],
     "--sagemaker-bucket=their-bucket: exists but is not owned by this account"),
    (None, [*REMOTE, "--sagemaker-bucket", "no-such-bucket-atr"], "--sagemaker-bucket=no-such-bucket-atr: no such bucket"),
    (None, [*REMOTE, "--sagemaker-output-s3", "s3://no-such-bucket-atr/out"],
     "--sagemaker-output-s3=no-such-bucket-atr: no such bucket"),
    (None, [*REMOTE[:2], "--sagemaker-role", "NoSuchRole"], "--sagemaker-role=NoSuchRole: no such IAM role"),
]


@pytest.fixture
def project(tmp_path):
    write_script(tmp_path, SCRIPT)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "f.txt").write_text("x")
    return tmp_path


def aws_state():
    """Everything a launch could create: buckets with their keys, jobs, roles."""
    s3 = boto3.client("s3", region_name="us-east-1")
    buckets = {}
    for b in s3.list_buckets()["Buckets"]:
        listed = s3.list_objects_v2(Bucket=b["Name"]).get("Contents", [])
        buckets[b["Name"]] = sorted(o["Key"] for o in listed)
    jobs = boto3.client("sagemaker", region_name="us-east-1").list_training_jobs()["TrainingJobSummaries"]
    return buckets, sorted(j["TrainingJobName"] for j in jobs)


def check_bad(result, expected, isolated_env):
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1, result.stderr
    assert expected in lines[0], lines[0]
    assert "Traceback" not in result.stderr and "MAIN RAN" not in result.stdout
    assert not (isolated_env / ".cache" / "aws-train-remote").exists(), "a bad input must write nothing locally"


def invoke(project, argv):
    return run_python(["train.py", *argv, "--sagemaker-region", "us-east-1"]
                      if "--sagemaker-region" not in argv else ["train.py", *argv], cwd=project,
                      env={"AWS_REGION": "us-east-1"})


@pytest.mark.parametrize("argv,expected", CASES, ids=[" ".join(c[0])[-60:] for c in CASES])
def test_bad_invocation(project, aws, isolated_env, argv, expected):
    check_bad(invoke(project, argv), expected, isolated_env)
    assert aws.calls() == [], "a bad input must not reach AWS"


@pytest.mark.parametrize("setup,argv,expected", OFFLINE_CASES, ids=[c[2][:50] for c in OFFLINE_CASES])
def test_bad_input_found_before_any_aws_call(project, aws, isolated_env, setup, argv, expected):
    if setup:
        (project / "src").mkdir(exist_ok=True)
        setup(project)
    check_bad(invoke(project, argv), expected, isolated_env)
    assert aws.calls() == [], "a bad input must not reach AWS"


@pytest.mark.parametrize("setup,argv,expected", AWS_CASES, ids=[c[2][:50] for c in AWS_CASES])
def test_bad_input_found_by_a_read_only_look_up(project, aws, isolated_env, setup, argv, expected):
    if setup:
        setup(aws)
    before = aws_state()
    aws.clear_faults()  # and the log of calls: only the launch's own calls count
    check_bad(invoke(project, argv), expected, isolated_env)
    assert aws_state() == before, "nothing may be created in AWS"
    writes = [c["op"] for c in aws.calls() if c["op"] in ("s3.CreateBucket", "s3.PutObject", "s3.UploadPart",
                                                          "s3.CopyObject", "SageMaker.CreateTrainingJob")]
    assert writes == []


def test_the_table_covers_at_least_60_bad_invocations():
    total = len(CASES) + len(OFFLINE_CASES) + len(AWS_CASES) + 5  # + the five tests below
    print(f"bad invocations in the table: {total}")
    assert total >= 60


def test_bad_input_in_config_file(project, aws, isolated_env):
    (project / "aws-train-remote.yaml").write_text("instance_cout: 2\n")
    result = run_python(["train.py"], cwd=project)
    check_bad(result, "instance_cout", isolated_env)
    assert "aws-train-remote.yaml: instance_cout: unknown key; did you mean 'instance_count'?" in result.stderr


def test_bad_environment_value(project, isolated_env):
    result = run_python(["train.py"], cwd=project, env={"AWS_TRAIN_REMOTE_SPOT": "sometimes"})
    check_bad(result, "AWS_TRAIN_REMOTE_SPOT", isolated_env)
    assert "AWS_TRAIN_REMOTE_SPOT=sometimes: expected yes/no" in result.stderr


def test_more_than_20_channels(tmp_path, aws):
    inputs = ", ".join(f'"in{i}": "s3://bucket/in{i}/"' for i in range(19))
    write_script(tmp_path, SCRIPT.replace('inputs={"train": "data"}', "inputs={" + inputs + "}"))
    result = run_python(["train.py", *REMOTE, "--sagemaker-region", "us-east-1"], cwd=tmp_path)
    assert result.returncode == 2
    assert "inputs=19: too many input channels; SageMaker allows 20 channels, 18 of them for inputs" in result.stderr
    assert aws.calls() == []


def test_unknown_instance_family_names_the_image_flag(project, aws, isolated_env):
    result = invoke(project, [*REMOTE, "--sagemaker-instance", "ml.q9.large"])
    check_bad(result, "--sagemaker-instance=ml.q9.large: no default image for the 'q9' instance family; pass "
                      "--sagemaker-image", isolated_env)
    assert aws.calls() == []
