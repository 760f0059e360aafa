"""Issue 20 end to end in the sandbox: an over-budget tuning launch is refused before anything is
created; a completed job's summary, `status` and `list` show what it cost."""
import json
import os

from conftest import REPO, run_python

ROLE = "arn:aws:iam::123456789012:role/DemoRole"
DEMO = os.path.join(REPO, "demo", "train.py")
TUNE = """
objective: {metric: loss, type: Minimize}
strategy: Random
max_jobs: 8
parallel_jobs: 4
parameters:
  lr: {type: continuous, min: 0.001, max: 0.5}
"""
WRITES = ("s3.CreateBucket", "s3.PutObject", "s3.CreateMultipartUpload", "s3.UploadPart", "s3.CopyObject")


def cli(*args, cwd):
    return run_python(["-m", "aws_train_remote.cli.main", *args], cwd=cwd)


def test_over_budget_tuning_launch_is_refused_with_nothing_created(tmp_path, aws):
    (tmp_path / "tune.yaml").write_text(TUNE)
    result = run_python([DEMO, "--sagemaker-run", "yes", "--sagemaker-role", ROLE, "--sagemaker-tune", "tune.yaml",
                         "--sagemaker-max-run", "10h", "--sagemaker-budget", "7.5"], cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    # the sandbox's $0.10 an hour (not an AWS price) x 8 trials x 10 h: checked as a whole
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert ("--sagemaker-budget=$7.50: the worst case is $8.00 (8 trials x 1 x ml.m5.large at $0.1/h for up to "
            "10 h); lower --sagemaker-max-run (10 h), the trials (max_jobs: 8), or raise the budget") in result.stderr
    assert "estimate: at most $8.00 on demand" in result.stdout
    assert "wall time up to 20 h (4 trials at a time)" in result.stdout
    ops = [c["op"] for c in aws.calls()]
    assert "AWSPriceListService.GetProducts" in ops
    assert not [op for op in ops if op in WRITES or op.startswith("SageMaker.Create")], ops
    within = run_python([DEMO, "--sagemaker-run", "yes", "--sagemaker-role", ROLE, "--sagemaker-tune", "tune.yaml",
                         "--sagemaker-max-run", "10h", "--sagemaker-budget", "8", "--sagemaker-wait", "no"],
                        cwd=tmp_path)
    assert within.returncode == 0, within.stderr
    assert [c["op"] for c in aws.calls()].count("SageMaker.CreateHyperParameterTuningJob") == 1


def test_a_completed_job_shows_its_cost_in_summary_status_and_list(tmp_path, sandbox):
    result = run_python([DEMO, "--sagemaker-run", "yes", "--sagemaker-role", ROLE, "--epochs", "1",
                         "--sagemaker-base-job-name", "costly"], cwd=tmp_path, timeout=240)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "estimate: at most $2.40 on demand: 1 x ml.m5.large at $0.1/h for up to 24 h" in lines
    summary = next(i for i, line in enumerate(lines) if line.startswith("Completed: costly-"))
    job = lines[summary].split()[1].rstrip(",")
    cost = next(line for line in lines[summary:] if line.startswith("cost: "))
    assert "1 x ml.m5.large at $0.1/h x" in cost and "s billable" in cost, cost
    status = cli("status", job, "--json", cwd=tmp_path)
    record = json.loads(status.stdout)["cost"]
    billable = json.loads(status.stdout)["billable_seconds"]
    assert record["usd"] == round(0.1 * billable / 3600, 6) and record["usd_per_hour"] == 0.1
    text = cli("status", job, cwd=tmp_path).stdout
    assert "cost: " in text and text.index("cost: ") < text.index("phases (UTC)")
    table = cli("list", cwd=tmp_path).stdout.splitlines()
    assert "COST" in table[0] and table[0].endswith("NAME")
    row = next(line for line in table if line.endswith(job))
    assert "$" in row
    listed = json.loads(cli("list", "--json", cwd=tmp_path).stdout)
    assert next(r for r in listed if r["name"] == job)["cost"]["usd"] == record["usd"]


def test_without_pricing_permission_the_launch_goes_on_with_one_line(tmp_path, aws):
    aws.inject("AWSPriceListService.GetProducts", status=400, code="AccessDeniedException", times=10)
    result = run_python([DEMO, "--sagemaker-run", "yes", "--sagemaker-role", ROLE, "--sagemaker-wait", "no"],
                        cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    said = [line for line in (result.stdout + result.stderr).splitlines() if "pricing:GetProducts" in line]
    assert len(said) == 1 and said[0].startswith("estimate: up to 24 instance-hours"), said
    assert [c["op"] for c in aws.calls()].count("SageMaker.CreateTrainingJob") == 1
    # a budget cannot be kept without a price: refused, unless told to go on
    refused = run_python([DEMO, "--sagemaker-run", "yes", "--sagemaker-role", ROLE, "--sagemaker-wait", "no"],
                         cwd=tmp_path, env={"AWS_TRAIN_REMOTE_BUDGET": "100"})
    assert refused.returncode == 2 and "--sagemaker-budget=$100.00: the worst case cannot be priced" in refused.stderr
    allowed = run_python([DEMO, "--sagemaker-run", "yes", "--sagemaker-role", ROLE, "--sagemaker-wait", "no",
                          "--sagemaker-budget-unknown-ok"], cwd=tmp_path, env={"AWS_TRAIN_REMOTE_BUDGET": "100"})
    assert allowed.returncode == 0, allowed.stderr
    assert [c["op"] for c in aws.calls()].count("SageMaker.CreateTrainingJob") == 2
