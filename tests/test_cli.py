"""Issue 9.1 and 9.4: the job CLI for scripts and people, against the loopback AWS (real moto,
real subprocesses): --json, list pagination and filters, logs --tail/--since/--instance, JOB as a
name, an ARN or last, exit statuses, one-line errors, role create, the sandbox's role and links."""
import importlib.util
import json
import os
import subprocess
import sys

import boto3
import pytest
from conftest import REPO, run_python

ROLE = "arn:aws:iam::123456789012:role/DemoRole"
DEMO = os.path.join(REPO, "demo", "train.py")


def cli(*args, cwd, env=None, timeout=120):
    return run_python(["-m", "aws_train_remote.cli.main", *args], cwd=cwd, env=env, timeout=timeout)


def create_jobs(count, prefix="bulk"):
    sm = boto3.client("sagemaker", region_name="us-east-1")
    for i in range(count):
        sm.create_training_job(
            TrainingJobName=f"{prefix}-{i:03d}", RoleArn=ROLE,
            AlgorithmSpecification={"TrainingImage": "123456789012.dkr.ecr.us-east-1.amazonaws.com/x:1",
                                    "TrainingInputMode": "File"},
            OutputDataConfig={"S3OutputPath": "s3://bucket/out"},
            ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
            StoppingCondition={"MaxRuntimeInSeconds": 60})


