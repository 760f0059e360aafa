"""Issue 10.2, incremental training: --sagemaker-model-from JOB|s3://...|local adds a 'model'
channel, and args.model_init is the earlier model unpacked, in a local run, in local mode and
through the sandbox; the dry run shows the exact request."""
import io
import json
import os
import tarfile

import boto3
from conftest import REPO, run_python
from test_dry_run import validate_create_training_job

ROLE = "arn:aws:iam::123456789012:role/DemoRole"
DEMO = os.path.join(REPO, "demo", "train.py")
BUCKET = "sagemaker-us-east-1-123456789012"


def model_archive(path, weights):
    body = json.dumps({"weights": weights, "bias": 0.5}).encode()
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("model.json")
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    return path


def test_dry_run_adds_a_model_channel(tmp_path):
    archive = model_archive(tmp_path / "model.tar.gz", [1.0, 2.0, 3.0])
    for source, uri in ((f"s3://{BUCKET}/old/output/model.tar.gz", f"s3://{BUCKET}/old/output/model.tar.gz"),
                        ("demo-20261123-101500-a1b2c3", "s3://<model-of-demo-20261123-101500-a1b2c3>/model.tar.gz"),
                        (str(archive), None)):
        result = run_python([DEMO, "--sagemaker-run", "yes", "--sagemaker-dry-run", "--sagemaker-role", ROLE,
                             "--sagemaker-region", "us-east-1", "--sagemaker-model-from", source], cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        doc = json.loads(result.stdout)
        validate_create_training_job(doc["request"])
        [channel] = [c for c in doc["request"]["InputDataConfig"] if c["ChannelName"] == "model"]
        assert channel["InputMode"] == "File"
        if uri:
            assert channel["DataSource"]["S3DataSource"]["S3Uri"] == uri
        paths = json.loads(doc["request"]["HyperParameters"]["sagemaker_atr_paths"])
        assert paths["inputs"]["model"] == {"flag": "--model-init", "mode": "File", "file": "model.tar.gz",
                                            "unpack": True}
    assert any("looked up at launch" in n for n in json.loads(run_python(
        [DEMO, "--sagemaker-run", "yes", "--sagemaker-dry-run", "--sagemaker-role", ROLE, "--sagemaker-region",
         "us-east-1", "--sagemaker-model-from", "demo-20261123-101500-a1b2c3"], cwd=tmp_path).stdout)["notes"])


def test_bad_model_sources_are_one_line(tmp_path, aws):
    sm = boto3.client("sagemaker", region_name="us-east-1")
    sm.create_training_job(
        TrainingJobName="still-running", RoleArn=ROLE,
        AlgorithmSpecification={"TrainingImage": "123456789012.dkr.ecr.us-east-1.amazonaws.com/x:1",
                                "TrainingInputMode": "File"},
        OutputDataConfig={"S3OutputPath": "s3://bucket/out"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
        StoppingCondition={"MaxRuntimeInSeconds": 60})
    aws.set_job("still-running", training_job_status="InProgress")
    creates = sum(1 for c in aws.calls() if c["op"] == "SageMaker.CreateTrainingJob")
    for source, expected in (("no/such/thing.tar.gz", "neither a job name"),
                             ("still-running", "has no model to start from: it is InProgress"),
                             ("never-existed", "no such training job")):
        result = run_python([DEMO, "--sagemaker-run", "yes", "--sagemaker-role", ROLE,
                             "--sagemaker-model-from", source], cwd=tmp_path)
        assert result.returncode == 2, (source, result.stderr)
        assert result.stderr.count("\n") == 1 and expected in result.stderr and "Traceback" not in result.stderr
    assert sum(1 for c in aws.calls() if c["op"] == "SageMaker.CreateTrainingJob") == creates  # none of ours


def test_continue_from_an_earlier_job_in_every_mode(tmp_path, sandbox):
    first = run_python([DEMO, "--epochs", "3", "--sagemaker-run", "yes", "--sagemaker-role", ROLE,
                        "--sagemaker-base-job-name", "first"], cwd=tmp_path, timeout=240)
    assert first.returncode == 0, first.stderr
    job = next(line.split()[1] for line in first.stdout.splitlines() if line.startswith("job: "))
    s3 = boto3.client("s3", region_name="us-east-1")
    body = s3.get_object(Bucket=BUCKET, Key=f"aws-train-remote/output/{job}/output/model.tar.gz")["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        earlier = json.load(tar.extractfile("model.json"))

    remote = run_python([DEMO, "--epochs", "1", "--sagemaker-run", "yes", "--sagemaker-role", ROLE,
                         "--sagemaker-base-job-name", "second", "--sagemaker-model-from", job], cwd=tmp_path,
                        timeout=240)
    assert remote.returncode == 0, remote.stderr
    assert "[algo-1] [aws-train-remote] model to start from: 1 file unpacked into" in remote.stdout
    assert "[algo-1] starting from the model in " in remote.stdout
    [request] = [c["body"] for c in sandbox.calls() if c["op"] == "SageMaker.CreateTrainingJob"
                 and c["body"]["TrainingJobName"].startswith("second-")]
    [channel] = [c for c in request["InputDataConfig"] if c["ChannelName"] == "model"]
    assert channel["DataSource"]["S3DataSource"]["S3Uri"] == (
        f"s3://{BUCKET}/aws-train-remote/output/{job}/output/model.tar.gz")

    local = run_python([DEMO, "--epochs", "1", "--sagemaker-model-from", job, "--checkpoint-dir", "fresh",
                        "--model-dir", "m"], cwd=tmp_path)
    assert local.returncode == 0, local.stderr
    assert "starting from the model in " in local.stdout and ".cache/aws-train-remote/models/" in local.stdout

    archive = model_archive(tmp_path / "given.tar.gz", earlier["weights"])
    local_mode = run_python([DEMO, "--epochs", "1", "--sagemaker-run", "local", "--sagemaker-model-from",
                             str(archive), "--model-dir", "lm"], cwd=tmp_path, timeout=240)
    assert local_mode.returncode == 0, local_mode.stderr
    assert "[algo-1] starting from the model in " in local_mode.stdout
    # one epoch from the earlier weights is not one epoch from zero
    from_zero = run_python([DEMO, "--epochs", "1", "--checkpoint-dir", "zero", "--model-dir", "z"], cwd=tmp_path)
    assert from_zero.returncode == 0
    assert json.loads((tmp_path / "m" / "model.json").read_text()) != json.loads(
        (tmp_path / "z" / "model.json").read_text())
