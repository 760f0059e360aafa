"""Issue 19.4, queues that share: --sagemaker-queue takes a share identifier, a scheduling priority
and a quota share name (SubmitServiceJob's shareIdentifier, schedulingPriority, quotaShareName). A
fair-share (or quota-share) queue without one is one line before anything is created when the
caller may read the queue's policy (DescribeJobQueues, DescribeSchedulingPolicies); otherwise
Batch's refusal is one line. The sandbox keeps SAGEMAKER_TRAINING queues and their policies and
refuses as Batch documents it."""
import json
import os

import boto3
import botocore.session
import pytest
from botocore.validate import ParamValidator
from conftest import run_python, write_script

ROLE = "arn:aws:iam::123456789012:role/DemoRole"
SCRIPT = """
from aws_train_remote import training_main

def main(args):
    print("trained")

if __name__ == "__main__":
    training_main(main)
"""


@pytest.fixture
def project(tmp_path):
    write_script(tmp_path, SCRIPT)
    return tmp_path


def launch(project, *args, wait="no"):
    return run_python(["train.py", "--sagemaker-run", "yes", "--sagemaker-role", ROLE, "--sagemaker-wait", wait,
                       *args], cwd=project, timeout=120)


def make_queue(name: str, policy: str = None) -> None:
    """A SAGEMAKER_TRAINING queue in the sandbox, with a fair-share or quota-share policy or none."""
    batch = boto3.client("batch", region_name="us-east-1")
    arn = None
    if policy == "fair":
        arn = batch.create_scheduling_policy(name=f"{name}-policy", fairsharePolicy={
            "shareDecaySeconds": 3600, "shareDistribution": [{"shareIdentifier": "teamA", "weightFactor": 1.0}]})["arn"]
    elif policy == "quota":
        arn = batch.create_scheduling_policy(name=f"{name}-policy", quotaSharePolicy={
            "idleResourceAssignmentStrategy": "FIFO"})["arn"]
    batch.create_job_queue(jobQueueName=name, priority=1, jobQueueType="SAGEMAKER_TRAINING",
                           serviceEnvironmentOrder=[{"order": 1, "serviceEnvironment": "sm-env"}],
                           **({"schedulingPolicyArn": arn} if arn else {}))


def created_anything(sandbox) -> list:
    """What a refused launch must not have done: an upload, a bucket, a job, a queued job."""
    return [c["op"] for c in sandbox.calls() if c["op"] in ("s3.PutObject", "s3.CreateBucket", "s3.UploadPart",
                                                            "SageMaker.CreateTrainingJob", "batch.SubmitServiceJob")]


def test_dry_run_sends_the_share_fields_botocore_accepts(project):
    result = run_python(["train.py", "--sagemaker-run", "yes", "--sagemaker-dry-run", "--sagemaker-role", ROLE,
                         "--sagemaker-region", "us-east-1", "--sagemaker-queue", "ml-training",
                         "--sagemaker-queue-share", "teamA", "--sagemaker-queue-priority", "9999",
                         "--sagemaker-queue-quota-share", "research_q-1"], cwd=project)
    assert result.returncode == 0, result.stderr
    submit = json.loads(result.stdout)["submit_service_job"]
    model = botocore.session.get_session().get_service_model("batch")
    report = ParamValidator().validate(submit, model.operation_model("SubmitServiceJob").input_shape)
    assert not report.has_errors(), report.generate_report()
    assert (submit["shareIdentifier"], submit["schedulingPriority"], submit["quotaShareName"]) == \
        ("teamA", 9999, "research_q-1")
    plain = run_python(["train.py", "--sagemaker-run", "yes", "--sagemaker-dry-run", "--sagemaker-role", ROLE,
                        "--sagemaker-region", "us-east-1", "--sagemaker-queue", "ml-training"], cwd=project)
    assert not {"shareIdentifier", "schedulingPriority", "quotaShareName"} & set(
        json.loads(plain.stdout)["submit_service_job"])


