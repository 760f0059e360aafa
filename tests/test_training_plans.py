"""Issue 19.2, training plans: --sagemaker-training-plan sends ResourceConfig.TrainingPlanArn and
--sagemaker-max-pending StoppingCondition.MaxPendingTimeInSeconds (GPU and Trainium types only). In
the sandbox a plan becomes Active after a delay: the job waits InProgress/Pending with a message
naming the plan, the follow says what it waits for and how long it may, then the job runs. A queue
carries the plan in its payload; what SageMaker would refuse is one line before anything is made."""
import json
import os
import re
import subprocess
import sys
import time

import boto3
import pytest
from conftest import REPO, run_python, write_script

ROLE = "arn:aws:iam::123456789012:role/DemoRole"
SCRIPT = """
from aws_train_remote import training_main

def main(args):
    print("trained on the plan's capacity")

if __name__ == "__main__":
    training_main(main)
"""
P5 = "ml.p5.48xlarge"


def launch(tmp_path, *args, timeout=240):
    write_script(tmp_path, SCRIPT)
    return run_python(["train.py", "--sagemaker-run", "yes", "--sagemaker-role", ROLE, *args], cwd=tmp_path,
                      timeout=timeout)


def creates(sandbox):
    return [c["body"] for c in sandbox.calls() if c["op"] == "SageMaker.CreateTrainingJob" and not c["internal"]]


def test_a_job_waits_pending_for_its_plan_then_runs(tmp_path, sandbox):
    """The plan is Scheduled until the follow has said what the job waits for; then it becomes Active
    (as its start date comes) and the job runs."""
    plan = sandbox.add_training_plan("p5-week", P5, count=1, active_after=3600)
    write_script(tmp_path, SCRIPT)
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "train.py", "--sagemaker-run", "yes", "--sagemaker-role", ROLE,
                             "--sagemaker-instance", P5, "--sagemaker-training-plan", plan, "--sagemaker-max-pending",
                             "30m"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        seen = []
        for line in proc.stdout:  # the follow's own words while the plan is Scheduled
            seen.append(line)
            if line.startswith("waiting for training plan"):
                break
        time.sleep(1)  # a second of Pending, measured by the phases
        sandbox.plans.activate(plan)
        rest, err = proc.communicate(timeout=240)
    finally:
        proc.kill()
    out = "".join(seen) + rest
    assert proc.returncode == 0, err
    [create] = creates(sandbox)
    assert create["ResourceConfig"]["TrainingPlanArn"] == plan
    assert create["StoppingCondition"]["MaxPendingTimeInSeconds"] == 1800
    assert "status: Pending - Waiting for the capacity of training plan p5-week" in out, out
    assert re.search(r"^waiting for training plan p5-week \(Scheduled: its capacity starts \d{4}-\d\d-\d\d \d\d:\d\d "
                     r"UTC\): the job starts when the plan's capacity is free; SageMaker stops it after 30 min pending "
                     r"on the Active plan \(--sagemaker-max-pending\)$", out, re.M), out
    assert out.count("waiting for training plan") == 1
    assert out.index("waiting for training plan") < out.index("status: Starting") < out.index("trained on the plan")
    assert "instances: 1 x ml.p5.48xlarge on training plan p5-week" in out  # the summary
    phases = re.search(r"^phases: Pending (\d+) s -> Starting", out, re.M)
    assert phases and int(phases.group(1)) >= 1, out


