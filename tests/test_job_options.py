"""Issue 19.5, the remaining settings: --sagemaker-infra-check (InfraCheckConfig),
--sagemaker-output-compression none (OutputDataConfig.CompressionType; download, --sagemaker-download
and --sagemaker-model-from then take the model's prefix), --sagemaker-tensorboard [S3_URI]
(TensorBoardOutputConfig, args.tensorboard_dir in every mode, `aws-train-remote tensorboard JOB`),
--sagemaker-session-chaining (SessionChainingConfig) and --sagemaker-experiment-run
(ExperimentConfig.RunName); each from the flag, a config key or its environment variable, each
field botocore-valid, each misuse one line. Local mode and the sandbox write an uncompressed model
under the prefix and sync the TensorBoard folder, so the model and the charts come back end to end."""
import io
import json
import os
import stat
import sys

import boto3
import botocore.session
import pytest
from botocore.validate import ParamValidator
from conftest import run_python, write_script

ROLE = "arn:aws:iam::123456789012:role/DemoRole"
SCRIPT = """
import os
from aws_train_remote import training_main

def main(args):
    os.makedirs(os.path.join(args.model_dir, "sub"), exist_ok=True)
    with open(os.path.join(args.model_dir, "weights.bin"), "w") as fh:
        fh.write("w1")
    with open(os.path.join(args.model_dir, "sub", "config.json"), "w") as fh:
        fh.write("{}")
    with open(os.path.join(args.tensorboard_dir, "events.out.tfevents.1.algo"), "w") as fh:
        fh.write("scalars")
    print("tensorboard_dir=" + args.tensorboard_dir)
    if args.model_init:
        found = sorted(os.path.relpath(os.path.join(r, n), args.model_init)
                       for r, _, names in os.walk(args.model_init) for n in names)
        print("init=" + ",".join(found))

if __name__ == "__main__":
    training_main(main, additional_arguments=[{"dest": "--lr", "type": float, "default": 0.1}])
"""
TUNE = """
objective: {metric: loss, type: Minimize}
max_jobs: 2
parallel_jobs: 1
parameters:
  lr: {type: continuous, min: 0.001, max: 0.5}
"""


@pytest.fixture
def project(tmp_path):
    write_script(tmp_path, SCRIPT)
    (tmp_path / "tune.yaml").write_text(TUNE)
    return tmp_path