def test_list_follows_every_page_filters_and_prints_json(tmp_path, aws):
    create_jobs(105)
    create_jobs(2, prefix="other")
    aws.set_job("bulk-007", training_job_status="Failed", failure_reason="boom")
    table = cli("list", cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    rows = table.stdout.splitlines()
    assert rows[0].split()[:5] == ["CREATED", "(UTC)", "STATUS", "ENDED", "(UTC)"] and len(rows) == 21
    assert "INSTANCES" in rows[0].split() and rows[0].split()[-1] == "NAME" and "1 x ml.m5.large" in rows[1]
    everything = cli("list", "--limit", "0", "--json", cwd=tmp_path)
    jobs = json.loads(everything.stdout)
    assert len(jobs) == 107 and len({j["name"] for j in jobs}) == 107  # beyond one page of 100
    assert {"name", "arn", "status", "secondary_status", "created", "ended", "modified", "instance_type",
            "instance_count"} <= set(jobs[0]) and jobs[0]["instance_type"] == "ml.m5.large"
    named = json.loads(cli("list", "--name-contains", "other", "--json", cwd=tmp_path).stdout)
    assert sorted(j["name"] for j in named) == ["other-000", "other-001"]
    failed = json.loads(cli("list", "--status", "Failed", "--limit", "0", "--json", cwd=tmp_path).stdout)
    assert [j["name"] for j in failed] == ["bulk-007"]
    assert len(json.loads(cli("list", "--since", "1h", "--limit", "0", "--json", cwd=tmp_path).stdout)) == 107
    bad = cli("list", "--since", "yesterday", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--since=yesterday" in bad.stderr


def test_status_exit_codes_arn_last_and_one_line_errors(tmp_path, aws):
    create_jobs(4, prefix="st")
    for name, status in (("st-000", "Completed"), ("st-001", "Failed"), ("st-002", "Stopped"),
                         ("st-003", "InProgress")):
        aws.set_job(name, training_job_status=status)
    codes = {name: cli("status", name, cwd=tmp_path).returncode for name in ("st-000", "st-001", "st-002", "st-003")}
    assert codes == {"st-000": 0, "st-001": 1, "st-002": 3, "st-003": 4}
    arn = "arn:aws:sagemaker:us-east-1:123456789012:training-job/st-001"
    record = json.loads(cli("status", arn, "--json", cwd=tmp_path).stdout)
    assert record["name"] == "st-001" and record["status"] == "Failed" and record["exit_status"] == 1
    assert record["instance_type"] == "ml.m5.large" and record["arn"].endswith("/st-001")
    for args in (("status", "no-such-job"), ("status",), ("logs", "last"), ("status", "not_a name!"),
                 ("download", "st-001")):
        result = cli(*args, cwd=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert "no job has been launched from this folder" in cli("status", cwd=tmp_path).stderr
    assert "has no model to download: it is Failed" in cli("download", "st-001", cwd=tmp_path).stderr


def test_a_region_that_does_not_exist_is_one_line(tmp_path, aws):
    env = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL"}
    result = subprocess.run([sys.executable, "-m", "aws_train_remote.cli.main", "list", "--region", "us-fake-1"],
                            cwd=tmp_path, env={**env, "PYTHONPATH": REPO}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr == ("aws-train-remote: error: --region=us-fake-1: not a region where SageMaker is "
                             "available; use one such as us-east-1 or eu-west-1 (if the region is new, upgrade "
                             "boto3)\n")
    launch = subprocess.run([sys.executable, DEMO, "--sagemaker-run", "yes", "--sagemaker-role", ROLE,
                             "--sagemaker-region", "us-fake-1"], cwd=tmp_path, env={**env, "PYTHONPATH": REPO},
                            capture_output=True, text=True, timeout=60)
    assert launch.returncode == 2 and launch.stderr.count("\n") == 1 and "--sagemaker-region=us-fake-1" in launch.stderr


def test_bad_list_flags_and_regions_are_one_line_before_any_call(tmp_path, aws):
    """Issue 17.8: argparse's five-line usage and a server's HTML page became one line, exit 2,
    before any call; issue 21.5: a missing region is bad input (2), not a failed job (1)."""
    create_jobs(1, prefix="flt")
    aws.set_job("flt-000", training_job_status="Failed")
    calls = len(aws.calls())
    for args, says in ((("list", "-n", "abc"), "argument -n/--limit: 'abc' is not a whole number"),
                       (("list", "--limit", "-3"), "'-3' is not a whole number of 0 or more"),
                       (("list", "--status", "Running"), "'Running' is not a training job status; use one of "
                                                         "InProgress, Completed"),
                       (("list", "--region", "mars"), "--region=mars: not an AWS region name"),  # endpoint set
                       (("status", "flt-000", "--region", "mars"), "--region=mars: not an AWS region name"),
                       (("role",), "the following arguments are required: action; see: aws-train-remote role --help"),
                       (("stop",), "JOB: no job has been launched from this folder"),  # issue 21.5: JOB optional
                       (("lst",), "unknown command 'lst'; did you mean list?"),  # issue 21.5
                       (("metrics", "--plot", "curves.png"), "--plot=curves.png: drawing needs matplotlib")
                       if importlib.util.find_spec("matplotlib") is None else
                       (("metrics", "--plot", "no-such-dir/curves.png"), "no folder")):
        result = cli(*args, cwd=tmp_path)
        assert result.returncode == 2 and result.stderr.count("\n") == 1, (args, result.stderr)
        assert says in result.stderr and "usage:" not in result.stderr and "<" not in result.stderr, result.stderr
    assert len(aws.calls()) == calls  # nothing reached the server
    failed = json.loads(cli("list", "--status", "failed", "--json", cwd=tmp_path).stdout)  # any case
    assert [j["name"] for j in failed] == ["flt-000"]
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_REGION", "AWS_DEFAULT_REGION")}
    for args in (("list",), ("status", "flt-000"), ("logs", "flt-000"), ("gc",), ("role", "create"),
                 ("download", "flt-000")):
        result = subprocess.run([sys.executable, "-m", "aws_train_remote.cli.main", *args], cwd=tmp_path,
                                env={**env, "PYTHONPATH": REPO}, capture_output=True, text=True, timeout=60)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr == ("aws-train-remote: error: --region: no AWS region set; pass --region us-east-1 "
                                 "or set AWS_REGION\n"), (args, result.stderr)
    assert len(aws.calls()) == calls + 2  # the one `list --status failed` above: its page, its job's Describe
    assert not (tmp_path / "output").exists()


def test_an_html_error_page_is_one_line(tmp_path, aws):
    """A well-formed region the endpoint does not serve: its HTML error page shrinks to its title."""
    result = cli("list", "--region", "us-fake-1", cwd=tmp_path)
    assert result.stderr.count("\n") == 1 and "<" not in result.stderr, result.stderr
    assert "answered with an HTML page" in result.stderr and "check --region and AWS_ENDPOINT_URL" in result.stderr


def test_logs_tail_since_instance_json_and_last(tmp_path, sandbox):
    launched = run_python([DEMO, "--epochs", "3", "--sagemaker-run", "yes", "--sagemaker-role", ROLE,
                           "--sagemaker-instance-count", "2", "--sagemaker-output-json", "desc.json"],
                          cwd=tmp_path, timeout=240)
    assert launched.returncode == 0, launched.stderr
    job = next(line.split()[1] for line in launched.stdout.splitlines() if line.startswith("job: "))
    # issue 9.4: no link to the real AWS console for a sandbox job, the commands instead
    assert "console.aws.amazon.com" not in launched.stdout and f"status: aws-train-remote status {job}" in launched.stdout
    described = json.loads((tmp_path / "desc.json").read_text())  # --sagemaker-output-json (aws-sagemaker-remote)
    assert described["TrainingJobName"] == job and described["TrainingJobStatus"] == "Completed"

    everything = cli("logs", cwd=tmp_path)  # no JOB: the last one launched from this folder
    assert everything.returncode == 0, everything.stderr
    lines = everything.stdout.splitlines()
    assert len(lines) > 10 and {line.split()[0] for line in lines} == {"[algo-1]", "[algo-2]"}
    tail = cli("logs", job, "--tail", "5", cwd=tmp_path).stdout.splitlines()
    assert tail == lines[-5:]
    only_two = cli("logs", "last", "--instance", "algo-2", cwd=tmp_path).stdout.splitlines()
    assert only_two == [line for line in lines if line.startswith("[algo-2]")]
    records = [json.loads(x) for x in cli("logs", job, "--json", "--tail", "3", cwd=tmp_path).stdout.splitlines()]
    assert [f"[{r['instance']}] {r['message']}" for r in records] == lines[-3:]
    assert all(isinstance(r["timestamp"], int) for r in records)
    assert cli("logs", job, "--since", "1h", cwd=tmp_path).stdout.splitlines() == lines
    followed = cli("logs", job, "--follow", "--tail", "2", cwd=tmp_path)
    assert followed.returncode == 0 and "Completed: " in followed.stdout
    assert [line for line in followed.stdout.splitlines() if line.startswith("[")] == lines[-2:]
    status = json.loads(cli("status", "--json", cwd=tmp_path).stdout)
    assert status["name"] == job and status["instance_count"] == 2
    downloaded = json.loads(cli("download", "last", "--dest", "m", "--json", cwd=tmp_path).stdout)
    assert downloaded["files"] == 1 and (tmp_path / "m" / "model.json").is_file()


def test_role_create_is_scoped_to_the_bucket_and_named_when_missing(tmp_path, aws):
    first = cli("role", "create", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    arn = "arn:aws:iam::123456789012:role/aws-train-remote-training"
    assert f"created {arn}" in first.stdout and f"export AWS_TRAIN_REMOTE_ROLE={arn}" in first.stdout
    iam = boto3.client("iam", region_name="us-east-1")
    trust = iam.get_role(RoleName="aws-train-remote-training")["Role"]["AssumeRolePolicyDocument"]
    assert trust["Statement"][0]["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    policy = iam.get_role_policy(RoleName="aws-train-remote-training", PolicyName="aws-train-remote-training")
    resources = {s["Sid"]: s["Resource"] for s in policy["PolicyDocument"]["Statement"]}
    assert resources["Objects"] == "arn:aws:s3:::sagemaker-us-east-1-123456789012/*"
    again = cli("role", "create", cwd=tmp_path)
    assert again.returncode == 0 and f"exists, unchanged: {arn}" in again.stdout
    missing = run_python([DEMO, "--sagemaker-run", "yes", "--sagemaker-role", "NoSuchRole"], cwd=tmp_path)
    assert missing.returncode == 2 and "aws-train-remote role create NoSuchRole" in missing.stderr
    no_role = run_python([DEMO, "--sagemaker-run", "yes"], cwd=tmp_path)
    assert no_role.returncode == 2 and "aws-train-remote role create" in no_role.stderr
    by_name = run_python([DEMO, "--sagemaker-run", "yes", "--sagemaker-role", "aws-train-remote-training",
                          "--sagemaker-wait", "no"], cwd=tmp_path)
    assert by_name.returncode == 0, by_name.stderr
    [body] = [c["body"] for c in aws.calls() if c["op"] == "SageMaker.CreateTrainingJob"]
    assert body["RoleArn"] == arn


def test_sandbox_command_provides_a_role_and_runs_a_job(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_TRAIN_REMOTE_")}
    result = subprocess.run(
        [sys.executable, "-m", "aws_train_remote.cli.main", "sandbox", "--", sys.executable, DEMO, "--epochs", "1",
         "--sagemaker-run", "yes"],
        cwd=tmp_path, env={**env, "PYTHONPATH": REPO}, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr
    assert "Completed: train-" in result.stdout and "console.aws.amazon.com" not in result.stdout
    # issue 21.8: the sandbox's jobs end with it, and the end says so and how to keep one running
    assert "sandbox: stopped; its jobs, logs and S3 objects are gone with it" in result.stderr
    assert "`aws-train-remote sandbox` in another shell" in result.stderr


@pytest.mark.parametrize("command", ["list", "status", "logs", "attach", "stop", "download", "role", "sandbox",
                                     "metrics", "completion"])
def test_every_subcommand_help_has_an_example(tmp_path, command):
    result = cli(command, "--help", cwd=tmp_path)
    assert result.returncode == 0 and "examples:\n  aws-train-remote " + command in result.stdout
