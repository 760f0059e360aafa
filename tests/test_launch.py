"""--sagemaker-run yes against a real moto server on 127.0.0.1: the request on the wire equals
the dry run, uploads are content-addressed, relaunches send nothing, faults are survived."""
import json
import os
import signal
import subprocess
import sys
import time

import boto3
import pytest
from conftest import REPO, launch_no_wait, run_python, write_script

ROLE = "arn:aws:iam::123456789012:role/TrainRole"
BUCKET = "sagemaker-us-east-1-123456789012"
SCRIPT = """
from aws_train_remote import training_main
def main(args):
    print("trained")
if __name__ == "__main__":
    training_main(main, inputs={"train": "data"}, additional_arguments=[
        {"dest": "--epochs", "type": int, "default": 1}, {"dest": "--fast", "action": "store_true"}])
"""
DATA_OPS = ("s3.PutObject", "s3.UploadPart")


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "proj"
    root.mkdir()
    write_script(root, SCRIPT)
    (root / "data").mkdir()
    for i in range(5):
        (root / "data" / f"part-{i}.csv").write_text(f"{i},{i * i}\n" * 50)
    return root


def launch(project, *args, check=True):
    return launch_no_wait(project, ROLE, *args, check=check)


def without_launch_token(request):
    return dict(request, Tags=[t for t in request["Tags"] if t["Key"] != "aws-train-remote:launch"])


def sent_bytes(calls, ops=DATA_OPS):
    return sum(c["bytes"] for c in calls if c["op"] in ops)


def s3():
    return boto3.client("s3", region_name="us-east-1")


def keys(prefix=""):
    pages = s3().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"] for p in pages for o in p.get("Contents", []))


def test_request_on_the_wire_equals_the_dry_run(project, aws):
    args = ["--sagemaker-job-name", "exact-job-1", "--epochs", "3", "--fast", "--sagemaker-spot",
            "--sagemaker-tag", "team=ml", "--sagemaker-env", "A=1"]
    dry = run_python(["train.py", "--sagemaker-run", "yes", "--sagemaker-role", ROLE, "--sagemaker-dry-run", *args],
                     cwd=project)
    assert dry.returncode == 0, dry.stderr
    assert aws.calls() == []
    launch(project, *args)
    created = [c["body"] for c in aws.calls() if c["op"] == "SageMaker.CreateTrainingJob"]
    planned = json.loads(dry.stdout)["request"]
    assert [without_launch_token(c) for c in created] == [without_launch_token(planned)]
    tokens = {t["Key"]: t["Value"] for t in created[0]["Tags"]}
    assert len(tokens["aws-train-remote:launch"]) == 32  # a fresh token per launch, dry run included
    desc = boto3.client("sagemaker", region_name="us-east-1").describe_training_job(TrainingJobName="exact-job-1")
    assert desc["HyperParameters"] == created[0]["HyperParameters"]


def test_uploads_are_content_addressed_and_relaunch_sends_nothing(project, aws):
    first = launch(project)
    assert "uploads: " in first.stdout
    writes = [c for c in aws.calls() if c["op"] in ("s3.PutObject", "s3.HeadObject", "s3.HeadBucket")]
    assert writes and all(c["owner"] == "123456789012" for c in writes)  # ExpectedBucketOwner on every call
    code = keys("aws-train-remote/code/")
    assert len(code) == 1 and code[0].endswith(".tar.gz")
    objects = keys("aws-train-remote/store/objects/")
    assert len(objects) == 2  # five small files in one pack, and the tree
    manifests = keys("aws-train-remote/store/manifests/")
    assert len(manifests) == 1
    driver = keys("aws-train-remote/driver/")
    assert len(driver) == 1 and driver[0].endswith("/atr.pyz")

    aws.clear_faults()
    second = launch(project)
    calls = aws.calls()
    assert sent_bytes(calls) == 0, calls
    assert "0 objects sent" in second.stdout
    ops = [c["op"] for c in calls]
    assert ops.count("SageMaker.CreateTrainingJob") == 1 and ops.count("query.GetCallerIdentity") == 1
    assert len(calls) <= 12, ops


