"""Issue 19.3, SageMaker chooses among instance types: an on-demand --sagemaker-instance list is one job
with ResourceConfig.InstancePreferences (per-type counts or one count for all); SageMaker takes the
first type with capacity, and the summary, `status`, `list`, the follow and the job itself (the
runtime reads its resourceconfig.json) say which. The sandbox chooses as SageMaker does, skipping the
types marked out of capacity. Spot lists keep the client's relaunch (test_capacity.py)."""
import json

import pytest
from conftest import run_python, write_script

from aws_train_remote.aws.instances import capacity_notes, instances_short, instances_text, plan_wait_line
from aws_train_remote.runtime import launch
from aws_train_remote.runtime.environment import Cluster

ROLE = "arn:aws:iam::123456789012:role/DemoRole"
SCRIPT = """
import os
from aws_train_remote import training_main

def main(args):
    print(f"runs as {args.sagemaker_instance} x {args.sagemaker_instance_count}; "
          f"resourceconfig: {os.environ.get('SM_CURRENT_INSTANCE_TYPE')} {os.environ.get('SM_HOSTS')}")

if __name__ == "__main__":
    training_main(main)
"""


def cli(*args, cwd):
    return run_python(["-m", "aws_train_remote.cli.main", *args], cwd=cwd)


def test_an_on_demand_list_is_one_job_that_runs_as_the_type_sagemaker_selected(tmp_path, sandbox):
    write_script(tmp_path, SCRIPT)
    sandbox.no_capacity = {"ml.c5.xlarge"}  # the first choice has none: SageMaker takes the next
    result = run_python(["train.py", "--sagemaker-run", "yes", "--sagemaker-role", ROLE,
                         "--sagemaker-instance", "ml.c5.xlarge:1,ml.m5.large:2"], cwd=tmp_path, timeout=240)
    assert result.returncode == 0, result.stderr
    [create] = [c["body"] for c in sandbox.calls() if c["op"] == "SageMaker.CreateTrainingJob"]  # one job, no relaunch
    assert create["ResourceConfig"]["InstancePreferences"] == [{"InstanceType": "ml.c5.xlarge", "InstanceCount": 1},
                                                               {"InstanceType": "ml.m5.large", "InstanceCount": 2}]
    assert "InstanceType" not in create["ResourceConfig"] and "InstanceCount" not in create["ResourceConfig"]
    out = result.stdout
    assert "SageMaker selected 2 x ml.m5.large, the first with capacity of ml.c5.xlarge:1, ml.m5.large:2" in out
    assert "relaunching" not in out
    # inside the job: both hosts of the type selected, and args.sagemaker_* say so (the runtime learnt it)
    for host in ("algo-1", "algo-2"):
        assert f'[{host}] runs as ml.m5.large x 2; resourceconfig: ml.m5.large ["algo-1","algo-2"]' in out, out
    assert "instance type: 2 x ml.m5.large, SageMaker's choice from ml.c5.xlarge:1, ml.m5.large:2" in out
    assert "instances: 2 x ml.m5.large (SageMaker's choice from ml.c5.xlarge:1, ml.m5.large:2)" in out  # summary
    job = create["TrainingJobName"]

    status = cli("status", job, cwd=tmp_path)
    assert status.returncode == 0 and "instances: 2 x ml.m5.large (SageMaker's choice from" in status.stdout
    assert status.stdout.count("instances: ") == 1, status.stdout
    record = json.loads(cli("status", job, "--json", cwd=tmp_path).stdout)
    assert (record["instance_type"], record["instance_count"]) == ("ml.m5.large", 2)
    assert [p["instance_type"] for p in record["instance_preferences"]] == ["ml.c5.xlarge", "ml.m5.large"]
    listed = cli("list", cwd=tmp_path).stdout.splitlines()
    assert "  INSTANCES  " in listed[0] and listed[0].index("INSTANCES") == listed[1].index("2 x ml.m5.large")
    assert job in listed[1], listed
    [row] = json.loads(cli("list", "--json", cwd=tmp_path).stdout)
    assert (row["instance_type"], row["instance_count"]) == ("ml.m5.large", 2)


def test_no_type_of_the_list_has_capacity(tmp_path, sandbox):
    write_script(tmp_path, SCRIPT)
    sandbox.no_capacity = {"ml.c5.xlarge", "ml.m5.large"}
    result = run_python(["train.py", "--sagemaker-run", "yes", "--sagemaker-role", ROLE, "--sagemaker-instance",
                         "ml.c5.xlarge,ml.m5.large", "--sagemaker-instance-count", "2"], cwd=tmp_path, timeout=240)
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and "CapacityError" in result.stderr
    [create] = [c["body"] for c in sandbox.calls() if c["op"] == "SageMaker.CreateTrainingJob"]
    assert create["ResourceConfig"]["InstanceCount"] == 2  # one count for every type
    assert "one of ml.c5.xlarge, ml.m5.large (SageMaker has not chosen yet)" in \
        cli("status", create["TrainingJobName"], cwd=tmp_path).stdout


def test_local_mode_runs_as_the_first_type(tmp_path):
    """Local mode has capacity for any type: SageMaker would take the first, and so does it."""
    write_script(tmp_path, SCRIPT)
    result = run_python(["train.py", "--sagemaker-run", "local", "--sagemaker-instance", "ml.c5.xlarge,ml.m5.large"],
                        cwd=tmp_path, timeout=240)
    assert result.returncode == 0, result.stderr
    assert '[algo-1] runs as ml.c5.xlarge x 1; resourceconfig: ml.c5.xlarge ["algo-1"]' in result.stdout


