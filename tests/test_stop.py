"""A stop in the sandbox (and local mode): SIGTERM to the runtime, which passes it to the script's
main process; when the grace period ends, SIGKILL reaches the script's own process group too.
Before, the SIGKILL went to the runtime's group only, and a script that ignored SIGTERM ran on,
orphaned, after its job had ended Stopped."""
import io
import os
import tarfile
import time

import boto3
from test_runtime import gone

from aws_train_remote.executors import local_job

ROLE = "arn:aws:iam::123456789012:role/DemoRole"
STUBBORN = """
import os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
with open(os.path.join(os.environ["PID_DIR"], "pids.tmp"), "w") as fh:
    fh.write(f"{os.getpid()} {helper.pid}")
os.replace(os.path.join(os.environ["PID_DIR"], "pids.tmp"), os.path.join(os.environ["PID_DIR"], "pids"))
time.sleep(120)
"""


def test_a_stop_kills_a_script_that_ignores_sigterm_when_the_grace_period_ends(tmp_path, sandbox, monkeypatch):
    monkeypatch.setattr(local_job, "STOP_GRACE_SECONDS", 1.0)  # SageMaker's is 120 s
    body = io.BytesIO()
    with tarfile.open(fileobj=body, mode="w:gz") as tar:
        data = STUBBORN.encode()
        info = tarfile.TarInfo("train.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="stop-bucket")
    s3.put_object(Bucket="stop-bucket", Key="src/sourcedir.tar.gz", Body=body.getvalue())
    sm = boto3.client("sagemaker", region_name="us-east-1")
    sm.create_training_job(
        TrainingJobName="stubborn", RoleArn=ROLE,
        AlgorithmSpecification={"TrainingImage": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:x",
                                "TrainingInputMode": "File"},
        HyperParameters={"sagemaker_program": '"train.py"',
                         "sagemaker_submit_directory": '"s3://stop-bucket/src/sourcedir.tar.gz"'},
        Environment={"PID_DIR": str(tmp_path)},
        OutputDataConfig={"S3OutputPath": "s3://stop-bucket/output"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
        StoppingCondition={"MaxRuntimeInSeconds": 600})
    deadline = time.time() + 60
    while time.time() < deadline and not (tmp_path / "pids").exists():
        time.sleep(0.1)
    script, helper = map(int, (tmp_path / "pids").read_text().split())
    stopped_at = time.time()
    sm.stop_training_job(TrainingJobName="stubborn")
    sandbox.wait_for_jobs(timeout=60)
    assert sm.describe_training_job(TrainingJobName="stubborn")["TrainingJobStatus"] == "Stopped"
    assert time.time() - stopped_at < 30
    deadline = time.time() + 10
    while time.time() < deadline and not (gone(script) and gone(helper)):
        time.sleep(0.1)
    assert gone(script) and gone(helper), "the script outlived its stopped job"
    os.remove(tmp_path / "pids")