def test_fastfile_one_changed_file_of_2000_uploads_only_that_file(project, aws):
    """FastFile keeps a prefix per version: the other files are copied in S3, not sent."""
    big = project / "big"
    big.mkdir()
    for i in range(2000):
        (big / f"f{i:04d}.txt").write_text(f"row {i}\n" * 8)
    launch(project, "--train", "big", "--train-mode", "FastFile")
    (big / "f0100.txt").write_text("changed contents\n")
    aws.clear_faults()
    result = launch(project, "--train", "big", "--train-mode", "FastFile")
    calls = aws.calls()
    puts = [c for c in calls if c["op"] in DATA_OPS]
    manifest_puts = [c for c in puts if c["bytes"] > 1000]  # the new manifest (2000 rows)
    assert len(puts) == 2 and len(manifest_puts) == 1
    assert sent_bytes(calls) - manifest_puts[0]["bytes"] == len("changed contents\n")
    assert sum(1 for c in calls if c["op"] == "s3.CopyObject") == 1999
    assert "1 object sent" in result.stdout and "1999 copied" in result.stdout


def test_kms_key_is_used_for_uploads(project, aws):
    launch(project, "--sagemaker-kms-key", "alias/train")
    key = keys("aws-train-remote/store/objects/")[0]
    head = s3().head_object(Bucket=BUCKET, Key=key)
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"].endswith("alias/train")


def test_throttling_and_5xx_are_survived(project, aws):
    aws.inject(r"^s3\.PutObject$", status=503, times=2)
    aws.inject(r"^SageMaker\.CreateTrainingJob$", status=400, code="ThrottlingException", times=2)
    aws.inject(r"^query\.GetCallerIdentity$", status=400, code="Throttling", times=1)
    aws.inject(r"^SageMaker\.DescribeTrainingJob$", status=500, code="InternalFailure", times=2)
    aws.inject(r"^Logs\.DescribeLogStreams$", status=400, code="ThrottlingException", times=2)
    result = run_python(["train.py", "--sagemaker-run", "yes", "--sagemaker-role", ROLE], cwd=project)
    assert result.returncode == 0, result.stderr
    assert "Completed: train-" in result.stdout
    injected = [c["op"] for c in aws.calls() if c["injected"]]
    assert len(injected) == 9


def test_persistent_create_failure_creates_no_job_and_says_so(project, aws):
    aws.inject(r"^SageMaker\.CreateTrainingJob$", status=400, code="ResourceLimitExceeded", times=5)
    result = launch(project, check=False)
    assert result.returncode == 1
    assert "CreateTrainingJob failed" in result.stderr and "Traceback" not in result.stderr
    assert boto3.client("sagemaker", region_name="us-east-1").list_training_jobs()["TrainingJobSummaries"] == []


def test_unknown_role_name_creates_nothing(project, aws):
    result = run_python(["train.py", "--sagemaker-run", "yes", "--sagemaker-role", "NoSuchRole"], cwd=project)
    assert result.returncode == 2
    assert "--sagemaker-role=NoSuchRole: no such IAM role" in result.stderr
    assert s3().list_buckets()["Buckets"] == []


def test_role_name_is_resolved_to_its_arn(project, aws):
    iam = boto3.client("iam", region_name="us-east-1")
    iam.create_role(RoleName="PathRole", Path="/service/", AssumeRolePolicyDocument="{}")
    launch(project, "--sagemaker-role", "PathRole")
    body = [c["body"] for c in aws.calls() if c["op"] == "SageMaker.CreateTrainingJob"][0]
    assert body["RoleArn"] == "arn:aws:iam::123456789012:role/service/PathRole"


def test_spot_checkpoint_location_is_stable_and_can_be_seeded(project, aws):
    (project / "seed").mkdir()
    (project / "seed" / "epoch-0001.json").write_text("{}")
    launch(project, "--sagemaker-spot", "--checkpoint-initial", "seed", "--sagemaker-base-job-name", "resnet")
    launch(project, "--sagemaker-spot", "--sagemaker-base-job-name", "resnet")
    bodies = [c["body"] for c in aws.calls() if c["op"] == "SageMaker.CreateTrainingJob"]
    uris = {b["CheckpointConfig"]["S3Uri"] for b in bodies}
    assert uris == {f"s3://{BUCKET}/aws-train-remote/checkpoints/resnet/"}
    assert keys("aws-train-remote/checkpoints/resnet/") == ["aws-train-remote/checkpoints/resnet/epoch-0001.json"]


