"""Issue 10.7, heterogeneous clusters: --sagemaker-instance-group NAME=TYPE:COUNT sends
ResourceConfig.InstanceGroups, an input can be restricted to groups, torchrun runs on one named
group; local mode runs every group's hosts with the resourceconfig SageMaker writes."""
import json

from conftest import run_python, write_script
from test_dry_run import validate_create_training_job

ROLE = "arn:aws:iam::123456789012:role/DemoRole"

SCRIPT = """
    import json, os
    from aws_train_remote import training_main

    def main(args):
        resource = json.load(open("/".join([os.environ["SM_INPUT_CONFIG_DIR"], "resourceconfig.json"])))
        has_data = os.path.isdir(args.train) and sorted(os.listdir(args.train))
        print(f"host={resource['current_host']} group={resource['current_group_name']} "
              f"type={resource['current_instance_type']} data={has_data} "
              f"dist={os.environ.get('SM_DISTRIBUTION_INSTANCE_GROUPS')}", flush=True)

    if __name__ == "__main__":
        training_main(main, inputs={"train": "data"})
"""
GROUPS = ["--sagemaker-instance-group", "loaders=ml.c5.xlarge:2", "--sagemaker-instance-group",
          "trainers=ml.m5.large:1", "--sagemaker-distribution-group", "trainers", "--train-instance-groups", "trainers"]


def project(tmp_path):
    write_script(tmp_path, SCRIPT)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.txt").write_text("a")
    return tmp_path


def test_dry_run_request_with_instance_groups(tmp_path):
    root = project(tmp_path)
    result = run_python(["train.py", "--sagemaker-run", "yes", "--sagemaker-dry-run", "--sagemaker-role", ROLE,
                         "--sagemaker-region", "us-east-1", *GROUPS], cwd=root)
    assert result.returncode == 0, result.stderr
    request = json.loads(result.stdout)["request"]
    validate_create_training_job(request)
    assert request["ResourceConfig"]["InstanceGroups"] == [
        {"InstanceType": "ml.c5.xlarge", "InstanceCount": 2, "InstanceGroupName": "loaders"},
        {"InstanceType": "ml.m5.large", "InstanceCount": 1, "InstanceGroupName": "trainers"}]
    assert "InstanceType" not in request["ResourceConfig"]
    [train] = [c for c in request["InputDataConfig"] if c["ChannelName"] == "train"]
    assert train["DataSource"]["S3DataSource"]["InstanceGroupNames"] == ["trainers"]
    assert json.loads(request["HyperParameters"]["sagemaker_distribution_instance_groups"]) == ["trainers"]


def test_instance_group_mistakes_are_one_line(tmp_path):
    root = project(tmp_path)
    for args, expected in (
            (["--sagemaker-instance-group", "a=ml.m5.large"], "expected NAME=TYPE:COUNT"),
            (["--sagemaker-instance-group", "a=ml.m5.large:1", "--sagemaker-distribution-group", "b"],
             "is not one of the instance groups"),
            (["--sagemaker-distribution-group", "b"], "only applies to a heterogeneous cluster"),
            (["--sagemaker-instance-group", "a=ml.m5.large:1", "--train-instance-groups", "z"],
             "is not one of the instance groups"),
    ):
        result = run_python(["train.py", "--sagemaker-run", "yes", "--sagemaker-dry-run", "--sagemaker-role", ROLE,
                             "--sagemaker-region", "us-east-1", *args], cwd=root)
        assert result.returncode == 2 and result.stderr.count("\n") == 1 and expected in result.stderr, result.stderr


def test_local_mode_runs_every_group_and_restricts_the_input(tmp_path):
    root = project(tmp_path)
    result = run_python(["train.py", "--sagemaker-run", "local", *GROUPS], cwd=root, timeout=240)
    assert result.returncode == 0, result.stderr
    lines = sorted(line for line in result.stdout.splitlines() if " host=" in line)
    assert lines == [
        "[algo-1] host=algo-1 group=loaders type=ml.c5.xlarge data=False dist=[\"trainers\"]",
        "[algo-2] host=algo-2 group=loaders type=ml.c5.xlarge data=False dist=[\"trainers\"]",
        "[algo-3] host=algo-3 group=trainers type=ml.m5.large data=['a.txt'] dist=[\"trainers\"]",
    ], result.stdout
