"""Issue 10.5, AWS Batch queues for SageMaker training: --sagemaker-queue submits the job with
SubmitServiceJob (its launch token as the client token) and follows it through the queue into the
training job; the sandbox emulates a FIFO queue that runs one job at a time."""
import json
import os

import boto3
import botocore.session
from botocore.validate import ParamValidator
from conftest import REPO, run_python

ROLE = "arn:aws:iam::123456789012:role/DemoRole"
DEMO = os.path.join(REPO, "demo", "train.py")


def test_dry_run_shows_the_exact_submit_service_job(tmp_path):
    result = run_python([DEMO, "--sagemaker-run", "yes", "--sagemaker-dry-run", "--sagemaker-role", ROLE,
                         "--sagemaker-region", "us-east-1", "--sagemaker-queue", "ml-training"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    submit = doc["submit_service_job"]
    model = botocore.session.get_session().get_service_model("batch")
    report = ParamValidator().validate(submit, model.operation_model("SubmitServiceJob").input_shape)
    assert not report.has_errors(), report.generate_report()
    assert submit["serviceJobType"] == "SAGEMAKER_TRAINING" and submit["jobQueue"] == "ml-training"
    payload = json.loads(submit["serviceRequestPayload"])
    assert payload == {k: v for k, v in doc["request"].items() if k != "Tags"}
    assert submit["jobName"] == doc["request"]["TrainingJobName"] and len(submit["clientToken"]) == 32
    bad = run_python([DEMO, "--sagemaker-run", "yes", "--sagemaker-dry-run", "--sagemaker-role", ROLE,
                      "--sagemaker-region", "us-east-1", "--sagemaker-queue", "no spaces"], cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "not a job queue name or ARN" in bad.stderr


def test_queue_runs_jobs_one_at_a_time_in_order(tmp_path, sandbox):
    first = run_python([DEMO, "--epochs", "6", "--sleep", "1", "--sagemaker-run", "yes", "--sagemaker-role", ROLE,
                        "--sagemaker-queue", "ml-training", "--sagemaker-wait", "no",
                        "--sagemaker-base-job-name", "ahead"], cwd=tmp_path, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "queued: ahead-" in first.stdout and "aws batch describe-service-job --job-id" in first.stdout
    second = run_python([DEMO, "--epochs", "1", "--sagemaker-run", "yes", "--sagemaker-role", ROLE,
                         "--sagemaker-queue", "ml-training", "--sagemaker-base-job-name", "behind"],
                        cwd=tmp_path, timeout=240)
    assert second.returncode == 0, second.stderr
    out = second.stdout
    assert "queue: RUNNABLE" in out, out
    states = [line for line in out.splitlines() if line.startswith("queue: ")]
    assert states[0].startswith("queue: RUNNABLE") or states[0] == "queue: SUBMITTED", out
    assert states[-1] in ("queue: STARTING", "queue: RUNNING", "queue: SUCCEEDED"), out
    assert out.index(states[-1]) < out.index("status: "), out
    assert "[algo-1] epoch=1 " in out and "Completed: behind-" in out
    sm = boto3.client("sagemaker", region_name="us-east-1")
    jobs = {j["TrainingJobName"].split("-")[0]: j for j in sm.list_training_jobs()["TrainingJobSummaries"]}
    ahead = sm.describe_training_job(TrainingJobName=jobs["ahead"]["TrainingJobName"])
    behind = sm.describe_training_job(TrainingJobName=jobs["behind"]["TrainingJobName"])
    assert ahead["TrainingJobStatus"] == "Completed" and behind["CreationTime"] >= ahead["TrainingEndTime"]


def test_a_lost_submit_reply_queues_one_job(tmp_path, sandbox):
    sandbox.inject(r"^batch\.SubmitServiceJob$", kind="drop_after", times=1)
    result = run_python([DEMO, "--epochs", "1", "--sagemaker-run", "yes", "--sagemaker-role", ROLE,
                         "--sagemaker-queue", "ml-training"], cwd=tmp_path, timeout=240)
    assert result.returncode == 0, result.stderr
    ops = [c["op"] for c in sandbox.calls()]
    assert ops.count("batch.SubmitServiceJob") == 2  # the retry after the lost reply
    assert len(sandbox.queues.jobs) == 1 and ops.count("SageMaker.CreateTrainingJob") == 1