def test_ctrl_c_during_upload_creates_no_job_and_no_manifest(project, aws):
    aws.inject(r"^s3\.PutObject$", delay=1.0, times=100)
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.Popen([sys.executable, "train.py", "--sagemaker-run", "yes", "--sagemaker-role", ROLE],
                            cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 20
    while time.time() < deadline and not any(c["op"] == "s3.PutObject" for c in aws.calls()):
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "no job was created" in err and "Traceback" not in err
    # issue 9.3: one message, not "...run again to resume" followed by "interrupted"
    assert err.count("interrupted") == 1 and "run again to resume" not in err, err
    aws.clear_faults()
    assert keys("aws-train-remote/store/manifests/") == []
    assert not any(c["op"] == "SageMaker.CreateTrainingJob" for c in aws.calls())
    # and the next launch completes the upload
    launch(project)
    assert len(keys("aws-train-remote/store/manifests/")) == 1


def test_failed_job_exit_status_and_reason(project, aws, monkeypatch):
    launch(project, "--sagemaker-job-name", "will-fail")
    aws.set_job("will-fail", training_job_status="Failed", failure_reason="AlgorithmError: boom")
    result = run_python(["-m", "aws_train_remote.cli.main", "attach", "will-fail"], cwd=project)
    assert result.returncode == 1
    assert "Failed: will-fail" in result.stdout and "failure reason: AlgorithmError: boom" in result.stdout


def test_download_unpacks_model(project, aws):
    import io
    import tarfile

    launch(project, "--sagemaker-job-name", "with-model")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = b'{"w": 1}'
        info = tarfile.TarInfo("model.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    s3().put_object(Bucket=BUCKET, Key="aws-train-remote/output/with-model/output/model.tar.gz", Body=buf.getvalue())
    result = run_python(["-m", "aws_train_remote.cli.main", "download", "with-model", "--dest", "dl"], cwd=project)
    assert result.returncode == 0, result.stderr
    assert (project / "dl" / "model.json").read_bytes() == b'{"w": 1}'


def test_cli_list_status_stop(project, aws):
    launch(project, "--sagemaker-job-name", "cli-job")
    aws.set_job("cli-job", training_job_status="InProgress", secondary_status="Training")
    listing = run_python(["-m", "aws_train_remote.cli.main", "list"], cwd=project)
    [row] = [line for line in listing.stdout.splitlines() if line.endswith("  cli-job")]
    assert row.split()[2:4] == ["InProgress", "-"] and "  1 x ml.m5.large  " in row  # issue 19.3: INSTANCES
    status = run_python(["-m", "aws_train_remote.cli.main", "status", "cli-job"], cwd=project)
    assert "secondary status: Training" in status.stdout
    stop = run_python(["-m", "aws_train_remote.cli.main", "stop", "cli-job"], cwd=project)
    assert stop.stdout.strip() == "stopping cli-job"
    assert aws.job("cli-job").training_job_status == "Stopping"


def test_name_collision_gets_a_fresh_name_unless_the_name_was_given(project, aws):
    aws.inject(r"^SageMaker\.CreateTrainingJob$", status=400, code="ResourceInUse", times=1)
    launch(project)
    names = [c["body"]["TrainingJobName"] for c in aws.calls() if c["op"] == "SageMaker.CreateTrainingJob"]
    assert len(names) == 2 and names[0] != names[1] and names[1].startswith("train-")
    bodies = [c["body"] for c in aws.calls() if c["op"] == "SageMaker.CreateTrainingJob"]
    assert bodies[1]["HyperParameters"]["sagemaker_job_name"] == json.dumps(names[1])
    aws.inject(r"^SageMaker\.CreateTrainingJob$", status=400, code="ResourceInUse", times=1)
    result = launch(project, "--sagemaker-job-name", "taken-name", check=False)
    assert result.returncode == 2 and "--sagemaker-job-name=taken-name: a training job of this name already exists" \
        in result.stderr


def test_unreachable_endpoint_is_one_line_not_a_traceback(project, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    result = launch(project, "--sagemaker-region", "us-east-1", check=False)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "GetCallerIdentity failed" in result.stderr or "Could not connect" in result.stderr
    listing = run_python(["-m", "aws_train_remote.cli.main", "list", "--region", "us-east-1"], cwd=project)
    assert listing.returncode == 1 and "Traceback" not in listing.stderr


def test_fresh_start_moves_earlier_checkpoints_aside(project, aws):
    (project / "seed").mkdir()
    (project / "seed" / "epoch-0001.json").write_text("{}")
    launch(project, "--sagemaker-spot", "--checkpoint-initial", "seed", "--sagemaker-base-job-name", "fresh")
    result = launch(project, "--sagemaker-spot", "--sagemaker-base-job-name", "fresh", "--sagemaker-fresh-start")
    assert "fresh start: 1 earlier checkpoint files moved to s3://" in result.stdout
    assert keys("aws-train-remote/checkpoints/fresh/") == []
    archived = keys("aws-train-remote/checkpoints/fresh-archived-")
    assert len(archived) == 1 and archived[0].endswith("/epoch-0001.json")