def test_a_job_stopped_while_it_waits_for_its_plan(tmp_path, sandbox):
    plan = sandbox.add_training_plan("later", P5, active_after=3600)
    result = launch(tmp_path, "--sagemaker-instance", P5, "--sagemaker-training-plan", plan, "--sagemaker-wait", "no")
    assert result.returncode == 0, result.stderr
    [create] = creates(sandbox)
    sm = boto3.client("sagemaker", region_name="us-east-1")
    job = create["TrainingJobName"]
    desc = sm.describe_training_job(TrainingJobName=job)
    assert (desc["TrainingJobStatus"], desc["SecondaryStatus"]) == ("InProgress", "Pending")
    status = run_python(["-m", "aws_train_remote.cli.main", "status", job], cwd=tmp_path).stdout
    assert "instances: 1 x ml.p5.48xlarge on training plan later" in status, status
    assert re.search(r"^waiting for training plan later \(Scheduled: its capacity starts [^)]+\): the job starts when "
                     r"the plan's capacity is free; without --sagemaker-max-pending, SageMaker ends a job pending for "
                     r"capacity after 2 days$", status, re.M), status
    stopped = run_python(["-m", "aws_train_remote.cli.main", "stop", job], cwd=tmp_path)
    assert stopped.returncode == 0, stopped.stderr
    deadline = time.time() + 20
    while sm.describe_training_job(TrainingJobName=job)["TrainingJobStatus"] != "Stopped" and time.time() < deadline:
        time.sleep(0.1)
    desc = sm.describe_training_job(TrainingJobName=job)
    assert desc["TrainingJobStatus"] == "Stopped"
    assert [t["Status"] for t in desc["SecondaryStatusTransitions"]] == ["Pending", "Stopped"]


def test_the_sandbox_refuses_what_sagemaker_refuses_of_a_plan(tmp_path, sandbox):
    """The plan's instance type is the job's; a plan must exist. Known only to AWS: one line at launch."""
    plan = sandbox.add_training_plan("p4-week", "ml.p4d.24xlarge")
    other = launch(tmp_path, "--sagemaker-instance", P5, "--sagemaker-training-plan", plan)
    assert other.returncode != 0 and other.stderr.count("\n") == 1, other.stderr
    assert "does not match the instance type ml.p4d.24xlarge of training plan p4-week" in other.stderr
    missing = launch(tmp_path, "--sagemaker-instance", P5, "--sagemaker-training-plan",
                     plan.replace("p4-week", "no-such-plan"))
    assert missing.returncode != 0 and "no-such-plan does not exist" in missing.stderr
    sm = boto3.client("sagemaker", region_name="us-east-1")
    assert sm.list_training_jobs()["TrainingJobSummaries"] == []  # nothing was created


def test_a_queued_job_carries_its_plan(tmp_path, sandbox):
    """AWS Batch hands SageMaker the payload as it is ("All parameters supported by CreateTrainingJob
    can be included", service-job-payload.html): the job the queue starts waits for the plan, then runs."""
    plan = sandbox.add_training_plan("queued", P5, active_after=3600)
    result = launch(tmp_path, "--sagemaker-instance", P5, "--sagemaker-training-plan", plan,
                    "--sagemaker-queue", "ml-training", "--sagemaker-wait", "no")
    assert result.returncode == 0, result.stderr
    [queued] = sandbox.queues.jobs.values()
    assert json.loads(queued["serviceRequestPayload"])["ResourceConfig"]["TrainingPlanArn"] == plan
    sm = boto3.client("sagemaker", region_name="us-east-1")

    def job_status(wanted):
        deadline = time.time() + 60
        while time.time() < deadline:
            jobs = sm.list_training_jobs()["TrainingJobSummaries"]
            if jobs and sm.describe_training_job(TrainingJobName=jobs[0]["TrainingJobName"])["SecondaryStatus"] in wanted:
                return sm.describe_training_job(TrainingJobName=jobs[0]["TrainingJobName"])
            time.sleep(0.1)
        raise AssertionError(f"no job became {wanted}")

    waiting = job_status(("Pending",))
    assert waiting["ResourceConfig"]["TrainingPlanArn"] == plan and waiting["TrainingJobStatus"] == "InProgress"
    sandbox.plans.activate(plan)
    done = job_status(("Completed", "Failed"))
    assert done["TrainingJobStatus"] == "Completed", done.get("FailureReason")
    assert [t["Status"] for t in done["SecondaryStatusTransitions"]][:2] == ["Pending", "Starting"]