@pytest.mark.parametrize("args,line", [
    (["--sagemaker-queue-share", "teamA"], "--sagemaker-queue-share=teamA: only applies to a job submitted to a queue"),
    (["--sagemaker-queue", "q", "--sagemaker-queue-priority", "10000"], "--sagemaker-queue-priority=10000: out of range"),
    (["--sagemaker-queue", "q", "--sagemaker-queue-share", "team A"], "--sagemaker-queue-share=team A: not a share"),
    (["--sagemaker-queue", "q", "--sagemaker-queue-quota-share", "a/b"],
     "--sagemaker-queue-quota-share=a/b: not a quota share name"),
])
def test_share_flags_bad_input_is_one_line(project, args, line):
    result = run_python(["train.py", "--sagemaker-run", "yes", "--sagemaker-dry-run", "--sagemaker-role", ROLE,
                         "--sagemaker-region", "us-east-1", *args], cwd=project)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and line in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and not result.stdout


@pytest.mark.parametrize("policy,args,line", [
    ("fair", [], "--sagemaker-queue=shared: its scheduling policy shared-policy is fair-share, and AWS Batch refuses a "
                 "job without a share identifier; add --sagemaker-queue-share SHARE"),
    ("quota", [], "--sagemaker-queue=shared: its scheduling policy shared-policy is quota-share"),
    (None, ["--sagemaker-queue-share", "teamA"], "--sagemaker-queue-share=teamA: queue shared has no fair-share"),
    ("fair", ["--sagemaker-queue-share", "teamA", "--sagemaker-queue-quota-share", "q1"],
     "--sagemaker-queue-quota-share=q1: queue shared has no quota-share scheduling policy"),
])
def test_the_queue_policy_is_judged_before_anything_is_created(project, sandbox, policy, args, line):
    make_queue("shared", policy)
    result = launch(project, "--sagemaker-queue", "shared", *args)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and line in result.stderr, result.stderr
    assert created_anything(sandbox) == []
    assert "batch.DescribeJobQueues" in [c["op"] for c in sandbox.calls()]


def test_a_queue_policy_out_of_sight_leaves_batch_refusal_as_one_line(project, sandbox):
    """Without batch:DescribeJobQueues the launch cannot know; SubmitServiceJob's ClientException is
    the one line then, naming the flag (the uploads were made: that is what cannot be known)."""
    make_queue("shared", "fair")
    sandbox.inject(r"^batch\.DescribeJobQueues$", status=403, code="AccessDeniedException", times=5)
    result = launch(project, "--sagemaker-queue", "shared")
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "--sagemaker-queue-share: AWS Batch refused it (Job queue shared has a fair-share scheduling policy: a " \
           "shareIdentifier is required); pass a share identifier with --sagemaker-queue-share SHARE" in result.stderr
    assert "SageMaker.CreateTrainingJob" not in [c["op"] for c in sandbox.calls()]


def test_a_fair_share_queue_takes_the_job_with_its_share_and_priority(project, sandbox):
    make_queue("shared", "fair")
    result = launch(project, "--sagemaker-queue", "shared", "--sagemaker-queue-share", "teamA",
                    "--sagemaker-queue-priority", "7", "--sagemaker-base-job-name", "fair", wait="yes")
    assert result.returncode == 0, result.stderr
    assert "queued: fair-" in result.stdout and "Completed: fair-" in result.stdout and "[algo-1] trained" in result.stdout
    batch = boto3.client("batch", region_name="us-east-1")
    summary = batch.list_service_jobs(jobQueue="shared", filters=[{"name": "JOB_NAME", "values": ["fair*"]}])
    job = batch.describe_service_job(jobId=summary["jobSummaryList"][0]["jobId"])
    assert (job["shareIdentifier"], job["schedulingPriority"], job["status"]) == ("teamA", 7, "SUCCEEDED")
    assert "quotaShareName" not in job


def test_the_sandbox_describes_its_queues_and_leaves_others_to_moto(sandbox):
    make_queue("fifo")
    batch = boto3.client("batch", region_name="us-east-1")
    queue = batch.describe_job_queues(jobQueues=["fifo"])["jobQueues"][0]
    assert queue["jobQueueType"] == "SAGEMAKER_TRAINING" and "schedulingPolicyArn" not in queue
    assert batch.describe_job_queues(jobQueues=["nobody"])["jobQueues"] == []
    with pytest.raises(batch.exceptions.ClientException, match="already exists"):
        make_queue("fifo")
    assert os.environ["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
