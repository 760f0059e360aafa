"""Issue 10.6, warm pools: the summary says how long provisioning took and what became of the
job's warm pool; a relaunch within --sagemaker-keep-alive reuses it, and says so (the sandbox keeps
a pool for a matching job as SageMaker does, and records the reuse on the pool's own job)."""
import os

import boto3
from conftest import REPO, run_python

ROLE = "arn:aws:iam::123456789012:role/DemoRole"
DEMO = os.path.join(REPO, "demo", "train.py")


def launch(tmp_path, *args):
    result = run_python([DEMO, "--epochs", "1", "--sagemaker-run", "yes", "--sagemaker-role", ROLE,
                         "--sagemaker-keep-alive", "10m", *args], cwd=tmp_path, timeout=240)
    assert result.returncode == 0, result.stderr
    job = next(line.split()[1] for line in result.stdout.splitlines() if line.startswith("job: "))
    return job, result.stdout


def test_relaunch_within_keep_alive_reuses_the_warm_pool(tmp_path, sandbox):
    first, out = launch(tmp_path)
    assert f"Completed: {first}," in out and " provisioning " in out
    assert "warm pool: the instances are kept 600 s for a matching job" in out
    second, out = launch(tmp_path)
    assert f"warm pool: this job reused the instances kept by {first}" in out
    assert f"Reusing the instances kept in the warm pool of {first}" in out
    sm = boto3.client("sagemaker", region_name="us-east-1")
    pool = sm.describe_training_job(TrainingJobName=first)["WarmPoolStatus"]
    assert pool["Status"] == "Reused" and pool["ReusedByJob"] == second
    # a job that does not match (another instance type) gets no pool
    third, out = launch(tmp_path, "--sagemaker-instance", "ml.c5.xlarge")
    assert "reused the instances" not in out


def test_dry_run_keeps_the_pool(tmp_path):
    import json

    from test_dry_run import validate_create_training_job

    result = run_python([DEMO, "--sagemaker-run", "yes", "--sagemaker-dry-run", "--sagemaker-role", ROLE,
                         "--sagemaker-region", "us-east-1", "--sagemaker-keep-alive", "10m"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    request = json.loads(result.stdout)["request"]
    validate_create_training_job(request)
    assert request["ResourceConfig"]["KeepAlivePeriodInSeconds"] == 600
