"""Issue 10.8, capacity fallback: an ordered spot --sagemaker-instance list and --sagemaker-spot-fallback
relaunch a job that cannot get capacity, with the same data and checkpoint prefix; the sandbox fails
jobs with SageMaker's CapacityError on request, and CreateTrainingJob can be refused for capacity.
(An on-demand list is one job that SageMaker itself places, issue 19.3: test_instance_preferences.py.)
Issue 17.4: only SageMaker's own verdict counts (executors/capacity.py), never a script's words."""
import json
import os

import boto3
from conftest import REPO, run_python, write_script
from test_dry_run import validate_create_training_job

ROLE = "arn:aws:iam::123456789012:role/DemoRole"
DEMO = os.path.join(REPO, "demo", "train.py")


def launch(tmp_path, *args):
    return run_python([DEMO, "--epochs", "1", "--sagemaker-run", "yes", "--sagemaker-role", ROLE, *args],
                      cwd=tmp_path, timeout=240)


def creates(aws):
    return [c["body"] for c in aws.calls() if c["op"] == "SageMaker.CreateTrainingJob"]


def channels(body):
    return {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in body["InputDataConfig"]}


def test_no_capacity_for_the_first_type_relaunches_on_the_next(tmp_path, sandbox):
    sandbox.no_capacity = {"ml.p5.48xlarge"}
    result = launch(tmp_path, "--sagemaker-instance", "ml.p5.48xlarge,ml.m5.large", "--sagemaker-spot")
    assert result.returncode == 0, result.stderr
    assert "no capacity (the job could not get capacity); relaunching on ml.m5.large on spot capacity" in result.stdout
    first, second = creates(sandbox)
    assert first["ResourceConfig"]["InstanceType"] == "ml.p5.48xlarge" and "-cu133-" in \
        first["AlgorithmSpecification"]["TrainingImage"]
    assert second["ResourceConfig"]["InstanceType"] == "ml.m5.large" and "cpu" in \
        second["AlgorithmSpecification"]["TrainingImage"]
    assert channels(first) == channels(second) and first["CheckpointConfig"] == second["CheckpointConfig"]
    assert first["TrainingJobName"] != second["TrainingJobName"]
    assert result.stdout.count("0 objects sent") == 1  # the relaunch found everything in place
    assert f"Completed: {second['TrainingJobName']}" in result.stdout


def test_spot_without_capacity_falls_back_to_on_demand(tmp_path, sandbox):
    sandbox.no_spot_capacity = True
    result = launch(tmp_path, "--sagemaker-spot", "--sagemaker-spot-fallback")
    assert result.returncode == 0, result.stderr
    spot, on_demand = creates(sandbox)
    assert spot["EnableManagedSpotTraining"] is True and "MaxWaitTimeInSeconds" in spot["StoppingCondition"]
    assert on_demand["EnableManagedSpotTraining"] is False and "MaxWaitTimeInSeconds" not in \
        on_demand["StoppingCondition"]
    assert "relaunching on ml.m5.large on demand" in result.stdout


def test_capacity_refused_at_creation_and_every_choice_exhausted(tmp_path, sandbox):
    sandbox.inject(r"^SageMaker\.CreateTrainingJob$", status=400, code="ResourceLimitExceeded", times=1)
    result = launch(tmp_path, "--sagemaker-instance", "ml.c5.xlarge,ml.m5.large", "--sagemaker-spot")
    assert result.returncode == 0, result.stderr
    assert "no capacity (CreateTrainingJob failed" in result.stdout
    assert [b["ResourceConfig"]["InstanceType"] for b in creates(sandbox)][-1] == "ml.m5.large"

    sandbox.clear_faults()
    sandbox.no_capacity = {"ml.c5.xlarge", "ml.m5.large"}  # on demand: SageMaker finds none of the list
    exhausted = launch(tmp_path, "--sagemaker-instance", "ml.c5.xlarge,ml.m5.large")
    assert exhausted.returncode == 1
    assert exhausted.stderr.count("\n") == 1 and "CapacityError: Unable to provision" in exhausted.stderr