@pytest.mark.parametrize("args, says", [
    (["--sagemaker-max-pending", "2h"], "--sagemaker-max-pending=7200: SageMaker bounds the pending time only of GPU "
     "and Trainium jobs (ml.p, ml.g, ml.trn), and ml.m5.large is CPU-only"),
    (["--sagemaker-instance", P5, "--sagemaker-max-pending", "10m"], "--sagemaker-max-pending=600: out of range; use "
     "1800 to 2419200 seconds"),
    (["--sagemaker-instance", P5, "--sagemaker-training-plan", "p5-week"], "--sagemaker-training-plan=p5-week: not a "
     "training plan ARN"),
    (["--sagemaker-instance", P5, "--sagemaker-training-plan",
      "arn:aws:sagemaker:eu-west-1:123456789012:training-plan/p5-week"], "the plan is in eu-west-1, the job in "
     "us-east-1"),
    (["--sagemaker-instance", P5, "--sagemaker-spot", "--sagemaker-training-plan",
      "arn:aws:sagemaker:us-east-1:123456789012:training-plan/p5-week"], "runs the job on its reserved capacity, not "
     "on spot"),
])
def test_what_sagemaker_would_refuse_is_one_line_before_anything(tmp_path, args, says):
    write_script(tmp_path, SCRIPT)
    bad = run_python(["train.py", "--sagemaker-run", "yes", "--sagemaker-dry-run", "--sagemaker-role", ROLE,
                      "--sagemaker-region", "us-east-1", *args], cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and says in bad.stderr, bad.stderr


def test_a_list_with_one_gpu_type_may_bound_its_wait_and_a_tuning_job_runs_on_the_plan(tmp_path):
    """MaxPendingTimeInSeconds bounds a list when it "includes at least one accelerated computing
    instance type"; a tuning job's trials take the plan and the bound (its TrainingJobDefinition)."""
    write_script(tmp_path, SCRIPT)
    base = ["train.py", "--sagemaker-run", "yes", "--sagemaker-dry-run", "--sagemaker-role", ROLE,
            "--sagemaker-region", "us-east-1"]
    mixed = run_python([*base, "--sagemaker-instance", "ml.g5.xlarge,ml.c5.xlarge", "--sagemaker-image",
                        "123456789012.dkr.ecr.us-east-1.amazonaws.com/mine:1", "--sagemaker-max-pending", "1h"],
                       cwd=tmp_path)
    assert mixed.returncode == 0, mixed.stderr
    assert json.loads(mixed.stdout)["request"]["StoppingCondition"]["MaxPendingTimeInSeconds"] == 3600
    write_script(tmp_path, SCRIPT.replace("training_main(main)", 'training_main(main, additional_arguments=[{"dest": '
                                          '"--lr", "type": float, "default": 0.1}])'))
    (tmp_path / "tune.yaml").write_text("objective: {metric: loss, type: Minimize}\nmax_jobs: 2\nparallel_jobs: 1\n"
                                        "parameters:\n  lr: {type: continuous, min: 0.001, max: 0.1}\n")
    plan = "arn:aws:sagemaker:us-east-1:123456789012:training-plan/p5-week"
    tuned = run_python([*base, "--sagemaker-instance", P5, "--sagemaker-training-plan", plan, "--sagemaker-max-pending",
                        "1h", "--sagemaker-tune", "tune.yaml", "--sagemaker-metric", "loss=loss=([0-9.]+)"],
                       cwd=tmp_path)
    assert tuned.returncode == 0, tuned.stderr
    trial = json.loads(tuned.stdout)["tuning_request"]["TrainingJobDefinition"]
    assert trial["ResourceConfig"]["TrainingPlanArn"] == plan
    assert trial["StoppingCondition"]["MaxPendingTimeInSeconds"] == 3600
    notes = " ".join(json.loads(tuned.stdout)["notes"])
    assert "training plan: the job waits, Pending, for the plan's reserved capacity, at most 3600 s" in notes