@pytest.mark.parametrize("args, says", [
    (["--sagemaker-instance", "ml.g5.xlarge,ml.c5.xlarge"], "--sagemaker-instance=ml.g5.xlarge,ml.c5.xlarge: one job "
     "runs one image, and these types need different default images (ml.g5.xlarge: GPU image, ml.c5.xlarge: "
     "CPU image); list types of one kind"),
    (["--sagemaker-instance", ",".join(f"ml.c5.{n}xlarge" for n in (2, 4, 9, 12, 18, 24))],
     "SageMaker chooses among at most 5 instance types"),
    (["--sagemaker-instance", "ml.g5.xlarge:2,ml.g6.xlarge"], "gives a count to some types only"),
    (["--sagemaker-instance", "ml.g5.xlarge:0"], "--sagemaker-instance=ml.g5.xlarge:0: expected TYPE or TYPE:COUNT"),
    (["--sagemaker-instance", "ml.g5.xlarge:2,ml.g6.xlarge:4", "--sagemaker-instance-count", "2"],
     "--sagemaker-instance-count=2: --sagemaker-instance gives each type its count"),
])
def test_lists_sagemaker_would_refuse_are_one_line(tmp_path, args, says):
    write_script(tmp_path, SCRIPT)
    bad = run_python(["train.py", "--sagemaker-run", "yes", "--sagemaker-dry-run", "--sagemaker-role", ROLE,
                      "--sagemaker-region", "us-east-1", *args], cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and says in bad.stderr, bad.stderr


def test_one_image_for_a_mixed_list_when_given_and_the_dry_run_says_how_capacity_is_found(tmp_path):
    write_script(tmp_path, SCRIPT)
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mine:1"
    result = run_python(["train.py", "--sagemaker-run", "yes", "--sagemaker-dry-run", "--sagemaker-role", ROLE,
                         "--sagemaker-region", "us-east-1", "--sagemaker-instance", "ml.g5.xlarge:2,ml.c5.xlarge:8",
                         "--sagemaker-image", image], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["request"]["AlgorithmSpecification"]["TrainingImage"] == image
    assert ("instance preferences: SageMaker starts the job on the first of ml.g5.xlarge x 2, ml.c5.xlarge x 8 that "
            "has capacity") in " ".join(doc["notes"])
    settings = json.loads(doc["request"]["HyperParameters"]["sagemaker_atr_settings"])
    assert settings["instance"] == "ml.g5.xlarge:2,ml.c5.xlarge:8"  # the runtime replaces it by SageMaker's choice


def test_the_process_count_and_efa_follow_the_type_the_host_runs_as():
    """The runtime reads the type from resourceconfig.json: torchrun's EFA settings are those of the
    selected type, not of the list's first."""
    def plan(kind):
        resource = {"current_host": "algo-1", "hosts": ["algo-1"], "current_instance_type": kind}
        return launch.plan_launch(python="python3", script="train.py", argv=[], hps={}, cluster=Cluster(resource, {}),
                                  num_gpus=8, num_neurons=0, distribution="torchrun", environ={})

    efa, plain = plan("ml.p4d.24xlarge"), plan("ml.g5.xlarge")
    assert efa.env.get("FI_PROVIDER") == "efa" and efa.env.get("FI_EFA_USE_DEVICE_RDMA") == "1"
    assert "FI_PROVIDER" not in plain.env and "FI_EFA_USE_DEVICE_RDMA" not in plain.env
    chosen, line = launch.selected_instance({"instance": "ml.p5.48xlarge:2,ml.p4d.24xlarge:4"},
                                            {"current_instance_type": "ml.p4d.24xlarge",
                                             "hosts": ["algo-1", "algo-2", "algo-3", "algo-4"]})
    assert chosen == {"instance": "ml.p4d.24xlarge", "instance_count": "4"}
    assert line == "instance type: 4 x ml.p4d.24xlarge, SageMaker's choice from ml.p5.48xlarge:2, ml.p4d.24xlarge:4"
    assert launch.selected_instance({"instance": "ml.g5.xlarge"}, {"current_instance_type": "ml.g5.xlarge"}) is None


def test_what_describe_says_of_the_instances():
    listed = {"InstancePreferences": [{"InstanceType": "ml.p5.48xlarge", "InstanceCount": 2},
                                      {"InstanceType": "ml.p4d.24xlarge", "InstanceCount": 4}]}
    waiting = {"TrainingJobStatus": "InProgress", "SecondaryStatus": "Starting", "ResourceConfig": listed}
    chosen = dict(waiting, ResourceConfig={**listed, "SelectedInstanceType": "ml.p4d.24xlarge",
                                           "SelectedInstanceCount": 4})
    assert instances_text(waiting) == "one of ml.p5.48xlarge:2, ml.p4d.24xlarge:4 (SageMaker has not chosen yet)"
    assert instances_short(waiting) == "one of 2 types" and instances_short(chosen) == "4 x ml.p4d.24xlarge"
    said = set()
    assert capacity_notes(waiting, said) == []
    assert capacity_notes(chosen, said) == ["SageMaker selected 4 x ml.p4d.24xlarge, the first with capacity of "
                                            "ml.p5.48xlarge:2, ml.p4d.24xlarge:4"]
    assert capacity_notes(chosen, said) == []  # once
    groups = {"ResourceConfig": {"InstanceGroups": [{"InstanceGroupName": "a", "InstanceType": "ml.g5.xlarge",
                                                     "InstanceCount": 1},
                                                    {"InstanceGroupName": "b", "InstanceType": "ml.c5.xlarge",
                                                     "InstanceCount": 2}]}}
    assert instances_short(groups) == "3 in 2 groups"
    assert plan_wait_line({"ResourceConfig": {"TrainingPlanArn": "arn:aws:sagemaker:us-east-1:1:training-plan/p"}}) \
        .startswith("waiting for training plan p: ")