def test_dry_run_and_mistakes(tmp_path):
    result = run_python([DEMO, "--sagemaker-run", "yes", "--sagemaker-dry-run", "--sagemaker-role", ROLE,
                         "--sagemaker-region", "us-east-1", "--sagemaker-instance", "ml.g5.xlarge,ml.g6.xlarge",
                         "--sagemaker-spot", "--sagemaker-spot-fallback"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    validate_create_training_job(doc["request"])
    assert doc["request"]["ResourceConfig"]["InstanceType"] == "ml.g5.xlarge"
    assert ("capacity fallback: a job that cannot get capacity is relaunched in this order: ml.g5.xlarge (spot), "
            "ml.g6.xlarge (spot), ml.g5.xlarge (on demand), ml.g6.xlarge (on demand)") in doc["notes"]
    for args, expected in ((["--sagemaker-instance", "ml.g5.xlarge,g6"], "--sagemaker-instance=g6"),
                           (["--sagemaker-instance", "ml.g5.xlarge,ml.g5.xlarge"], "lists a type twice"),
                           (["--sagemaker-spot-fallback"], "only applies to spot jobs")):
        bad = run_python([DEMO, "--sagemaker-run", "yes", "--sagemaker-dry-run", "--sagemaker-role", ROLE,
                          "--sagemaker-region", "us-east-1", *args], cwd=tmp_path)
        assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and expected in bad.stderr, bad.stderr


RAISES = """
from aws_train_remote import training_main
def main(args):
    raise RuntimeError("InsufficientCapacity CapacityError ResourceLimitExceeded")
if __name__ == "__main__":
    training_main(main)
"""


def test_a_script_that_raises_the_capacity_words_runs_once(tmp_path, sandbox):
    """Issue 17.4: only SageMaker's own verdict relaunches. The script's words reach FailureReason
    after SageMaker's "AlgorithmError: ", so the job failed for itself: one job, no relaunch."""
    write_script(tmp_path, RAISES)
    result = run_python(["train.py", "--sagemaker-run", "yes", "--sagemaker-role", ROLE, "--sagemaker-instance",
                         "ml.c5.xlarge,ml.m5.large,ml.c5.2xlarge"], cwd=tmp_path, timeout=240)
    assert result.returncode == 1, result.stderr
    assert "relaunching" not in result.stdout and len(creates(sandbox)) == 1
    sm = boto3.client("sagemaker", region_name="us-east-1")
    assert len(sm.list_training_jobs()["TrainingJobSummaries"]) == 1
    assert result.stderr.count("\n") == 1 and "AlgorithmError: " in result.stderr and "CapacityError" in result.stderr
    print(f"a script raising the capacity words with 3 instance types: {len(creates(sandbox))} job")


def test_the_capacity_rule_reads_only_what_sagemaker_decided():
    from botocore.exceptions import ClientError

    from aws_train_remote.executors.capacity import is_capacity_failure, is_capacity_refusal
    from aws_train_remote.sandbox import CAPACITY_REASON

    def refused(code, message):
        return ClientError({"Error": {"Code": code, "Message": message}}, "CreateTrainingJob")

    assert is_capacity_refusal(refused("ResourceLimitExceeded", "The account-level service limit 'ml.p4d.24xlarge "
                                                               "for training job usage' is 0 Instances"))
    assert not is_capacity_refusal(refused("ValidationException", "InsufficientCapacity CapacityError in a tag"))
    assert is_capacity_failure(CAPACITY_REASON)
    for reason in ("AlgorithmError: RuntimeError: InsufficientCapacity CapacityError ResourceLimitExceeded",
                   "AlgorithmError: CapacityError: Unable to provision requested ML compute capacity.",
                   "ClientError: could not stage the job's data: CapacityError", None, ""):
        assert not is_capacity_failure(reason), reason