def dry_run(project, *args, env=None):
    result = run_python(["train.py", "--sagemaker-run", "yes", "--sagemaker-dry-run", "--sagemaker-role", ROLE,
                         "--sagemaker-region", "us-east-1", *args], cwd=project, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def validate(request: dict) -> None:
    shape = botocore.session.get_session().get_service_model("sagemaker").operation_model(
        "CreateTrainingJob").input_shape
    report = ParamValidator().validate(request, shape)
    assert not report.has_errors(), report.generate_report()


def test_each_flag_gives_its_exact_field(project):
    request = dry_run(project, "--sagemaker-infra-check", "--sagemaker-session-chaining", "--sagemaker-output-compression",
                      "none", "--sagemaker-tensorboard", "--sagemaker-experiment-name", "exp1",
                      "--sagemaker-experiment-run", "run-7")["request"]
    validate(request)
    job = request["TrainingJobName"]
    assert request["InfraCheckConfig"] == {"EnableInfraCheck": True}
    assert request["SessionChainingConfig"] == {"EnableSessionTagChaining": True}
    assert request["OutputDataConfig"]["CompressionType"] == "NONE"
    assert request["TensorBoardOutputConfig"] == {
        "LocalPath": "/opt/ml/output/tensorboard",
        "S3OutputPath": f"s3://sagemaker-us-east-1-123456789012/aws-train-remote/output/{job}/tensorboard/"}
    assert request["ExperimentConfig"] == {"ExperimentName": "exp1", "RunName": "run-7"}
    paths = json.loads(request["HyperParameters"]["sagemaker_atr_paths"])
    assert (paths["tensorboard"], paths["tensorboard_path"]) == ("--tensorboard-dir", "/opt/ml/output/tensorboard")
    plain = dry_run(project)["request"]  # none of them unless asked: the default request is unchanged
    assert not {"InfraCheckConfig", "SessionChainingConfig", "TensorBoardOutputConfig", "ExperimentConfig"} & set(plain)
    assert "CompressionType" not in plain["OutputDataConfig"]


def test_config_keys_and_environment_variables_set_them_too(project):
    (project / "aws-train-remote.yaml").write_text("session_chaining: true\noutput_compression: none\n"
                                                   "experiment_name: exp1\nexperiment_run: r1\n")
    env = {"AWS_TRAIN_REMOTE_INFRA_CHECK": "yes", "AWS_TRAIN_REMOTE_TENSORBOARD": "s3://my-bucket/boards/"}
    request = dry_run(project, env=env)["request"]
    validate(request)
    assert request["InfraCheckConfig"]["EnableInfraCheck"] and request["SessionChainingConfig"]
    assert request["TensorBoardOutputConfig"]["S3OutputPath"] == "s3://my-bucket/boards/"
    assert request["OutputDataConfig"]["CompressionType"] == "NONE" and request["ExperimentConfig"]["RunName"] == "r1"


@pytest.mark.parametrize("args,line", [
    (["--sagemaker-experiment-run", "r1"], "--sagemaker-experiment-run=r1: a run belongs to an experiment; add "
                                           "--sagemaker-experiment-name NAME"),
    (["--sagemaker-experiment-name", "e", "--sagemaker-experiment-run", "bad_name"],
     "--sagemaker-experiment-run=bad_name: not a valid SageMaker Experiments name"),
    (["--sagemaker-tensorboard", "s3://"], "--sagemaker-tensorboard: 's3://': malformed S3 URI"),
    (["--sagemaker-tensorboard", "maybe"], "--sagemaker-tensorboard: 'maybe': expected yes/no or an s3:// URI"),
    (["--sagemaker-output-compression", "zstd"], "--sagemaker-output-compression: 'zstd': expected one of gzip, none"),
    (["--sagemaker-tune", "tune.yaml", "--sagemaker-tensorboard"],
     "--sagemaker-tensorboard=yes: a tuning job's trials take no TensorBoardOutputConfig"),
    (["--sagemaker-tune", "tune.yaml", "--sagemaker-infra-check"],
     "--sagemaker-infra-check=yes: a tuning job's trials take no InfraCheckConfig"),
    (["--sagemaker-tune", "tune.yaml", "--sagemaker-session-chaining"],
     "--sagemaker-session-chaining=yes: a tuning job's trials take no SessionChainingConfig"),
    (["--sagemaker-tune", "tune.yaml", "--sagemaker-experiment-name", "e", "--sagemaker-experiment-run", "r"],
     "--sagemaker-experiment-run=r: a tuning job's trials take no ExperimentConfig"),
])
def test_misuse_is_one_line_and_exit_2(project, args, line):
    result = run_python(["train.py", "--sagemaker-run", "yes", "--sagemaker-dry-run", "--sagemaker-role", ROLE,
                         "--sagemaker-region", "us-east-1", *args], cwd=project)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and line in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_a_tuning_job_keeps_the_uncompressed_output(project):
    tuning = dry_run(project, "--sagemaker-tune", str(project / "tune.yaml"), "--sagemaker-output-compression",
                     "none", "--sagemaker-metric", "loss=loss=([0-9.]+)")["tuning_request"]
    assert tuning["TrainingJobDefinition"]["OutputDataConfig"]["CompressionType"] == "NONE"


def test_plain_run_has_args_tensorboard_dir_under_output(project):
    result = run_python(["train.py"], cwd=project)
    assert result.returncode == 0, result.stderr
    assert "tensorboard_dir=output/tensorboard\n" in result.stdout  # as args.model_dir: as given, made here
    assert (project / "output" / "tensorboard" / "events.out.tfevents.1.algo").read_text() == "scalars"


def test_local_mode_writes_the_model_uncompressed_and_brings_tensorboard_back(project):
    result = run_python(["train.py", "--sagemaker-run", "local", "--sagemaker-output-compression", "none",
                         "--sagemaker-tensorboard", "--sagemaker-base-job-name", "loc"], cwd=project, timeout=180)
    assert result.returncode == 0, result.stderr
    assert "tensorboard_dir=" in result.stdout and "/opt/ml/output/tensorboard" in result.stdout
    assert (project / "output" / "model" / "sub" / "config.json").read_text() == "{}"
    boards = list((project / "output" / "tensorboard").glob("loc-*/events.out.tfevents.1.algo"))
    assert len(boards) == 1 and boards[0].read_text() == "scalars", result.stdout
    assert "/output/model/ (2 files unpacked into" in result.stdout.replace(os.sep, "/"), result.stdout
    assert "TensorBoard: 1 file in" in result.stdout


def test_sandbox_round_trip_of_an_uncompressed_model_and_tensorboard(project, sandbox, tmp_path):
    result = run_python(["train.py", "--sagemaker-run", "yes", "--sagemaker-role", ROLE, "--sagemaker-output-compression",
                         "none", "--sagemaker-tensorboard", "--sagemaker-download", "--sagemaker-infra-check",
                         "--sagemaker-session-chaining", "--sagemaker-base-job-name", "flat", "--model-dir", "fetched"],
                        cwd=project, timeout=240)
    assert result.returncode == 0, result.stderr
    job = next(line.split()[1].rstrip(",") for line in result.stdout.splitlines() if line.startswith("Completed: "))
    sm = boto3.client("sagemaker", region_name="us-east-1")
    desc = sm.describe_training_job(TrainingJobName=job)
    output = desc["OutputDataConfig"]["S3OutputPath"].rstrip("/")
    assert desc["ModelArtifacts"]["S3ModelArtifacts"] == f"{output}/{job}/output/model/"
    assert desc["InfraCheckConfig"] == {"EnableInfraCheck": True}
    assert "SessionChainingConfig" not in desc  # DescribeTrainingJob answers none on AWS either
    bucket, prefix = output[len("s3://"):].split("/", 1)
    keys = {o["Key"][len(prefix) + 1:] for o in boto3.client("s3", region_name="us-east-1").list_objects_v2(
        Bucket=bucket, Prefix=prefix + "/" + job)["Contents"]}
    assert {f"{job}/output/model/weights.bin", f"{job}/output/model/sub/config.json",
            f"{job}/tensorboard/events.out.tfevents.1.algo"} <= keys and f"{job}/output/model.tar.gz" not in keys
    assert (project / "fetched" / "sub" / "config.json").read_text() == "{}"  # --sagemaker-download

    cli = [sys.executable, "-m", "aws_train_remote.cli.main"]
    fetched = run_python([*cli[1:], "download", job, "--dest", str(tmp_path / "dl")], cwd=project)
    assert fetched.returncode == 0 and "2 files unpacked" in fetched.stdout, fetched.stderr
    assert (tmp_path / "dl" / "weights.bin").read_text() == "w1"
    again = run_python([*cli[1:], "download", job, "--dest", str(tmp_path / "dl")], cwd=project)
    assert again.returncode == 2 and "already there, in the way" in again.stderr  # nothing of the user's lost

    boards = run_python([*cli[1:], "tensorboard", job, "--no-start"], cwd=project)
    assert boards.returncode == 0, boards.stderr
    assert (project / "output" / "tensorboard" / job / "events.out.tfevents.1.algo").read_text() == "scalars"
    assert f"start it with: tensorboard --logdir {os.path.join('output', 'tensorboard', job)} --port 6006" \
        in boards.stdout

    fake = tmp_path / "bin"  # TensorBoard itself: a stand-in that notes how it was started and ends
    fake.mkdir()
    (fake / "tensorboard").write_text(f"#!{sys.executable}\nimport sys\nopen({str(tmp_path / 'argv')!r}, 'w')"
                                      ".write(' '.join(sys.argv[1:]))\n")
    (fake / "tensorboard").chmod(stat.S_IRWXU)
    started = run_python([*cli[1:], "tensorboard", job, "--dest", str(tmp_path / "tb"), "--port", "6123"],
                         cwd=project, env={"PATH": f"{fake}{os.pathsep}{os.environ['PATH']}"})
    assert started.returncode == 0, started.stderr
    assert (tmp_path / "argv").read_text() == f"--logdir {tmp_path / 'tb'} --port 6123"
    assert "TensorBoard on http://localhost:6123/" in started.stdout

    warm = run_python(["train.py", "--sagemaker-model-from", job], cwd=project)  # a plain run from the prefix
    assert warm.returncode == 0, warm.stderr
    assert "init=sub/config.json,weights.bin" in warm.stdout


def test_tensorboard_command_help_has_examples(project):
    result = run_python(["-m", "aws_train_remote.cli.main", "tensorboard", "--help"], cwd=project)
    assert result.returncode == 0 and "examples:\n  aws-train-remote tensorboard" in result.stdout


def test_tensorboard_command_names_a_job_without_it_in_one_line(project, sandbox):
    result = run_python(["train.py", "--sagemaker-run", "yes", "--sagemaker-role", ROLE, "--sagemaker-base-job-name",
                         "noboard"], cwd=project, timeout=240)
    assert result.returncode == 0, result.stderr
    job = next(line.split()[1].rstrip(",") for line in result.stdout.splitlines() if line.startswith("Completed: "))
    refused = run_python(["-m", "aws_train_remote.cli.main", "tensorboard", job], cwd=project)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert "has no TensorBoard output (it was launched without --sagemaker-tensorboard)" in refused.stderr


def test_new_instance_families_have_images_gpu_counts_and_efa():
    from aws_train_remote.runtime.launch import EFA_TYPES
    from aws_train_remote.spec.images import default_image, gpu_count

    for kind, gpus in (("ml.p5en.48xlarge", 8), ("ml.p6-b200.48xlarge", 8), ("ml.p6-b300.48xlarge", 8),
                       ("ml.g7e.2xlarge", 1), ("ml.g7e.12xlarge", 2), ("ml.g7e.48xlarge", 8), ("ml.g7.2xlarge", 1)):
        assert gpu_count(kind) == gpus
        assert default_image("pytorch", "2.13.0", kind, "us-east-1").endswith("-cu133-amzn2023-sagemaker")
    assert {"ml.p5en.48xlarge", "ml.p6-b200.48xlarge", "ml.p6-b300.48xlarge", "ml.g7e.48xlarge"} <= EFA_TYPES
    enum = botocore.session.get_session().get_service_model("sagemaker").shape_for("TrainingInstanceType").enum
    assert {"ml.p5en.48xlarge", "ml.p6-b300.48xlarge", "ml.g7.48xlarge", "ml.g7e.48xlarge"} <= set(enum)


def test_tensorboard_command_follows_a_running_job(aws, tmp_path):
    """While the job runs the folder is fetched again after each pause, until the job has ended and
    its last files are in; TensorBoard (a stand-in process here) runs until then."""
    from types import SimpleNamespace

    from aws_train_remote.aws.session import AwsSession
    from aws_train_remote.executors.tensorboard import cmd_tensorboard

    s3, sm = boto3.client("s3", region_name="us-east-1"), boto3.client("sagemaker", region_name="us-east-1")
    s3.create_bucket(Bucket="boards")
    sm.create_training_job(
        TrainingJobName="running", RoleArn=ROLE,
        AlgorithmSpecification={"TrainingImage": "img", "TrainingInputMode": "File"},
        OutputDataConfig={"S3OutputPath": "s3://boards/out"}, StoppingCondition={"MaxRuntimeInSeconds": 60},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        TensorBoardOutputConfig={"S3OutputPath": "s3://boards/tb/running/"})
    aws.set_job("running", training_job_status="InProgress")
    s3.put_object(Bucket="boards", Key="tb/running/train/events.1", Body=b"first")
    pauses = []

    def sleep(seconds):  # the job writes one more file, then ends
        pauses.append(seconds)
        if len(pauses) == 1:
            s3.put_object(Bucket="boards", Key="tb/running/train/events.2", Body=b"second")
        else:
            aws.set_job("running", training_job_status="Completed")

    class Board:  # TensorBoard: serves until stopped
        started, stopped = None, False

        def __init__(self, command):
            Board.started = command

        def poll(self):
            return None

        def wait(self, timeout=None):
            Board.stopped = True
            return 0

    out = io.StringIO()
    args = SimpleNamespace(dest=str(tmp_path / "tb"), port=6006, no_start=False)
    assert cmd_tensorboard(AwsSession(region="us-east-1"), "running", args, out=out, runner=Board,
                           which=lambda name: "/opt/bin/tensorboard", sleep=sleep) == 0
    assert Board.started == ["/opt/bin/tensorboard", "--logdir", str(tmp_path / "tb"), "--port", "6006"]
    assert (tmp_path / "tb" / "train" / "events.2").read_bytes() == b"second" and Board.stopped
    assert "1 file from s3://boards/tb/running/" in out.getvalue() and "1 file more from running" in out.getvalue()
    assert len(pauses) == 2
